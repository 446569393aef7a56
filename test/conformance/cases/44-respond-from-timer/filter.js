// respond() from a timer while this stream's hook is pending: the reply goes out when the
// hook settles, and the hook's own respond() is then refused.
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export default {
  async onRequest(req, ctx) {
    setTimeout(() => {
      ctx.respond(504, { body: "took too long", details: "filter timeout" });
      ctx.log.info("timer responded at " + performance.now());
    }, 5);
    await sleep(20);
    try { ctx.respond(200); } catch (e) { ctx.log.info(e.name + ": " + e.message); }
  },
};
