// Hooks that await while the client goes away: timers are cancelled, ctx.aborted is true, host
// calls from the gone stream throw StreamGone, onDone still runs.
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export default {
  async onRequest(req, ctx) {
    const headers = req.headers;
    await sleep(20);
    ctx.log.info("must not run: the stream is gone");
    headers.set("x-late", "1");
  },
  async onRequestData(chunk, ctx) {
    await sleep(20);
    ctx.log.info("must not run either");
  },
  onDone(ctx) {
    ctx.log.info("onDone aborted=" + ctx.aborted);
  },
};
