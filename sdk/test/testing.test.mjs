// @envoy-js/sdk/testing on the wasm engine: the one-call request(), runScenario(),
// replayBundle(), the step API (createHost) and the engine names (wasm; stub and native are
// retired aliases). Agreement with real Envoy over many scenarios is test/conformance's job;
// here the API itself, and what only a program (not a JSON scenario) can express.
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

import { test } from "uvu";
import * as assert from "uvu/assert";

import { createHost, defaultEngine, quickjsVersion, replayBundle, request, runScenario } from "@envoy-js/sdk/testing";
import { loadWasmEngine } from "@envoy-js/sdk/wasm";

import { absentWasm, scratch } from "./helpers.mjs";

const src = (source) => ({ source, filename: "filter.js" });
const GET = { ":method": "GET", ":path": "/", ":authority": "h" };
const sleep = "const sleep = (ms) => new Promise((r) => setTimeout(r, ms));\n";
const firstLines = (v) => JSON.parse(JSON.stringify(v, (k, x) => (typeof x === "string" ? x.split("\n")[0] : x)));

// ---- request() and runScenario() ----

test("request(): default pseudo-headers, the five documented keys, counters and worker logs", () => {
  const r = request(
    src(`export default { onRequest(req, ctx) { ctx.log.info(req.method, req.path, req.authority, req.scheme); } };`),
  );
  assert.equal(r.logs, ["[info] GET / example.com http"]);
  for (const key of [
    "upstreamRequest",
    "localReply",
    "downstreamResponse",
    "logs",
    "errors",
    "counters",
    "workerLogs",
  ]) {
    assert.ok(key in r, key);
  }
  assert.equal(r.upstreamRequest.headers, {
    ":method": "GET",
    ":path": "/",
    ":authority": "example.com",
    ":scheme": "http",
  });
  assert.equal(r.downstreamResponse, { headers: { ":status": "200" }, body: "", trailers: null });
});

test("request(): body chunks, trailers, upstream, config and settings", () => {
  const filter = src(`export default {
    async onRequest(req, ctx) { req.body.replace((await req.body.text()).toUpperCase() + ctx.config.suffix); },
    onResponse(res) { res.headers.set("x-up", res.headers.get("server")); },
  };`);
  const r = request(filter, {
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
  const { dir, cleanup } = scratch({
    "dist/f.js": `export default { onRequest(req) { req.headers.set("x-f", "1"); } };`,
  });
  try {
    const file = path.join(dir, "dist/f.js");
    for (const filter of [file, pathToFileURL(file)]) {
      assert.is(request(filter).upstreamRequest.headers["x-f"], "1");
    }
    assert.throws(() => request({ onRequest() {} }), /filter definition object cannot run on the host stubs/);
    assert.throws(() => request(path.join(dir, "absent.js")), /cannot read filter .*absent\.js: not found/);
  } finally {
    cleanup();
  }
});

test("load errors are the engine's, naming the file", () => {
  assert.throws(
    () => runScenario({ source: "export default {};\nexport const x = ;", filename: "src/f.js" }, { streams: [] }),
    /^src\/f\.js:2:\d+: SyntaxError/,
  );
  assert.throws(
    () => runScenario(src("export default { onRequets() {} };"), { streams: [] }),
    /filter\.js: unknown hook `onRequets`/,
  );
  assert.throws(
    () => runScenario(src("export default {};"), { settings: { failure_mode: "maybe" }, streams: [] }),
    /failure_mode must be "closed" or "open"/,
  );
  assert.throws(() => runScenario(src("export default {};"), { streams: {} }), /scenario\.streams must be an array/);
  assert.throws(() => createHost(src("export default { onRequets() {} };")), /filter\.js: unknown hook `onRequets`/);
  assert.throws(
    () => runScenario({ source: "export default {};", bytecode: new Uint8Array(1) }, { streams: [] }),
    /filter\.js: not an envoy-js bytecode file/,
  );
});

test("bytecode from the engine's compileBytecode runs instead of the source", () => {
  const bytecode = loadWasmEngine().compileBytecode(
    `export default { onRequest(req) { req.headers.set("x-from", "bytecode"); } };`,
    "filter.js",
  );
  const filter = { source: `export default { onRequest(req) { req.headers.set("x-from", "source"); } };`, bytecode };
  assert.is(request(filter).upstreamRequest.headers["x-from"], "bytecode");
  const host = createHost(filter);
  const s = host.newStream();
  s.callOnRequestHeaders(GET, true);
  assert.is(s.getCurrentUpstreamRequest().headers["x-from"], "bytecode");
  host.close();
  assert.is(request({ source: filter.source }).upstreamRequest.headers["x-from"], "source");
});

test("the engine is wasm: from the call, else from ENVOY_JS_ENGINE, else the default", () => {
  assert.is(defaultEngine({}), "wasm");
  assert.is(defaultEngine({ ENVOY_JS_ENGINE: "wasm" }), "wasm");
  assert.throws(() => defaultEngine({ ENVOY_JS_ENGINE: "v8" }), /unknown engine 'v8'/);
  assert.throws(() => request(src("export default {};"), { engine: "qjs" }), /unknown engine 'qjs'/);
  assert.throws(() => createHost(src("export default {};"), { engine: "module" }), /unknown engine 'module'/);
  assert.is(createHost(src("export default {};"), { engine: "wasm" }).engine, "wasm");
  assert.is(quickjsVersion(), loadWasmEngine().quickjsVersion);
  assert.match(quickjsVersion(), /^\d+\.\d+\.\d+$/);
});

/**
 * Runs an ES module in a new Node process (its own once-only notices, its own engine), from
 * this directory so that @envoy-js/sdk resolves; `env` entries are added to the environment.
 */
function runNode(script, env = {}) {
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], {
    cwd: fileURLToPath(new URL(".", import.meta.url)),
    env: { ...process.env, ENVOY_JS_ENGINE: undefined, ENVOY_JS_WASM: undefined, ...env },
    encoding: "utf8",
  });
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test("the retired engine names stub and native run the wasm engine, with one DeprecationWarning each", () => {
  const r = runNode(`
    import { createHost, defaultEngine, request, runScenario } from "@envoy-js/sdk/testing";
    const filter = { source: 'export default { onRequest(req, ctx) { if (!req.headers.has("x-k")) return ctx.respond(401); req.headers.set("x-ok", "1"); } };' };
    const out = {};
    for (const engine of ["wasm", "stub", "native"]) {
      out[engine] = [request(filter, { engine }), request(filter, { engine, headers: { "x-k": "1" } })];
    }
    out.scenario = runScenario(filter, { streams: [{ request: { headers: { ":method": "GET", ":path": "/", ":authority": "h" } } }] }, { engine: "native" });
    out.hostEngines = ["stub", "native"].map((engine) => createHost(filter, { engine }).engine);
    out.fromEnv = defaultEngine({ ENVOY_JS_ENGINE: "stub" });
    await new Promise((r) => setTimeout(r, 10)); // warnings are emitted on the next tick
    process.stdout.write(JSON.stringify(out));
  `);
  assert.is(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.stub, out.wasm);
  assert.equal(out.native, out.wasm);
  assert.is(out.wasm[0].localReply.status, 401);
  assert.is(out.wasm[1].upstreamRequest.headers["x-ok"], "1");
  assert.is(out.scenario.streams[0].localReply.status, 401);
  assert.equal(out.hostEngines, ["wasm", "wasm"]);
  assert.is(out.fromEnv, "stub");
  const warnings = r.stderr.split("\n").filter((l) => l.includes("DeprecationWarning"));
  assert.is(warnings.length, 2, r.stderr);
  assert.match(warnings[0], /engine "stub" was retired: tests run on the wasm engine/);
  assert.match(warnings[1], /engine "native" was retired: tests run on the wasm engine/);

  // ENVOY_JS_ENGINE names the default for every call; a retired name there warns once too.
  const env = runNode(
    `
    import { request } from "@envoy-js/sdk/testing";
    const a = request({ source: "export default { onRequest(req) { req.headers.set('x-a', '1'); } };" });
    const b = request({ source: "export default {};" });
    await new Promise((r) => setTimeout(r, 10));
    process.stdout.write(JSON.stringify([a.upstreamRequest.headers["x-a"], b.errors]));
  `,
    { ENVOY_JS_ENGINE: "native" },
  );
  assert.is(env.code, 0, env.stderr);
  assert.equal(JSON.parse(env.stdout), ["1", []]);
  assert.is(env.stderr.split("\n").filter((l) => l.includes("DeprecationWarning")).length, 1, env.stderr);
});

test("without the wasm engine, the first call throws saying where it looked", () => {
  const { dir, cleanup } = scratch();
  try {
    const { file, env } = absentWasm(dir);
    const r = runNode(
      `
      import { createHost, request } from "@envoy-js/sdk/testing";
      const errors = [];
      for (const call of [() => request({ source: "export default {};" }), () => createHost({ source: "export default {};" })]) {
        try { call(); errors.push(null); } catch (err) { errors.push([err.name, err.message]); }
      }
      process.stdout.write(JSON.stringify(errors));
    `,
      env,
    );
    assert.is(r.code, 0, r.stderr);
    const message = `the wasm engine at ${file} cannot be loaded: not found (ENVOY_JS_WASM points there)`;
    assert.equal(JSON.parse(r.stdout), [
      ["WasmEngineError", message],
      ["WasmEngineError", message],
    ]);
  } finally {
    cleanup();
  }
});

test("each replay gets a fresh engine: module state does not leak between runs", () => {
  const filter = src(`let n = 0; export default { onRequest(req, ctx) { ctx.log.info(++n); } };`);
  const two = { streams: [{ request: { headers: GET } }, { request: { headers: GET } }] };
  for (let i = 0; i < 2; i++) {
    const t = runScenario(filter, two);
    assert.equal(
      t.streams.map((s) => s.logs[0]),
      ["[info] 1", "[info] 2"],
    );
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
  assert.equal(r.callouts, [
    { cluster: "authz", headers: { ":method": "GET", ":path": "/check", ":authority": "authz" }, body: "" },
  ]);
  assert.equal(r.metrics, { hits: 1 });
  assert.equal(r.filterState, { tag: "blue" });
  assert.is(r.routeCacheClears, 0);
});

test("a ctx.fetch the filter forgets is an unhandled rejection; one it awaits is not", () => {
  const filter = src(`export default { async onRequest(req, ctx) {
    if (req.path === "/forget") { ctx.fetch("nowhere", {}); return; }
    try { await ctx.fetch("nowhere", {}); } catch (e) { ctx.log.info(e.name, e.code); }
  } };`);
  const forgot = request(filter, { path: "/forget" });
  assert.equal(firstLines(forgot.workerLogs), [
    "[warn] unhandled promise rejection: FetchError: fetch(): no cluster named 'nowhere'",
  ]);
  assert.match(forgot.workerLogs[0], /\n\s+at onRequest \(filter\.js:2:\d+\)/, "with the filter's stack");
  const awaited = request(filter);
  assert.equal(awaited.workerLogs, []);
  assert.equal(awaited.logs, ["[info] FetchError unknown_cluster"]);
});

test("the engine enforces max_cpu_ms_per_event and max_heap_bytes, as in Envoy", () => {
  const spin = request(src(`export default { onRequest(req, ctx) { ctx.log.info("start"); for (;;) {} } };`), {
    settings: { max_cpu_ms_per_event: 5 },
  });
  assert.equal(spin.logs, ["[info] start"]);
  assert.match(
    spin.errors[0],
    /^max_cpu_ms_per_event exceeded: InternalError: interrupted\n\s+at onRequest \(filter\.js:1:\d+\)/,
  );
  assert.equal(spin.localReply, { status: 500, body: "", headers: {}, details: "envoy_js_error" });
  assert.equal(spin.counters, { "envoy_js.cpu_limit": 1, "envoy_js.errors": 1 });
  assert.is(spin.upstreamRequest, null);

  const hog = request(
    src(`export default { onRequest() { const all = []; for (;;) all.push(new Array(4096).fill(all.length)); } };`),
    {
      settings: { max_heap_bytes: 4 * 1048576 },
    },
  );
  assert.match(hog.errors[0], /out of memory/);
  assert.is(hog.localReply.status, 500);
  assert.equal(hog.counters, { "envoy_js.heap_limit": 1, "envoy_js.errors": 1 });

  // failure_mode open lets the request through instead.
  const open = request(src(`export default { onRequest() { for (;;) {} } };`), {
    settings: { max_cpu_ms_per_event: 5, failure_mode: "open" },
  });
  assert.is(open.localReply, null);
  assert.ok(open.upstreamRequest);
  assert.is(open.counters["envoy_js.cpu_limit"], 1);

  assert.throws(
    () => request(src("export default {};"), { settings: { max_cpu_ms_per_event: 0 } }),
    /max_cpu_ms_per_event must be an integer between 1 and 60000/,
  );
});

test("an unhandled rejection of the filter's own promise is reported, and does not crash the test process", async () => {
  const r = request(src(`export default { onRequest() { Promise.reject(new Error("lost")); } };`));
  assert.ok(r.upstreamRequest);
  assert.equal(
    r.workerLogs.map((l) => l.split("\n")[0]),
    ["[warn] unhandled promise rejection: Error: lost"],
  );
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
  const r = request(splitFilter, {
    ...splitChars,
    upstream: { body: [new Uint8Array([0xe2, 0x82]), new Uint8Array([0xac])] },
  });
  const chunks = r.logs.slice(0, 3).map((l) => l.match(/^\[info\] (".*") (\d+) (".*")$/).slice(1));
  assert.equal(
    chunks.map(([text, size]) => [JSON.parse(text), Number(size)]),
    [
      ["A\uFFFD\uFFFD", 3],
      ["\uFFFD\uFFFD", 2],
      ["\uFFFD", 1],
    ],
  );
  // The filter's TextDecoder is the engine's (not V8's): it decodes a chunk as chunk.text() does.
  for (const [text, , decoded] of chunks) assert.is(decoded, text);
  assert.is(r.logs[3], "[info] whole €");
  assert.is(r.upstreamRequest.body, "A€é");
});

test("a bundle on disk is loaded with the source map beside it: errors name the TypeScript source", () => {
  const { dir, cleanup } = scratch({
    "dist/filter.js": 'export default {\n  onRequest() {\n    throw new Error("boom");\n  },\n};\n',
    // line 3 of the bundle is line 7, column 5 of ../src/filter.ts
    "dist/filter.js.map": JSON.stringify({
      version: 3,
      sources: ["../src/filter.ts"],
      names: [],
      mappings: "AAAA;AACA;AAKI",
    }),
  });
  try {
    const file = path.join(dir, "dist/filter.js");
    const mapped = /^Error: boom\n\s+at onRequest \(src\/filter\.ts:7:5 \(filter\.js:3:\d+\)\)/;
    assert.match(request(file).errors[0], mapped);
    const host = createHost(pathToFileURL(file));
    const s = host.newStream();
    s.callOnRequestHeaders(GET, true);
    assert.match(s.getErrors()[0], mapped);
    host.close();
    // Given as text, without a map, the filter's errors name the bundle.
    const text = request({ source: readFileSync(file, "utf8"), filename: "filter.js" });
    assert.match(text.errors[0], /^Error: boom\n\s+at onRequest \(filter\.js:3:\d+\)$/);
  } finally {
    cleanup();
  }
});

test("replayBundle runs a bundle already read, with its map", () => {
  const bundle = {
    source: 'export default {\n  onRequest() {\n    throw new Error("boom");\n  },\n};\n',
    filename: "f.js",
  };
  const scenario = { streams: [{ request: { headers: GET } }] };
  const plain = replayBundle(bundle, scenario);
  assert.match(plain.streams[0].errors[0], /at onRequest \(f\.js:3:\d+\)$/);
  const sourceMap = JSON.stringify({ version: 3, sources: ["src/f.ts"], names: [], mappings: "AAAA;AACA;AAKI" });
  const mapped = replayBundle({ ...bundle, sourceMap }, scenario);
  assert.match(mapped.streams[0].errors[0], /at onRequest \(src\/f\.ts:7:5 \(f\.js:3:\d+\)\)$/);
  assert.equal(mapped.streams[0].localReply, plain.streams[0].localReply);
});

// ---- the step API ----

test("step API: a stream's setup, metadata, filter state, callouts and metrics", () => {
  const host = createHost(
    src(`export default {
    metrics: { calls: "counter", size: "histogram" },
    async onRequest(req, ctx) {
      const r = await ctx.fetch("authz", { method: "POST", path: "/check", body: "x" });
      ctx.filterState.set("authz.status", String(r.status));
      ctx.metadata.set("envoy-js", "checked", true);
      ctx.metrics.calls.inc();
      ctx.metrics.size.record((await r.text()).length);
    },
  };`),
  );
  const s = host.newStream({ clusters: { authz: { headers: { ":status": "204" }, body: "ok", delayMs: 10 } } });
  assert.is(s.callOnRequestHeaders(GET, true), "StopIteration");
  assert.equal(s.getCallouts(), [
    {
      cluster: "authz",
      headers: { ":method": "POST", ":path": "/check", ":authority": "authz", "content-length": "1" },
      body: "x",
    },
  ]);
  assert.equal(host.getMetrics(), {});
  host.advanceTime(10);
  assert.ok(s.getCurrentUpstreamRequest());
  assert.equal(s.getCurrentFilterState(), { "authz.status": "204" });
  assert.equal(s.getCurrentMetadata(), { "envoy-js": { checked: true } });
  assert.equal(host.getMetrics(), { calls: 1, size: [2] });
  assert.equal(s.getEvents().slice(0, 3), [
    "callout authz POST /check",
    "onRequestHeaders -> StopIteration",
    "callout 1 done",
  ]);
  host.close();
});

test("step API: a pending hook stops the stream; advanceTime resumes it exactly once", () => {
  const host = createHost(
    src(
      sleep +
        `export default { async onRequest(req, ctx) { await sleep(10); req.headers.set("x-at", String(performance.now())); } };`,
    ),
  );
  const s = host.newStream();
  assert.is(s.callOnRequestHeaders({ ":method": "POST", ":path": "/", ":authority": "h" }), "StopIteration");
  assert.is(s.callOnRequestData("body", true), "StopIterationAndWatermark");
  assert.is(s.getCurrentUpstreamRequest(), null);
  host.advanceTime(9);
  assert.is(s.getCurrentUpstreamRequest(), null);
  s.advanceTime(1);
  assert.is(host.now, 10);
  assert.equal(s.getCurrentUpstreamRequest(), {
    headers: { ":method": "POST", ":path": "/", ":authority": "h", "x-at": "10" },
    body: "body",
    trailers: null,
  });
  assert.equal(
    s.getEvents().filter((e) => e.startsWith("continue")),
    ["continue request (posted)", "continue request"],
  );
  assert.is(s.callOnResponseHeaders({ ":status": "200" }, false), "Continue");
  assert.is(s.callOnResponseData("ok", true), "Continue");
  assert.equal(s.getCurrentDownstreamResponse(), { headers: { ":status": "200" }, body: "ok", trailers: null });
  s.complete();
  s.destroy();
  host.close();
});

test("step API: a local reply, logs, errors and counters", () => {
  const host = createHost(
    src(`export default {
    onRequest(req, ctx) { ctx.log.info("path " + req.path); if (req.path === "/deny") return ctx.respond(403, { body: "no" }); if (req.path === "/boom") throw new Error("boom"); },
  };`),
  );
  const deny = host.newStream();
  assert.is(deny.callOnRequestHeaders({ ...GET, ":path": "/deny" }, true), "StopIteration");
  assert.equal(deny.getCurrentLocalReply(), {
    status: 403,
    body: "no",
    headers: { "content-type": "text/plain" },
    details: "envoy_js_respond",
  });
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
  const host = createHost(
    src(`export default {
    async onRequest(req, ctx) { try { await req.body.text(); } catch (e) { console.log(e.name, ctx.aborted); } },
    onDone(ctx) { ctx.log.info("done aborted=" + ctx.aborted); },
  };`),
  );
  const s = host.newStream();
  s.callOnRequestHeaders({ ...GET, ":method": "POST" }, false);
  s.destroy();
  assert.equal(s.getLogs(), ["[info] done aborted=true"]);
  assert.equal(host.getWorkerLogs(), ["[info] StreamGone true"]);
  assert.is(s.getEvents().at(-1), "destroyed by the test");
  assert.throws(() => s.callOnRequestData("x"), /this stream was destroyed/);
});

test("step API: ctx.respond() from the stream's own timer, with no hook pending, goes out at once", () => {
  const host = createHost(
    src(`export default { onRequest(req, ctx) { setTimeout(() => ctx.respond(504, { body: "late" }), 5); } };`),
  );
  const s = host.newStream();
  assert.is(s.callOnRequestHeaders(GET, true), "Continue");
  host.advanceTime(5);
  assert.is(s.getCurrentLocalReply()?.status, 504);
});

test("step API: worker timers from setup fire on advanceTime and log to the worker", () => {
  const host = createHost(
    src(`export default { setup() { setInterval(() => console.log("tick", performance.now()), 10); } };`),
  );
  host.advanceTime(35);
  assert.equal(host.getWorkerLogs(), ["[info] tick 10", "[info] tick 20", "[info] tick 30"]);
  host.close();
  assert.throws(() => host.advanceTime(10), /closed/);
});

test("step API: event order mistakes throw instead of doing nothing", () => {
  const host = createHost(src("export default {};"));
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
