// An async data hook holds later chunks and keeps their order; each chunk is rewritten after
// its own await.
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export default {
  async onRequestData(c, ctx) {
    const s = c.text();
    await sleep(s === "slow" ? 30 : 1);
    c.replace("[" + s + "]");
    ctx.log.info("done " + s + " at " + performance.now());
  },
};
