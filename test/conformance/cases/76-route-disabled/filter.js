// A route that disables the filter: no hook runs (onDone neither), every callback continues,
// the request and response pass untouched.
export default {
  onRequest(req, ctx) { req.headers.set("x-seen", "1"); ctx.log.info("onRequest"); },
  onRequestData(c, ctx) { c.replace("changed"); },
  onRequestTrailers(t) { t.set("x-t", "changed"); },
  async onResponse(res, ctx) { await null; res.headers.set("x-seen", "1"); },
  onResponseData(c) { c.clear(); },
  onDone(ctx) { ctx.log.info("done"); },
};
