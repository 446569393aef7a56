// Reading a body whose headers already went on is refused with a rejected promise and a
// TypeError that says what to do instead (awaited at once, so nothing is unhandled).
let request;
export default {
  onRequest(req) {
    request = req;
  },
  async onRequestData(chunk, ctx) {
    try { await request.body.text(); } catch (e) { ctx.log.info("in data hook: " + e.name + ": " + e.message); }
  },
  async onResponse(res, ctx) {
    try { await request.body.json(); } catch (e) { ctx.log.info("in onResponse: " + e.name + ": " + e.message); }
  },
};
