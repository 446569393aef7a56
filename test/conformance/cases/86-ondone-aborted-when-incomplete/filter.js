// onDone runs when the host reports the stream complete (Envoy's onStreamComplete), also for a
// stream whose response never ended: then ctx.aborted is true.
export default {
  onRequest(req, ctx) {
    if (req.path === "/stall") return new Promise(() => {});
  },
  onDone(ctx) {
    ctx.log.info("onDone aborted=" + ctx.aborted);
  },
};
