// A local reply from the request side: status, body, headers (arrays repeat), details
// (whitespace becomes "_"); nothing reaches upstream; the reply runs through the encoder path.
export default {
  onRequest(req, ctx) {
    return ctx.respond(403, {
      body: "denied",
      headers: { "X-Why": "policy", "set-cookie": ["a=1", "b=2"], "content-type": "text/html" },
      details: "denied by\tpolicy",
    });
  },
  onResponse(res, ctx) {
    ctx.log.info("onResponse must not run for our own reply");
  },
};
