// get joins repeated values with ", ", getAll keeps them apart, names are case-insensitive,
// an absent header is null / [] / false.
export default {
  onRequest(req, ctx) {
    const h = req.headers;
    ctx.log.info(h.get("X-Multi"), JSON.stringify(h.getAll("x-MULTI")), h.has("X-MULTI"));
    ctx.log.info(h.get("absent"), JSON.stringify(h.getAll("absent")), h.has("absent"));
    ctx.log.info(h.get("x-upper"), h.size);
    ctx.log.info(Object.prototype.toString.call(h));
  },
};
