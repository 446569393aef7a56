// Promises the runtime makes (body reads, ctx.fetch) that reject with no
// handler are reported after the job queue drained; a handler attached within the same
// drain, even a few jobs later, means no report; one attached in a later event is too late.
let late;
let forgotten;
export default {
  async onRequest(req, ctx) {
    if (req.path === "/forgotten-fetch") {
      ctx.fetch("nowhere", {});
      ctx.fetch("c", { path: "bad" });
      return;
    }
    if (req.path === "/later-in-drain") {
      const p = ctx.fetch("nowhere", {});
      await null;
      await null;
      p.catch((e) => ctx.log.info("caught " + e.code));
      return;
    }
    if (req.path === "/timeout-forgotten") {
      ctx.fetch("slow", { timeoutMs: 5 });
      await new Promise((r) => setTimeout(r, 10));
      return;
    }
    if (req.path === "/bad-json") {
      const r = await ctx.fetch("c", {});
      const ok = await r.json().catch((e) => "handled " + e.name);
      ctx.log.info(ok);
      return;
    }
    if (req.path === "/forgotten-read") {
      forgotten = req;
      return;
    }
    if (req.path === "/next-event") {
      late = ctx.fetch("nowhere", {});
      return;
    }
  },
  onResponse(res, ctx) {
    if (forgotten) {
      forgotten.body.text();
      forgotten = undefined;
    }
    if (late) {
      late.catch(() => ctx.log.info("handled in the next event"));
      late = undefined;
    }
  },
};
