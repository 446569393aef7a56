// @envoy-js/sdk/testing: the one-call request(), runScenario(), the step API (createHost) and
// the engine switch. Stub and native parity over many scenarios is test/conformance's job;
// here the API itself, and what only a program (not a JSON scenario) can express.
import { existsSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

import { test } from "uvu";
import * as assert from "uvu/assert";

import { nativeAddonPath } from "@envoy-js/sdk/native";
import { createHost, defaultEngine, request, runScenario } from "@envoy-js/sdk/testing";

import { scratch } from "./helpers.mjs";

const src = (source) => ({ source, filename: "filter.js" });
const GET = { ":method": "GET", ":path": "/", ":authority": "h" };
const sleep = "const sleep = (ms) => new Promise((r) => setTimeout(r, ms));\n";
const haveNative = existsSync(nativeAddonPath());
const firstLines = (v) => JSON.parse(JSON.stringify(v, (k, x) => (typeof x === "string" ? x.split("\n")[0] : x)));

// ---- request() and runScenario() ----

test("request(): default pseudo-headers, the five documented keys, counters and worker logs", () => {
  const r = request(src(`export default { onRequest(req, ctx) { ctx.log.info(req.method, req.path, req.authority, req.scheme); } };`), {
    engine: "stub",
  });
  assert.equal(r.logs, ["[info] GET / example.com http"]);
  for (const key of ["upstreamRequest", "localReply", "downstreamResponse", "logs", "errors", "counters", "workerLogs"]) {
    assert.ok(key in r, key);
  }
  assert.equal(r.upstreamRequest.headers, { ":method": "GET", ":path": "/", ":authority": "example.com", ":scheme": "http" });
  assert.equal(r.downstreamResponse, { headers: { ":status": "200" }, body: "", trailers: null });
});

test("request(): body chunks, trailers, upstream, config and settings", () => {
  const filter = src(`export default {
    async onRequest(req, ctx) { req.body.replace((await req.body.text()).toUpperCase() + ctx.config.suffix); },
    onResponse(res) { res.headers.set("x-up", res.headers.get("server")); },
  };`);
  const r = request(filter, {
    engine: "stub",
    method: "POST",
    path: "/p",
    body: ["ab", new Uint8Array([0x63])],
    trailers: { "x-t": "1" },
    upstream: { headers: { ":status": "201", server: "s" }, body: "done" },
    config: { suffix: "!" },
    settings: { buffer_limit_bytes: 100 },
  });
  assert.is(r.upstreamRequest.body, "ABC!");
  assert.equal(r.upstreamRequest.trailers, { "x-t": "1" });
  assert.is(r.downstreamResponse.headers["x-up"], "s");
  assert.is(r.downstreamResponse.body, "done");
});

test("filters come as a path, a file: URL or source text; definition objects are refused", () => {
  const { dir, cleanup } = scratch({ "dist/f.js": `export default { onRequest(req) { req.headers.set("x-f", "1"); } };` });
  try {
    const file = path.join(dir, "dist/f.js");
    for (const filter of [file, pathToFileURL(file)]) {
      assert.is(request(filter, { engine: "stub" }).upstreamRequest.headers["x-f"], "1");
    }
    assert.throws(() => request({ onRequest() {} }, { engine: "stub" }), /filter definition object cannot run on the host stubs/);
    assert.throws(() => request(path.join(dir, "absent.js"), { engine: "stub" }), /cannot read filter .*absent\.js: not found/);
  } finally {
    cleanup();
  }
});

test("load errors name the file, as the native engine's do", () => {
  assert.throws(() => runScenario({ source: "export default {};\nexport const x = ;", filename: "src/f.js" }, { streams: [] }, { engine: "stub" }), /^src\/f\.js:2:\d+: SyntaxError/);
  assert.throws(() => runScenario(src("export default { onRequets() {} };"), { streams: [] }, { engine: "stub" }), /filter\.js: unknown hook `onRequets`/);
  assert.throws(() => runScenario(src("export default {};"), { settings: { failure_mode: "maybe" }, streams: [] }, { engine: "stub" }), /failure_mode must be "closed" or "open"/);
  assert.throws(() => runScenario(src("export default {};"), { streams: {} }, { engine: "stub" }), /scenario\.streams must be an array/);
  assert.throws(() => runScenario({ source: "export default {};", bytecode: new Uint8Array(1) }, { streams: [] }, { engine: "stub" }), /bytecode runs on the native engine only/);
});

test("the engine comes from the call, else from ENVOY_JS_ENGINE, else the stub", () => {
  assert.is(defaultEngine({}), "stub");
  assert.is(defaultEngine({ ENVOY_JS_ENGINE: "native" }), "native");
  assert.throws(() => defaultEngine({ ENVOY_JS_ENGINE: "v8" }), /unknown engine 'v8'/);
  assert.throws(() => request(src("export default {};"), { engine: "qjs" }), /unknown engine 'qjs'/);
});

test("each replay gets a fresh engine: module state does not leak between runs", () => {
  const filter = src(`let n = 0; export default { onRequest(req, ctx) { ctx.log.info(++n); } };`);
  const two = { streams: [{ request: { headers: GET } }, { request: { headers: GET } }] };
  for (let i = 0; i < 2; i++) {
    const t = runScenario(filter, two, { engine: "stub" });
    assert.equal(t.streams.map((s) => s.logs[0]), ["[info] 1", "[info] 2"]);
  }
});

test("the filter's realm has the engine's globals only, and stacks point into the bundle", () => {
  const r = request(
    src(`export default {
  onRequest(req, ctx) {
    ctx.log.info(typeof process, typeof require, typeof Buffer, typeof globalThis.fetch, typeof setTimeout);
    throw new Error("line 4");
  },
};`),
    { engine: "stub" },
  );
  assert.equal(r.logs, ["[info] undefined undefined undefined undefined function"]);
  assert.match(r.errors[0], /^Error: line 4\n\s+at .*filter\.js:4:\d+/);
});

test("request(): the stream setup keys reach the filter (stream info, metadata, filter state, clusters, route)", () => {
  const r = request(
    src(`export default { async onRequest(req, ctx) {
      const res = await ctx.fetch("authz", { path: "/check" });
      ctx.metadata.set("envoy-js", "user", res.headers.get("x-user"));
      ctx.log.info(ctx.stream.id, ctx.stream.protocol, ctx.metadata.get("jwt", "sub"), ctx.filterState.get("tag"), ctx.config.limit);
      ctx.metrics.hits.inc();
    }, metrics: { hits: "counter" } };`),
    {
      engine: "stub",
      config: { limit: 10 },
      stream: { id: "s-1", protocol: "HTTP/2" },
      metadata: { jwt: { sub: "bob" } },
      filterState: { tag: "blue" },
      clusters: { authz: { headers: { ":status": "200", "x-user": "alice" }, delayMs: 3 } },
      route: { config: { limit: 1 } },
    },
  );
  assert.equal(r.logs, ["[info] s-1 HTTP/2 bob blue 1"]);
  assert.equal(r.metadata, { "envoy-js": { user: "alice" }, jwt: { sub: "bob" } });
  assert.equal(r.callouts, [{ cluster: "authz", headers: { ":method": "GET", ":path": "/check", ":authority": "authz" }, body: "" }]);
  assert.equal(r.metrics, { hits: 1 });
  assert.equal(r.filterState, { tag: "blue" });
  assert.is(r.routeCacheClears, 0);
});

test("a ctx.fetch the filter forgets is an unhandled rejection; one it awaits is not", () => {
  const filter = src(`export default { async onRequest(req, ctx) {
    if (req.path === "/forget") { ctx.fetch("nowhere", {}); return; }
    try { await ctx.fetch("nowhere", {}); } catch (e) { ctx.log.info(e.name, e.code); }
  } };`);
  const forgot = request(filter, { engine: "stub", path: "/forget" });
  assert.equal(forgot.workerLogs, ["[warn] unhandled promise rejection: FetchError: fetch(): no cluster named 'nowhere'"]);
  const awaited = request(filter, { engine: "stub" });
  assert.equal(awaited.workerLogs, []);
  assert.equal(awaited.logs, ["[info] FetchError unknown_cluster"]);
});

test("the stub accepts max_cpu_ms_per_event and max_heap_bytes but does not enforce them", () => {
  const r = request(
    src(`export default { onRequest(req, ctx) { const end = Date.now() + 20; while (Date.now() < end) {} ctx.log.info("done"); } };`),
    { engine: "stub", settings: { max_cpu_ms_per_event: 1, max_heap_bytes: 1048576 } },
  );
  assert.equal(r.logs, ["[info] done"]);
  assert.equal(r.errors, []);
  assert.throws(() => request(src("export default {};"), { engine: "stub", settings: { max_cpu_ms_per_event: 0 } }), /max_cpu_ms_per_event must be an integer between 1 and 60000/);
});

test("an unhandled rejection of the filter's own promise is reported, and does not crash the test process", async () => {
  const r = request(src(`export default { onRequest() { Promise.reject(new Error("lost")); } };`), { engine: "stub" });
  assert.ok(r.upstreamRequest);
  assert.equal(r.workerLogs.map((l) => l.split("\n")[0]), ["[warn] unhandled promise rejection: Error: lost"]);
  await new Promise((resolve) => setTimeout(resolve, 20)); // Node looks for unhandled rejections now
});

// Bytes that JSON scenarios cannot carry: a UTF-8 sequence split across chunks.
const splitChars = {
  method: "POST",
  body: [new Uint8Array([0x41, 0xe2, 0x82]), new Uint8Array([0xac, 0xc3]), new Uint8Array([0xa9])],
};
const splitFilter = src(`export default {
  onRequestData(c, ctx) { ctx.log.info(JSON.stringify(c.text()), c.size, JSON.stringify(new TextDecoder().decode(c.bytes()))); },
  async onResponse(res, ctx) { ctx.log.info("whole", await res.body.text()); },
};`);

test("chunk.text() decodes a split UTF-8 sequence as the engine does: one U+FFFD per stray byte", () => {
  const r = request(splitFilter, { ...splitChars, engine: "stub", upstream: { body: [new Uint8Array([0xe2, 0x82]), new Uint8Array([0xac])] } });
  assert.is(r.logs[0], '[info] "A\uFFFD\uFFFD" 3 "A\uFFFD"');
  assert.is(r.logs[1], '[info] "\uFFFD\uFFFD" 2 "\uFFFD\uFFFD"');
  assert.is(r.logs[3], "[info] whole €");
  assert.is(r.upstreamRequest.body, "A€é");
});

if (haveNative) {
  test("native parity for what JSON scenarios cannot carry (binary chunks; TextDecoder excepted)", () => {
    const stub = request(splitFilter, { ...splitChars, engine: "stub" });
    const native = request(splitFilter, { ...splitChars, engine: "native" });
    // TextDecoder is Node's in the stub: it folds a truncated sequence into one U+FFFD.
    const textOnly = (logs) => logs.map((l) => l.split(" ").slice(0, 3).join(" "));
    assert.equal(textOnly(stub.logs), textOnly(native.logs));
    assert.equal(firstLines({ ...stub, logs: [] }), firstLines({ ...native, logs: [] }));
  });

  test("request() and runScenario() run on the native engine with the same call", () => {
    const filter = src(`export default { onRequest(req, ctx) { if (!req.headers.has("x-k")) return ctx.respond(401); } };`);
    for (const init of [{}, { headers: { "x-k": "1" } }]) {
      assert.equal(firstLines(request(filter, { ...init, engine: "native" })), firstLines(request(filter, { ...init, engine: "stub" })));
    }
  });
} else {
  console.log(`  (native parity tests not run: ${nativeAddonPath()} is not built; run make native)`);
}

// ---- the step API ----

test("step API: a stream's setup, metadata, filter state, callouts and metrics", () => {
  const host = createHost(src(`export default {
    metrics: { calls: "counter", size: "histogram" },
    async onRequest(req, ctx) {
      const r = await ctx.fetch("authz", { method: "POST", path: "/check", body: "x" });
      ctx.filterState.set("authz.status", String(r.status));
      ctx.metadata.set("envoy-js", "checked", true);
      ctx.metrics.calls.inc();
      ctx.metrics.size.record((await r.text()).length);
    },
  };`), { engine: "stub" });
  const s = host.newStream({ clusters: { authz: { headers: { ":status": "204" }, body: "ok", delayMs: 10 } } });
  assert.is(s.callOnRequestHeaders(GET, true), "StopIteration");
  assert.equal(s.getCallouts(), [{ cluster: "authz", headers: { ":method": "POST", ":path": "/check", ":authority": "authz", "content-length": "1" }, body: "x" }]);
  assert.equal(host.getMetrics(), {});
  host.advanceTime(10);
  assert.ok(s.getCurrentUpstreamRequest());
  assert.equal(s.getCurrentFilterState(), { "authz.status": "204" });
  assert.equal(s.getCurrentMetadata(), { "envoy-js": { checked: true } });
  assert.equal(host.getMetrics(), { calls: 1, size: [2] });
  assert.equal(s.getEvents().slice(0, 3), ["callout authz POST /check", "onRequestHeaders -> StopIteration", "callout 1 done"]);
  host.close();
});

test("step API: a pending hook stops the stream; advanceTime resumes it exactly once", () => {
  const host = createHost(src(sleep + `export default { async onRequest(req, ctx) { await sleep(10); req.headers.set("x-at", String(performance.now())); } };`), {
    engine: "stub",
  });
  const s = host.newStream();
  assert.is(s.callOnRequestHeaders({ ":method": "POST", ":path": "/", ":authority": "h" }), "StopIteration");
  assert.is(s.callOnRequestData("body", true), "StopIterationAndWatermark");
  assert.is(s.getCurrentUpstreamRequest(), null);
  host.advanceTime(9);
  assert.is(s.getCurrentUpstreamRequest(), null);
  s.advanceTime(1);
  assert.is(host.now, 10);
  assert.equal(s.getCurrentUpstreamRequest(), { headers: { ":method": "POST", ":path": "/", ":authority": "h", "x-at": "10" }, body: "body", trailers: null });
  assert.equal(s.getEvents().filter((e) => e.startsWith("continue")), ["continue request (posted)", "continue request"]);
  assert.is(s.callOnResponseHeaders({ ":status": "200" }, false), "Continue");
  assert.is(s.callOnResponseData("ok", true), "Continue");
  assert.equal(s.getCurrentDownstreamResponse(), { headers: { ":status": "200" }, body: "ok", trailers: null });
  s.complete();
  s.destroy();
  host.close();
});

test("step API: a local reply, logs, errors and counters", () => {
  const host = createHost(src(`export default {
    onRequest(req, ctx) { ctx.log.info("path " + req.path); if (req.path === "/deny") return ctx.respond(403, { body: "no" }); if (req.path === "/boom") throw new Error("boom"); },
  };`), { engine: "stub" });
  const deny = host.newStream();
  assert.is(deny.callOnRequestHeaders({ ...GET, ":path": "/deny" }, true), "StopIteration");
  assert.equal(deny.getCurrentLocalReply(), { status: 403, body: "no", headers: { "content-type": "text/plain" }, details: "envoy_js_respond" });
  assert.equal(deny.getLogs(), ["[info] path /deny"]);
  assert.throws(() => deny.callOnRequestData("x", true), /already ended \(local reply or reset\)/);
  const boom = host.newStream();
  boom.callOnRequestHeaders({ ...GET, ":path": "/boom" }, true);
  assert.match(boom.getErrors()[0], /^Error: boom/);
  assert.is(boom.getCurrentLocalReply().details, "envoy_js_error");
  assert.equal(host.getCounters(), { "envoy_js.errors": 1 });
  assert.match(host.getWorkerLogs()[0], /^\[error\] stream 2: filter failed: Error: boom/);
  assert.is(boom.transcript().resetByFilter, false);
});

test("step API: destroy while a hook is pending; onDone sees ctx.aborted", () => {
  const host = createHost(src(`export default {
    async onRequest(req, ctx) { try { await req.body.text(); } catch (e) { console.log(e.name, ctx.aborted); } },
    onDone(ctx) { ctx.log.info("done aborted=" + ctx.aborted); },
  };`), { engine: "stub" });
  const s = host.newStream();
  s.callOnRequestHeaders({ ...GET, ":method": "POST" }, false);
  s.destroy();
  assert.equal(s.getLogs(), ["[info] done aborted=true"]);
  assert.equal(host.getWorkerLogs(), ["[info] StreamGone true"]);
  assert.is(s.getEvents().at(-1), "destroyed by the test");
  assert.throws(() => s.callOnRequestData("x"), /this stream was destroyed/);
});

test("step API: ctx.respond() from the stream's own timer, with no hook pending, goes out at once", () => {
  const host = createHost(src(`export default { onRequest(req, ctx) { setTimeout(() => ctx.respond(504, { body: "late" }), 5); } };`), { engine: "stub" });
  const s = host.newStream();
  assert.is(s.callOnRequestHeaders(GET, true), "Continue");
  host.advanceTime(5);
  assert.is(s.getCurrentLocalReply()?.status, 504);
});

test("step API: worker timers from setup fire on advanceTime and log to the worker", () => {
  const host = createHost(src(`export default { setup() { setInterval(() => console.log("tick", performance.now()), 10); } };`), { engine: "stub" });
  host.advanceTime(35);
  assert.equal(host.getWorkerLogs(), ["[info] tick 10", "[info] tick 20", "[info] tick 30"]);
  host.close();
  assert.throws(() => host.advanceTime(10), /closed/);
});

test("step API: event order mistakes throw instead of doing nothing", () => {
  const host = createHost(src("export default {};"), { engine: "stub" });
  const s = host.newStream();
  assert.throws(() => s.callOnRequestData("x"), /before the request headers/);
  assert.throws(() => s.callOnResponseHeaders({ ":status": "200" }), /before the request headers/);
  s.callOnRequestHeaders(GET, true);
  assert.throws(() => s.callOnRequestHeaders(GET, true), /request headers were already sent/);
  assert.throws(() => s.callOnRequestTrailers({}), /the request already ended/);
  assert.throws(() => s.callOnResponseData(42), /before the response headers/);
  s.callOnResponseHeaders({ ":status": "200" });
  assert.throws(() => s.callOnResponseData(42), /body data must be a string or a Uint8Array/);
  assert.throws(() => host.advanceTime(-1), /ms must be a number >= 0/);
});

test.run();
