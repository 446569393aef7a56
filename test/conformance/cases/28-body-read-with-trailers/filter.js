// A body read completes when trailers arrive; the trailers hook runs after the read hook.
export default {
  async onRequest(req, ctx) {
    const text = await req.body.text();
    ctx.log.info("body " + text);
    req.body.replace(text.length + ":" + text);
  },
  onRequestTrailers(t, ctx) {
    ctx.log.info("trailers " + t.get("x-sum"));
    t.set("x-sum", "checked");
  },
};
