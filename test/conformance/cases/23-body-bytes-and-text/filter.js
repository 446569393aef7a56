// bytes() resolves to a Uint8Array of the realm; text() decodes UTF-8; reads started before
// the body is complete all resolve; the response body can be read and replaced too.
export default {
  async onRequest(req, ctx) {
    const [b, t] = await Promise.all([req.body.bytes(), req.body.text()]);
    ctx.log.info(b instanceof Uint8Array, b.length, b[0], t);
  },
  async onResponse(res, ctx) {
    const text = await res.body.text();
    res.body.replace(text.toUpperCase());
    res.headers.set("x-original-length", String(text.length));
  },
};
