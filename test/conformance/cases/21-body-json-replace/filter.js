// A whole-body read holds the request until the end of the stream; the data hook does not
// see data consumed that way; replace() sets the body and content-length follows it.
export default {
  async onRequest(req, ctx) {
    const body = await req.body.json();
    req.headers.set("x-name", body.name);
    req.body.replace(JSON.stringify({ ...body, secret: "[redacted]" }));
  },
  onRequestData(c, ctx) {
    ctx.log.info("data hook saw " + c.text());
  },
};
