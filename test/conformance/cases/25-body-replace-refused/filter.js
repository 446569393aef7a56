// body.replace() needs the whole body held: before a read it throws.
export default {
  async onRequest(req, ctx) {
    try { req.body.replace("early"); } catch (e) { ctx.log.info(e.name + ": " + e.message); }
    const text = await req.body.text();
    req.body.replace(text + "!");
    try { req.body.replace(42); } catch (e) { ctx.log.info(e.name + ": " + e.message); }
  },
};
