// Failure policy, limits, destroy-while-pending and loading errors (DESIGN.md section 5).
import { test } from "uvu";
import * as assert from "uvu/assert";
import { wasm, one, get, post, replay } from "../lib/wasm.mjs";
import { parseBytecode, writeBytecodeV1 } from "../lib/qjsbc.mjs";

const sleep = "const sleep = (ms) => new Promise((r) => setTimeout(r, ms));\n";
const okFilter = `export default { onRequest(req) { req.headers.set("x-ok", "1"); } };`;

test("a throwing hook under failure_mode closed: 500 envoy_js_error, logged with its stack, counted", () => {
  const src = `function check(v) { throw new Error("bad " + v); }\nexport default { onRequest(req) { check(req.path); } };`;
  const t = one(src, get("/boom"));
  assert.equal(t.localReply.status, 500);
  assert.equal(t.localReply.details, "envoy_js_error");
  assert.is(t.upstreamRequest, null);
  assert.match(t.errors[0], /^Error: bad \/boom\n\s+at check \(filter\.js:1:/);
  assert.equal(t.counters["envoy_js.errors"], 1);
  assert.ok(t.workerLogs.some((l) => l.startsWith("[error] stream 1: filter failed: Error: bad /boom")));
});

test("a rejected async hook under failure_mode open: logged, counted, the request continues", () => {
  const src = sleep + `export default { async onRequest(req) { await sleep(1); throw new TypeError("nope"); } };`;
  const t = one(src, get("/"), { settings: { failure_mode: "open" } });
  assert.is(t.localReply, null);
  assert.ok(t.upstreamRequest);
  assert.match(t.errors[0], /TypeError: nope/);
  assert.equal(t.counters["envoy_js.errors"], 1);
});

test("a response-side error after the response started resets the stream", () => {
  const src = `export default { onResponseData(c) { if (c.text() === "bad") throw new Error("late"); } };`;
  const t = one(src, { ...get("/"), upstream: { headers: { ":status": "200" }, body: ["good", "bad"] } });
  assert.ok(t.resetByFilter);
  assert.equal(t.downstreamResponse.body, "good");
});

test("loading and setup() get at least a second, not max_cpu_ms_per_event; a runaway top level is still stopped", () => {
  const busy = (ms) => `{ const end = Date.now() + ${ms}; while (Date.now() < end) {} }`;
  const src = `${busy(120)}\nexport default { setup() { ${busy(120)} return 1; }, onRequest(req, ctx) { req.headers.set("x-w", String(ctx.worker)); } };`;
  const t = replay(src, { settings: { max_cpu_ms_per_event: 20 }, streams: [get("/")] });
  assert.equal(t.streams[0].upstreamRequest.headers["x-w"], "1");
  const started = Date.now();
  assert.throws(
    () => replay(`for (;;) {}\nexport default {};`, { settings: { max_cpu_ms_per_event: 20 }, streams: [] }),
    /the module threw while loading: InternalError: interrupted/,
  );
  assert.ok(Date.now() - started < 10_000, "stopped after about a second");
});

test("a runaway loop is stopped by max_cpu_ms_per_event and the engine serves the next stream", () => {
  const src = `export default { onRequest(req) { if (req.path === "/spin") for (;;) {} req.headers.set("x-ok", "1"); } };`;
  const started = Date.now();
  const t = replay(src, { settings: { max_cpu_ms_per_event: 20 }, streams: [get("/spin"), get("/next")] });
  const elapsed = Date.now() - started;
  assert.equal(t.streams[0].localReply.status, 500);
  assert.match(t.streams[0].errors[0], /max_cpu_ms_per_event exceeded/);
  assert.equal(t.streams[1].upstreamRequest.headers["x-ok"], "1");
  assert.equal(t.counters["envoy_js.cpu_limit"], 1);
  assert.ok(elapsed < 2000, `took ${elapsed} ms`);
});

test("a runaway loop after an await is stopped too", () => {
  const src = sleep + `export default { async onRequest(req) { await sleep(1); while (true) {} } };`;
  const t = replay(src, { settings: { max_cpu_ms_per_event: 20 }, streams: [get("/"), get("/")] });
  assert.equal(t.streams[0].localReply.status, 500);
  assert.equal(t.streams[1].localReply.status, 500);
  assert.equal(t.counters["envoy_js.cpu_limit"], 2);
});

test("heap exhaustion fails the stream under max_heap_bytes; the engine keeps serving", () => {
  const src = `export default { onRequest(req) {
    if (req.path === "/hog") { const a = []; for (;;) a.push(new Array(10000).fill(a.length)); }
    req.headers.set("x-ok", "1");
  } };`;
  const t = replay(src, {
    settings: { max_heap_bytes: 8 * 1024 * 1024, max_cpu_ms_per_event: 5000 },
    streams: [get("/hog"), get("/next"), get("/next")],
  });
  assert.equal(t.streams[0].localReply.status, 500);
  assert.match(t.streams[0].errors[0], /out of memory/, JSON.stringify(t.streams[0]));
  assert.equal(t.counters["envoy_js.heap_limit"], 1);
  assert.equal(t.streams[1].upstreamRequest.headers["x-ok"], "1");
  assert.equal(t.streams[2].upstreamRequest.headers["x-ok"], "1");
});

test("destroy while a hook is pending: no crash, body reads reject with StreamGone, ctx.aborted, onDone runs", () => {
  const src =
    sleep +
    `
    export default {
      async onRequest(req, ctx) {
        try { await req.body.text(); } catch (e) { ctx.log.info("body: " + e.name + " aborted=" + ctx.aborted); }
        try { req.headers.get("x"); } catch (e) { ctx.log.info("headers: " + e.name); }
      },
      onDone(ctx) { ctx.log.info("done aborted=" + ctx.aborted); },
    };`;
  const t = replay(src, { streams: [{ ...post("/", ["a"]), reset: "afterRequestHeaders" }, get("/next")] });
  const s = t.streams[0];
  assert.equal(s.logs, ["[info] done aborted=true"]);
  assert.is(s.upstreamRequest, null);
  assert.ok(s.events.includes("client reset after request headers"));
  assert.ok(t.streams[1].upstreamRequest);
});

test("onDone runs with a usable ctx even when no other hook ran", () => {
  const t = replay(`export default { onDone(ctx) { ctx.log.info("done " + ctx.aborted); } };`, {
    streams: [{ ...get("/"), reset: "afterRequestHeaders" }, get("/")],
  });
  assert.equal(t.streams[0].logs, ["[info] done true"]);
  assert.equal(t.streams[1].logs, ["[info] done false"]);
});

test("destroy while a timer is pending cancels the stream's timers", () => {
  const src =
    sleep +
    `
    export default {
      async onRequest(req, ctx) { await sleep(50); ctx.log.info("must not run"); },
    };`;
  const t = replay(src, {
    streams: [
      { ...get("/"), reset: "afterRequestHeaders" },
      { ...post("/", ["x"]), reset: "afterRequestBody" },
    ],
  });
  assert.equal(t.streams[0].logs, []);
  assert.equal(t.streams[1].logs, []);
});

test("a syntax error is located as file:line:col", () => {
  assert.throws(
    () =>
      replay(
        "export default {\n  onRequest(req) {\n    return 1 +* 2;\n  }\n};",
        { streams: [] },
        { filename: "src/filter.js" },
      ),
    /^src\/filter\.js:3:\d+: SyntaxError/,
  );
});

test("loading errors: no default export, hook not a function, misspelt hook, bad metrics, throwing setup", () => {
  const cases = [
    ["export const x = 1;", /no default export/],
    ["export default { onRequest: 42 };", /`onRequest` must be a function/],
    ["export default { onRequets() {} };", /unknown hook `onRequets`/],
    ['export default { metrics: { hits: "meter" } };', /metric `hits` must be/],
    ['export default { setup() { throw new Error("no db"); } };', /setup\(\) threw: Error: no db/],
    ['import x from "lodash"; export default {};', /cannot import 'lodash'/],
  ];
  for (const [src, re] of cases) assert.throws(() => replay(src, { streams: [] }), re, src);
});

test("settings are validated", () => {
  assert.throws(() => replay(okFilter, { settings: { failure_mode: "maybe" }, streams: [] }), /failure_mode must be/);
  assert.throws(
    () => replay(okFilter, { settings: { max_cpu_ms_per_event: 0 }, streams: [] }),
    /max_cpu_ms_per_event must be/,
  );
  assert.throws(() => replay(okFilter, { settings: { max_heap_bytes: "big" }, streams: [] }), /max_heap_bytes must be/);
});

test("bytecode: a compiled filter runs; another version's or a truncated file is refused clearly", () => {
  const bc = wasm.compileBytecode(okFilter, "ok.js");
  const t = replay("", { streams: [get("/")] }, { bytecode: bc, filename: "ok.qjsbc" });
  assert.equal(t.streams[0].upstreamRequest.headers["x-ok"], "1");
  const text = bc.toString("latin1");
  const other = Buffer.from(text.replace(`quickjs-ng ${wasm.quickjsVersion}`, "quickjs-ng 0.16.9"), "latin1");
  assert.throws(
    () => replay("", { streams: [] }, { bytecode: other, filename: "ok.qjsbc" }),
    /built for quickjs-ng 0\.16\.9 but this runtime embeds quickjs-ng/,
  );
  assert.throws(
    () => replay("", { streams: [] }, { bytecode: bc.subarray(0, bc.length - 10), filename: "ok.qjsbc" }),
    /truncated or corrupt/,
  );
  assert.throws(
    () => replay("", { streams: [] }, { bytecode: Buffer.from("hello"), filename: "x.qjsbc" }),
    /not an envoy-js bytecode file/,
  );
});

test("bytecode: loading checks the config against the facts in the file; version 1 files are refused", () => {
  // A bundle that holds ~2 MB once loaded: more than the smallest max_heap_bytes (1 MiB).
  const big = wasm.compileBytecode(`const table = Array.from({ length: 250000 }, (_, i) => i);\n${okFilter}`, "big.js");
  const need = Number(/load-heap (\d+)/.exec(big.toString("latin1"))[1]);
  assert.ok(need > 1 << 20, `load-heap ${need}`);
  assert.throws(
    () => replay("", { settings: { max_heap_bytes: 1 << 20 }, streams: [] }, { bytecode: big, filename: "big.qjsbc" }),
    new RegExp(`^big\\.qjsbc: max_heap_bytes 1048576 is too small: loading this bundle takes ${need} bytes`),
  );
  const t = replay(
    "",
    { settings: { max_heap_bytes: 4 * need }, streams: [get("/")] },
    { bytecode: big, filename: "big.qjsbc" },
  );
  assert.equal(t.streams[0].upstreamRequest.headers["x-ok"], "1");
  // The version 1 layout (no facts) never left the repository: it is refused, not guessed at.
  const v1 = writeBytecodeV1(parseBytecode(wasm.compileBytecode(okFilter, "ok.js")));
  assert.throws(
    () => replay("", { streams: [get("/")] }, { bytecode: v1, filename: "ok.qjsbc" }),
    /^ok\.qjsbc: not an envoy-js bytecode file/,
  );
});

test("bytecode carries no function source: toString() of a filter function is the native form", () => {
  const src = `export default { onRequest(req) { req.headers.set("x-src", String(function named(a) { return a; }).replace(/\\s+/g, " ")); } };`;
  const t = one(src, get("/"));
  assert.match(t.upstreamRequest.headers["x-src"], /^function named\(\) \{ \[native code\] \}$/);
});

test("an unhandled rejection in a timer is logged, not fatal", () => {
  const src = `export default { async onRequest(req, ctx) {
    setTimeout(() => { Promise.reject(new Error("lost")); }, 1);
    await new Promise((r) => setTimeout(r, 5));
  } };`;
  const t = one(src, get("/"));
  assert.ok(t.upstreamRequest);
  assert.ok(
    t.workerLogs.some((l) => l.startsWith("[warn] unhandled promise rejection: Error: lost")),
    JSON.stringify(t.workerLogs),
  );
});

test("a rejection handled later in the same turn is not reported as unhandled", () => {
  const src = `export default { async onRequest(req, ctx) {
    const p = Promise.reject(new Error("later"));
    await null;
    try { await p; } catch (e) { ctx.log.info("caught " + e.message); }
  } };`;
  const t = one(src, get("/"));
  assert.equal(t.logs, ["[info] caught later"]);
  assert.equal(t.workerLogs, []);
});

test("deep recursion fails only its stream", () => {
  const src = `function f(n) { return f(n + 1) + 1; }\nexport default { onRequest(req) { if (req.path === "/deep") f(0); req.headers.set("x-ok", "1"); } };`;
  const t = replay(src, { streams: [get("/deep"), get("/")] });
  assert.equal(t.streams[0].localReply.status, 500);
  assert.match(t.streams[0].errors[0], /RangeError|stack/i);
  assert.equal(t.streams[1].upstreamRequest.headers["x-ok"], "1");
});

test.run();
