// ctx.stream: what the host says about the stream, with its defaults; frozen, the same
// object for the whole stream, also in onDone.
let kept;
export default {
  onRequest(req, ctx) {
    const s = ctx.stream;
    kept = s;
    ctx.log.info(s.id, s.protocol, s.remoteAddress, s.localAddress, JSON.stringify(s.routeName), s.workerIndex);
    ctx.log.info(Object.isFrozen(s), s === ctx.stream, Object.keys(s).join(","), Object.getPrototypeOf(s) === Object.prototype);
    try { s.id = "x"; ctx.log.info("assigned?", s.id); } catch (e) { ctx.log.info(e.name); }
  },
  onDone(ctx) {
    ctx.log.info("done", ctx.stream.id, ctx.stream === kept);
  },
};
