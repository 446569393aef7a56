// onRequest waits; the data and trailers that arrive meanwhile are held in order (the data in
// the host's buffer, under its flow control) and handed to their hooks once it settles.
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export default {
  async onRequest(req, ctx) {
    ctx.log.info("onRequest start");
    await sleep(30);
    req.headers.set("x-late", "ok");
    ctx.log.info("onRequest end");
  },
  onRequestData(chunk, ctx) {
    ctx.log.info("data " + chunk.text() + " eos=" + chunk.endOfStream);
    chunk.replace(chunk.text() + ";");
  },
  onRequestTrailers(trailers, ctx) {
    ctx.log.info("trailers");
    trailers.set("x-t", "seen");
  },
  async onResponse(res) {
    await sleep(5);
    res.headers.set("x-response", "late");
  },
  onResponseData(chunk, ctx) {
    ctx.log.info("response data " + chunk.text());
  },
};
