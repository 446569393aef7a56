// A local reply from onResponse replaces the upstream response; nothing reaches the client
// from upstream.
export default {
  onResponse(res, ctx) {
    if (res.status >= 500) return ctx.respond(502, { body: "bad upstream" });
  },
};
