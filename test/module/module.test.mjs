// The dynamic module (libenvoy_js.so, driven by the ABI host stub through Envoy's C ABI) against
// the native host stub: the runtime's scenarios must give identical transcripts on both, and
// the object must export what Envoy 1.38 looks up. The few places where Envoy's ABI cannot do
// what the native stub does are tested last, one by one, as what they are.
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { test } from "uvu";
import * as assert from "uvu/assert";

import { buildFilter } from "../../sdk/cli/build.mjs";
import { replay as replayCli } from "../../sdk/cli/replay.mjs";
import { abiHost, abiHost138, moduleSo, replayModule, replayNative, runAbiHost } from "../lib/module.mjs";
import { wasm } from "../lib/wasm.mjs";

const sleep = "const sleep = (ms) => new Promise((r) => setTimeout(r, ms));\n";
const get = (path = "/", headers = {}) => ({
  request: { headers: { ":method": "GET", ":path": path, ":authority": "example.com", ":scheme": "http", ...headers } },
});
const post = (path, body, headers = {}, trailers) => ({
  request: {
    headers: { ":method": "POST", ":path": path, ":authority": "example.com", ":scheme": "http", ...headers },
    body,
    ...(trailers ? { trailers } : {}),
  },
});
const one = (stream, opts = {}) => ({ ...opts, streams: [stream] });

// ---- the object itself ----

// Envoy 1.38 (source/extensions/filters/http/dynamic_modules/filter_config.cc and
// dynamic_modules.cc) refuses a module without these; the per-route pair is looked up when a
// route configures the filter.
const REQUIRED_HOOKS = [
  "envoy_dynamic_module_on_program_init",
  "envoy_dynamic_module_on_http_filter_config_new",
  "envoy_dynamic_module_on_http_filter_config_destroy",
  "envoy_dynamic_module_on_http_filter_per_route_config_new",
  "envoy_dynamic_module_on_http_filter_per_route_config_destroy",
  "envoy_dynamic_module_on_http_filter_new",
  "envoy_dynamic_module_on_http_filter_request_headers",
  "envoy_dynamic_module_on_http_filter_request_body",
  "envoy_dynamic_module_on_http_filter_request_trailers",
  "envoy_dynamic_module_on_http_filter_response_headers",
  "envoy_dynamic_module_on_http_filter_response_body",
  "envoy_dynamic_module_on_http_filter_response_trailers",
  "envoy_dynamic_module_on_http_filter_stream_complete",
  "envoy_dynamic_module_on_http_filter_destroy",
  "envoy_dynamic_module_on_http_filter_http_callout_done",
  "envoy_dynamic_module_on_http_filter_http_stream_headers",
  "envoy_dynamic_module_on_http_filter_http_stream_data",
  "envoy_dynamic_module_on_http_filter_http_stream_trailers",
  "envoy_dynamic_module_on_http_filter_http_stream_complete",
  "envoy_dynamic_module_on_http_filter_http_stream_reset",
  "envoy_dynamic_module_on_http_filter_scheduled",
  "envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark",
  "envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark",
].sort();
// Optional hooks: Envoy looks them up and calls them only when present (`background`, on the
// main thread: envoy_ext/module/background.cc).
const OPTIONAL_HOOKS = [
  "envoy_dynamic_module_on_http_filter_config_scheduled",
  "envoy_dynamic_module_on_http_filter_config_http_callout_done",
];

const dynamicSymbols = (file, which) =>
  execFileSync("nm", ["-D", which, file], { encoding: "utf8" })
    .split("\n")
    .map((l) => l.trim().split(/\s+/).pop())
    .filter(Boolean);

test("nm -D: libenvoy_js.so exports exactly the hooks Envoy 1.38 requires, and the optional ones of background", () => {
  assert.equal(dynamicSymbols(moduleSo, "--defined-only").sort(), [...REQUIRED_HOOKS, ...OPTIONAL_HOOKS].sort());
});

test("nm -D: the only Envoy symbols it leaves undefined are callbacks, all defined by the ABI host stub", () => {
  const undefinedEnvoy = dynamicSymbols(moduleSo, "--undefined-only").filter((s) => s.startsWith("envoy_"));
  assert.ok(undefinedEnvoy.length > 30, undefinedEnvoy.join(" "));
  assert.ok(
    undefinedEnvoy.every((s) => s.startsWith("envoy_dynamic_module_callback_")),
    undefinedEnvoy.join(" "),
  );
  const stub = new Set(dynamicSymbols(abiHost, "--defined-only"));
  assert.equal(
    undefinedEnvoy.filter((s) => !stub.has(s)),
    [],
  );
});

test("on_program_init returns the ABI version v0.1.0", () => {
  const r = runAbiHost(["--abi-version"]);
  assert.is(r.code, 0, r.stderr);
  assert.is(r.stdout.trim(), "v0.1.0");
});

// ---- conformance: the runtime's scenarios on both engines ----

// [name, filter source, scenario, check(transcript) that the scenario did what it is about]
const CASES = [
  [
    "a sync onRequest that settles at once costs no stop",
    `export default { onRequest(req) { req.headers.set("x-a", "1"); } };`,
    one(get("/x")),
    (t) => assert.is(t.streams[0].upstreamRequest.headers["x-a"], "1"),
  ],
  [
    "an async hook that settles during the job drain costs no stop",
    `export default { async onRequest(req) { await null; await Promise.resolve(); req.headers.set("x-a", "2"); } };`,
    one(get("/x")),
    (t) => assert.is(t.streams[0].events[0], "onRequestHeaders -> Continue"),
  ],
  [
    "every hook runs once, in Envoy's order",
    `export default {
      onRequest(req, ctx) { ctx.log.info("onRequest", req.method, req.path, req.authority, req.scheme); },
      onRequestData(c, ctx) { ctx.log.info("onRequestData", c.text(), c.endOfStream, c.size); },
      onRequestTrailers(t, ctx) { ctx.log.info("onRequestTrailers", t.get("x-rt")); },
      onResponse(res, ctx) { ctx.log.info("onResponse", res.status, res.headers.get("server")); },
      onResponseData(c, ctx) { ctx.log.info("onResponseData", c.text(), c.endOfStream); },
      onResponseTrailers(t, ctx) { ctx.log.info("onResponseTrailers", t.get("grpc-status")); },
      onDone(ctx) { ctx.log.info("onDone", ctx.aborted); },
    };`,
    one({
      ...post("/p", ["a", "bc"], {}, { "x-rt": "t" }),
      upstream: { headers: { ":status": "201", server: "up" }, body: ["r1"], trailers: { "grpc-status": "0" } },
    }),
    (t) => assert.is(t.streams[0].logs.length, 8),
  ],
  [
    "a pending hook stops the stream; data and trailers queue and it resumes once (posted)",
    sleep +
      `export default {
      async onRequest(req, ctx) { await sleep(20); req.headers.set("x-late", "ok"); },
      onRequestData(c) { c.append("!"); },
      onRequestTrailers(t) { t.set("x-t", "2"); },
    };`,
    one(post("/p", ["one", "two"], { "content-length": "6" }, { "x-t": "1" })),
    (t) => {
      assert.is(t.streams[0].upstreamRequest.body, "one!two!");
      assert.ok(t.streams[0].events.includes("continue request (posted)"));
    },
  ],
  [
    "without data hooks, data held behind a pending hook is buffered with watermarks",
    sleep + `export default { async onRequest(req) { await sleep(5); } };`,
    one(post("/p", ["a", "b"])),
    (t) => assert.is(t.streams[0].events[1], "onRequestData -> StopIterationAndWatermark"),
  ],
  [
    "an async data hook holds later chunks and keeps their order",
    sleep +
      `export default { async onRequestData(c) { const s = c.text(); await sleep(s === "slow" ? 30 : 1); c.replace("[" + s + "]"); } };`,
    one(post("/p", ["slow", "fast", "x"])),
    (t) => assert.is(t.streams[0].upstreamRequest.body, "[slow][fast][x]"),
  ],
  [
    "whole-body read holds the request until its end; replace() and content-length",
    `export default { async onRequest(req) { const b = await req.body.json(); req.headers.set("x-name", b.name); req.body.replace(JSON.stringify({ ...b, secret: "[redacted]" })); } };`,
    one(post("/p", ['{"name":"ann",', '"secret":"s3cret"}'], { "content-length": "32" })),
    (t) => assert.is(JSON.parse(t.streams[0].upstreamRequest.body).secret, "[redacted]"),
  ],
  [
    "json() of invalid JSON goes to the failure policy",
    `export default { async onRequest(req) { await req.body.json(); } };`,
    one(post("/", ["{nope"])),
    (t) => assert.match(t.streams[0].errors[0], /SyntaxError/),
  ],
  [
    "a request body over buffer_limit_bytes gets 413",
    `export default { async onRequest(req) { await req.body.text(); } };`,
    one(post("/", ["12345", "67890"]), { settings: { buffer_limit_bytes: 8 } }),
    (t) => assert.is(t.streams[0].localReply.status, 413),
  ],
  [
    "a response body over buffer_limit_bytes gets 500",
    `export default { async onResponse(res) { await res.body.text(); } };`,
    one(
      { ...get("/"), upstream: { headers: { ":status": "200" }, body: ["12345", "67890"] } },
      { settings: { buffer_limit_bytes: 8 } },
    ),
    (t) => assert.is(t.streams[0].localReply.details, "envoy_js_response_body_too_large"),
  ],
  [
    "local reply from the request side with headers and details",
    `export default { onRequest(req, ctx) { return ctx.respond(403, { body: "no", headers: { "x-why": "policy", "set-cookie": ["a=1", "b=2"] }, details: "denied by policy" }); } };`,
    one(get("/")),
    (t) => assert.equal(t.streams[0].localReply.headers["set-cookie"], ["a=1", "b=2"]),
  ],
  [
    "local reply from an async request hook",
    sleep + `export default { async onRequest(req, ctx) { await sleep(3); return ctx.respond(429); } };`,
    one(get("/")),
    (t) => assert.is(t.streams[0].localReply.status, 429),
  ],
  [
    "local reply from the response side replaces the upstream response",
    `export default { onResponse(res, ctx) { if (res.status >= 500) return ctx.respond(502, { body: "bad upstream" }); } };`,
    one({ ...get("/"), upstream: { headers: { ":status": "503" }, body: ["oops"] } }),
    (t) => assert.is(t.streams[0].downstreamResponse, null),
  ],
  [
    "late header writes throw a TypeError",
    sleep +
      `let saved; export default {
      onRequest(req) { saved = req.headers; },
      async onResponse(res, ctx) { try { saved.set("x-late", "1"); } catch (e) { ctx.log.info(e.name); } ctx.log.info(saved.get(":path")); },
    };`,
    one(get("/p")),
    (t) => assert.equal(t.streams[0].logs, ["[info] TypeError", "[info] /p"]),
  ],
  [
    "headers: repeats, getAll, has, append, delete, case-insensitivity",
    `export default { onRequest(req, ctx) {
      const h = req.headers;
      ctx.log.info(h.get("X-Multi"), JSON.stringify(h.getAll("x-multi")), h.has("X-MULTI"), h.get("absent"));
      h.append("x-multi", "c"); h.delete("x-gone"); h.set("X-New", "v");
      ctx.log.info(JSON.stringify([...h.entries()].filter(([k]) => k.startsWith("x-"))));
    } };`,
    one(get("/", { "x-multi": ["a", "b"], "x-gone": "1" })),
    (t) => assert.equal(t.streams[0].upstreamRequest.headers["x-multi"], ["a", "b", "c"]),
  ],
  [
    "streaming chunk edits; content-length dropped when a data hook may change it",
    `export default { onResponseData(c) { const s = c.text(); if (s === "drop") c.clear(); else { c.prepend("<"); c.append(">"); c.replace(c.text().toUpperCase()); } } };`,
    one({
      ...get("/"),
      upstream: { headers: { ":status": "200", "content-length": "9" }, body: ["ab", "drop", "cde"] },
    }),
    (t) => assert.is(t.streams[0].downstreamResponse.body, "<AB><CDE>"),
  ],
  [
    "binary chunks round-trip through bytes() and Uint8Array replace",
    `export default { onRequestData(c) { const b = c.bytes(); c.replace(b.map((x) => x ^ 0x20)); } };`,
    one(post("/", ["aBc"])),
    (t) => assert.is(t.streams[0].upstreamRequest.body, "AbC"),
  ],
  [
    "ctx.config, ctx.worker from setup, and globals",
    `export default {
      setup(config, worker) { return { greeting: "hi " + config.who, worker: worker.index }; },
      onRequest(req, ctx) {
        queueMicrotask(() => ctx.log.info("microtask"));
        ctx.log.info(ctx.worker.greeting, ctx.worker.worker, ctx.config.who, new TextDecoder().decode(new TextEncoder().encode("é")), typeof performance.now());
      },
    };`,
    one(get("/"), { config: { who: "bob" } }),
    (t) => assert.equal(t.streams[0].logs, ["[info] hi bob 0 bob é number", "[info] microtask"]),
  ],
  [
    "many streams on one engine stay independent",
    sleep +
      `let n = 0; export default { async onRequest(req) { const me = ++n; await sleep(5 - me); req.headers.set("x-n", String(me)); } };`,
    { streams: [get("/1"), get("/2"), get("/3")] },
    (t) =>
      assert.equal(
        t.streams.map((s) => s.upstreamRequest.headers["x-n"]),
        ["1", "2", "3"],
      ),
  ],
  [
    "setTimeout/clearTimeout/setInterval run on the host clock in order",
    `export default { async onRequest(req, ctx) {
      const seen = [];
      clearTimeout(setTimeout(() => seen.push("never"), 5));
      await new Promise((resolve) => {
        let n = 0;
        const id = setInterval((tag) => { seen.push(tag + ++n); if (n === 3) { clearInterval(id); resolve(); } }, 10, "tick");
        setTimeout(() => seen.push("t15"), 15);
      });
      ctx.log.info(seen.join(","), performance.now());
    } };`,
    one(get("/")),
    (t) => assert.equal(t.streams[0].logs, ["[info] tick1,t15,tick2,tick3 30"]),
  ],
  [
    "worker-level timers from setup keep running across streams",
    `let ticks = 0; export default {
      setup() { setInterval(() => ticks++, 10); return {}; },
      async onRequest(req, ctx) { await new Promise((r) => setTimeout(r, 26)); ctx.log.info("ticks " + ticks); },
    };`,
    { streams: [get("/a"), get("/b")] },
    (t) =>
      assert.equal(
        t.streams.map((s) => s.logs[0]),
        ["[info] ticks 2", "[info] ticks 5"],
      ),
  ],
  [
    "metrics: counters add, gauges set, histograms record (whole numbers)",
    `export default {
      metrics: { requests: "counter", inflight: "gauge", latency: "histogram" },
      onRequest(req, ctx) { ctx.metrics.requests.inc(); ctx.metrics.requests.inc(2); ctx.metrics.inflight.set(7); ctx.metrics.latency.record(12); },
    };`,
    { streams: [get("/"), get("/")] },
    (t) => assert.equal(t.metrics, { requests: 6, inflight: 7, latency: [12, 12] }),
  ],
  [
    "dynamic metadata (strings, numbers, booleans) and filter state",
    `export default { onRequest(req, ctx) {
      const tenant = ctx.metadata.get("envoy.filters.http.jwt_authn", "tenant");
      ctx.metadata.set("envoy-js", "tenant", tenant);
      ctx.metadata.set("envoy-js", "allowed", true);
      ctx.metadata.set("envoy-js", "score", 0.25);
      ctx.metadata.set("envoy-js", "note", 'a"b\\\\c\\n\u00e9 \u{1F600}');
      if (ctx.metadata.get("envoy-js", "note") !== 'a"b\\\\c\\n\u00e9 \u{1F600}') throw new Error("note did not round-trip");
      ctx.filterState.set("envoy-js.user", "bob");
      ctx.log.info(tenant, ctx.metadata.get("x", "y"), ctx.filterState.get("upstream.tag"), ctx.metadata.get("envoy-js", "score"));
    } };`,
    one({
      ...get("/"),
      metadata: { "envoy.filters.http.jwt_authn": { tenant: "acme" } },
      filterState: { "upstream.tag": "blue" },
    }),
    (t) => {
      assert.equal(t.streams[0].metadata["envoy-js"], {
        tenant: "acme",
        allowed: true,
        score: 0.25,
        note: 'a"b\\c\n\u00e9 \u{1F600}',
      });
      assert.equal(t.streams[0].logs, ["[info] acme undefined blue 0.25"]);
    },
  ],
  [
    "ctx.stream describes the stream",
    `export default { onRequest(req, ctx) { const s = ctx.stream; ctx.log.info(s.id, s.protocol, s.remoteAddress, s.localAddress, s.routeName, s.workerIndex); } };`,
    one({ ...get("/"), stream: { id: "abc", protocol: "HTTP/2", remoteAddress: "10.0.0.1:1234", routeName: "r1" } }),
    (t) => assert.equal(t.streams[0].logs, ["[info] abc HTTP/2 10.0.0.1:1234 127.0.0.1:10000 r1 0"]),
  ],
  [
    "clearRouteCache in onRequest reaches the host; later it throws",
    `export default {
      onRequest(req, ctx) { req.headers.set("x-canary", "1"); ctx.clearRouteCache(); },
      onResponse(res, ctx) { try { ctx.clearRouteCache(); } catch (e) { ctx.log.info(e.name); } },
    };`,
    one(get("/")),
    (t) => assert.is(t.streams[0].routeCacheClears, 1),
  ],
  [
    "fetch: callouts answered, denied, unknown cluster, reset, too large",
    `export default { async onRequest(req, ctx) {
      let r;
      try { r = await ctx.fetch("authz", { method: "post", path: "/check", headers: { "X-Token": "t1" }, body: req.path, timeoutMs: 50 }); }
      catch (e) { ctx.log.info(e.name + " " + e.code); return ctx.respond(503, { body: e.code }); }
      if (r.status !== 200) return ctx.respond(403);
      const info = await r.json();
      req.headers.set("x-user", r.headers.get("X-User") ?? "?"); req.headers.set("x-role", info.role);
    } };`,
    {
      settings: { buffer_limit_bytes: 64 },
      streams: [
        {
          ...get("/orders"),
          clusters: { authz: { headers: { ":status": "200", "x-user": "bob" }, body: '{"role":"admin"}', delayMs: 5 } },
        },
        { ...get("/"), clusters: { authz: { headers: { ":status": "401" } } } },
        get("/"),
        { ...get("/"), clusters: { authz: { reset: true } } },
        { ...get("/"), clusters: { authz: { body: "x".repeat(100) } } },
      ],
    },
    (t) => {
      assert.is(t.streams[0].upstreamRequest.headers["x-role"], "admin");
      assert.equal(
        t.streams.slice(1).map((s) => s.localReply.status),
        [403, 503, 503, 503],
      );
    },
  ],
  [
    "destroy while a callout is pending cancels it; the fetch rejects with StreamGone",
    `export default { async onRequest(req, ctx) {
      try { await ctx.fetch("slow", {}); } catch (e) { console.log("fetch: " + e.name + " aborted=" + ctx.aborted); }
    } };`,
    { streams: [{ ...get("/"), clusters: { slow: { delayMs: 1000 } }, reset: "afterRequestHeaders" }, get("/next")] },
    (t) => assert.ok(t.streams[0].events.includes("callout 1 cancelled")),
  ],
  [
    "per-route config is merged over the filter config; disabled routes skip the filter",
    `export default { onRequest(req, ctx) { ctx.log.info(JSON.stringify(ctx.config)); req.headers.set("x-seen", "1"); }, onDone(ctx) { ctx.log.info("done"); } };`,
    {
      config: { limit: 10, auth: { header: "x-key", realm: "shop" } },
      streams: [
        get("/"),
        { ...get("/admin"), route: { config: { limit: 1, auth: { realm: "admin" } } } },
        { ...get("/health"), route: { disabled: true } },
      ],
    },
    (t) => {
      assert.is(t.streams[1].logs[0], '[info] {"limit":1,"auth":{"header":"x-key","realm":"admin"}}');
      assert.equal(t.streams[2].logs, []);
    },
  ],
  [
    "a throwing hook under failure_mode closed: 500, stack, counted",
    `function check(v) { throw new Error("bad " + v); }\nexport default { onRequest(req) { check(req.path); } };`,
    one(get("/boom")),
    (t) => {
      assert.match(t.streams[0].errors[0], /^Error: bad \/boom\n\s+at check \(filter\.js:1:/);
      assert.is(t.counters["envoy_js.errors"], 1);
    },
  ],
  [
    "a rejected async hook under failure_mode open continues",
    sleep + `export default { async onRequest(req) { await sleep(1); throw new TypeError("nope"); } };`,
    one(get("/"), { settings: { failure_mode: "open" } }),
    (t) => assert.ok(t.streams[0].upstreamRequest),
  ],
  [
    "a response-side error after the response started resets the stream",
    `export default { onResponseData(c) { if (c.text() === "bad") throw new Error("late"); } };`,
    one({ ...get("/"), upstream: { headers: { ":status": "200" }, body: ["good", "bad"] } }),
    (t) => assert.ok(t.streams[0].resetByFilter),
  ],
  [
    "a runaway loop is stopped by max_cpu_ms_per_event and the engine serves the next stream",
    `export default { onRequest(req) { if (req.path === "/spin") for (;;) {} req.headers.set("x-ok", "1"); } };`,
    { settings: { max_cpu_ms_per_event: 20 }, streams: [get("/spin"), get("/next")] },
    (t) => assert.is(t.counters["envoy_js.cpu_limit"], 1),
  ],
  [
    "heap exhaustion fails only its stream",
    `export default { onRequest(req) {
      if (req.path === "/hog") { const a = []; for (;;) a.push(new Array(10000).fill(a.length)); }
      req.headers.set("x-ok", "1");
    } };`,
    { settings: { max_heap_bytes: 8 * 1024 * 1024, max_cpu_ms_per_event: 5000 }, streams: [get("/hog"), get("/next")] },
    (t) => assert.is(t.counters["envoy_js.heap_limit"], 1),
  ],
  [
    "destroy while a hook is pending: body reads reject, ctx.aborted, onDone runs",
    sleep +
      `export default {
      async onRequest(req, ctx) { try { await req.body.text(); } catch (e) { ctx.log.info("body: " + e.name); } },
      onDone(ctx) { ctx.log.info("done aborted=" + ctx.aborted); },
    };`,
    { streams: [{ ...post("/", ["a"]), reset: "afterRequestHeaders" }, get("/next")] },
    (t) => assert.equal(t.streams[0].logs, ["[info] done aborted=true"]),
  ],
  [
    "destroy while a timer is pending cancels the stream's timers",
    sleep + `export default { async onRequest(req, ctx) { await sleep(50); ctx.log.info("must not run"); } };`,
    {
      streams: [
        { ...get("/"), reset: "afterRequestHeaders" },
        { ...post("/", ["x"]), reset: "afterRequestBody" },
      ],
    },
    (t) =>
      assert.equal(
        t.streams.map((s) => s.logs),
        [[], []],
      ),
  ],
  [
    "an unhandled rejection in a timer is logged, not fatal",
    `export default { async onRequest(req, ctx) {
      setTimeout(() => { Promise.reject(new Error("lost")); }, 1);
      await new Promise((r) => setTimeout(r, 5));
    } };`,
    one(get("/")),
    (t) => assert.ok(t.workerLogs.some((l) => l.startsWith("[warn] unhandled promise rejection: Error: lost"))),
  ],
];

for (const [name, source, scenario, check] of CASES) {
  test(`same transcript on both engines: ${name}`, () => {
    const native = replayNative(source, scenario);
    const module = replayModule(source, scenario);
    assert.equal(module, native);
    check(module);
  });
}

test("same transcript from bytecode", () => {
  const source = `export default { onRequest(req) { req.headers.set("x-ok", "1"); } };`;
  const bytecode = wasm.compileBytecode(source, "ok.js");
  const scenario = one(get("/"));
  const native = replayNative("", scenario, { bytecode, filename: "ok.js" });
  const module = replayModule(source, scenario, { bytecode, filename: "ok.js" });
  assert.equal(module, native);
  assert.is(module.streams[0].upstreamRequest.headers["x-ok"], "1");
});

test("a filter that cannot be loaded is refused with the same reason", () => {
  const cases = [
    ["export default {\n  onRequest(req) {\n    return 1 +* 2;\n  }\n};", {}],
    ['export default { setup() { throw new Error("no db"); } };', {}],
    ["export default { onRequets() {} };", {}],
    ['export default { metrics: { hits: "meter" } };', {}],
    ["export default {};", { settings: { failure_mode: "maybe" } }],
  ];
  for (const [source, extra] of cases) {
    const scenario = { ...extra, streams: [] };
    let nativeError = "";
    try {
      replayNative(source, scenario);
    } catch (e) {
      nativeError = e.message;
    }
    assert.ok(nativeError, source);
    assert.throws(
      () => replayModule(source, scenario),
      (e) => e.message === nativeError,
      source,
    );
  }
});

// filter_config is read by the runtime (runtime/config_text.cc), not by the adapter: the scenario's
// settings go into it as top-level keys, so a wrong one shows the runtime's message.
test("filter_config read by the runtime: an unknown key is refused, naming it and the known keys; a wrong value names the key", () => {
  const source = "export default {};";
  assert.throws(
    () => replayModule(source, { settings: { max_cpu_ms: 5 }, streams: [] }),
    (e) =>
      e.message ===
      "unknown key `max_cpu_ms` in filter_config (known keys: source, inline, bytecode, source_map, config, failure_mode, max_heap_bytes, max_cpu_ms_per_event, buffer_limit_bytes, allow_code_from_strings)",
  );
  assert.throws(
    () => replayModule(source, { settings: { max_cpu_ms_per_event: 0 }, streams: [] }),
    (e) => e.message.includes("max_cpu_ms_per_event must be an integer between 1 and 60000"),
  );
  // A good one still loads, with its settings applied.
  const t = replayModule(`export default { onRequest(req, ctx) { ctx.log.info(JSON.stringify(ctx.config)); } };`, {
    config: { a: [1, { b: "c" }] },
    settings: { failure_mode: "open", buffer_limit_bytes: 1024 },
    streams: [get("/")],
  });
  assert.equal(t.streams[0].logs, ['[info] {"a":[1,{"b":"c"}]}']);
});

test("on the module's own clock (its timer thread, as in Envoy): timers resume streams and die with them", () => {
  const source =
    sleep +
    `let ticks = 0;
    export default {
      setup() { setInterval(() => ticks++, 10); return {}; },
      async onRequest(req, ctx) {
        const t0 = performance.now();
        await sleep(30);
        req.headers.set("x-waited", String(performance.now() - t0 >= 25));
        ctx.log.info("worker ticks seen: " + (ticks > 0));
      },
    };`;
  const dir = mkdtempSync(path.join(os.tmpdir(), "envoy-js-module-"));
  try {
    writeFileSync(path.join(dir, "filter.js"), source);
    const streams = [get("/a"), { ...get("/b"), reset: "afterRequestHeaders" }, get("/c")];
    writeFileSync(path.join(dir, "scenario.json"), JSON.stringify({ streams }));
    const started = Date.now();
    const r = runAbiHost(["--real-time", path.join(dir, "filter.js"), path.join(dir, "scenario.json")]);
    assert.is(r.code, 0, r.stderr);
    assert.ok(Date.now() - started >= 60, "two streams waited 30 ms each");
    const t = JSON.parse(r.stdout);
    for (const s of [t.streams[0], t.streams[2]]) {
      assert.is(s.upstreamRequest.headers["x-waited"], "true");
      assert.equal(s.logs, ["[info] worker ticks seen: true"]);
      assert.equal(
        s.events.filter((e) => e.startsWith("continue")),
        ["continue request (posted)", "continue request"],
      );
    }
    assert.equal(t.streams[1].logs, []);
    assert.is(t.streams[1].upstreamRequest, null);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a host without the config-level scheduler and callout refuses a filter with background, saying why", () => {
  // The ABI host stub exports no ..._http_filter_config_scheduler_* / ..._config_http_callout:
  // the module resolves them with dlsym, so it loads, and only `background` is refused.
  const source = "export default { background(config, bg) { setInterval(() => {}, 10); } };";
  assert.throws(
    () => replayModule(source, { streams: [get("/")] }),
    /no config-level scheduler and callout in its dynamic-module ABI, which `background` needs/,
  );
  // The same filter without `background` loads there.
  const t = replayModule("export default { onRequest() {} };", { streams: [get("/")] });
  assert.ok(t.streams[0].upstreamRequest !== null);
});

// The conformance cases (test/conformance/cases, written for the TypeScript stub) and every
// sample: both engines run QuickJS, so the transcripts must be identical without normalising.
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const CONFORMANCE = path.join(ROOT, "test", "conformance", "cases");
for (const name of readdirSync(CONFORMANCE)
  .filter((n) => /^\d\d-/.test(n))
  .sort()) {
  test(`conformance case ${name}: same transcript (or load error) on both engines`, () => {
    const source = readFileSync(path.join(CONFORMANCE, name, "filter.js"), "utf8");
    const scenario = JSON.parse(readFileSync(path.join(CONFORMANCE, name, "scenario.json"), "utf8"));
    const run = (replay) => {
      try {
        return { transcript: replay(source, scenario) };
      } catch (err) {
        return { loadError: err.message };
      }
    };
    const native = run(replayNative);
    assert.is("loadError" in native, scenario.expectLoadError === true);
    const module = run(replayModule);
    // A timed-out callout and random UUIDs differ by design (comparable()); so do the cases
    // in ABI_DIFFERENCES, each in one documented way.
    const abi = ABI_DIFFERENCES[name] ?? ((t) => t);
    const norm = (r) => (r.transcript ? { transcript: abi(comparable(r.transcript, scenario)) } : r);
    assert.equal(norm(module), norm(native));
  });
}

// Conformance cases that touch a documented difference of Envoy's ABI (each has its own test
// at the end of this file): compared after taking that one difference out.
const withoutKeys = (keys) => (t) => ({
  ...t,
  streams: t.streams.map((s) => Object.fromEntries(Object.entries(s).filter(([k]) => !keys.includes(k)))),
});
const ABI_DIFFERENCES = {
  // Envoy's metrics hold whole numbers.
  "70-metrics": (t) => ({
    ...t,
    metrics: JSON.parse(JSON.stringify(t.metrics, (k, v) => (typeof v === "number" ? Math.round(v) : v))),
  }),
  // Dynamic metadata through the ABI holds scalars; filter state is read-only once set. Both
  // show in the logs of these cases, so logs are left out with the stores themselves.
  "71-metadata": withoutKeys(["metadata", "logs"]),
  "72-filter-state": withoutKeys(["filterState", "logs"]),
  // Envoy 1.38/1.39 (the stub's default is 1.39) destroy the stream inside send_response: the
  // job's log line after ctx.respond() is no longer the stream's (see "ctx.respond() from a
  // job" below, which also shows 1.40 giving the native transcript).
  "45-respond-after-hook-settled": (t) => ({ ...withoutKeys(["logs"])(t), workerLogs: [] }),
};

const SAMPLES = path.join(ROOT, "samples");
// crypto.randomUUID() differs from run to run on any engine; a cluster that times out differs
// by design (see the callout timeout test below): only its "callout N ..." events.
function comparable(transcript, scenario) {
  const uuids = (v) =>
    JSON.parse(
      JSON.stringify(v).replace(/[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}/g, "<uuid>"),
    );
  const t = uuids(transcript);
  t.streams.forEach((s, i) => {
    const clusters = Object.values(scenario.streams[i].clusters ?? {});
    if (clusters.some((c) => c.timeout)) s.events = s.events.filter((e) => !/^callout \d+ (done|cancelled)$/.test(e));
  });
  return t;
}
// The samples, and the ports of other projects' examples (test/peers/).
const PEERS = path.join(ROOT, "test", "peers");
const replayed = [
  ...readdirSync(SAMPLES)
    .filter((n) => existsSync(path.join(SAMPLES, n, "filter.ts")))
    .sort()
    .map((name) => ({ kind: "sample", name, dir: path.join(SAMPLES, name) })),
  ...readdirSync(PEERS)
    .filter((n) => existsSync(path.join(PEERS, n, "scenario.json")))
    .sort()
    .map((name) => ({ kind: "peer port", name, dir: path.join(PEERS, name) })),
];
for (const { kind, name, dir: source } of replayed) {
  test(`${kind} ${name}: scenario.json replays the same through envoy-js replay on both engines`, async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), `envoy-js-${name}-`));
    try {
      const { outFile, bytecodeFile } = await buildFilter({
        entry: path.join(source, "filter.ts"),
        outFile: path.join(dir, "filter.js"),
        typecheck: false,
        bytecode: true,
        warn: () => {},
      });
      const scenarioFile = path.join(source, "scenario.json");
      const scenario = JSON.parse(readFileSync(scenarioFile, "utf8"));
      const native = comparable(await replayCli({ bundleFile: outFile, scenarioFile }), scenario);
      for (const extra of [{}, { bytecodeFile }]) {
        const module = await replayCli({ bundleFile: outFile, scenarioFile, engine: "module", ...extra });
        assert.equal(comparable(module, scenario), native);
      }
      assert.ok(native.streams.length > 0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test("with source_map, the module's own error messages name the TypeScript source", async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "envoy-js-map-"));
  try {
    writeFileSync(
      path.join(dir, "filter.ts"),
      [
        "function check(path: string): void {",
        // biome-ignore lint/suspicious/noTemplateCurlyInString: TypeScript source with a template literal
        "  throw new Error(`bad ${path}`);",
        "}",
        "export default { onRequest(req: { path: string }) { check(req.path); } };",
        "",
      ].join("\n"),
    );
    const { outFile, mapFile } = await buildFilter({
      entry: path.join(dir, "filter.ts"),
      outFile: path.join(dir, "dist", "filter.js"),
      typecheck: false,
      warn: () => {},
    });
    writeFileSync(path.join(dir, "scenario.json"), JSON.stringify(one(get("/boom"))));
    const run = (...extra) => {
      const r = runAbiHost([...extra, outFile, path.join(dir, "scenario.json")]);
      assert.is(r.code, 0, r.stderr);
      return JSON.parse(r.stdout).streams[0].errors[0];
    };
    assert.match(run("--source-map", mapFile), /filter\.ts:2:\d+ \(filter\.js:\d+:\d+\)/);
    assert.not.match(run(), /filter\.ts/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// ---- where Envoy's ABI differs from the native stub, by design of the ABI ----

test("Envoy metrics hold whole numbers: a histogram value of 12.5 is recorded as 13", () => {
  const source = `export default { metrics: { latency: "histogram" }, onRequest(req, ctx) { ctx.metrics.latency.record(12.5); } };`;
  assert.equal(replayNative(source, one(get("/"))).metrics, { latency: [12.5] });
  assert.equal(replayModule(source, one(get("/"))).metrics, { latency: [13] });
});

test("dynamic metadata through the ABI holds scalars: an object is stored as its JSON text", () => {
  const source = `export default { onRequest(req, ctx) {
    ctx.metadata.set("envoy-js", "decision", { allowed: true });
    ctx.log.info(typeof ctx.metadata.get("envoy-js", "decision"));
  } };`;
  const native = replayNative(source, one(get("/"))).streams[0];
  const module = replayModule(source, one(get("/"))).streams[0];
  assert.equal(native.metadata["envoy-js"].decision, { allowed: true });
  assert.equal(module.metadata["envoy-js"].decision, '{"allowed":true}');
  assert.equal([native.logs, module.logs], [["[info] object"], ["[info] string"]]);
});

test("dynamic metadata through the ABI: strings, numbers and booleans round-trip typed; null, lists and objects are stored as the JSON text JSON.stringify prints", () => {
  const values = {
    nested: {
      user: { name: "bob", roles: ["admin", "ops"], level: 3, active: true, manager: null },
      2: "first",
      "a b": [],
      q: 'quote " backslash \\ \n\t\u0001 \u00e9 \u{1F600} lone \ud800',
    },
    numbers: [
      1,
      -0.5,
      0.1,
      1e21,
      1.5e-7,
      123456789012345680000,
      -0,
      2 ** 53,
      5e-324,
      1.7976931348623157e308,
      0.000001,
      1e-7,
      [[]],
      {},
    ],
    nil: null,
    text: 'a"b\\c\n\u00e9 \u{1F600}',
    number: 0.1 + 0.2,
    no: false,
  };
  const source = `const values = ${JSON.stringify(values)};
    export default { onRequest(req, ctx) {
      for (const [k, v] of Object.entries(values)) ctx.metadata.set("envoy-js", k, v);
      ctx.log.info(Object.keys(values).map((k) => typeof ctx.metadata.get("envoy-js", k)).join(","));
    } };`;
  const native = replayNative(source, one(get("/"))).streams[0];
  const module = replayModule(source, one(get("/"))).streams[0];
  assert.equal(native.metadata["envoy-js"], JSON.parse(JSON.stringify(values)));
  assert.equal(native.logs, ["[info] object,object,object,string,number,boolean"]);
  assert.equal(module.metadata["envoy-js"], {
    nested: JSON.stringify(values.nested),
    numbers: JSON.stringify(values.numbers),
    nil: "null",
    text: values.text,
    number: values.number,
    no: false,
  });
  assert.equal(module.logs, ["[info] string,string,string,string,number,boolean"]);
});

test("a callout timeout: the module's own deadline gives the same FetchError; Envoy's request is cancelled later", () => {
  const source = `export default { async onRequest(req, ctx) {
    try { await ctx.fetch("slow", { timeoutMs: 50 }); } catch (e) { ctx.log.info(e.name + " " + e.code); return ctx.respond(504); }
  } };`;
  const scenario = one({ ...get("/"), clusters: { slow: { timeout: true } } });
  const native = replayNative(source, scenario).streams[0];
  const module = replayModule(source, scenario).streams[0];
  assert.equal(module.logs, ["[info] FetchError timeout"]);
  assert.equal(module.logs, native.logs);
  assert.equal(module.localReply, native.localReply);
  assert.ok(native.events.includes("callout 1 done"));
  assert.ok(module.events.includes("callout 1 cancelled"));
});

test("Envoy keeps filter state read-only: a second set of a key keeps the first value, with a warning", () => {
  const source = `export default { onRequest(req, ctx) { ctx.filterState.set("k", "1"); ctx.filterState.set("k", "2"); } };`;
  const native = replayNative(source, one(get("/"))).streams[0];
  const module = replayModule(source, one(get("/"))).streams[0];
  assert.is(native.filterState.k, "2");
  assert.is(module.filterState.k, "1");
  assert.match(module.logs[0], /^\[warn\] filter state `k` is already set/);
});

test("Envoy's set_header removes a header for an empty value", () => {
  const source = `export default { onRequest(req) { req.headers.set("x-empty", ""); } };`;
  assert.is(replayNative(source, one(get("/"))).streams[0].upstreamRequest.headers["x-empty"], "");
  assert.not.ok("x-empty" in replayModule(source, one(get("/"))).streams[0].upstreamRequest.headers);
});

// ---- Envoy versions: where the stub is as strict as Envoy's dynamic-module filter ----
// abi_host plays Envoy 1.39 by default; --envoy 1.38 runs abi_host_1_38 and --envoy 1.40 the
// deferred destroy (test/abi_host/abi_host.cc, "Envoy versions").

const VERSIONS = ["1.38", "1.39", "1.40"];
const onEnvoy = (v, ...more) => ({ args: ["--envoy", v, ...more] });

test("abi_host exports the callback Envoy 1.39 added (get_header_values), abi_host_1_38 does not; --envoy 1.38 runs that one", () => {
  const symbol = "envoy_dynamic_module_callback_http_get_header_values";
  assert.ok(dynamicSymbols(abiHost, "--defined-only").includes(symbol));
  assert.not.ok(dynamicSymbols(abiHost138, "--defined-only").includes(symbol));
  // Everything else the module needs is in both.
  const needed = dynamicSymbols(moduleSo, "--undefined-only").filter((s) => s.startsWith("envoy_"));
  const stub138 = new Set(dynamicSymbols(abiHost138, "--defined-only"));
  assert.equal(
    needed.filter((s) => !stub138.has(s)),
    [],
  );
  const r = runAbiHost(["--envoy", "1.38", "--abi-version"]);
  assert.is(r.code, 0, r.stderr);
  assert.is(r.stdout.trim(), "v0.1.0");
});

// Envoy sets its "in continue" flag after continueDecoding() returns. A route that answers
// itself (direct_response, a 404, a 503) does so inside that call, through our response hooks:
// a response hook that holds the reply is then overwritten as "in continue". On 1.39 the flags
// are per direction and continue_encoding still works; on 1.38 (one flag) it is ignored, and
// the module sends the held response on as its own local reply.
const DIRECT = {
  ...get("/direct-async"),
  directResponse: { headers: { ":status": "201", "content-type": "text/plain" }, body: "direct async\n" },
};

test("a route that answers inside our continue_decoding, held by an async onResponse: the response arrives on 1.38, 1.39 and 1.40", () => {
  const source =
    sleep +
    `export default {
    async onRequest(req) { await sleep(5); req.headers.set("x-js-request", "1"); },
    async onResponse(res) { await sleep(5); res.headers.set("x-js-response", String(res.status)); },
    onDone(ctx) { ctx.log.info("done"); },
  };`;
  const native = replayNative(source, one(DIRECT));
  assert.equal(native.streams[0].downstreamResponse.headers["x-js-response"], "201");
  assert.is(native.streams[0].upstreamRequest, null);
  for (const v of ["1.39", "1.40"]) assert.equal(replayModule(source, one(DIRECT), onEnvoy(v)), native, v);
  const s = replayModule(source, one(DIRECT), onEnvoy("1.38")).streams[0];
  // (Envoy's content-type: text/plain on a local reply with a body and none of its own.)
  assert.equal(s.localReply, {
    status: 201,
    body: "direct async\n",
    headers: { "x-js-response": "201", "content-type": "text/plain" },
    details: "envoy_js_held_local_reply",
  });
  assert.is(s.downstreamResponse, null);
  assert.equal(s.logs, ["[info] done"]);
  assert.not.ok(
    s.events.some((e) => e.startsWith("stalled") || e.includes("ignored")),
    s.events.join("\n"),
  );
});

test("a route that answers after a sync onRequest (our hook's Continue set the flag first): same transcript as native on every version", () => {
  const source =
    sleep +
    `export default {
    onRequest(req) { req.headers.set("x-js-request", "1"); },
    async onResponse(res) { await sleep(5); res.headers.set("x-js-response", String(res.status)); },
  };`;
  const native = replayNative(source, one(DIRECT));
  assert.is(native.streams[0].downstreamResponse.body, "direct async\n");
  for (const v of VERSIONS) assert.equal(replayModule(source, one(DIRECT), onEnvoy(v)), native, v);
});

// Envoy 1.38/1.39 end the stream inside the module's own send_response, reset_stream or
// continue_* and run stream_complete and destroy before that call returns (1.40 defers destroy).
// The module must not touch what it freed: `make test-module-asan` runs these under ASan.
const NESTED_DESTROY = [
  [
    "a sync onRequest that responds locally (inside send_response, inside the request hook)",
    `export default {
      onRequest(req, ctx) { ctx.metadata.set("js", "phase", "request"); return ctx.respond(403, { body: "no" }); },
      onResponse(res, ctx) { ctx.log.info("never: our own reply"); },
      onDone(ctx) { ctx.log.info("done aborted=" + ctx.aborted); ctx.metadata.set("js", "done", true); },
    };`,
    { streams: [get("/"), get("/next")] },
  ],
  [
    "a continue_decoding that ends the stream (the route answers, a sync onResponse passes it)",
    sleep +
      `export default {
      async onRequest(req) { await sleep(5); req.headers.set("x-a", "1"); },
      onResponse(res) { res.headers.set("x-js", String(res.status)); },
      onDone(ctx) { ctx.log.info("done aborted=" + ctx.aborted); },
    };`,
    {
      streams: [
        { ...get("/direct"), directResponse: { headers: { ":status": "200" }, body: "direct\n" } },
        get("/next"),
      ],
    },
  ],
  [
    "a continue_encoding that ends the stream (async response hooks)",
    sleep +
      `export default {
      async onResponse(res) { await sleep(5); res.headers.set("x-js", "1"); },
      async onResponseData(c) { await sleep(1); c.append("!"); },
      onDone(ctx) { ctx.log.info("done"); },
    };`,
    { streams: [{ ...get("/"), upstream: { headers: { ":status": "200" }, body: ["a", "b"] } }, get("/next")] },
  ],
  [
    "a local reply from a callout's answer (inside http_callout_done)",
    `export default {
      async onRequest(req, ctx) { const r = await ctx.fetch("authz", {}); return ctx.respond(401, { body: "callout said " + r.status }); },
      onDone(ctx) { ctx.log.info("done"); },
    };`,
    { streams: [{ ...get("/"), clusters: { authz: { headers: { ":status": "403" }, delayMs: 3 } } }, get("/next")] },
  ],
  [
    "a local reply from a timer while the hook is pending (inside on_http_filter_scheduled)",
    `export default {
      onRequest(req, ctx) { setTimeout(() => { ctx.respond(429); ctx.log.info("after respond"); }, 5); return new Promise(() => {}); },
      onDone(ctx) { ctx.log.info("done"); },
    };`,
    { streams: [get("/"), get("/next")] },
  ],
  [
    "a reset from a response data hook that throws after the response started (inside reset_stream)",
    `export default {
      onResponseData(c) { if (c.text() === "bad") throw new Error("late"); },
      onDone(ctx) { ctx.log.info("done aborted=" + ctx.aborted); },
    };`,
    {
      streams: [
        { ...get("/"), upstream: { headers: { ":status": "200" }, body: ["good", "bad", "more"] } },
        get("/next"),
      ],
    },
  ],
  [
    "a local reply from a request data hook (inside send_response, inside the data hook)",
    `export default {
      onRequestData(c, ctx) { if (c.text() === "stop") return ctx.respond(400, { body: "bad chunk" }); c.append("+"); },
      onDone(ctx) { ctx.log.info("done"); },
    };`,
    { streams: [post("/", ["ok", "stop", "more"]), get("/next")] },
  ],
];

for (const [name, source, scenario] of NESTED_DESTROY) {
  test(`the stream ends inside our own call, ${name}: same transcript as native on 1.38, 1.39 and 1.40`, () => {
    const native = replayNative(source, scenario);
    for (const v of VERSIONS) assert.equal(replayModule(source, scenario, onEnvoy(v)), native, v);
  });
}

test("ctx.respond() from a job ends the stream inside send_response on 1.38/1.39: onDone runs first, the job's next log line is no longer the stream's", () => {
  const source = `export default {
    onRequest(req, ctx) { Promise.resolve().then(() => { ctx.respond(403); ctx.log.info("after respond"); }); },
    onDone(ctx) { ctx.log.info("done"); },
  };`;
  const native = replayNative(source, one(get("/")));
  assert.equal([native.streams[0].logs, native.workerLogs], [["[info] after respond", "[info] done"], []]);
  assert.equal(replayModule(source, one(get("/")), onEnvoy("1.40")), native);
  for (const v of ["1.38", "1.39"]) {
    const t = replayModule(source, one(get("/")), onEnvoy(v));
    assert.equal([t.streams[0].logs, t.workerLogs], [["[info] done"], ["[info] after respond"]], v);
    assert.equal(t.streams[0].localReply, native.streams[0].localReply);
  }
});

// Envoy's decodingBuffer()/encodingBuffer() are null until some filter buffered: the Buffered*
// body callbacks then give size 0 and no chunks, drain fails, append creates the buffer. The
// module's results must not depend on it (it reads an absent buffer as an empty one).
test("Buffered* bodies are null until a filter buffered: reads, streaming edits and pending hooks give the native transcript", () => {
  const cases = [
    [
      `export default { async onRequest(req, ctx) { ctx.log.info(JSON.stringify(await req.body.text())); } };`,
      one(get("/")),
    ],
    [
      `export default { onRequestData(c) { c.append("+"); }, onResponseData(c) { c.prepend("<"); } };`,
      one({ ...post("/", ["a", "b"]), upstream: { headers: { ":status": "200" }, body: ["x", "y"] } }),
    ],
    [
      sleep +
        `export default { async onRequest(req) { await sleep(3); }, async onResponse(res) { const b = await res.body.text(); res.headers.set("x-len", String(b.length)); } };`,
      one({ ...post("/", ["a", "b"]), upstream: { headers: { ":status": "200" }, body: ["xyz"] } }),
    ],
  ];
  for (const [source, scenario] of cases) {
    const native = replayNative(source, scenario);
    for (const v of VERSIONS) assert.equal(replayModule(source, scenario, onEnvoy(v)), native, v);
  }
});

// An earlier filter (Envoy's buffer filter, say) buffered the whole body and continued: our
// filter gets the headers without end of stream, then one data callback whose data IS Envoy's
// buffered body (received_buffered_*_body() is true). Read as received + buffered, it would
// count twice.
const EARLIER = [
  [
    "a sync data hook sees the whole body once",
    `export default { onRequestData(c, ctx) { ctx.log.info(c.size, c.endOfStream, c.text()); c.append("!"); } };`,
    one({ ...post("/", ["abc", "defg"]), earlierFilterBuffers: ["request"] }),
    (s) => assert.equal([s.logs, s.upstreamRequest.body], [["[info] 7 true abcdefg"], "abcdefg!"]),
  ],
  [
    "a data hook after a pending onRequest edits the held body",
    sleep +
      `export default { async onRequest() { await sleep(5); }, onRequestData(c) { c.replace("[" + c.text() + "]"); } };`,
    one({ ...post("/", ["abc", "defg"]), earlierFilterBuffers: ["request"] }),
    (s) => assert.is(s.upstreamRequest.body, "[abcdefg]"),
  ],
  [
    "an async data hook, then trailers",
    sleep +
      `export default { async onRequestData(c, ctx) { await sleep(2); ctx.log.info(c.size, c.text()); c.replace(c.text().toUpperCase()); } };`,
    one({ ...post("/", ["abc", "defg"], {}, { "x-t": "1" }), earlierFilterBuffers: ["request"] }),
    (s) =>
      assert.equal(
        [s.logs, s.upstreamRequest.body, s.upstreamRequest.trailers],
        [["[info] 7 abcdefg"], "ABCDEFG", { "x-t": "1" }],
      ),
  ],
  [
    "an async response data hook",
    sleep +
      `export default { async onResponseData(c, ctx) { await sleep(1); ctx.log.info(c.size, c.endOfStream); c.prepend(">"); } };`,
    one({
      ...get("/"),
      upstream: { headers: { ":status": "200" }, body: ["ab", "cde"] },
      earlierFilterBuffers: ["response"],
    }),
    (s) => assert.equal([s.logs, s.downstreamResponse.body], [["[info] 5 true"], ">abcde"]),
  ],
];
for (const [name, source, scenario, check] of EARLIER) {
  test(`an earlier filter buffered the body: ${name} (same transcript as native)`, () => {
    const native = replayNative(source, scenario);
    assert.ok(native.streams[0].events.some((e) => /body buffered by an earlier filter/.test(e)));
    for (const v of VERSIONS) assert.equal(replayModule(source, scenario, onEnvoy(v)), native, v);
    check(native.streams[0]);
  });
}

// MODULE BUG (envoy_ext/module/stream.cc, reported; not fixed here): when the data of the
// running body hook is Envoy's buffered body, the module hides the Buffered view for reads but
// not for writes. A whole-body replace() that completes in that data callback writes the new
// body into Buffered (the same buffer), then clears Received (the same buffer again): the body
// is lost and content-length becomes 0. Native (and the right answer): the replaced body. When
// stream.cc is fixed this test fails: then assert equality with native instead.
test("behind an earlier filter's buffer, a whole-body replace() that completes in the data callback keeps the new body", () => {
  const cases = [
    [
      `export default { async onRequest(req) { const b = await req.body.text(); req.headers.set("x-len", String(b.length)); req.body.replace(b.toUpperCase()); } };`,
      one({ ...post("/", ["abc", "defg"], { "content-length": "7" }), earlierFilterBuffers: ["request"] }),
      (s) => [s.upstreamRequest.body, s.upstreamRequest.headers["content-length"], s.upstreamRequest.headers["x-len"]],
      ["ABCDEFG", "7", "7"],
    ],
    [
      `export default { async onResponse(res) { const b = await res.body.text(); res.body.replace(b + "!"); } };`,
      one({
        ...get("/"),
        upstream: { headers: { ":status": "200", "content-length": "5" }, body: ["ab", "cde"] },
        earlierFilterBuffers: ["response"],
      }),
      (s) => [s.downstreamResponse.body, s.downstreamResponse.headers["content-length"]],
      ["abcde!", "6"],
    ],
  ];
  for (const [source, scenario, pick, right] of cases) {
    assert.equal(pick(replayNative(source, scenario).streams[0]), right);
    for (const v of VERSIONS)
      assert.equal(pick(replayModule(source, scenario, onEnvoy(v)).streams[0]), right, `Envoy ${v}`);
  }
});

// Envoy's request header map: "host" is ":authority" (get, set, delete); an inline header that
// is present takes an added value as ",value" in its one entry. The native stub's list map does
// neither (a real Envoy does, for the native filter too).
// ABI LIMITATION (review finding 2; Envoy 1.38.3-1.40): a data hook that goes async after an
// earlier chunk of its direction went past this filter, then writes its chunk (or a later held
// one), modifies Envoy's buffered body after data passed the filter. The ABI's
// append_body/drain_body on a Buffered body call modifyDecodingBuffer/modifyEncodingBuffer
// whenever that buffer exists (addDecodedData/addEncodedData only when it does not), and the
// filter manager ASSERTs that only the latest data filter does that: a debug or ASan Envoy
// aborts; a release Envoy (PyPI's) gives the right bytes (test/envoy/body.test.mjs). No other
// ABI call adds body data, so the adapter cannot hold the bytes and add them itself. The stub
// records the call; when the ABI or the runtime changes, this test says so.
test("ABI limitation: a held chunk written after data went past the filter modifies Envoy's buffer (a debug Envoy's ASSERT); the bytes are right", () => {
  const source =
    sleep +
    `let n = 0; export default { async onRequestData(c) { if (++n === 2) { await sleep(5); c.replace(c.text().toUpperCase()); } } };`;
  const scenario = one(post("/p", ["ab", "cd", "ef"]));
  const native = replayNative(source, scenario);
  for (const v of VERSIONS) {
    const t = replayModule(source, scenario, onEnvoy(v));
    assert.is(t.streams[0].upstreamRequest.body, "abCDef", v);
    assert.is(t.streams[0].upstreamRequest.body, native.streams[0].upstreamRequest.body);
    const flagged = t.streams[0].events.filter((e) => /after data went past this filter/.test(e));
    assert.equal(
      flagged,
      [
        "drain_body on the buffered request body after data went past this filter (modifyDecodingBuffer: ASSERT in a debug Envoy)",
        "append_body on the buffered request body after data went past this filter (modifyDecodingBuffer: ASSERT in a debug Envoy)",
      ],
      v,
    );
  }
  // The first chunk held, nothing passed before it: no such call.
  const first = replayModule(
    sleep + `export default { async onRequestData(c) { await sleep(5); c.replace(c.text().toUpperCase()); } };`,
    scenario,
  );
  assert.equal(
    first.streams[0].events.filter((e) => /went past/.test(e)),
    [],
  );
});

test("Envoy's header maps: request `host` is `:authority`; adding to an inline header (x-forwarded-for, via, grpc-message) joins with ','", () => {
  const source = `export default {
    onRequest(req, ctx) {
      const h = req.headers;
      ctx.log.info(String(h.get("host")), h.has("Host"));
      h.append("x-forwarded-for", "10.0.0.2"); h.append("via", "js"); h.append("x-custom", "b");
      ctx.log.info(JSON.stringify([h.getAll("x-forwarded-for"), h.getAll("via"), h.getAll("x-custom")]));
      h.set("host", "other.example");
      ctx.log.info(req.authority);
    },
    onResponse(res, ctx) { res.headers.append("via", "js"); res.headers.append("set-cookie", "b=2"); ctx.log.info(String(res.headers.get("host"))); },
    onResponseTrailers(t) { t.append("grpc-message", "more"); t.append("x-t", "2"); },
  };`;
  const scenario = one({
    ...get("/", { "x-forwarded-for": "10.0.0.1", via: "1.1 edge", "x-custom": "a" }),
    upstream: {
      headers: { ":status": "200", via: "1.1 up", "set-cookie": "a=1", host: "resp" },
      body: ["x"],
      trailers: { "grpc-message": "m", "x-t": "1" },
    },
  });
  const n = replayNative(source, scenario).streams[0];
  assert.equal(n.logs, [
    "[info] null false",
    '[info] [["10.0.0.1","10.0.0.2"],["1.1 edge","js"],["a","b"]]',
    "[info] example.com",
    "[info] resp",
  ]);
  for (const v of VERSIONS) {
    const s = replayModule(source, scenario, onEnvoy(v)).streams[0];
    assert.equal(
      s.logs,
      [
        "[info] example.com true",
        '[info] [["10.0.0.1,10.0.0.2"],["1.1 edge,js"],["a","b"]]',
        "[info] other.example",
        "[info] resp",
      ],
      v,
    );
    const up = s.upstreamRequest.headers;
    assert.equal(
      [up[":authority"], up.host, up["x-forwarded-for"], up.via, up["x-custom"]],
      ["other.example", undefined, "10.0.0.1,10.0.0.2", "1.1 edge,js", ["a", "b"]],
    );
    const down = s.downstreamResponse;
    assert.equal(
      [down.headers.via, down.headers["set-cookie"], down.headers.host, down.trailers],
      ["1.1 up,js", ["a=1", "b=2"], "resp", { "grpc-message": "m,more", "x-t": ["1", "2"] }],
    );
  }
  // A codec builds maps with the same calls: a request's Host is its :authority, repeated inline
  // headers arrive as one; deleting `host` deletes :authority.
  const codec = `export default { onRequest(req, ctx) { ctx.log.info(req.authority, JSON.stringify(req.headers.getAll("x-forwarded-for"))); req.headers.delete("host"); ctx.log.info(JSON.stringify(req.authority)); } };`;
  const h1 = one({
    request: {
      headers: {
        ":method": "GET",
        ":path": "/",
        ":scheme": "http",
        host: "h1.example",
        "x-forwarded-for": ["1.1.1.1", "2.2.2.2"],
      },
    },
  });
  const s = replayModule(codec, h1).streams[0];
  assert.equal(s.logs, ['[info] h1.example ["1.1.1.1,2.2.2.2"]', '[info] ""']);
  assert.not.ok(":authority" in s.upstreamRequest.headers || "host" in s.upstreamRequest.headers);
});

// Envoy's workers share one filter config (config_new once, on the main thread); each worker
// thread runs its own engine (worker.cc keeps them thread_local).
test("two workers share one config: each runs its own engine and worker-level state; metrics add up", () => {
  const source =
    sleep +
    `let n = 0;
    export default {
      metrics: { requests: "counter", order: "histogram" },
      setup(config, worker) { return { index: worker.index }; },
      async onRequest(req, ctx) {
        const me = ++n;
        ctx.metrics.requests.inc();
        await sleep(3 + me);
        ctx.metrics.order.record(me);
        req.headers.set("x-worker", ctx.worker.index + "/" + ctx.stream.workerIndex);
        req.headers.set("x-n", String(me));
      },
      onDone(ctx) { ctx.log.info("done " + ctx.stream.id); },
    };`;
  const scenario = { streams: [get("/1"), get("/2"), get("/3"), get("/4"), get("/5")] };
  for (const v of VERSIONS) {
    const t = replayModule(source, scenario, onEnvoy(v, "--workers", "2"));
    assert.equal(
      t.streams.map((s) => s.upstreamRequest.headers["x-worker"]),
      ["0/0", "1/1", "0/0", "1/1", "0/0"],
      v,
    );
    assert.equal(
      t.streams.map((s) => s.upstreamRequest.headers["x-n"]),
      ["1", "1", "2", "2", "3"],
      v,
    );
    assert.equal(
      t.streams.map((s) => s.logs),
      [1, 2, 3, 4, 5].map((i) => [`[info] done ${i}`]),
    );
    assert.equal(t.metrics, { requests: 5, order: [1, 2, 3, 1, 2] });
  }
});

// Envoy's gauge is one value for the process; set() is per worker engine. The module sets the
// gauge to the sum of the values of every engine, so it shows the sum over workers.
test("two workers: a gauge is the sum of what each worker's engine set, up and down", () => {
  const source = `let n = 0;
    export default {
      metrics: { seen: "gauge", settled: "gauge" },
      onRequest(req, ctx) {
        n++;
        ctx.metrics.seen.set(n);
        ctx.metrics.settled.set(n * 10);
        ctx.metrics.settled.set(n);
      },
    };`;
  const scenario = { streams: [get("/1"), get("/2"), get("/3"), get("/4"), get("/5")] };
  for (const v of VERSIONS) {
    // Worker 0 runs streams 1, 3, 5 (n = 3), worker 1 runs 2 and 4 (n = 2).
    assert.equal(replayModule(source, scenario, onEnvoy(v, "--workers", "2")).metrics, { seen: 5, settled: 5 }, v);
    assert.equal(replayModule(source, scenario, onEnvoy(v)).metrics, { seen: 5, settled: 5 }, v);
  }
  assert.equal(replayNative(source, scenario).metrics, { seen: 5, settled: 5 });
});

test("metric labels: the module defines metric vectors and records each series by its label values", () => {
  const source = `
    export default {
      metrics: { hits: { kind: "counter", labels: ["method", "path"] }, load: { kind: "gauge", labels: ["path"] } },
      onRequest(req, ctx) {
        ctx.metrics.hits.labels({ method: req.method, path: req.path }).inc();
        ctx.metrics.load.labels({ path: req.path }).inc(2);
      },
    };`;
  const scenario = { streams: [get("/a"), get("/b"), get("/a")] };
  const want = {
    'hits{method="GET",path="/a"}': 2,
    'hits{method="GET",path="/b"}': 1,
    'load{path="/a"}': 4,
    'load{path="/b"}': 2,
  };
  for (const v of VERSIONS) {
    assert.equal(replayModule(source, scenario, onEnvoy(v, "--workers", "2")).metrics, want, v);
    assert.equal(replayModule(source, scenario, onEnvoy(v)).metrics, want, v);
  }
  assert.equal(replayNative(source, scenario).metrics, want);
});

test("two workers on the module's own clock (its timer thread commits to both): timers resume streams on their worker", () => {
  const source =
    sleep +
    `let ticks = 0;
    export default {
      setup() { setInterval(() => ticks++, 5); return {}; },
      async onRequest(req, ctx) { await sleep(20); req.headers.set("x-w", String(ctx.stream.workerIndex)); req.headers.set("x-ticked", String(ticks > 0)); },
    };`;
  const scenario = { streams: [get("/1"), get("/2"), { ...get("/3"), reset: "afterRequestHeaders" }, get("/4")] };
  for (const v of ["1.38", "1.39"]) {
    const t = replayModule(source, scenario, onEnvoy(v, "--workers", "2", "--real-time"));
    assert.equal(
      t.streams.map(
        (s) => s.upstreamRequest && [s.upstreamRequest.headers["x-w"], s.upstreamRequest.headers["x-ticked"]],
      ),
      [["0", "true"], ["1", "true"], null, ["1", "true"]],
      v,
    );
  }
});

// 1.38 and 1.39 destroy a filter config on the worker that dropped it last (the other
// workers' thread_local engines outlive it); 1.40 destroys route configs on the main thread.
test("the filter and route configs destroyed on a worker after the streams, or on the main thread: nothing breaks", () => {
  const source =
    sleep +
    `let ticks = 0;
    export default {
      setup() { setInterval(() => ticks++, 4); return {}; },
      async onRequest(req, ctx) { await sleep(6); req.headers.set("x-limit", String(ctx.config.limit)); },
      onDone(ctx) { ctx.log.info("done"); },
    };`;
  const scenario = {
    config: { limit: 10 },
    streams: [
      get("/a"),
      { ...get("/b"), route: { config: { limit: 1 } } },
      { ...get("/c"), reset: "afterRequestHeaders" },
      get("/d"),
    ],
  };
  const native = replayNative(source, scenario);
  assert.equal(
    native.streams.map((s) => s.upstreamRequest?.headers["x-limit"] ?? null),
    ["10", "1", null, "10"],
  );
  for (const v of VERSIONS) {
    for (const where of ["worker", "main"]) {
      assert.equal(replayModule(source, scenario, onEnvoy(v, "--config-destroy", where)), native, `${v} ${where}`);
      const two = replayModule(source, scenario, onEnvoy(v, "--config-destroy", where, "--workers", "2"));
      assert.equal(
        two.streams.map((s) => s.upstreamRequest?.headers["x-limit"] ?? null),
        ["10", "1", null, "10"],
        `${v} ${where} 2 workers`,
      );
    }
  }
});

// 1.38 refuses a second set of a filter-state key (IS_ENVOY_BUG; the first value stays); 1.39
// replaces it. The module never sets a key twice, on any version: it keeps the first value and
// warns (the stub records an ENVOY_BUG event if a 1.38 Envoy would have seen one).
test("filter state: the module never sets a key twice (1.38's ENVOY_BUG), on every version", () => {
  const source = `export default { onRequest(req, ctx) { ctx.filterState.set("k", "1"); ctx.filterState.set("k", "2"); ctx.filterState.set("pre", "mine"); } };`;
  const scenario = one({ ...get("/"), filterState: { pre: "earlier" } });
  for (const v of VERSIONS) {
    const s = replayModule(source, scenario, onEnvoy(v)).streams[0];
    assert.equal(s.filterState, { k: "1", pre: "earlier" }, v);
    assert.equal(
      s.logs.map((l) => l.replace(/ is already set.*/, "")),
      ["[warn] filter state `k`", "[warn] filter state `pre`"],
      v,
    );
    assert.not.ok(
      s.events.some((e) => e.startsWith("ENVOY_BUG")),
      v,
    );
  }
});

test.run();
