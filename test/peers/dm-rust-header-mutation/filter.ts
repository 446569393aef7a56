// Port of envoyproxy/dynamic-modules-examples rust/src/http_header_mutation.rs: sets and removes
// the request and response headers its config lists, and marks every response with the
// client's address (`x-downstream-address`), the upstream host's address
// (`x-upstream-address`) and the response code (`x-response-code`).
//
// Differs: the addresses and the code are read with `ctx.property()` (`source.address`,
// `upstream.address`, `response.code`) instead of the ABI's attribute getters; a property
// Envoy has no value for leaves its header out where the original panics (`expect`), e.g. a
// response that no upstream host gave.
import { defineFilter } from "@envoy-js/sdk";

interface Config {
  request_headers?: [string, string][];
  remove_request_headers?: string[];
  response_headers?: [string, string][];
  remove_response_headers?: string[];
}

export default defineFilter<Config>({
  onRequest(req, ctx) {
    for (const [name, value] of ctx.config.request_headers ?? []) req.headers.set(name, value);
    for (const name of ctx.config.remove_request_headers ?? []) req.headers.delete(name);
  },

  onResponse(res, ctx) {
    const marks: [string, string | number | null][] = [
      ["x-downstream-address", ctx.property("source.address")],
      ["x-upstream-address", ctx.property("upstream.address")],
      ["x-response-code", ctx.property("response.code")],
    ];
    for (const [name, value] of marks) if (value !== null) res.headers.set(name, String(value));
    for (const [name, value] of ctx.config.response_headers ?? []) res.headers.set(name, value);
    for (const name of ctx.config.remove_response_headers ?? []) res.headers.delete(name);
  },
});
