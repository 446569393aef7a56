// envoy-stats.mjs: Envoy's admin output (/stats JSON entries and /stats/prometheus) read into
// the transcript's shape. The admin text below has the shape Envoy writes for the dynamic
// module's metrics (test/envoy/metric_labels.test.mjs checks that shape in a real Envoy, and
// test/envoy/replay.test.mjs compares the result with the wasm engine's transcript).
import { test } from "uvu";
import * as assert from "uvu/assert";

import { envoyHistogramCounts, envoyMetrics, parsePrometheus } from "../cli/envoy-stats.mjs";

const PROMETHEUS = [
  "# TYPE envoy_dynamicmodulescustom_requests counter",
  'envoy_dynamicmodulescustom_requests{method="GET",status="200"} 2',
  'envoy_dynamicmodulescustom_requests{method="POST",status="200"} 0',
  "# TYPE envoy_dynamicmodulescustom_envoy_js_errors counter",
  "envoy_dynamicmodulescustom_envoy_js_errors 1",
  "# TYPE envoy_dynamicmodulescustom_inflight gauge",
  'envoy_dynamicmodulescustom_inflight{route="v1.2"} 4',
  'envoy_dynamicmodulescustom_inflight{route="say \\"hi\\", a\\\\b"} 1',
  "# TYPE envoy_dynamicmodulescustom_sizes histogram",
  'envoy_dynamicmodulescustom_sizes_bucket{route="all",le="10"} 3',
  'envoy_dynamicmodulescustom_sizes_bucket{route="all",le="+Inf"} 3',
  'envoy_dynamicmodulescustom_sizes_sum{route="all"} 21',
  'envoy_dynamicmodulescustom_sizes_count{route="all"} 3',
  "",
].join("\n");

const COUNTERS = [
  { name: "dynamicmodulescustom.requests.method.GET.status.200", value: 2 },
  { name: "dynamicmodulescustom.requests.method.POST.status.200", value: 0 },
  { name: "dynamicmodulescustom.envoy_js.errors", value: 1 },
  { name: "dynamicmodulescustom.total", value: 3 },
];
const GAUGES = [
  { name: "dynamicmodulescustom.inflight.route.v1.2", value: 4 },
  { name: 'dynamicmodulescustom.inflight.route.say "hi", a\\b', value: 1 },
  { name: "dynamicmodulescustom.level", value: 0 },
];

test("parsePrometheus: name, family and type, labels in order and unescaped, value", () => {
  const samples = parsePrometheus(PROMETHEUS);
  assert.equal(samples[0], {
    name: "envoy_dynamicmodulescustom_requests",
    family: "envoy_dynamicmodulescustom_requests",
    type: "counter",
    labels: [
      ["method", "GET"],
      ["status", "200"],
    ],
    value: 2,
  });
  assert.equal(samples[4].labels, [["route", 'say "hi", a\\b']]);
  const count = samples.find((s) => s.name.endsWith("_count"));
  assert.is(count.family, "envoy_dynamicmodulescustom_sizes");
  assert.is(count.type, "histogram");
});

test('envoyMetrics: a labelled series as name{label="value",...}, a dot in a value kept; plain names as before', () => {
  const { counters, metrics } = envoyMetrics({ counters: COUNTERS, gauges: GAUGES, prometheus: PROMETHEUS });
  assert.equal(counters, { "envoy_js.errors": 1 });
  assert.equal(metrics, {
    'requests{method="GET",status="200"}': 2,
    'inflight{route="v1.2"}': 4,
    'inflight{route="say "hi", a\\b"}': 1,
    total: 3,
    level: 0,
  });
});

test("envoyMetrics: the module's own gauge (envoy_js.engines) is in neither counters nor metrics", () => {
  const gauges = [...GAUGES, { name: "dynamicmodulescustom.envoy_js.engines", value: 2 }];
  const { counters, metrics } = envoyMetrics({ counters: COUNTERS, gauges, prometheus: PROMETHEUS });
  assert.equal(counters, { "envoy_js.errors": 1 });
  assert.is(
    Object.keys(metrics).some((k) => k.startsWith("envoy_js")),
    false,
  );
});

test("envoyHistogramCounts: a histogram series' sample count under the transcript's key", () => {
  assert.equal(envoyHistogramCounts(PROMETHEUS), { 'sizes{route="all"}': 3 });
});

test.run();
