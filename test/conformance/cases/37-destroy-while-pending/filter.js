// The client goes away while a hook is pending: body reads reject with StreamGone, host
// calls throw StreamGone, ctx.aborted is true, onDone runs; the next stream is unaffected.
// What the abandoned hook logs after the destroy goes to the worker's log.
export default {
  async onRequest(req, ctx) {
    if (req.path === "/next") return;
    try {
      await req.body.text();
    } catch (e) {
      ctx.log.info("body: " + e.name + " aborted=" + ctx.aborted + " " + JSON.stringify(Object.keys(e)));
    }
    try { req.headers.get("x"); } catch (e) { ctx.log.info("headers: " + e.name + ": " + e.message); }
    try { ctx.respond(500); } catch (e) { ctx.log.info("respond: " + e.name); }
    try { req.body; } catch (e) { ctx.log.info("req.body: " + e.name); }
    try { setTimeout(() => {}, 1); } catch (e) { ctx.log.info("setTimeout: " + e.name); }
    ctx.log.info("path: " + (() => { try { return req.path; } catch (e) { return e.name; } })());
    console.log("console after destroy");
  },
  onDone(ctx) {
    ctx.log.info("done aborted=" + ctx.aborted);
  },
};
