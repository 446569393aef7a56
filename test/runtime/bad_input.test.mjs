// The bad-input catalogue: hostile or broken filters, configs, bytecode and traffic. Each case
// asserts the clear error (or the unchanged pass-through) and that only what must be affected
// is: the other streams of the same engine keep being served. Cases already covered by
// failures.test.mjs (the first syntax error, a numeric hook, a sync throw in setup, the first
// settings checks, version-tagged and truncated bytecode, sync deep recursion, a rejection in
// a timer) are not repeated here.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { wasm, one, get, post, replay } from "../lib/wasm.mjs";
import { parseBytecode, writeBytecode } from "../lib/qjsbc.mjs";

// The scenario driver of test/reliability (built with the native host stub).
const driver = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "build", "release", "driver");

const sleep = "const sleep = (ms) => new Promise((r) => setTimeout(r, ms));\n";
const okFilter = `export default { onRequest(req) { req.headers.set("x-ok", "1"); } };`;

/** The load error of `src`, or "loaded". */
function loadError(src, options = {}) {
  try {
    replay(src, { streams: [], ...options }, { filename: "bad.js" });
  } catch (e) {
    return e.message;
  }
  return "loaded";
}

/** Runs `streams` and checks that a trailing healthy stream still gets through. */
function withNext(src, streams, options = {}) {
  const t = replay(src, { ...options, streams: [...streams, get("/next")] });
  const next = t.streams[t.streams.length - 1];
  assert.ok(next.upstreamRequest, "the next stream must still be served: " + next.events.join(", "));
  assert.equal(next.errors, [], "the next stream has no errors");
  return t;
}

// ---- loading --------------------------------------------------------------------------------

test("syntax error deep in a large bundle: located at its line and column, nothing loads", () => {
  const filler = Array.from({ length: 2000 }, (_, i) => `const v${i} = ${i};`).join("\n");
  const src = `${filler}\nexport default {\n  onRequest(req) {\n    const s = "unterminated;\n  },\n};`;
  assert.match(loadError(src), /^bad\.js:2003:15: SyntaxError: unexpected end of string/);
});

test("a default export that is not a filter object: a number, a string, null", () => {
  for (const value of ["42", '"filter"', "null"]) {
    assert.match(
      loadError(`export default ${value};`),
      /^bad\.js: the filter module has no default export object: write `export default defineFilter/,
      value,
    );
  }
});

test("hooks that are not functions are named; a null hook counts as absent", () => {
  assert.match(loadError(`export default { onResponseData: "x" };`), /^bad\.js: `onResponseData` must be a function$/);
  assert.match(loadError(`export default { onDone: {} };`), /^bad\.js: `onDone` must be a function$/);
  assert.match(loadError(`export default { setup: 5 };`), /^bad\.js: `setup` must be a function$/);
  const t = one(`export default { onRequest: null, onResponse(res) { res.headers.set("x-r", "1"); } };`, get("/"));
  assert.equal(t.downstreamResponse.headers["x-r"], "1");
});

test("invalid config JSON (raw text, through the scenario driver) is refused at load with the parse error", () => {
  // The addon always hands the runtime JSON.stringify's output; the driver passes raw text.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bad-config-"));
  const filter = path.join(dir, "f.js");
  fs.writeFileSync(filter, okFilter);
  for (const [configJson, re] of [
    ['{"header": ', /invalid filter config JSON: SyntaxError: Unexpected end of JSON input/],
    ["{'header': 1}", /invalid filter config JSON: SyntaxError/],
    ['{"a": 1} trailing', /invalid filter config JSON: SyntaxError/],
  ]) {
    const scenario = path.join(dir, "s.json");
    fs.writeFileSync(scenario, JSON.stringify({ configJson, streams: [] }));
    const r = spawnSync(driver, [filter, scenario], { encoding: "utf8" });
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, re, configJson);
  }
  fs.rmSync(dir, { recursive: true });
  assert.is(loadError(okFilter, { config: { a: [1, 2] } }), "loaded");
});

test("a config with a __proto__ key stays data: it pollutes no prototype", () => {
  const src = `export default { onRequest(req, ctx) {
    ctx.log.info(Object.keys(ctx.config).join(","), JSON.stringify(ctx.config.__proto__), ({}).polluted === undefined);
  } };`;
  const t = one(src, get("/"), { config: JSON.parse('{"__proto__": {"polluted": true}, "a": 1}') });
  assert.equal(t.logs, ['[info] __proto__,a {"polluted":true} true']);
});

test("settings out of range or of the wrong shape are refused with the key and the range", () => {
  const cases = [
    [{ max_heap_bytes: 1000 }, /max_heap_bytes must be an integer between 1048576 and/],
    [{ max_cpu_ms_per_event: 60001 }, /max_cpu_ms_per_event must be an integer between 1 and 60000/],
    [{ max_cpu_ms_per_event: 1.5 }, /max_cpu_ms_per_event must be an integer/],
    [{ buffer_limit_bytes: -1 }, /buffer_limit_bytes must be an integer between 0 and/],
    [{ failure_mode: "OPEN" }, /failure_mode must be "closed" or "open"/],
    [{ allow_code_from_strings: "yes" }, /allow_code_from_strings must be true or false/],
    [[1, 2], /settings must be a JSON object/],
  ];
  for (const [settings, re] of cases) assert.match(loadError(okFilter, { settings }), re, JSON.stringify(settings));
});

test("a pending top-level await is refused at load instead of loading half a module", () => {
  assert.match(
    loadError(sleep + "await sleep(10);\nexport default {};"),
    /the module did not finish loading: a top-level await/,
  );
});

test("setup that rejects asynchronously or never settles is refused; setup's config is the filter's", () => {
  assert.match(
    loadError(`export default { async setup() { await null; throw new RangeError("late"); } };`),
    /^bad\.js: setup\(\) failed: RangeError: late/,
  );
  assert.match(
    loadError(`export default { setup() { return new Promise(() => {}); } };`),
    /setup\(\) returned a promise that did not settle/,
  );
});

test("bytecode: a flipped byte, a damaged header, a truncated body with a matching header are refused", () => {
  const bc = wasm.compileBytecode(okFilter, "ok.js");
  const load = (bytecode) => {
    try {
      replay("", { streams: [get("/")] }, { bytecode, filename: "ok.qjsbc" });
      return "loaded";
    } catch (e) {
      return e.message;
    }
  };
  const flipped = Buffer.from(bc);
  flipped[flipped.length - 5] ^= 0x40;
  assert.match(load(flipped), /^ok\.qjsbc: bytecode is truncated or corrupt \(expected \d+ bytes, found \d+\)/);
  const damaged = Buffer.from(bc.toString("latin1").replace(/size \d+/, "size lots"), "latin1");
  assert.match(load(damaged), /^ok\.qjsbc: bytecode header is damaged/);
  // Someone rewrote the header to match a cut body: the loader itself must refuse it cleanly.
  const parts = parseBytecode(bc);
  for (const cut of [1, 8, parts.body.length >> 1, parts.body.length - 1]) {
    assert.match(
      load(writeBytecode({ ...parts, body: parts.body.subarray(0, cut) })),
      /^ok\.qjsbc: (could not load bytecode|bytecode does not hold an ES module)/,
      `cut at ${cut}`,
    );
  }
  assert.is(load(writeBytecode(parts)), "loaded", "the same rebuilt header on the whole body loads");
  // The checked facts are covered by the digest too.
  const edited = Buffer.from(bc.toString("latin1").replace("load-heap ", "load-heap 1"), "latin1");
  assert.match(load(edited), /^ok\.qjsbc: bytecode is truncated or corrupt/);
});

// ---- hostile traffic ------------------------------------------------------------------------

test("a 1 MiB header value is read, compared and copied intact", () => {
  const big = "v".repeat(1 << 20);
  const src = `export default { onRequest(req, ctx) {
    const v = req.headers.get("x-big");
    if (v === null) return;
    ctx.log.info(v.length, v === "v".repeat(1 << 20));
    req.headers.set("x-copy", v);
  } };`;
  const t = withNext(src, [get("/", { "x-big": big })]);
  assert.equal(t.streams[0].logs, ["[info] 1048576 true"]);
  assert.ok(t.streams[0].upstreamRequest.headers["x-copy"] === big);
});

test("10,000 headers: size, iteration and lookups see all of them, nothing is dropped", () => {
  const many = {};
  for (let i = 0; i < 10000; i++) many[`x-h-${i}`] = String(i);
  const src = `export default { onRequest(req, ctx) {
    let n = 0; for (const [k] of req.headers.entries()) if (k.startsWith("x-h-")) n++;
    ctx.log.info([...req.headers].length, n, req.headers.get("x-h-9999"), req.headers.has("x-h-10000"));
    req.headers.delete("x-h-0");
  } };`;
  const t = withNext(src, [get("/", many)], { settings: { max_cpu_ms_per_event: 10000 } });
  assert.equal(t.streams[0].logs, ["[info] 10004 10000 9999 false"]);
  const up = t.streams[0].upstreamRequest.headers;
  assert.equal(Object.keys(up).filter((k) => k.startsWith("x-h-")).length, 9999);
  assert.not.ok("x-h-0" in up);
});

test("a binary body with all 256 byte values passes through streaming and whole-body hooks unchanged", () => {
  const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
  const check = `(b) => b.length === 256 && b.every((x, i) => x === i)`;
  const streaming = `export default { onRequestData(c, ctx) { const b = c.bytes(); ctx.log.info((${check})(b)); c.replace(b); } };`;
  const whole = `export default { async onRequest(req, ctx) { const b = await req.body.bytes(); ctx.log.info((${check})(b)); req.body.replace(b); } };`;
  for (const src of [streaming, whole]) {
    const t = one(src, post("/", [all]));
    assert.equal(t.logs, ["[info] true"]);
    // Transcript bodies are decoded as UTF-8 by the addon: compare with the same decoding.
    assert.is(t.upstreamRequest.body, all.toString("utf8"));
  }
});

test("invalid UTF-8 through chunk.text(), body.text() and body.json(): replacement characters or a SyntaxError, no crash", () => {
  const bad = Buffer.from([0x61, 0xff, 0x62, 0xc3, 0x28, 0xe2, 0x82]);
  const src = `export default {
    onRequestData(c, ctx) { const t = c.text(); ctx.log.info("chunk", t.length, t.includes("\\ufffd"), t[0], t[2]); },
    async onResponse(res, ctx) {
      const t = await res.body.text();
      ctx.log.info("body", t.includes("\\ufffd"));
      try { await res.body.json(); } catch (e) { ctx.log.info("json", e.name); }
    },
  };`;
  const t = withNext(src, [{ ...post("/", [bad]), upstream: { headers: { ":status": "200" }, body: [bad] } }]);
  assert.equal(t.streams[0].logs.length, 3);
  assert.match(t.streams[0].logs[0], /^\[info\] chunk \d+ true a b$/);
  assert.equal(t.streams[0].logs.slice(1), ["[info] body true", "[info] json SyntaxError"]);
});

test("header names and values with CR, LF or NUL are refused by set, append and respond; the request is unchanged", () => {
  const src = `export default {
    onRequest(req, ctx) {
      const tries = [
        () => req.headers.append("x-a", "v\\r\\nx-injected: 1"),
        () => req.headers.set("x-b", "v\\0w"),
        () => req.headers.set("x-c\\r\\nx-injected", "1"),
        () => req.headers.append("x d", "1"),
        () => ctx.respond(200, { headers: { "x-e": "a\\nb" } }),
        () => ctx.respond(200, { headers: { "bad name": "1" } }),
      ];
      ctx.log.info(tries.map((f) => { try { f(); return "accepted"; } catch (e) { return e.name; } }).join(","));
    },
  };`;
  const t = withNext(src, [get("/")]);
  assert.equal(t.streams[0].logs, ["[info] TypeError,TypeError,TypeError,TypeError,TypeError,TypeError"]);
  assert.is(t.streams[0].localReply, null);
  const up = t.streams[0].upstreamRequest.headers;
  for (const name of ["x-a", "x-b", "x-injected", "x-e"]) assert.not.ok(name in up, name);
});

test("content-length and transfer-encoding cannot be set or appended from JS on either side; deleting them can", () => {
  const src = `export default {
    onRequest(req, ctx) {
      const tries = [
        () => req.headers.set("content-length", "5"),
        () => req.headers.append("Content-Length", "5"),
        () => req.headers.set("transfer-encoding", "chunked"),
        () => req.headers.delete("content-length"),
      ];
      ctx.log.info(tries.map((f) => { try { f(); return "accepted"; } catch (e) { return e.name; } }).join(","));
    },
    onResponse(res, ctx) {
      const tries = [() => res.headers.set("content-length", "5"), () => res.headers.set("Transfer-Encoding", "chunked")];
      ctx.log.info(tries.map((f) => { try { f(); return "accepted"; } catch (e) { return e.message; } }).join(" | "));
    },
  };`;
  const t = withNext(src, [
    {
      ...post("/", ["ab"], { "content-length": "2" }),
      upstream: { headers: { ":status": "200", "content-length": "2" }, body: ["ok"] },
    },
  ]);
  assert.equal(t.streams[0].logs[0], "[info] TypeError,TypeError,TypeError,accepted");
  assert.match(
    t.streams[0].logs[1],
    /^\[info\] content-length is set by Envoy and envoy-js from the body, not by filters .* \| transfer-encoding is set by/,
  );
  assert.not.ok("content-length" in t.streams[0].upstreamRequest.headers);
  assert.not.ok("transfer-encoding" in t.streams[0].upstreamRequest.headers);
  assert.is(t.streams[0].downstreamResponse.headers["content-length"], "2");
});

test("respond() with statuses that are not integers from 200 to 599 throws a RangeError", () => {
  const src = `export default { onRequest(req, ctx) {
    const out = [NaN, 200.5, "403", 600, Infinity, -1, undefined].map((s) => { try { ctx.respond(s); return "sent"; } catch (e) { return e.name; } });
    ctx.log.info(out.join(","));
  } };`;
  const t = withNext(src, [get("/")]);
  assert.equal(t.streams[0].logs, [
    "[info] RangeError,RangeError,RangeError,RangeError,RangeError,RangeError,RangeError",
  ]);
  assert.is(t.streams[0].localReply, null);
});

test("respond() called twice: the second throws a TypeError, the first is the reply", () => {
  const src = `export default { onRequest(req, ctx) {
    if (req.path !== "/") return;
    const first = ctx.respond(403, { body: "first" });
    try { ctx.respond(401); } catch (e) { ctx.log.info(e.name + ": " + e.message); }
    return first;
  } };`;
  const t = withNext(src, [get("/")]);
  assert.equal(t.streams[0].logs, ["[info] TypeError: respond() was already called for this stream"]);
  assert.equal(t.streams[0].localReply.status, 403);
  assert.equal(t.streams[0].localReply.body, "first");
});

test("a hook returning a non-reply value fails its stream with a message that says what to return", () => {
  const src = `export default { onRequest(req) { if (req.path === "/bad") return { status: 403 }; } };`;
  const t = withNext(src, [get("/bad")]);
  assert.equal(t.streams[0].localReply.status, 500);
  assert.match(
    t.streams[0].errors[0],
    /onRequest returned an object: a hook returns nothing \(to continue\) or the value of ctx\.respond/,
  );
});

test("setTimeout with a non-function (a string of code) throws a TypeError and evaluates nothing", () => {
  const src = `globalThis.hit = false;
  export default { onRequest(req, ctx) {
    for (const cb of ["globalThis.hit = true", undefined, 42]) {
      try { setTimeout(cb, 1); } catch (e) { ctx.log.info(e.name + ": " + e.message); }
    }
    try { setInterval({}, 1); } catch (e) { ctx.log.info(e.message); }
    ctx.log.info("hit", globalThis.hit);
  } };`;
  const t = withNext(src, [get("/")]);
  assert.equal(t.streams[0].logs, [
    "[info] TypeError: setTimeout needs a function",
    "[info] TypeError: setTimeout needs a function",
    "[info] TypeError: setTimeout needs a function",
    "[info] setInterval needs a function",
    "[info] hit false",
  ]);
});

test("an invalid JSON body: json() rejects with a SyntaxError the filter can answer with 400", () => {
  const src = `export default { async onRequest(req, ctx) {
    try { await req.body.json(); } catch (e) { return ctx.respond(400, { body: e.name }); }
  } };`;
  for (const body of [['{"a":'], ["{bad}"], [""], ["1 2"]]) {
    const t = one(src, post("/", body));
    assert.equal(t.localReply?.status, 400, JSON.stringify(body));
    assert.equal(t.localReply.body, "SyntaxError");
    assert.equal(t.errors, []);
  }
});

test("a chunk held past its hook: TypeError in a later stream, StreamGone from a timer after its stream is gone", () => {
  const src =
    sleep +
    `let kept;
  export default {
    onRequestData(c, ctx) {
      if (kept) { try { kept.append("x"); } catch (e) { ctx.log.info("other stream: " + e.name); } }
      kept = c;
      setTimeout(() => { try { c.text(); } catch (e) { console.log("timer: " + e.name); } }, 0);
    },
    async onRequest(req) { if (req.path === "/wait") await sleep(5); },
  };`;
  const t = withNext(src, [post("/a", ["one"]), post("/b", ["two"])]);
  assert.equal(t.streams[1].logs, ["[info] other stream: TypeError"]);
  assert.equal(t.streams[0].upstreamRequest.body, "one");
  assert.equal(t.streams[1].upstreamRequest.body, "two");
  // The timer of a chunk whose stream was reset never runs: the stream's timers died with it.
  const reset = replay(src, { streams: [{ ...post("/wait", ["x"]), reset: "afterRequestBody" }] });
  assert.not.ok(reset.workerLogs.some((l) => l.includes("timer:")));
});

test("a Headers object kept from an earlier stream throws StreamGone in the next one", () => {
  const src = `let saved;
  export default { onRequest(req, ctx) {
    if (saved) { try { saved.get(":path"); } catch (e) { ctx.log.info(e.name); } }
    saved = req.headers;
  } };`;
  const t = withNext(src, [get("/1"), get("/2")]);
  assert.equal(t.streams[1].logs, ["[info] StreamGone"]);
});

test("100,000 timers: all fire, in due order, in one hook; 100,000 pending timers of a reset stream are cancelled", () => {
  const src = `export default { async onRequest(req, ctx) {
    const n = 100000;
    if (req.path === "/next") return;
    if (req.path === "/reset") {
      for (let i = 0; i < n; i++) setTimeout(() => console.log("must not run"), 10 + (i % 50));
      await new Promise(() => {});
    }
    let fired = 0, last = 0, inOrder = true;
    await new Promise((resolve) => {
      for (let i = 0; i < n; i++) {
        const delay = i % 50;
        setTimeout(() => { inOrder = inOrder && delay >= last; last = delay; if (++fired === n) resolve(); }, delay);
      }
    });
    ctx.log.info("fired", fired, "in order", inOrder);
  } };`;
  const t = withNext(src, [get("/all"), { ...get("/reset"), reset: "afterRequestHeaders" }], {
    settings: { max_cpu_ms_per_event: 20000 },
  });
  assert.equal(t.streams[0].logs, ["[info] fired 100000 in order true"]);
  assert.not.ok(t.workerLogs.some((l) => l.includes("must not run")));
});

test("deep recursion in a promise reaction and in a timer fails only its own stream", () => {
  const src =
    sleep +
    `function down(n) { return down(n + 1) + 1; }
  export default { async onRequest(req) {
    if (req.path === "/reaction") await Promise.resolve().then(() => down(0));
    if (req.path === "/timer") await new Promise((r, j) => setTimeout(() => { try { down(0); } catch (e) { j(e); } }, 1));
  } };`;
  const t = withNext(src, [get("/reaction"), get("/timer")]);
  for (const s of t.streams.slice(0, 2)) {
    assert.equal(s.localReply.status, 500);
    assert.match(s.errors[0], /^RangeError: Maximum call stack size exceeded/);
  }
});

test("an unhandled rejection inside a hook is logged once and does not fail the stream", () => {
  const src = `export default { onRequest(req) { if (req.path !== "/") return; Promise.reject(new Error("nobody listens")); req.headers.set("x-after", "1"); } };`;
  const t = withNext(src, [get("/")]);
  assert.equal(t.streams[0].upstreamRequest.headers["x-after"], "1");
  assert.equal(t.workerLogs.filter((l) => l.includes("unhandled promise rejection: Error: nobody listens")).length, 1);
});

test("values that cannot be printed: thrown symbols, objects whose toString throws, cyclic and BigInt log arguments", () => {
  const src = `export default { onRequest(req, ctx) {
    const cyclic = {}; cyclic.self = cyclic;
    ctx.log.info("log", cyclic, 10n, Symbol("s"));
    if (req.path === "/symbol") throw Symbol("s");
    if (req.path === "/object") throw { toString() { throw new Error("no"); } };
  } };`;
  const t = withNext(src, [get("/symbol"), get("/object")]);
  assert.match(t.streams[0].logs[0], /^\[info\] log /);
  assert.equal(t.streams[0].errors, ["thrown value: a symbol"]);
  assert.equal(t.streams[1].errors, ["thrown value: an object that cannot be printed"]);
});

test("API methods called on the wrong receiver throw a TypeError instead of touching memory", () => {
  const src = `export default { onRequest(req, ctx) {
    const h = req.headers, body = req.body;
    const calls = [
      () => h.get.call({}, "x"),
      () => h.set.call(ctx, "x", "1"),
      () => body.text.call(h),
      () => Object.getPrototypeOf(ctx).respond.call(req, 403),
      () => Object.getOwnPropertyDescriptor(Object.getPrototypeOf(req), "path").get.call({}),
    ];
    ctx.log.info(calls.map((f) => { try { f(); return "ok"; } catch (e) { return e.name; } }).join(","));
  } };`;
  const t = withNext(src, [get("/")]);
  assert.equal(t.streams[0].logs, ["[info] TypeError,TypeError,TypeError,TypeError,TypeError"]);
});

test("TextDecoder: an unsupported label is a RangeError, fatal mode rejects invalid UTF-8, a string input is a TypeError", () => {
  const src = `export default { onRequest(req, ctx) {
    const r = [];
    try { new TextDecoder("latin1"); } catch (e) { r.push(e.name); }
    try { new TextDecoder("utf-8", { fatal: true }).decode(new Uint8Array([0xc3])); } catch (e) { r.push(e.name); }
    try { new TextDecoder().decode("text"); } catch (e) { r.push(e.name); }
    r.push(new TextDecoder().decode(new Uint8Array([0xc3])) === "\\ufffd");
    try { new TextDecoder(Symbol("utf-8")); } catch (e) { r.push(e.name); }
    try { new TextDecoder({ toString() { throw new SyntaxError("label"); } }); } catch (e) { r.push(e.name); }
    r.push(new TextDecoder("UTF-8").encoding);
    ctx.log.info(r.join(","));
  } };`;
  const t = withNext(src, [get("/")]);
  assert.equal(t.streams[0].logs, ["[info] RangeError,TypeError,TypeError,true,TypeError,SyntaxError,utf-8"]);
});

test("TextDecoder.decode reads any buffer source: an ArrayBuffer, any typed array, a DataView (only the bytes it covers)", () => {
  const src = `export default { onRequest(req, ctx) {
    const bytes = new TextEncoder().encode("<h\u00e9llo>");
    const d = new TextDecoder();
    ctx.log.info([bytes.buffer, bytes.subarray(1, 7), new DataView(bytes.buffer, 1, 6), new Int8Array(bytes.buffer, 1, 6), undefined]
      .map((b) => JSON.stringify(d.decode(b))).join(" "));
  } };`;
  const t = withNext(src, [get("/")]);
  assert.equal(t.streams[0].logs, ['[info] "<h\u00e9llo>" "h\u00e9llo" "h\u00e9llo" "h\u00e9llo" ""']);
});

test("body data of the wrong type: replace/append with numbers or objects throws a TypeError, the chunk is unchanged", () => {
  const src = `export default { onRequestData(c, ctx) {
    const r = [42, {}, null, [1, 2]].map((v) => { try { c.append(v); return "ok"; } catch (e) { return e.name; } });
    ctx.log.info(r.join(","));
  } };`;
  const t = withNext(src, [post("/", ["abc"])]);
  assert.equal(t.streams[0].logs, ["[info] TypeError,TypeError,TypeError,TypeError"]);
  assert.equal(t.streams[0].upstreamRequest.body, "abc");
});

test("whole-body misuse: replace() before reading, a read once the body streams, both refused with what to do", () => {
  const early = `export default { onRequest(req, ctx) { try { req.body.replace("x"); } catch (e) { ctx.log.info(e.name + ": " + e.message); } } };`;
  const t = one(early, post("/", ["abc"]));
  assert.match(
    t.logs[0],
    /^\[info\] TypeError: body\.replace\(\) needs the whole request body held: await body\.text\(\)/,
  );
  assert.equal(t.upstreamRequest.body, "abc");
  const late = `let req0; export default {
    onRequest(req) { req0 = req; },
    async onResponse(res, ctx) { try { await req0.body.text(); } catch (e) { ctx.log.info(e.name + ": " + e.message); } },
  };`;
  assert.match(
    one(late, post("/", ["abc"])).logs[0],
    /^\[info\] TypeError: cannot read the request body: the request headers were already sent on, so its body is streaming/,
  );
});

test.run();
