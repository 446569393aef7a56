// A queueMicrotask callback that throws fails the stream whose code is running; one thrown
// in a stream's timer fails that stream "in a timer callback".
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export default {
  async onRequest(req, ctx) {
    if (req.path === "/microtask") {
      queueMicrotask(() => {
        throw new Error("microtask failed");
      });
      return;
    }
    setTimeout(() => {
      throw new RangeError("timer failed");
    }, 2);
    await sleep(10);
    ctx.log.info("still ran at " + performance.now());
  },
};
