// Several Envoy workers share one filter config: each worker runs its own engine (setup() once
// per worker, ctx.worker per worker), and the metrics of all of them add up in Envoy's stats:
// counters, and gauges too (Envoy's gauge is one value: the module sets it to the sum of what
// each worker's engine set, not to the last worker's value).
import { test } from "uvu";
import * as assert from "uvu/assert";

import { envoyWith, h1, jsListener, loopbackCluster, routeTo, startUpstream } from "./lib.mjs";

const FILTER = String.raw`
export default {
  metrics: { requests: "counter", seen: "gauge" },
  setup(config, worker) { return { index: worker.index, seen: 0 }; },
  onRequest(req, ctx) { ctx.metrics.requests.inc(); ctx.worker.seen++; ctx.metrics.seen.set(ctx.worker.seen); },
  onResponse(res, ctx) {
    res.headers.set("x-worker", String(ctx.worker.index) + "/" + String(ctx.stream.workerIndex));
    res.headers.set("x-seen-on-worker", String(ctx.worker.seen));
  },
};`;

const WORKERS = 2;
const CONNECTIONS = 24;
let envoy, upstream;

test.before(async () => {
  upstream = await startUpstream();
  envoy = await envoyWith({
    listeners: [jsListener("main", { inline: FILTER, routes: [routeTo("backend")] })],
    clusters: [loopbackCluster({ name: "backend", port: upstream.port })],
    concurrency: WORKERS,
  });
});

test.after(async () => {
  await envoy?.stop();
  await upstream?.close();
});

test(`${CONNECTIONS} connections over ${WORKERS} workers: one engine per worker, counters and gauges summed`, async () => {
  const port = await envoy.port("main");
  // A new connection per request (agent: false), so that the kernel spreads them over workers.
  const replies = await Promise.all(Array.from({ length: CONNECTIONS }, (_, i) => h1(port, { path: `/r${i}` })));
  const byWorker = new Map();
  for (const r of replies) {
    assert.is(r.status, 200);
    const [setupIndex, streamIndex] = r.headers["x-worker"].split("/");
    assert.is(setupIndex, streamIndex, "ctx.worker comes from the engine of the stream's own worker");
    byWorker.set(streamIndex, Math.max(byWorker.get(streamIndex) ?? 0, Number(r.headers["x-seen-on-worker"])));
  }
  // Each worker's engine counted only its own streams; together they saw every request.
  if (process.env.SHOW_WORKERS) console.log(byWorker);
  const total = [...byWorker.values()].reduce((a, b) => a + b, 0);
  assert.is(total, CONNECTIONS);
  assert.ok(
    [...byWorker.keys()].every((k) => Number(k) < WORKERS),
    [...byWorker.keys()].join(","),
  );
  const stats = await envoy.stats("^dynamicmodulescustom\\.(requests|seen)$");
  assert.is(stats.get("dynamicmodulescustom.requests"), CONNECTIONS);
  // Each worker set the gauge to its own count: the gauge is their sum. (With both workers
  // serving, the last worker's value alone would be less.)
  assert.is(byWorker.size, WORKERS, "the kernel spread the connections over every worker");
  assert.is(stats.get("dynamicmodulescustom.seen"), CONNECTIONS);
});

test("the envoy_js.engines gauge counts the worker engines alive in the process", async () => {
  // Set at each stream's start: one more request makes it current.
  await h1(await envoy.port("main"), { path: "/engines" });
  const engines = await envoy.stats("^dynamicmodulescustom\\.envoy_js\\.engines$");
  assert.is(engines.get("dynamicmodulescustom.envoy_js.engines"), WORKERS, "one engine per worker that served");
});

test.run();
