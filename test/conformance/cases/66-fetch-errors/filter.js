// Each way a callout fails: a FetchError with its code (unknown_cluster, timeout, reset,
// response_too_large), and a non-2xx answer that is not an error.
export default {
  async onRequest(req, ctx) {
    const cluster = req.path.slice(1);
    try {
      const r = await ctx.fetch(cluster, { path: "/", timeoutMs: 40 });
      ctx.log.info("status " + r.status + " at " + performance.now());
    } catch (e) {
      ctx.log.info(e.name, e.code, e.message, e instanceof Error, Object.keys(e).join(","), "at " + performance.now());
      return ctx.respond(503, { body: e.code });
    }
  },
};
