// async_callout: one GET to the "callout" cluster per request; its status goes upstream.
import { defineFilter } from "@envoy-js/sdk";

export default defineFilter({
  async onRequest(req, ctx) {
    const res = await ctx.fetch("callout", { method: "GET", path: "/callout" });
    req.headers.set("x-callout-status", String(res.status));
  },
});
