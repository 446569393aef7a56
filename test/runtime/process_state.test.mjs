// Process-wide state on the wasm engine: the shared key-value store (ctx.shared, worker.shared)
// with compare-and-swap and its bounds, and metric values read back (Counter/Gauge `value`,
// Gauge inc/dec). Across real workers: test/envoy/process_state.test.mjs.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { get, one, replay } from "../lib/wasm.mjs";

const lines = (t) => t.logs.map((l) => l.replace(/^\[info\] /, ""));

test("shared data: get/set/delete with versions that only grow", () => {
  const src = `
    export default {
      onRequest(req, ctx) {
        const s = ctx.shared;
        const out = [];
        out.push(JSON.stringify(s.get("k")));
        const a = s.set("k", "one");
        const b = s.set("k", "two");
        out.push(JSON.stringify([a, b, s.get("k")]));
        out.push(b.version > a.version && a.version > 0);
        const d = s.delete("k");
        out.push(JSON.stringify([d, s.get("k"), s.delete("k")]));
        const c = s.set("k", "three");
        out.push(c.version > b.version);
        ctx.log.info(out.join(" | "));
      },
    };`;
  const t = one(src, get("/"));
  assert.equal(t.errors, []);
  assert.equal(lines(t), [
    'null | [{"ok":true,"version":1},{"ok":true,"version":2},{"value":"two","version":2}] | true | ' +
      '[{"ok":true,"version":0},null,{"ok":true,"version":0}] | true',
  ]);
});

test("shared data: compare-and-swap by version, 0 meaning absent; a mismatch writes nothing", () => {
  const src = `
    export default {
      onRequest(req, ctx) {
        const s = ctx.shared;
        const first = s.set("lock", "a", 0);        // absent: taken
        const second = s.set("lock", "b", 0);       // present: refused, tells the version
        const stale = s.set("lock", "c", first.version + 100);
        const fresh = s.set("lock", "d", first.version);
        const badDelete = s.delete("lock", first.version);
        const goodDelete = s.delete("lock", fresh.version);
        const absentDelete = s.delete("lock", 5);
        ctx.log.info(JSON.stringify({ first, second, stale, fresh, value: s.get("lock"), badDelete, goodDelete, absentDelete }));
      },
    };`;
  const t = one(src, get("/"));
  const r = JSON.parse(lines(t)[0]);
  assert.equal(r.first, { ok: true, version: 1 });
  assert.equal(r.second, { ok: false, version: 1 });
  assert.equal(r.stale, { ok: false, version: 1 });
  assert.equal(r.fresh, { ok: true, version: 2 });
  assert.equal(r.value, null, "deleted at the end");
  assert.equal(r.badDelete, { ok: false, version: 2 });
  assert.equal(r.goodDelete, { ok: true, version: 0 });
  assert.equal(r.absentDelete, { ok: false, version: 0 });
});

test("shared data outlives the stream and is the same store in setup, timers and every stream", () => {
  const src = `
    export default {
      setup(config, worker) {
        worker.shared.set("from-setup", "s");
        setTimeout(() => worker.shared.set("from-timer", "t"), 5);
        return {};
      },
      async onRequest(req, ctx) {
        if (req.path === "/write") { ctx.shared.set("from-stream", "x"); return; }
        await new Promise((r) => setTimeout(r, 10));
        ctx.log.info(["from-setup", "from-timer", "from-stream"].map((k) => ctx.shared.get(k)?.value).join(","),
          ctx.shared === ctx.shared);
      },
    };`;
  const t = replay(src, { streams: [get("/write"), get("/read")] });
  assert.equal(t.streams[1].logs, ["[info] s,t,x true"]);
});

test("shared data starts empty in every scenario (one scenario is one Envoy process)", () => {
  const src = `
    export default {
      onRequest(req, ctx) { ctx.log.info(String(ctx.shared.get("n")?.value)); ctx.shared.set("n", "1"); },
    };`;
  assert.equal(one(src, get("/")).logs, ["[info] undefined"]);
  assert.equal(one(src, get("/")).logs, ["[info] undefined"]);
});

test("shared data: bad keys, values and versions are clear errors; the bounds are enforced", () => {
  const src = `
    export default {
      onRequest(req, ctx) {
        const s = ctx.shared;
        const tries = {
          numberKey: () => s.get(1),
          emptyKey: () => s.set("", "v"),
          longKey: () => s.set("k".repeat(257), "v"),
          objectValue: () => s.set("k", { a: 1 }),
          bigValue: () => s.set("k", "v".repeat(64 * 1024 + 1)),
          badVersion: () => s.set("k", "v", -1),
          fractionVersion: () => s.delete("k", 1.5),
        };
        for (const [name, f] of Object.entries(tries)) {
          try { f(); ctx.log.info(name, "accepted"); } catch (e) { ctx.log.info(name, e.name, e.message); }
        }
        ctx.log.info("edge", s.set("k".repeat(256), "v".repeat(64 * 1024)).ok);
        let n = 0;
        try { for (; n < 20000; n++) s.set("key" + n, ""); } catch (e) { ctx.log.info("full at", n, e.name, e.message); }
        s.delete("key0");
        ctx.log.info("after delete", s.set("again", "").ok);
        let big = 0;
        try { for (;; big++) s.set("big" + big, "x".repeat(60000)); } catch (e) { ctx.log.info("bytes full", e.message.includes("bytes")); }
      },
    };`;
  // Twenty thousand writes take longer than the default 50 ms of CPU per event.
  const t = one(src, get("/"), { settings: { max_cpu_ms_per_event: 60000 } });
  assert.equal(t.errors, []);
  const l = lines(t);
  assert.equal(l.slice(0, 7), [
    "numberKey TypeError shared.get(): key must be a string",
    "emptyKey RangeError shared.set(): key must be 1 to 256 bytes of UTF-8, got 0",
    "longKey RangeError shared.set(): key must be 1 to 256 bytes of UTF-8, got 257",
    "objectValue TypeError shared.set(): value must be a string (JSON.stringify an object first)",
    "bigValue RangeError shared.set(): value is 65537 bytes of UTF-8, over the limit of 65536",
    "badVersion TypeError shared.set(): expectedVersion must be a version from shared.get() (an integer >= 0; 0 means the key must be absent)",
    "fractionVersion TypeError shared.delete(): expectedVersion must be a version from shared.get() (an integer >= 0; 0 means the key must be absent)",
  ]);
  assert.is(l[7], "edge true");
  // One entry ("kkk...") was there before: 9999 more fit.
  assert.match(
    l[8],
    /^full at 9999 RangeError shared.set\(\): the shared data of this filter is full \(10000 of 10000 entries/,
  );
  assert.is(l[9], "after delete true");
  assert.is(l[10], "bytes full true");
});

test("metrics: counter and gauge values read back; gauges move up and down; histograms have none", () => {
  const src = `
    export default {
      metrics: { requests: "counter", inflight: "gauge", sizes: "histogram" },
      onRequest(req, ctx) {
        const m = ctx.metrics;
        m.requests.inc(); m.requests.inc(4);
        m.inflight.inc(); m.inflight.inc(3); m.inflight.dec();
        const up = m.inflight.value;
        m.inflight.dec(10);
        const floor = m.inflight.value;
        m.inflight.set(2); m.inflight.inc(0.5);
        ctx.log.info(m.requests.value, up, floor, m.inflight.value);
        for (const f of [() => m.sizes.value, () => m.requests.dec(), () => m.sizes.inc(), () => m.inflight.inc(Infinity), () => m.inflight.dec(NaN),
          () => m.requests.inc(Infinity), () => m.sizes.record(-Infinity)]) {
          try { f(); ctx.log.info("accepted"); } catch (e) { ctx.log.info(e.name, e.message); }
        }
      },
      onDone(ctx) { ctx.log.info("done", ctx.metrics.requests.value); },
    };`;
  const t = replay(src, { streams: [get("/"), get("/")] });
  assert.equal(t.streams[0].errors, []);
  assert.equal(t.streams[0].logs, [
    "[info] 5 3 0 2.5",
    "[info] TypeError metric `sizes` is a histogram: Envoy keeps its distribution, it has no value to read",
    "[info] TypeError metric `requests` is a counter: use inc(n)",
    "[info] TypeError metric `sizes` is a histogram: use record(v)",
    "[info] RangeError metric `inflight`: value is not finite",
    "[info] RangeError metric `inflight`: value is NaN",
    "[info] RangeError metric `requests`: value is not finite",
    "[info] RangeError metric `sizes`: value is not finite",
    "[info] done 5",
  ]);
  // The second stream sees the first one's counts: one value per process; the gauge moves on
  // from this engine's share (2.5 + 1 + 3 - 1).
  assert.equal(t.streams[1].logs[0], "[info] 10 5.5 0 2.5");
  assert.equal(t.streams[1].logs.at(-1), "[info] done 10");
  // What the host was told: the counter's increments, the gauge's process value (as it was
  // while the engine lived: the replay frees it at the end).
  assert.equal(t.metrics.requests, 10);
  assert.equal(t.metrics.inflight, 2.5);
});

test.run();
