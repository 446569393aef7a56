// DESIGN.md section 3: a header map supports iteration (for...of yields [name, value]).
export default {
  onRequest(req, ctx) {
    const seen = [];
    for (const [name, value] of req.headers) seen.push(name + "=" + value);
    ctx.log.info(seen.join(" "));
  },
};
