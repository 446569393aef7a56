// A pending response hook holds the response; the response body waits behind it and the
// response resumes once.
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export default {
  async onResponse(res, ctx) {
    await sleep(10);
    res.headers.set("x-checked-at", String(performance.now()));
  },
  onResponseData(c, ctx) {
    ctx.log.info("chunk " + c.text() + " eos=" + c.endOfStream);
  },
};
