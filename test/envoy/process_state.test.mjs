// What one Envoy process shares between its workers (concurrency 2): the shared key-value
// store with compare-and-swap (ctx.shared, worker.shared) and the values of the metrics
// (Counter/Gauge `value`, Gauge inc/dec) as Envoy's own stats show them.
import { test } from "uvu";
import * as assert from "uvu/assert";

import { envoyWith, h1, jsListener, loopbackCluster, startUpstream } from "./lib.mjs";

const FILTER = String.raw`
export default {
  metrics: { shared_hits: "counter", shared_inflight: "gauge" },
  setup(config, worker) {
    // Every worker's setup races for the same key: exactly one wins it.
    const won = worker.shared.set("first-setup", String(worker.index), 0).ok;
    worker.shared.set("setup-" + worker.index, won ? "won" : "lost");
    return {};
  },
  onRequest(req, ctx) {
    const s = ctx.shared;
    const answer = (extra) =>
      ctx.respond(200, { body: JSON.stringify({
        worker: ctx.stream.workerIndex,
        count: Number(s.get("count")?.value ?? 0),
        hits: ctx.metrics.shared_hits.value,
        inflight: ctx.metrics.shared_inflight.value,
        ...extra,
      }) });
    if (req.path === "/incr") {
      let tries = 0;
      for (;;) {
        tries++;
        const e = s.get("count");
        if (s.set("count", String(Number(e?.value ?? 0) + 1), e?.version ?? 0).ok) break;
      }
      ctx.metrics.shared_hits.inc();
      ctx.metrics.shared_inflight.inc();
      return answer({ tries });
    }
    if (req.path === "/dec") {
      ctx.metrics.shared_inflight.dec();
      return answer();
    }
    if (req.path === "/setup") {
      return answer({ first: s.get("first-setup")?.value, w0: s.get("setup-0")?.value, w1: s.get("setup-1")?.value });
    }
    if (req.path === "/stale") {
      const e = s.get("count");
      s.set("count", e.value);             // someone else's write
      const r = s.set("count", "0", e.version);
      return answer({ stale: r, still: s.get("count").value === e.value });
    }
    return answer();
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
    concurrency: 2,
    listeners: [
      jsListener("shared", { inline: FILTER, routes: [{ match: { prefix: "/" }, route: { cluster: "up" } }] }),
    ],
    clusters: [loopbackCluster({ name: "up", port: upstream.port })],
  });
});

test.after(async () => {
  await envoy?.stop();
  await upstream?.close();
});

async function call(path) {
  const r = await h1(await envoy.port("shared"), { path });
  assert.is(r.status, 200, r.body);
  return JSON.parse(r.body);
}

test("both workers count into one entry and one counter; values read back as Envoy shows them", async () => {
  const workers = new Set();
  let n = 0;
  // Each request is a new connection: Envoy spreads them over its two workers.
  while (n < 200 && (workers.size < 2 || n < 40)) {
    const r = await call("/incr");
    workers.add(r.worker);
    n++;
  }
  assert.is(workers.size, 2, "requests reached both workers");
  const r = await call("/read");
  assert.is(r.count, n);
  assert.is(r.hits, n);
  assert.is(r.inflight, n);
  const stats = await envoy.stats("^dynamicmodulescustom\\.shared_");
  assert.is(stats.get("dynamicmodulescustom.shared_hits"), n);
  assert.is(stats.get("dynamicmodulescustom.shared_inflight"), n);
  // Down again from whichever worker: the gauge is the sum of both workers' shares.
  const seen = new Set();
  for (let i = 0; i < n; i++) seen.add((await call("/dec")).worker);
  const after = await call("/read");
  assert.is(after.inflight, 0);
  assert.is(
    (await envoy.stats("^dynamicmodulescustom\\.shared_inflight$")).get("dynamicmodulescustom.shared_inflight"),
    0,
  );
  assert.is(after.hits, n);
});

test("setup() of every worker sees one store: exactly one wins the compare-and-swap", async () => {
  // Both workers have run setup(): the module creates a worker's engine on its first stream,
  // and the test before reached both.
  const r = await call("/setup");
  assert.equal([r.w0, r.w1].sort(), ["lost", "won"]);
  assert.ok(r.first === "0" || r.first === "1");
  assert.is(r[r.first === "0" ? "w0" : "w1"], "won");
});

test("a write with a stale version is refused and writes nothing", async () => {
  const r = await call("/stale");
  assert.is(r.stale.ok, false);
  assert.ok(r.stale.version > 0);
  assert.is(r.still, true);
});

test.run();
