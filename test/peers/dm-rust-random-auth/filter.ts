// Port of envoyproxy/dynamic-modules-examples rust/src/http_random_auth.rs: each request is
// refused with 403 "Access forbidden" or let through, at random, half and half.
// `decision` exists for tests only (the way proxy-wasm's http_routing example takes a dice
// override from its config): "allow" or "deny" skips the coin.
import { defineFilter } from "@envoy-js/sdk";

interface Config {
  decision?: "allow" | "deny";
}

function coinSaysReject(): boolean {
  const byte = new Uint8Array(1);
  crypto.getRandomValues(byte);
  return (byte[0] & 1) === 1;
}

export default defineFilter<Config>({
  onRequest(_req, ctx) {
    const decision = ctx.config.decision;
    const reject = decision === undefined ? coinSaysReject() : decision === "deny";
    if (reject) return ctx.respond(403, { body: "Access forbidden" });
  },
});
