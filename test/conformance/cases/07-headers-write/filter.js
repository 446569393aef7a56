// set replaces every value, append adds one, delete removes all; entries() is a snapshot.
export default {
  onRequest(req, ctx) {
    const h = req.headers;
    h.append("x-multi", "c");
    h.set("X-New", "v");
    h.delete("x-gone");
    h.set("x-twice", "only");
    for (const [k] of h.entries()) if (k === "x-new") h.append("x-added-in-loop", "1");
    ctx.log.info(JSON.stringify([...h.entries()].filter(([k]) => k.startsWith("x-"))));
    h.delete("absent-is-fine");
  },
};
