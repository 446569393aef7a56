// Many streams on one engine: module state is shared, per-stream state is not, and async
// hooks of different streams finish in their own order.
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let n = 0;
export default {
  async onRequest(req, ctx) {
    const me = ++n;
    await sleep(5 - me);
    req.headers.set("x-n", String(me));
    ctx.log.info("stream " + me + " at " + performance.now());
  },
};
