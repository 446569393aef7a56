// Port of TykTechnologies/tyk middleware/ottoAuthExample.js, in the form its test runs it
// (gateway/mw_js_plugin_test.go TestJSVM_Auth: the token in the Authorization header): no
// token is a 401 "Header missing (JS middleware)", a token other than the configured one
// (default "foobar") a 401 "Not authorized (JS middleware)"; the right one passes, and the
// session's limits go to dynamic metadata where Tyk's ReturnAuthData stores the session.
import { defineFilter } from "@envoy-js/sdk";

interface Config {
  token?: string;
}

// Tyk renders ReturnOverrides.ResponseError through its JSON error template.
const unauthorized = (message: string) => ({
  body: JSON.stringify({ error: message }),
  headers: { "content-type": "application/json" },
  details: "tyk_js_auth",
});

export default defineFilter<Config>({
  setup() {
    console.log("====> JS Auth initialised");
    return {};
  },

  onRequest(req, ctx) {
    ctx.log.info("----> Running ottoAuthExample JSVM Auth Middleware");
    const token = req.headers.get("authorization");
    if (token === null) return ctx.respond(401, unauthorized("Header missing (JS middleware)"));
    if (token !== (ctx.config.token ?? "foobar"))
      return ctx.respond(401, unauthorized("Not authorized (JS middleware)"));
    ctx.log.info("auth is ok");
    ctx.metadata.set("envoy_js.tyk", "allowance", 100);
    ctx.metadata.set("envoy_js.tyk", "rate", 100);
    ctx.metadata.set("envoy_js.tyk", "per", 1);
  },
});
