// Headers are writable only until their phase is continued; reads keep working.
let saved;
export default {
  onRequest(req) {
    saved = req.headers;
  },
  onResponse(res, ctx) {
    try { saved.set("x-late", "1"); } catch (e) { ctx.log.info(e.name + ": " + e.message); }
    try { saved.delete(":path"); } catch (e) { ctx.log.info(e.name + ": " + e.message); }
    ctx.log.info("read still works: " + saved.get(":path"));
  },
};
