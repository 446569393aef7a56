// Dynamic metadata: JSON values per namespace and key, read from what the scenario (earlier
// filters) set and written for later ones; values must be JSON.
export default {
  onRequest(req, ctx) {
    const md = ctx.metadata;
    ctx.log.info(JSON.stringify(md.get("jwt", "claims")), JSON.stringify(md.get("jwt", "empty")), String(md.get("jwt", "absent")), String(md.get("nope", "x")));
    ctx.log.info(md.get("jwt", "claims") === md.get("jwt", "claims"), md === ctx.metadata);
    md.set("envoy-js", "decision", { allowed: true, roles: ["a", "b"], n: 1.5, none: null, skip: undefined });
    md.set("envoy-js", "text", "plain");
    md.set("envoy-js", "n", 42);
    md.set("envoy-js", "when", { toJSON() { return "custom"; } });
    md.set("jwt", "claims", [1, 2]);
    md.set("", "", false);
    const bad = [
      () => md.set("ns", "k", undefined),
      () => md.set("ns", "k"),
      () => md.set("ns", "k", () => 1),
      () => md.set(1, "k", 1),
      () => md.set("ns", null, 1),
      () => md.get("ns"),
      () => md.get(Symbol("x"), "k"),
    ];
    for (const b of bad) {
      try { b(); ctx.log.info("ok?!"); } catch (e) { ctx.log.info(e.name + ": " + e.message); }
    }
    ctx.log.info(JSON.stringify(md.get("envoy-js", "decision")), md.get("envoy-js", "when"));
  },
  onResponse(res, ctx) {
    ctx.log.info("later", JSON.stringify(ctx.metadata.get("envoy-js", "decision")));
  },
};
