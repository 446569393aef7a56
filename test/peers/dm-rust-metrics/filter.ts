// Port of envoyproxy/dynamic-modules-examples rust/src/http_metrics.rs: a histogram
// `route_latency_ms` with the labels `version` (from the config) and `route_name` (the route
// Envoy picked) gets, once per stream, the milliseconds from the request headers to the end of
// the response: the response headers when they end the stream, else the last response body
// piece. Request trailers record it too (as the original does), and a stream records at most
// once. A config without a string `version` is refused.
//
// Differs: the histogram is declared in `metrics` with its labels (Envoy creates it at config
// load, as the original's `define_histogram_vec`) and each (version, route) pair is a series
// of `labels({...})`; a bad config fails in `setup` (every stream then fails under the failure
// policy) where the original's config constructor fails and Envoy refuses the config; the
// route name is `ctx.stream.routeName`, and an unnamed route is recorded as `route_name="-"`
// (the original records an empty value; a label value here is 1 to 128 bytes); the clock is `performance.now()` (the scripted Envoy's clock on the
// wasm engine) instead of `Instant`.
import { type Context, defineFilter } from "@envoy-js/sdk";

interface Config {
  version?: unknown;
}

const metrics = {
  route_latency_ms: { kind: "histogram", labels: ["version", "route_name"] },
} as const;

// Per stream: when the request headers came and the route they took, until recorded.
const pending = new WeakMap<object, { start: number; route: string }>();

function recordLatency(ctx: Context<Config | null, { version: string }, typeof metrics>) {
  const p = pending.get(ctx);
  if (!p) return;
  pending.delete(ctx);
  const ms = Math.floor(performance.now() - p.start);
  ctx.metrics.route_latency_ms.labels({ version: ctx.worker.version, route_name: p.route }).record(ms);
}

export default defineFilter({
  metrics,

  setup(config: Config | null) {
    const version = config?.version;
    if (typeof version !== "string") throw new TypeError('invalid configuration: expected {"version": "<string>"}');
    return { version };
  },

  onRequest(_req, ctx) {
    pending.set(ctx, { start: performance.now(), route: ctx.stream.routeName || "-" });
  },

  onRequestTrailers(_trailers, ctx) {
    recordLatency(ctx);
  },

  onResponse(res, ctx) {
    if (res.endOfStream) recordLatency(ctx);
  },

  onResponseData(chunk, ctx) {
    if (chunk.endOfStream) recordLatency(ctx);
  },
});
