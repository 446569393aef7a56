// Destroying a stream cancels its timers: the callbacks never run.
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export default {
  async onRequest(req, ctx) {
    setInterval(() => ctx.log.info("interval must not run"), 5);
    await sleep(50);
    ctx.log.info("must not run");
  },
  onDone(ctx) {
    ctx.log.info("done aborted=" + ctx.aborted);
  },
};
