// failure_mode open: the failure is logged and counted, and the stream carries on as if the
// hook had returned nothing (a pending respond() is dropped).
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export default {
  async onRequest(req, ctx) {
    await sleep(1);
    req.headers.set("x-before-throw", "1");
    throw new TypeError("nope");
  },
  onResponse(res, ctx) {
    ctx.respond(500);
    throw new Error("after respond");
  },
};
