// Whole-body reads that can never finish because the client goes away: they reject with
// StreamGone, and the rejection is handled by the filter.
export default {
  async onRequest(req, ctx) {
    try {
      await req.body.text();
      ctx.log.info("read finished");
    } catch (e) {
      ctx.log.info("read failed: " + e.name + " aborted=" + ctx.aborted);
    }
    try {
      await req.body.json();
    } catch (e) {
      ctx.log.info("second read: " + e.name);
    }
    try {
      req.headers.get("x");
    } catch (e) {
      ctx.log.info("headers: " + e.name);
    }
  },
  onDone(ctx) {
    ctx.log.info("done aborted=" + ctx.aborted);
  },
};
