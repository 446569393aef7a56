// Trailers are writable inside their own hook only; after they went on, writes throw.
let saved;
export default {
  onRequestTrailers(t, ctx) {
    t.set("x-t", "changed");
    saved = t;
  },
  onResponse(res, ctx) {
    try { saved.append("x-t", "late"); } catch (e) { ctx.log.info(e.name + ": " + e.message); }
    ctx.log.info("trailers read after: " + saved.get("x-t"));
  },
};
