// Per-worker rate limiting with a token bucket per client (API key, or address when there is
// none). Buckets live in ctx.worker (made by setup, one set per Envoy worker, no locks); a
// timer started in setup drops idle buckets and publishes how many there are. Over the limit:
// 429 with retry-after. Allowed responses carry x-ratelimit-* headers.
//
// The limit is per worker: with N workers a client can get up to N times the rate when its
// connections land on different workers. Use Envoy's global rate limit service when that
// matters; this filter is the cheap first line.
import { defineFilter } from "@envoy-js/sdk";

interface Config {
  /** Tokens added per second. */
  ratePerSecond: number;
  /** Bucket size: the burst a client may send at once. */
  burst: number;
  /** Header that identifies the client (default x-api-key); the remote address otherwise. */
  keyHeader?: string;
  /** Bucket count cap per worker (default 10000); the oldest bucket goes first. */
  maxBuckets?: number;
  /** How often idle buckets are dropped (default 1000 ms). */
  sweepMs?: number;
}

interface Bucket {
  tokens: number;
  updated: number; // performance.now() of the last refill
}

interface Worker {
  buckets: Map<string, Bucket>;
  sweeps: number;
}

// The remaining tokens of each stream's bucket, for its response headers.
const remaining = new WeakMap<object, number>();

function refill(b: Bucket, now: number, config: Config): void {
  b.tokens = Math.min(config.burst, b.tokens + ((now - b.updated) * config.ratePerSecond) / 1000);
  b.updated = now;
}

export default defineFilter({
  metrics: { allowed: "counter", limited: "counter", buckets: "gauge" },

  setup(config: Config): Worker {
    const worker: Worker = { buckets: new Map(), sweeps: 0 };
    // A bucket that has refilled to full holds nothing worth keeping.
    setInterval(() => {
      const now = performance.now();
      for (const [key, b] of worker.buckets) {
        refill(b, now, config);
        if (b.tokens >= config.burst) worker.buckets.delete(key);
      }
      worker.sweeps++;
    }, config.sweepMs ?? 1000);
    return worker;
  },

  onRequest(req, ctx) {
    const config = ctx.config;
    const header = config.keyHeader ?? "x-api-key";
    const key = req.headers.get(header) ?? "addr:" + ctx.stream.remoteAddress.replace(/:\d+$/, "");
    const { buckets } = ctx.worker;
    const now = performance.now();

    let bucket = buckets.get(key);
    if (bucket === undefined) {
      if (buckets.size >= (config.maxBuckets ?? 10000)) buckets.delete(buckets.keys().next().value!);
      bucket = { tokens: config.burst, updated: now };
      buckets.set(key, bucket);
    } else {
      refill(bucket, now, config);
    }
    ctx.metrics.buckets.set(buckets.size);

    if (bucket.tokens < 1) {
      ctx.metrics.limited.inc();
      const retryAfter = Math.ceil((1 - bucket.tokens) / config.ratePerSecond);
      return ctx.respond(429, {
        body: "too many requests\n",
        headers: {
          "retry-after": String(retryAfter),
          "x-ratelimit-limit": String(config.burst),
          "x-ratelimit-remaining": "0",
        },
        details: "rate_limited",
      });
    }
    bucket.tokens -= 1;
    remaining.set(ctx, Math.floor(bucket.tokens));
    ctx.metrics.allowed.inc();
  },

  onResponse(res, ctx) {
    const left = remaining.get(ctx);
    if (left === undefined) return;
    res.headers.set("x-ratelimit-limit", String(ctx.config.burst));
    res.headers.set("x-ratelimit-remaining", String(left));
  },
});
