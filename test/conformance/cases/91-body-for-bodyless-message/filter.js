// A message that arrived without a body (end of stream on its headers) is given one through the
// whole-body API: the headers go on without end of stream, the body after them, and
// content-length follows it.
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export default {
  async onRequest(req) {
    const before = await req.body.text();
    if (req.path === "/later") await sleep(3);
    req.body.replace(`added to ${req.path} after [${before}]`);
  },
  async onResponse(res) {
    await res.body.text();
    res.body.replace("added to the response");
  },
};
