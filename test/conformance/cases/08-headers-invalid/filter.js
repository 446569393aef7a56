// Invalid names and values throw TypeErrors that say what is wrong; nothing is written.
const attempt = (ctx, what, fn) => {
  try { fn(); ctx.log.info(what, "ok"); } catch (e) { ctx.log.info(what, e.name + ": " + e.message); }
};
export default {
  onRequest(req, ctx) {
    const h = req.headers;
    attempt(ctx, "space", () => h.set("bad name", "v"));
    attempt(ctx, "empty", () => h.get(""));
    attempt(ctx, "colon", () => h.has(":"));
    attempt(ctx, "inner colon", () => h.set("a:b", "v"));
    attempt(ctx, "crlf", () => h.set("x-ok", "a\r\nb"));
    attempt(ctx, "nul", () => h.append("x-ok", "a\u0000b"));
    attempt(ctx, "non-ascii", () => h.set("x-é", "v"));
    attempt(ctx, "number value", () => h.set("x-num", 42));
    attempt(ctx, "token chars", () => h.set("x-!#$%&'*+-.^_`|~", "v"));
  },
};
