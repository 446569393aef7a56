// A local reply from an async hook goes out when the hook settles.
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export default {
  async onRequest(req, ctx) {
    await sleep(3);
    ctx.log.info("waited until", performance.now());
    return ctx.respond(429, { body: "slow down" });
  },
};
