// onDone runs once per stream, with a usable ctx, read-only maps, aborted true only when the
// client went away; respond() there is too late.
let kept;
export default {
  onRequest(req) {
    kept = req;
  },
  onDone(ctx) {
    ctx.log.info("done aborted=" + ctx.aborted + " path=" + kept.path);
    try { kept.headers.set("x", "1"); } catch (e) { ctx.log.info(e.name + ": " + e.message); }
    try { ctx.respond(200); } catch (e) { ctx.log.info(e.name + ": " + e.message); }
  },
};
