// A pending hook stops the stream; data and trailers that arrive meanwhile are held (the data
// in the host's buffer, under its flow control) and delivered in order after it settles; the stream resumes exactly once; content-length
// follows the body's new size.
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export default {
  async onRequest(req, ctx) {
    ctx.log.info("start");
    await sleep(20);
    req.headers.set("x-late", "ok");
    ctx.log.info("end");
  },
  onRequestData(c, ctx) {
    ctx.log.info("data " + c.text());
    c.append("!");
  },
  onRequestTrailers(t, ctx) {
    ctx.log.info("trailers");
    t.set("x-t", "2");
  },
};
