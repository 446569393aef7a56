// Port of proxy-wasm/proxy-wasm-go-sdk examples/dispatch_call_on_tick: every 100 ms, whether
// requests come or not, the plugin calls the `web_service` cluster (GET, authority
// `some_authority`, `accept: */*`, path `/ok` or `/fail` picked at random) and, for each
// answer, logs `called <n> for contextID=<id>` and every header of the response.
//
// Differs: the tick is a `setInterval` in `background(config, bg)`: one background engine per
// filter config, on Envoy's main thread, instead of a tick of the plugin context in every
// worker's VM, so one config makes one call per tick (not one per worker); the context id is
// always 1 (one background context per config, the emulator's plugin context id). Response
// trailers are not logged (a fetch response has none). A call that cannot start or fails
// (unknown cluster, reset, timeout) is logged at error level instead of the original's
// critical log or panic. Requests pass through untouched, as in the original.
import { defineFilter } from "@envoy-js/sdk";

const TICK_MS = 100;
const CONTEXT_ID = 1;

export default defineFilter({
  background(_config, bg) {
    bg.log.info(`set tick period milliseconds: ${TICK_MS}`);
    let called = 0;
    setInterval(async () => {
      const coin = crypto.getRandomValues(new Uint8Array(1))[0] ?? 0;
      try {
        const r = await bg.fetch("web_service", {
          path: coin % 2 === 0 ? "/ok" : "/fail",
          authority: "some_authority",
          headers: { accept: "*/*" },
          timeoutMs: 5000,
        });
        called++;
        bg.log.info(`called ${called} for contextID=${CONTEXT_ID}`);
        for (const [name, value] of r.headers) {
          bg.log.info(`response header for the dispatched call: ${name}: ${value}`);
        }
      } catch (err) {
        bg.log.error(`dispatch httpcall failed: ${err instanceof Error ? err.message : String(err)}`);
      }
    }, TICK_MS);
  },
});
