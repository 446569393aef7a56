// Port of envoyproxy/dynamic-modules-examples go/header_auth.go: a request without the
// configured header gets a 401 at once; a request whose header says "on_response_headers"
// goes upstream and gets its 401 in place of the upstream's response.
import { defineFilter } from "@envoy-js/sdk";

interface Config {
  /** The header that must be present (the original takes its name as the whole config). */
  header: string;
}

// Streams whose request asked for the 401 in the response phase (per stream: the context).
const denyResponse = new WeakSet<object>();

const deny = (phase: string) => ({
  headers: { "content-type": "text/plain" },
  body: `Unauthorized by Go Module at ${phase}\n`,
  details: "unauthorized",
});

export default defineFilter<Config>({
  onRequest(req, ctx) {
    const value = req.headers.get(ctx.config.header) ?? "";
    if (value === "") return ctx.respond(401, deny("on_request_headers"));
    if (value === "on_response_headers") denyResponse.add(ctx);
  },

  onResponse(_res, ctx) {
    if (denyResponse.has(ctx)) return ctx.respond(401, deny("on_response_headers"));
  },
});
