// Port of envoyproxy/dynamic-modules-examples go/delay.go: a request with a `do-delay` header
// is held for a while (the original sleeps 2 s in a goroutine, then continues on Envoy's
// scheduler), gets `delay-filter-on-scheduled: yes` when it resumes, and its response says how
// long the hold took in x-delay-filter-lapsed (seconds, like Go's "2.000123s").
import { defineFilter } from "@envoy-js/sdk";

interface Config {
  /** How long to hold a request (default 2000 ms, as the original). */
  delayMs?: number;
}

const lapsed = new WeakMap<object, number>();

export default defineFilter<Config>({
  async onRequest(req, ctx) {
    if (!req.headers.has("do-delay")) return;
    const start = performance.now();
    await new Promise<void>((resolve) => setTimeout(() => resolve(), ctx.config.delayMs ?? 2000));
    lapsed.set(ctx, performance.now() - start);
    req.headers.set("delay-filter-on-scheduled", "yes");
  },

  onResponse(res, ctx) {
    const ms = lapsed.get(ctx);
    if (ms !== undefined) res.headers.set("x-delay-filter-lapsed", `${(ms / 1000).toFixed(3)}s`);
  },
});
