// Port of envoy contrib/golang/filters/http/test/test_data/metric: on each request a counter
// goes up by 2 and a gauge by 3, then the counter by 1 more and the gauge is set to 1; after
// each step the metric's value is read back and added to the request as a header
// (`go-metric-counter-test-header-key`, `...-counter-record-...`, `...-gauge-...`,
// `...-gauge-record-...`). With `?async=1` the same happens after an await, as the original
// does it from a goroutine.
//
// Differs: the Go counter's `Record(1)` (which adds) is `inc(1)`; the gauge's `Record(1)` is
// `set(1)`, which sets this worker engine's share (the value is the sum of every engine's
// share: with one worker, 1 as in the original). The metrics are declared in `metrics` (read
// when Envoy loads the config) instead of being defined in the Go config parser.
import { defineFilter } from "@envoy-js/sdk";

const metrics = {
  go_metric_counter: "counter",
  go_metric_gauge: "gauge",
} as const;

export default defineFilter({
  metrics,

  async onRequest(req, ctx) {
    if (/[?&]async=[^&]/.test(req.path)) await Promise.resolve();
    const counter = ctx.metrics.go_metric_counter;
    const gauge = ctx.metrics.go_metric_gauge;

    counter.inc(2);
    req.headers.append("go-metric-counter-test-header-key", String(counter.value));
    counter.inc(1);
    req.headers.append("go-metric-counter-record-test-header-key", String(counter.value));

    gauge.inc(3);
    req.headers.append("go-metric-gauge-test-header-key", String(gauge.value));
    gauge.set(1);
    req.headers.append("go-metric-gauge-record-test-header-key", String(gauge.value));
  },
});
