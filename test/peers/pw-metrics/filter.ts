// Port of tetratelabs/proxy-wasm-go-sdk examples/metrics: counts requests per value of the
// `my-custom-header` request header, one series per value, tagged `value=<header value>` and
// `reporter=wasmgosdk` (Prometheus: `custom_header_value_counts{value="foo",reporter="wasmgosdk"}`).
// A request without the header counts nothing.
//
// Differs: one counter declared with the labels `value` and `reporter`, and a series per header
// value through `labels({...})`, where the original defines a new counter per value at request
// time with the tags spelled into its name (`custom_header_value_counts_value=foo_reporter=...`)
// and a bootstrap `stats_tags` regex turns them into tags: here no Envoy stats config is needed,
// and Envoy's Prometheus name carries the module's prefix
// (`envoy_dynamicmodulescustom_custom_header_value_counts{...}`). The original's regex takes
// letters only; here any value of 1 to 128 bytes is a series. At most 100 values get a series
// (docs/limits.md): a value beyond that, or an empty or too long one, is not counted and is
// logged at warn level instead of failing the request (the original counts every value).
import { defineFilter } from "@envoy-js/sdk";

const CUSTOM_HEADER = "my-custom-header";

const metrics = {
  custom_header_value_counts: { kind: "counter", labels: ["value", "reporter"] },
} as const;

export default defineFilter({
  metrics,

  onRequest(req, ctx) {
    const value = req.headers.get(CUSTOM_HEADER);
    if (value === null) return;
    try {
      ctx.metrics.custom_header_value_counts.labels({ value, reporter: "wasmgosdk" }).inc();
    } catch (err) {
      if (!(err instanceof RangeError)) throw err;
      ctx.log.warn(`${CUSTOM_HEADER} not counted: ${err.message}`);
    }
  },
});
