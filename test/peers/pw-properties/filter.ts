// Port of proxy-wasm/proxy-wasm-go-sdk examples/properties: the selected route's metadata may
// name a header that every request on that route must carry. The filter reads the name
// (`auth` in the filter's metadata namespace), logs `auth header is "<name>"` and answers 401
// when the request lacks that header; on a route without it, it logs "no auth header for
// route" and lets the request go on. When the stream ends it logs "<stream id> finished".
//
// Differs: `ctx.routeMetadata("envoy_js", "auth")` instead of the property path
// `route_metadata.filter_metadata["envoy.filters.http.wasm"].auth`, so the route's metadata
// namespace is `envoy_js`; the stream id (Envoy's) instead of the proxy-wasm context id.
import { defineFilter } from "@envoy-js/sdk";

export default defineFilter({
  onRequest(req, ctx) {
    const auth = ctx.routeMetadata("envoy_js", "auth");
    if (auth === undefined) {
      ctx.log.info("no auth header for route");
      return;
    }
    ctx.log.info(`auth header is "${String(auth)}"`);
    if (!req.headers.has(String(auth))) return ctx.respond(401);
  },

  onDone(ctx) {
    ctx.log.info(`${ctx.stream.id} finished`);
  },
});
