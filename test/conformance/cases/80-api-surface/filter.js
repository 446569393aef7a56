// Every object of the API has the same members on both engines (own and inherited, minus
// Object.prototype's).
const names = (o) => {
  const out = new Set();
  for (let p = o; p && p !== Object.prototype && p !== Function.prototype; p = Object.getPrototypeOf(p)) {
    for (const k of Object.getOwnPropertyNames(p)) if (k !== "constructor") out.add(k);
    for (const s of Object.getOwnPropertySymbols(p)) out.add("[" + s.description + "]");
  }
  return [...out].sort().join(",");
};
export default {
  metrics: { hits: "counter", g: "gauge" },
  async onRequest(req, ctx) {
    const r = await ctx.fetch("c", {});
    const surface = {
      Request: names(req), Headers: names(req.headers), Body: names(req.body), Context: names(ctx),
      Logger: names(ctx.log), DynamicMetadata: names(ctx.metadata), FilterState: names(ctx.filterState),
      StreamInfo: names(ctx.stream), FetchResponse: names(r), FetchHeaders: names(r.headers),
      Metric: names(ctx.metrics.hits), Metrics: names(ctx.metrics), console: names(console), crypto: names(crypto),
      performance: names(performance), reply: names(ctx.respond(200)),
    };
    for (const [k, v] of Object.entries(surface)) ctx.log.info(k + ": " + v);
    // A method called on another class's object is refused.
    const proto = (o, k) => Object.getOwnPropertyDescriptor(Object.getPrototypeOf(o), k);
    const wrong = [
      () => ctx.respond.call(req, 200), () => proto(req, "path").get.call(ctx), () => ctx.log.info.call(ctx, "x"),
      () => ctx.fetch.call(ctx.log, "c"), () => ctx.metadata.get.call(ctx.filterState, "a", "b"),
      () => r.text.call(req), () => r.headers.get.call(req.headers, "x"), () => ctx.metrics.hits.inc.call(r),
    ];
    for (const f of wrong) {
      try { const v = f(); ctx.log.info("ok?!", typeof v); } catch (e) { ctx.log.info(e.name + ": " + e.message); }
    }
    ctx.log.info(String(req.headers), String(r.headers));
    ctx.log.info("enumerable globals: " + Object.keys(globalThis).join(","), "| console: " + Object.keys(console).join(","));
    const api = ["console", "crypto", "performance", "queueMicrotask", "setTimeout", "setInterval", "clearTimeout", "clearInterval", "TextEncoder", "TextDecoder", "atob", "btoa"];
    ctx.log.info(api.map((n) => n + ":" + typeof globalThis[n] + ":" + (globalThis[n]?.length ?? "-")).join(" "));
  },
  onRequestData(chunk, ctx) { ctx.log.info("Chunk: " + names(chunk)); },
  onResponse(res, ctx) { ctx.log.info("Response: " + names(res)); },
};
