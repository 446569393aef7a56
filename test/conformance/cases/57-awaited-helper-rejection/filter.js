// An async helper that throws before its first await, awaited inside try/catch: the
// rejection is handled, so nothing is unhandled.
async function requireHeader(req, name) {
  const v = req.headers.get(name);
  if (v === null) throw new Error("missing " + name);
  return v;
}
export default {
  async onRequest(req, ctx) {
    try {
      await requireHeader(req, "x-api-key");
    } catch (e) {
      return ctx.respond(401, { body: e.message });
    }
  },
};
