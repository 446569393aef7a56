// A local reply decided on a callout's answer, and one from the stream's timer while the hook
// and a callout are pending: both wait for the hook to settle; the callout is cancelled.
export default {
  async onRequest(req, ctx) {
    if (req.path === "/deny") {
      const r = await ctx.fetch("authz", {});
      if (r.status !== 200) {
        ctx.respond(403, { body: "denied by " + r.status, headers: { "x-authz": String(r.status) } });
        ctx.log.info("responded, hook still running");
      }
      return;
    }
    setTimeout(() => {
      ctx.respond(504, { body: "gave up" });
      ctx.log.info("responded from a timer at " + performance.now());
    }, 5);
    ctx.fetch("authz", {}).then(() => ctx.log.info("answer after the reply"), (e) => ctx.log.info("callout: " + e.name));
    await new Promise((r) => setTimeout(r, 10));
    ctx.log.info("hook settles at " + performance.now());
  },
};
