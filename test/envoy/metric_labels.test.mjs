// Metric labels in a real Envoy: a labelled metric is an ABI metric vector; each series is a
// stat tagged with the label values, which the Prometheus endpoint shows as labels.
import { test } from "uvu";
import * as assert from "uvu/assert";

import { envoyWith, h1, jsListener, loopbackCluster, startUpstream } from "./lib.mjs";

const FILTER = String.raw`
export default {
  metrics: {
    lbl_requests: { kind: "counter", labels: ["method", "status"] },
    lbl_inflight: { kind: "gauge", labels: ["route"] },
    lbl_sizes: { kind: "histogram", labels: ["route"] },
  },
  onRequest(req, ctx) {
    const m = ctx.metrics;
    const status = req.path === "/missing" ? "404" : "200";
    const series = m.lbl_requests.labels({ method: req.method, status });
    series.inc();
    m.lbl_inflight.labels({ route: req.path.slice(1) || "root" }).inc(2);
    m.lbl_sizes.labels({ route: "all" }).record(7);
    return ctx.respond(Number(status), { body: JSON.stringify({ value: series.value }) });
  },
};`;

let envoy, upstream;

test.before(async () => {
  upstream = await startUpstream({
    handler: (req, res) => {
      res.writeHead(200);
      res.end("ok");
    },
  });
  envoy = await envoyWith({
    listeners: [
      jsListener("labels", { inline: FILTER, routes: [{ match: { prefix: "/" }, route: { cluster: "up" } }] }),
    ],
    clusters: [loopbackCluster({ name: "up", port: upstream.port })],
  });
});

test.after(async () => {
  await envoy?.stop();
  await upstream?.close();
});

test("each label-value combination is a tagged stat: Prometheus shows the labels", async () => {
  const port = await envoy.port("labels");
  const values = [];
  for (const [method, path] of [
    ["GET", "/a"],
    ["GET", "/a"],
    ["POST", "/a"],
    ["GET", "/missing"],
  ]) {
    const r = await h1(port, { method, path });
    values.push(JSON.parse(r.text).value);
  }
  // `value` reads the one series the request counted into.
  assert.equal(values, [1, 2, 1, 1]);
  const prom = (await envoy.admin("/stats/prometheus")).split("\n");
  const line = (re) => prom.find((l) => re.test(l));
  assert.is(
    line(/^envoy_dynamicmodulescustom_lbl_requests\{method="GET",status="200"\} /),
    'envoy_dynamicmodulescustom_lbl_requests{method="GET",status="200"} 2',
  );
  assert.is(
    line(/^envoy_dynamicmodulescustom_lbl_requests\{method="GET",status="404"\} /),
    'envoy_dynamicmodulescustom_lbl_requests{method="GET",status="404"} 1',
  );
  assert.is(
    line(/^envoy_dynamicmodulescustom_lbl_requests\{method="POST",status="200"\} /),
    'envoy_dynamicmodulescustom_lbl_requests{method="POST",status="200"} 1',
  );
  assert.is(
    line(/^envoy_dynamicmodulescustom_lbl_inflight\{route="a"\} /),
    'envoy_dynamicmodulescustom_lbl_inflight{route="a"} 6',
  );
  assert.is(
    line(/^envoy_dynamicmodulescustom_lbl_inflight\{route="missing"\} /),
    'envoy_dynamicmodulescustom_lbl_inflight{route="missing"} 2',
  );
  assert.ok(line(/^envoy_dynamicmodulescustom_lbl_sizes_count\{route="all"\} /), "the histogram's series");
  // /stats flattens the tags into the name: name.label.value...
  const stats = await envoy.stats("^dynamicmodulescustom\\.lbl_");
  assert.is(stats.get("dynamicmodulescustom.lbl_requests.method.GET.status.200"), 2);
  assert.is(stats.get("dynamicmodulescustom.lbl_inflight.route.a"), 6);
});

test.run();
