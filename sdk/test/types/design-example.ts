// The example of DESIGN.md section 3, verbatim apart from this comment: it
// must compile as it stands.
import { defineFilter } from "@envoy-js/sdk";

export default defineFilter<{ header: string }>({
  metrics: { rejected: "counter" }, // declared statically: Envoy needs them at config time
  setup(config, worker) {
    return { seen: 0 };
  }, // optional, once per worker engine -> ctx.worker
  async onRequest(req, ctx) {
    if (!req.headers.has(ctx.config.header)) {
      ctx.metrics.rejected.inc();
      return ctx.respond(401, { body: "missing " + ctx.config.header });
    }
    const r = await ctx.fetch("authz", { method: "POST", path: "/check", body: await req.body.text() });
    if (r.status !== 200) return ctx.respond(403);
    req.headers.set("x-user", r.headers.get("x-user") ?? "");
  },
  onResponse(res, ctx) {
    res.headers.set("x-filtered-by", "envoy-js");
  },
});
