// respond()'s options are checked: an object, a string or Uint8Array body, headers as an
// object of valid names. A Uint8Array body and a marker object come back.
const attempt = (ctx, what, fn) => {
  try { const r = fn(); ctx.log.info(what, "ok", JSON.stringify(r)); } catch (e) { ctx.log.info(what, e.name + ": " + e.message); }
};
export default {
  onRequest(req, ctx) {
    if (req.path === "/bytes") {
      return ctx.respond(200, { body: new TextEncoder().encode("bytes body"), details: 7 });
    }
    attempt(ctx, "options", () => ctx.respond(400, "nope"));
    attempt(ctx, "body", () => ctx.respond(400, { body: 12 }));
    attempt(ctx, "headers type", () => ctx.respond(400, { headers: "x" }));
    attempt(ctx, "header name", () => ctx.respond(400, { headers: { "bad name": "v" } }));
    attempt(ctx, "header value", () => ctx.respond(400, { headers: { "x-a": "1\n2" } }));
    attempt(ctx, "valid", () => ctx.respond(418, { headers: { "x-n": 5 } }));
  },
};
