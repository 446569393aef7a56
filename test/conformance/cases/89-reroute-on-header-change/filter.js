// rerouteOnHeaderChange: every change to the request headers clears the route cache, as
// Envoy's Wasm filter does: the route (and ctx.config) follow the changed headers without a
// ctx.clearRouteCache() call. Reads and response-header changes clear nothing.
export default {
  rerouteOnHeaderChange: true,
  onRequest(req, ctx) {
    req.headers.get("x-target");
    if (req.path === "/move") {
      req.headers.set("x-target", "c");
      req.headers.delete("x-old");
    }
    ctx.log.info(String(ctx.config.tag));
  },
  onResponse(res) {
    res.headers.set("x-seen", "1");
  },
};
