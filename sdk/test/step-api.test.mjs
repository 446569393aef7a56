// The step API (createHost) on the wasm engine: each test plays one sequence of events and
// clock moves, records what the host shows on the way, and asserts on those observations.
import { test } from "uvu";
import * as assert from "uvu/assert";

import { createHost } from "@envoy-js/sdk/testing";

const src = (source) => ({ source, filename: "filter.js" });
const GET = { ":method": "GET", ":path": "/", ":authority": "h" };
const POST = { ":method": "POST", ":path": "/", ":authority": "h" };
const sleep = "const sleep = (ms) => new Promise((r) => setTimeout(r, ms));\n";
const firstLines = (v) => JSON.parse(JSON.stringify(v, (k, x) => (typeof x === "string" ? x.split("\n")[0] : x)));

/**
 * Runs `play(host, seen)` on a new host; `seen(label, value)` records an observation. Returns
 * the observations (strings cut at their first line), then the final transcript, in order.
 */
function onWasm(filter, options, play) {
  const host = createHost(filter, options);
  assert.is(host.engine, "wasm");
  const seen = [];
  const record = (label, value) => seen.push([label, value]);
  try {
    play(host, record);
    record("transcript", host.transcript());
  } catch (err) {
    record("threw", err instanceof Error ? err.message : String(err));
  } finally {
    host.close();
  }
  return firstLines(seen);
}

/** The value recorded under `label`. */
const at = (seen, label) => {
  const found = seen.find(([l]) => l === label);
  if (!found) throw new Error(`nothing recorded as ${label}: ${JSON.stringify(seen).slice(0, 300)}`);
  return found[1];
};

{
  test("a pending hook holds the request until the clock moves; chunks are rewritten", () => {
    const seen = onWasm(
      src(
        sleep +
          `export default {
        async onRequest(req, ctx) { await sleep(100); req.headers.set("x-waited", String(performance.now())); },
        onResponseData(c) { c.replace(c.text().toUpperCase()); },
      };`,
      ),
      {},
      (host, seen) => {
        const s = host.newStream({ stream: { id: "s1" } });
        seen("headers", s.callOnRequestHeaders(POST, false));
        seen("data", s.callOnRequestData("body", true));
        host.advanceTime(99);
        seen("before", s.getCurrentUpstreamRequest());
        s.advanceTime(1);
        seen("after", s.getCurrentUpstreamRequest());
        seen("now", host.now);
        seen("response", s.callOnResponseHeaders({ ":status": "200" }, false));
        seen("chunk 1", s.callOnResponseData("hello", false));
        seen("chunk 2", s.callOnResponseData(new Uint8Array([0x20, 0x77]), true));
        seen("downstream", s.getCurrentDownstreamResponse());
        s.complete();
        s.destroy();
        seen("events", s.getEvents());
      },
    );
    assert.equal(seen[0], ["headers", "StopIteration"]);
    assert.equal(seen[1], ["data", "StopIterationAndWatermark"]);
    assert.is(seen[3][1].headers["x-waited"], "100");
    assert.is(seen[8][1].body, "HELLO W");
  });

  test("two streams in flight; one goes away while its hook is pending", () => {
    const seen = onWasm(
      src(
        sleep +
          `export default {
        async onRequest(req, ctx) { await sleep(50); ctx.log.info("resumed " + req.path); },
        onDone(ctx) { ctx.log.info("done aborted=" + ctx.aborted); },
      };`,
      ),
      {},
      (host, seen) => {
        const a = host.newStream();
        const b = host.newStream();
        seen("a", a.callOnRequestHeaders({ ...GET, ":path": "/a" }, true));
        host.advanceTime(25);
        seen("b", b.callOnRequestHeaders({ ...GET, ":path": "/b" }, true));
        a.destroy();
        host.advanceTime(50);
        seen("a logs", a.getLogs());
        seen("b logs", b.getLogs());
        seen("b up", b.getCurrentUpstreamRequest());
        seen("worker", host.getWorkerLogs());
      },
    );
    assert.is(at(seen, "a"), "StopIteration");
    assert.equal(at(seen, "a logs"), ["[info] done aborted=true"]);
    assert.equal(at(seen, "b logs"), ["[info] resumed /b"]);
    assert.is(at(seen, "b up").headers[":path"], "/b");
  });

  test("ctx.fetch on the fake clock: callouts, metadata, filter state, metrics, route config", () => {
    const seen = onWasm(
      src(`export default {
        metrics: { calls: "counter", latency: "histogram", inflight: "gauge" },
        async onRequest(req, ctx) {
          const start = performance.now();
          ctx.metrics.inflight.set(1);
          let r;
          try { r = await ctx.fetch("authz", { method: "post", path: "/check", body: req.path, headers: { "X-Token": "t" } }); }
          catch (e) { return ctx.respond(503, { body: e.code }); }
          ctx.metrics.calls.inc();
          ctx.metrics.latency.record(performance.now() - start);
          ctx.metrics.inflight.set(0);
          ctx.metadata.set("envoy-js", "user", r.headers.get("x-user"));
          ctx.filterState.set("envoy-js.limit", String(ctx.config.limit));
          req.headers.set("x-user", r.headers.get("x-user") ?? "");
        },
      };`),
      { config: { limit: 10, realm: "shop" } },
      (host, seen) => {
        const ok = host.newStream({
          clusters: { authz: { headers: { ":status": "200", "x-user": "bob" }, delayMs: 7 } },
          route: { config: { limit: 2 } },
          metadata: { jwt: { sub: "bob" } },
        });
        seen("ok", ok.callOnRequestHeaders(GET, true));
        seen("callouts", ok.getCallouts());
        host.advanceTime(7);
        seen("up", ok.getCurrentUpstreamRequest());
        seen("md", ok.getCurrentMetadata());
        seen("fs", ok.getCurrentFilterState());
        const down = host.newStream({ clusters: { authz: { timeout: true } } });
        seen("down", down.callOnRequestHeaders(GET, true));
        host.advanceTime(5000);
        seen("reply", down.getCurrentLocalReply());
        const gone = host.newStream({ clusters: { authz: { delayMs: 1000 } } });
        gone.callOnRequestHeaders(GET, true);
        gone.destroy();
        seen("gone events", gone.getEvents());
        seen("metrics", host.getMetrics());
      },
    );
    assert.equal(seen.find(([l]) => l === "metrics")[1], { calls: 1, inflight: 1, latency: [7] });
  });

  test("local replies, failures, counters, and the same order mistakes refused", () => {
    const seen = onWasm(
      src(`export default {
        onRequest(req, ctx) {
          if (req.path === "/deny") return ctx.respond(403, { body: "no", headers: { "x-why": "test" } });
          if (req.path === "/boom") throw new Error("boom");
          setTimeout(() => ctx.respond(504, { body: "late" }), 5);
        },
        onResponse(res, ctx) { ctx.log.info("response " + res.status); },
      };`),
      {},
      (host, seen) => {
        const deny = host.newStream();
        seen("deny", deny.callOnRequestHeaders({ ...GET, ":path": "/deny" }, true));
        seen("deny reply", deny.getCurrentLocalReply());
        try {
          deny.callOnRequestData("x", true);
        } catch (e) {
          seen("refused", e.message);
        }
        const boom = host.newStream();
        seen("boom", boom.callOnRequestHeaders({ ...GET, ":path": "/boom" }, true));
        seen("boom errors", boom.getErrors());
        seen("counters", host.getCounters());
        const late = host.newStream();
        seen("late", late.callOnRequestHeaders(GET, true));
        host.advanceTime(5);
        seen("late reply", late.getCurrentLocalReply());
        seen("late events", late.getEvents());
      },
    );
    assert.is(at(seen, "deny reply").status, 403);
    assert.is(at(seen, "deny reply").headers["x-why"], "test");
    assert.match(at(seen, "refused"), /already ended/);
    assert.is(at(seen, "boom"), "StopIteration");
    assert.match(at(seen, "boom errors")[0], /boom/);
    assert.is(at(seen, "counters")["envoy_js.errors"], 1);
    assert.is(at(seen, "late reply").status, 504);
    assert.is(at(seen, "late reply").body, "late");
  });

  test("whole-body reads with trailers; worker timers from setup; close", () => {
    const seen = onWasm(
      src(`export default {
        setup() { setInterval(() => console.log("tick", performance.now()), 10); return {}; },
        async onRequest(req, ctx) { const t = await req.body.text(); req.body.replace(t.toUpperCase()); },
        onRequestTrailers(t) { t.set("x-t", "edited"); },
      };`),
      {},
      (host, seen) => {
        const s = host.newStream();
        seen("h", s.callOnRequestHeaders(POST, false));
        seen("d1", s.callOnRequestData("ab", false));
        host.advanceTime(15);
        seen("d2", s.callOnRequestData("cd", false));
        seen("t", s.callOnRequestTrailers({ "x-t": "1" }));
        seen("up", s.getCurrentUpstreamRequest());
        host.advanceTime(20);
        seen("worker", host.getWorkerLogs());
      },
    );
    assert.is(at(seen, "up").body, "ABCD");
    assert.is(at(seen, "up").trailers["x-t"], "edited");
    assert.equal(at(seen, "worker").slice(0, 3), ["[info] tick 10", "[info] tick 20", "[info] tick 30"]);
  });
}

test("a 0 ms interval makes advanceTime throw instead of hanging", () => {
  const seen = onWasm(
    src(`let n = 0; export default { setup() { setInterval(() => n++, 0); return {}; } };`),
    {},
    (host, seen) => {
      try {
        host.advanceTime(1);
      } catch (e) {
        seen("threw", e.message);
      }
      seen("now", host.now);
    },
  );
  assert.match(at(seen, "threw"), /more than 100000 timers fired/);
});

test("createHost refuses an unknown engine and works after close() only to throw", () => {
  assert.throws(() => createHost(src("export default {};"), { engine: "v8" }), /unknown engine 'v8'/);
  const host = createHost(src("export default {};"), { engine: "wasm" });
  host.close();
  assert.throws(() => host.newStream(), /closed/);
  assert.throws(() => host.now, /closed/);
});

test("startBackground: a JWKS refresher unit-tested on the fake clock, read by streams through ctx.shared", () => {
  const filter = src(`
    export default {
      background(config, bg) {
        const refresh = async () => {
          const r = await bg.fetch("idp", { path: "/keys", timeoutMs: 2000 });
          if (r.status === 200) bg.shared.set("jwks", await r.text());
          else bg.log.warn("jwks refresh got", r.status);
        };
        refresh();
        setInterval(refresh, 60000);
      },
      onRequest(req, ctx) {
        if (!ctx.shared.get("jwks")) return ctx.respond(503, { body: "no keys yet" });
        req.headers.set("x-jwks", ctx.shared.get("jwks").value);
      },
    };`);
  const host = createHost(filter);
  const early = host.newStream();
  early.callOnRequestHeaders(GET, true);
  assert.is(early.getCurrentLocalReply()?.status, 503);
  host.startBackground({ clusters: { idp: { headers: { ":status": "200" }, body: '{"keys":[1]}', delayMs: 10 } } });
  assert.is(host.getShared("jwks"), null);
  host.advanceTime(10);
  assert.is(host.getShared("jwks"), '{"keys":[1]}');
  const later = host.newStream();
  later.callOnRequestHeaders(GET, true);
  assert.is(later.getCurrentUpstreamRequest()?.headers["x-jwks"], '{"keys":[1]}');
  assert.equal(host.getBackgroundLogs(), []);
  host.stopBackground();
  assert.throws(() => createHost(src("export default { onRequest() {} };")).startBackground(), /no `background`/);
  host.close();
});

test.run();
