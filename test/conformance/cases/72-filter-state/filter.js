// Filter state: string values by key. Values are converted to strings; keys must be strings.
export default {
  onRequest(req, ctx) {
    const fs = ctx.filterState;
    ctx.log.info(fs.get("upstream.tag"), String(fs.get("absent")), fs === ctx.filterState);
    fs.set("envoy-js.user", "bob");
    fs.set("envoy-js.n", 5);
    fs.set("envoy-js.obj", { a: 1 });
    fs.set("envoy-js.undef");
    fs.set("upstream.tag", "green");
    for (const b of [() => fs.set(1, "x"), () => fs.get(), () => fs.get(null), () => fs.set("k", Symbol("s"))]) {
      try { b(); ctx.log.info("ok?!"); } catch (e) { ctx.log.info(e.name + ": " + e.message.split(":")[0]); }
    }
    ctx.log.info(fs.get("envoy-js.n"), typeof fs.get("envoy-js.n"), fs.get("envoy-js.obj"), fs.get("envoy-js.undef"));
  },
};
