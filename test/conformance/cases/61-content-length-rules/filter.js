// content-length when headers go on: set to the held body's size when the whole body went
// through the buffer, removed when a data hook may still change the body, left alone when
// nothing can change it.
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export default {
  async onRequest(req, ctx) {
    if (req.path === "/held") await sleep(5);
  },
  onResponseData(c) {
    c.append("+");
  },
};
