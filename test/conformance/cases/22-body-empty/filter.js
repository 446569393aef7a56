// A body read on a message without a body resolves at once with nothing.
export default {
  async onRequest(req, ctx) {
    const bytes = await req.body.bytes();
    ctx.log.info("request bytes", bytes.length);
  },
  async onResponse(res, ctx) {
    ctx.log.info("response [" + (await res.body.text()) + "]");
  },
};
