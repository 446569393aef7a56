// Every hook runs once, in Envoy's order, and sees its message.
export default {
  onRequest(req, ctx) { ctx.log.info("onRequest", req.method, req.path, req.authority, req.scheme); },
  onRequestData(c, ctx) { ctx.log.info("onRequestData", c.text(), c.endOfStream, c.size); },
  onRequestTrailers(t, ctx) { ctx.log.info("onRequestTrailers", t.get("x-rt")); },
  onResponse(res, ctx) { ctx.log.info("onResponse", res.status, res.headers.get("server")); },
  onResponseData(c, ctx) { ctx.log.info("onResponseData", c.text(), c.endOfStream); },
  onResponseTrailers(t, ctx) { ctx.log.info("onResponseTrailers", t.get("grpc-status")); },
  onDone(ctx) { ctx.log.info("onDone", ctx.aborted); },
};
