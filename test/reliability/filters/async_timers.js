// Every hook async, each waiting on a timer; an interval ticks while the request is held.
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export default {
  async onRequest(req, ctx) {
    let ticks = 0;
    const id = setInterval(() => { ticks++; }, 2);
    await sleep(11);
    clearInterval(id);
    req.headers.set("x-ticks", String(ticks));
    ctx.log.info("request held for " + ticks + " ticks");
  },
  async onRequestData(chunk) {
    await sleep(chunk.size);
    chunk.prepend("<");
    chunk.append(">");
  },
  async onRequestTrailers(trailers) {
    await sleep(1);
    trailers.set("x-trailer-hook", "async");
  },
  async onResponse(res, ctx) {
    await sleep(5);
    await Promise.all([sleep(1), sleep(2), sleep(3)]);
    res.headers.set("x-response-hook", "async");
  },
  async onResponseData(chunk) {
    const text = chunk.text();
    await sleep(1);
    chunk.replace(text.split("").reverse().join(""));
  },
  async onResponseTrailers(trailers) {
    await sleep(1);
    trailers.set("x-done", "1");
  },
  async onDone(ctx) {
    await null;
    ctx.log.info("done aborted=" + ctx.aborted);
  },
};
