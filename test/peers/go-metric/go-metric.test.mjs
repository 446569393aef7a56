import * as assert from "uvu/assert";

import { peerSuite } from "../lib.mjs";

const values = (s) => [
  s.upstreamRequest.headers["go-metric-counter-test-header-key"],
  s.upstreamRequest.headers["go-metric-gauge-test-header-key"],
  s.upstreamRequest.headers["go-metric-counter-record-test-header-key"],
  s.upstreamRequest.headers["go-metric-gauge-record-test-header-key"],
];

peerSuite("go-metric", (test, port) => {
  test("testMetric: counter 2 then 3, gauge 3 then 1, read back into the request headers", () => {
    const [first] = port.replay().streams;
    assert.equal(first.errors, []);
    assert.equal(values(first), ["2", "3", "3", "1"]);
  });

  test("async: the same steps after an await; the counter goes on from the first request, the gauge from 1", () => {
    const [, second] = port.replay().streams;
    assert.equal(second.errors, []);
    // The original runs the async case in a fresh Envoy (2, 3, 3, 1); here it follows the
    // first request in one process: counter 3 + 2 = 5, gauge share 1 + 3 = 4, then 6 and 1.
    assert.equal(values(second), ["5", "4", "6", "1"]);
  });

  test("the metrics are Envoy's: the counter is 6 and the gauge 1 after both requests", () => {
    const t = port.replay();
    assert.is(t.metrics.go_metric_counter ?? t.metrics["go_metric_counter"], 6);
    assert.is(t.metrics.go_metric_gauge, 1);
  });
});
