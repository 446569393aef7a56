// clearRouteCache() while the request headers are still held (also after an await in
// onRequest) reaches the host; once they went on it throws, in onResponse and in onDone.
export default {
  async onRequest(req, ctx) {
    req.headers.set("x-canary", "1");
    ctx.clearRouteCache();
    await null;
    ctx.clearRouteCache();
  },
  onResponse(res, ctx) {
    try { ctx.clearRouteCache(); } catch (e) { ctx.log.info(e.name + ": " + e.message); }
  },
  onDone(ctx) {
    try { ctx.clearRouteCache(); } catch (e) { ctx.log.info("done " + e.name); }
  },
};
