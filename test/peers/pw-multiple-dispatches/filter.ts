// Port of proxy-wasm/proxy-wasm-go-sdk examples/multiple_dispatches: when the response headers
// arrive, ten GET / calls go to the `httpbin` cluster at once; the response waits until all
// ten have answered, logging how many are still pending, then gets `total-dispatched: 10`.
import { defineFilter } from "@envoy-js/sdk";

interface Config {
  cluster?: string;
}

const TOTAL = 10;

export default defineFilter<Config>({
  async onResponse(res, ctx) {
    const cluster = ctx.config.cluster ?? "httpbin";
    let pending = TOTAL;
    const calls = Array.from({ length: TOTAL }, () =>
      ctx.fetch(cluster, { path: "/", timeoutMs: 50000 }).then(() => {
        pending--;
        if (pending > 0) ctx.log.info(`pending dispatched requests: ${pending}`);
      }),
    );
    await Promise.all(calls);
    res.headers.append("total-dispatched", String(TOTAL));
    ctx.log.info(`response resumed after processed ${TOTAL} dispatched request`);
  },
});
