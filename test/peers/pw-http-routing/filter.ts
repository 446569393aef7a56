// Port of proxy-wasm/proxy-wasm-go-sdk examples/http_routing: a random 32-bit dice; on an even
// value the request's :authority gets "-canary" appended, so that Envoy's route table sends it
// to the canary virtual host. `dice` in the config replaces the random value, for tests (the
// original reads it from the first byte of its plugin configuration).
//
// As in Envoy's Wasm host, changing a request header clears the route cache, so that Envoy
// matches the route again: the filter opts in with `rerouteOnHeaderChange: true` (the default
// is to call ctx.clearRouteCache() where needed).
import { defineFilter } from "@envoy-js/sdk";

interface Config {
  dice?: number;
}

function dice(): number {
  const v = new Uint32Array(1);
  crypto.getRandomValues(v);
  return v[0];
}

export default defineFilter<Config>({
  rerouteOnHeaderChange: true,

  onRequest(req, ctx) {
    const value = ctx.config.dice || dice();
    ctx.log.info(`value: ${value}`);
    if (value % 2 !== 0) return;
    req.headers.set(":authority", `${req.authority}-canary`);
  },
});
