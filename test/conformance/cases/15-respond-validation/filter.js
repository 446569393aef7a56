// respond() checks its status, refuses a second reply, and refuses once the response left.
const attempt = (ctx, what, fn) => {
  try { fn(); ctx.log.info(what, "ok"); } catch (e) { ctx.log.info(what, e.name + ": " + e.message); }
};
export default {
  onRequest(req, ctx) {
    if (req.path === "/late") return;
    attempt(ctx, "99", () => ctx.respond(99));
    attempt(ctx, "600", () => ctx.respond(600));
    attempt(ctx, "200.5", () => ctx.respond(200.5));
    attempt(ctx, "string", () => ctx.respond("404"));
    attempt(ctx, "none", () => ctx.respond());
    attempt(ctx, "first", () => ctx.respond(404));
    attempt(ctx, "second", () => ctx.respond(410));
  },
  onResponseData(chunk, ctx) {
    attempt(ctx, "too late", () => ctx.respond(500));
  },
};
