// ctx.fetch to a scripted cluster: the request waits on the fake clock, the response gives
// status, read-only headers (get/getAll/has/entries/iteration) and the body three ways.
export default {
  async onRequest(req, ctx) {
    const started = performance.now();
    const r = await ctx.fetch("authz", {
      method: "post",
      path: "/check?x=1",
      headers: { "X-Token": req.headers.get("x-token"), "x-n": 7 },
      body: "token=" + req.headers.get("x-token"),
      timeoutMs: 250,
    });
    ctx.log.info("after", performance.now() - started, "status", r.status, typeof r.status);
    const h = r.headers;
    ctx.log.info(h.get("X-User"), JSON.stringify(h.getAll("x-role")), h.get("x-role"), h.has("x-none"), h.get("x-none"));
    ctx.log.info(JSON.stringify([...h]), JSON.stringify([...h.entries()]), h[Symbol.iterator] === h.entries);
    ctx.log.info(Object.keys(r).join(","), JSON.stringify(await r.json()), await r.text(), (await r.bytes()).length);
    req.headers.set("x-user", h.get("x-user") ?? "?");
  },
  async onResponse(res, ctx) {
    const r = await ctx.fetch("audit", { path: "/log", body: new Uint8Array([104, 105]) });
    res.headers.set("x-audit", String(r.status));
  },
};
