// A second whole-body read after the first one completed is answered from the buffer
// (bindings.cc says so: "Already buffered whole: answer from the host's buffer").
export default {
  async onRequest(req, ctx) {
    let parsed;
    try {
      parsed = await req.body.json();
    } catch {
      const raw = await req.body.text();
      ctx.log.info("not JSON: " + raw);
      return ctx.respond(400, { body: "expected JSON" });
    }
    ctx.log.info("parsed", JSON.stringify(parsed));
  },
};
