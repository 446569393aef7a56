// Every hook, synchronous: each logs what it sees and edits what it may.
export default {
  onRequest(req, ctx) {
    ctx.log.info("onRequest", req.method, req.path, req.authority, req.scheme, req.headers.get("x-in"));
    req.headers.set("x-req-hook", "1");
  },
  onRequestData(chunk, ctx) {
    ctx.log.info("onRequestData", chunk.text(), chunk.size, chunk.endOfStream);
    chunk.append("+");
  },
  onRequestTrailers(trailers, ctx) {
    ctx.log.info("onRequestTrailers", trailers.get("x-rt"));
    trailers.set("x-rt", "edited");
  },
  onResponse(res, ctx) {
    ctx.log.info("onResponse", res.status, res.headers.get("server"));
    res.headers.set("x-res-hook", "1");
  },
  onResponseData(chunk, ctx) {
    ctx.log.info("onResponseData", chunk.text(), chunk.endOfStream);
    chunk.replace(chunk.text().toUpperCase());
  },
  onResponseTrailers(trailers, ctx) {
    ctx.log.info("onResponseTrailers", trailers.get("grpc-status"));
    trailers.append("x-filtered", "yes");
  },
  onDone(ctx) {
    ctx.log.info("onDone", ctx.aborted);
  },
};
