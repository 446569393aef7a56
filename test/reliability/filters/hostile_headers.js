// Huge and many headers, values with bytes that are not UTF-8, and writes that must be refused.
export default {
  onRequest(req, ctx) {
    const h = req.headers;
    const big = h.get("x-big");
    ctx.log.info("x-big length " + (big === null ? "absent" : big.length) + ", " + [...h].length + " headers");
    let n = 0;
    for (const [name] of h.entries()) if (name.startsWith("x-many-")) n++;
    h.set("x-many-count", String(n));
    h.set("x-echo-big", big ?? "");
    const refused = [];
    for (const [name, value] of [["x-crlf", "a\r\nx-injected: 1"], ["x-lf", "a\nb"], ["x-nul", "a\0b"], ["bad name", "v"], ["x-\u00e9", "v"], ["", "v"]]) {
      try {
        h.set(name, value);
      } catch (e) {
        refused.push(e.name);
      }
    }
    ctx.log.info("refused " + refused.join(","));
    h.set("x-binary-copy", h.get("x-binary") ?? "");
  },
  onResponse(res, ctx) {
    try {
      return ctx.respond(200, { headers: { "x-bad": "a\r\nb" } });
    } catch (e) {
      ctx.log.info("respond refused: " + e.name);
    }
  },
};
