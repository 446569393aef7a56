// A chunk used after its hook settled throws instead of touching gone memory.
let kept;
export default {
  onRequestData(c) {
    kept = c;
  },
  onResponse(res, ctx) {
    ctx.log.info("endOfStream still readable:", kept.endOfStream);
    for (const op of ["text", "bytes", "clear"]) {
      try { kept[op](); } catch (e) { ctx.log.info(op, e.name + ": " + e.message); }
    }
    try { kept.size; } catch (e) { ctx.log.info("size", e.name + ": " + e.message); }
  },
};
