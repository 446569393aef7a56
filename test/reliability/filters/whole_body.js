// Whole-body reads on both sides: the request is held until its end, parsed, redacted and
// replaced; the response is read whole and rewritten.
export default {
  async onRequest(req, ctx) {
    const order = await req.body.json();
    req.headers.set("x-items", String(order.items.length));
    order.card = "[redacted]";
    req.body.replace(JSON.stringify(order));
    // A second read of the same body answers from the buffer.
    const again = await req.body.text();
    ctx.log.info("request body now " + again.length + " bytes");
  },
  onRequestData(chunk, ctx) {
    ctx.log.info("data hook must not see consumed data: " + chunk.text());
  },
  async onResponse(res, ctx) {
    const bytes = await res.body.bytes();
    const text = new TextDecoder().decode(bytes);
    res.body.replace(text.toUpperCase());
    res.headers.set("x-original-length", String(bytes.length));
  },
};
