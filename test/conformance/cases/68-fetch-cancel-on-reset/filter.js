// The client goes away while a callout is pending: the host cancels it, the fetch rejects
// with StreamGone, onDone sees ctx.aborted; a fetch after that rejects at once. Several
// callouts are cancelled in the order they were made.
let saved;
export default {
  async onRequest(req, ctx) {
    if (req.path === "/many") {
      await Promise.all(["a", "b", "c"].map((c) => ctx.fetch(c, {}).catch((e) => console.log(c + ": " + e.name))));
      return;
    }
    saved = ctx;
    try {
      await ctx.fetch("slow", { path: "/wait" });
      ctx.log.info("the callout answered");
    } catch (e) {
      console.log("fetch: " + e.name + " aborted=" + ctx.aborted);
      try { await ctx.fetch("slow", {}); } catch (e2) { console.log("again: " + e2.name); }
    }
  },
  onDone(ctx) {
    ctx.log.info("done aborted=" + ctx.aborted);
  },
  onResponse(res, ctx) {
    ctx.log.info("next stream; the old ctx is aborted=" + saved.aborted);
  },
};
