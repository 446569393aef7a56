// Port of proxy-wasm/proxy-wasm-go-sdk examples/shared_data: every request adds 1 to a number
// kept in the process-wide shared data under `shared_data_key` and logs
// `shared value: <n>`. The read-modify-write is a compare-and-swap: when another worker wrote
// between the read and the write, the version no longer matches and the filter reads again.
//
// Differs: the number is stored as decimal text (ctx.shared holds strings) instead of 8
// little-endian bytes; `setup` creates the key only when it is absent (expected version 0)
// where the original's OnVMStart writes an empty value unconditionally on each VM start, which
// resets the count whenever a worker starts.
import { defineFilter } from "@envoy-js/sdk";

const KEY = "shared_data_key";

export default defineFilter({
  setup(_config, worker) {
    const created = worker.shared.set(KEY, "", 0);
    if (!created.ok) console.debug(`${KEY} already there (version ${created.version})`);
  },

  onRequest(_req, ctx) {
    for (;;) {
      const entry = ctx.shared.get(KEY);
      const next = entry === null || entry.value === "" ? 1 : Number(entry.value) + 1;
      const written = ctx.shared.set(KEY, String(next), entry?.version ?? 0);
      if (!written.ok) continue; // another worker wrote first: read again
      ctx.log.info(`shared value: ${next}`);
      return;
    }
  },
});
