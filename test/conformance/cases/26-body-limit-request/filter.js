// A request body over buffer_limit_bytes while reading it whole: 413, nothing upstream.
export default {
  async onRequest(req, ctx) {
    ctx.log.info("reading");
    await req.body.text();
    ctx.log.info("never here");
  },
};
