// After the stream is gone, ctx members that need the host throw StreamGone (fetch rejects
// with it); ctx.config falls back to the filter's config, metrics still work.
let saved;
export default {
  metrics: { late: "counter" },
  setup() {
    setTimeout(() => {
      const ctx = saved;
      const tries = {
        stream: () => ctx.stream.id,
        metadataGet: () => ctx.metadata.get("a", "b"),
        metadataSet: () => ctx.metadata.set("a", "b", 1),
        metadataBadArgs: () => ctx.metadata.get(1, 2),
        filterStateGet: () => ctx.filterState.get("k"),
        filterStateSet: () => ctx.filterState.set("k", "v"),
        clearRouteCache: () => ctx.clearRouteCache(),
        config: () => JSON.stringify(ctx.config),
        metrics: () => ctx.metrics.late.inc(),
        aborted: () => ctx.aborted,
      };
      for (const [k, f] of Object.entries(tries)) {
        try { console.log(k + " -> " + f()); } catch (e) { console.log(k + " threw " + e.name); }
      }
      ctx.fetch("c", {}).catch((e) => console.log("fetch rejected " + e.name));
    }, 100);
    return {};
  },
  async onRequest(req, ctx) {
    if (req.path === "/wait") {
      await ctx.fetch("c", {});
      return;
    }
    saved = ctx;
    ctx.log.info(ctx.stream.id, JSON.stringify(ctx.config));
  },
};
