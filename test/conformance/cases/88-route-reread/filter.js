// After ctx.clearRouteCache() Envoy picks the route again from the headers as they are then,
// and ctx.config follows the new route's per-route config (read again on the next ctx.config).
// A new route that disables the filter leaves ctx.config at the filter's own config: the
// filter already runs on this stream and keeps running.
export default {
  onRequest(req, ctx) {
    const before = ctx.config.tag;
    req.headers.set("x-target", req.path.slice(1));
    ctx.clearRouteCache();
    ctx.log.info(`${before} -> ${ctx.config.tag}`);
  },
  onResponse(res, ctx) {
    res.headers.set("x-config-tag", String(ctx.config.tag));
  },
};
