// The stream state machine through the native host stub: hooks, sync/async paths, ordering,
// whole-body reads, local replies, late writes.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { one, get, post, replay } from "../lib/wasm.mjs";

const sleep = "const sleep = (ms) => new Promise((r) => setTimeout(r, ms));\n";

test("a sync onRequest that settles at once costs no stop", () => {
  const t = one(`export default { onRequest(req) { req.headers.set("x-a", "1"); } };`, get("/x"));
  assert.equal(t.events[0], "onRequestHeaders -> Continue");
  assert.equal(t.upstreamRequest.headers["x-a"], "1");
  assert.not.ok(t.events.some((e) => e.startsWith("continue")));
});

test("an async hook that settles during the job drain still costs no stop", () => {
  const t = one(
    `export default { async onRequest(req) { await null; await Promise.resolve(); req.headers.set("x-a", "2"); } };`,
    get("/x"),
  );
  assert.equal(t.events[0], "onRequestHeaders -> Continue");
  assert.equal(t.upstreamRequest.headers["x-a"], "2");
});

test("every hook runs once, in Envoy's order, and sees its message", () => {
  const src = `
    export default {
      onRequest(req, ctx) { ctx.log.info("onRequest", req.method, req.path, req.authority, req.scheme); },
      onRequestData(c, ctx) { ctx.log.info("onRequestData", c.text(), c.endOfStream, c.size); },
      onRequestTrailers(t, ctx) { ctx.log.info("onRequestTrailers", t.get("x-rt")); },
      onResponse(res, ctx) { ctx.log.info("onResponse", res.status, res.headers.get("server")); },
      onResponseData(c, ctx) { ctx.log.info("onResponseData", c.text(), c.endOfStream); },
      onResponseTrailers(t, ctx) { ctx.log.info("onResponseTrailers", t.get("grpc-status")); },
      onDone(ctx) { ctx.log.info("onDone", ctx.aborted); },
    };`;
  const t = one(src, {
    ...post("/p", ["a", "bc"], {}, { "x-rt": "t" }),
    upstream: { headers: { ":status": "201", server: "up" }, body: ["r1"], trailers: { "grpc-status": "0" } },
  });
  assert.equal(t.logs, [
    "[info] onRequest POST /p example.com http",
    "[info] onRequestData a false 1",
    "[info] onRequestData bc false 2",
    "[info] onRequestTrailers t",
    "[info] onResponse 201 up",
    "[info] onResponseData r1 false",
    "[info] onResponseTrailers 0",
    "[info] onDone false",
  ]);
  assert.equal(t.downstreamResponse.trailers, { "grpc-status": "0" });
});

test("a pending hook stops the stream; data and trailers are held in order and the stream resumes once", () => {
  const src =
    sleep +
    `
    export default {
      async onRequest(req, ctx) { ctx.log.info("start"); await sleep(20); req.headers.set("x-late", "ok"); ctx.log.info("end"); },
      onRequestData(c, ctx) { ctx.log.info("data " + c.text()); c.append("!"); },
      onRequestTrailers(t, ctx) { ctx.log.info("trailers"); t.set("x-t", "2"); },
    };`;
  const t = one(src, post("/p", ["one", "two"], { "content-length": "6" }, { "x-t": "1" }));
  assert.equal(t.logs, ["[info] start", "[info] end", "[info] data one", "[info] data two", "[info] trailers"]);
  assert.equal(t.events.slice(0, 4), [
    "onRequestHeaders -> StopIteration",
    // The held data waits in Envoy's buffer under its flow control, not in a runtime queue.
    "onRequestData -> StopIterationAndWatermark",
    "onRequestData -> StopIterationAndWatermark",
    "onRequestTrailers -> StopIteration",
  ]);
  assert.equal(t.events.filter((e) => e === "continue request").length, 1);
  assert.equal(t.upstreamRequest.headers["x-late"], "ok");
  assert.equal(t.upstreamRequest.body, "one!two!");
  assert.equal(t.upstreamRequest.trailers, { "x-t": "2" });
  // The body grew while the headers were held: content-length follows it.
  assert.equal(t.upstreamRequest.headers["content-length"], "8");
});

test("data held behind a pending hook is not limited by buffer_limit_bytes: no 413, each chunk edited in place", () => {
  const src =
    sleep +
    `
    export default {
      async onRequest(req, ctx) { await sleep(5); },
      async onRequestData(c, ctx) { ctx.log.info(c.size + " " + c.endOfStream); await sleep(1); c.replace(c.text().toUpperCase()); },
    };`;
  const t = one(src, post("/p", ["abcd", "efgh", "ij"]), { settings: { buffer_limit_bytes: 6 } });
  assert.is(t.localReply, null);
  assert.equal(t.errors, []);
  assert.equal(t.logs, ["[info] 4 false", "[info] 4 false", "[info] 2 true"]);
  assert.equal(t.events.slice(0, 4), [
    "onRequestHeaders -> StopIteration",
    "onRequestData -> StopIterationAndWatermark",
    "onRequestData -> StopIterationAndWatermark",
    "onRequestData -> StopIterationAndWatermark",
  ]);
  assert.equal(t.upstreamRequest.body, "ABCDEFGHIJ");
});

test("past Envoy's own buffer limit, held data gets Envoy's flow control, not a failure", () => {
  const src =
    sleep +
    `
    export default {
      async onRequest(req, ctx) { await sleep(5); },
      onRequestData(c, ctx) { ctx.log.info(c.size + " " + c.endOfStream); },
    };`;
  const big = "x".repeat(700 * 1024);
  const t = one(src, post("/p", [big, big, "end"]));
  assert.is(t.localReply, null);
  assert.equal(t.logs, [`[info] ${big.length} false`, `[info] ${big.length} false`, "[info] 3 true"]);
  assert.equal(t.events.slice(0, 5), [
    "onRequestHeaders -> StopIteration",
    "onRequestData -> StopIterationAndWatermark",
    "onRequestData -> StopIterationAndWatermark",
    "request buffer above high watermark: flow control",
    "onRequestData -> StopIterationAndWatermark",
  ]);
  assert.ok(t.events.includes("request buffer below low watermark"));
  assert.is(t.upstreamRequest.body.length, 2 * big.length + 3);
});

test("without data hooks, data held behind a pending hook is buffered with watermarks", () => {
  const src = sleep + `export default { async onRequest(req) { await sleep(5); } };`;
  const t = one(src, post("/p", ["a", "b"]));
  assert.equal(t.events[1], "onRequestData -> StopIterationAndWatermark");
  assert.equal(t.upstreamRequest.body, "ab");
});

test("an async data hook holds later chunks and keeps their order", () => {
  const src =
    sleep +
    `
    export default {
      async onRequestData(c, ctx) { const s = c.text(); await sleep(s === "slow" ? 30 : 1); c.replace("[" + s + "]"); },
    };`;
  const t = one(src, post("/p", ["slow", "fast", "x"]));
  assert.equal(t.upstreamRequest.body, "[slow][fast][x]");
});

test("whole-body read holds the request until end of stream and data hooks do not see that data", () => {
  const src = `
    export default {
      async onRequest(req, ctx) {
        const body = await req.body.json();
        req.headers.set("x-name", body.name);
        req.body.replace(JSON.stringify({ ...body, secret: "[redacted]" }));
      },
      onRequestData(c, ctx) { ctx.log.info("data hook saw " + c.text()); },
    };`;
  const t = one(src, post("/p", ['{"name":"ann",', '"secret":"s3cret"}'], { "content-length": "32" }));
  assert.equal(t.upstreamRequest.headers["x-name"], "ann");
  assert.equal(JSON.parse(t.upstreamRequest.body), { name: "ann", secret: "[redacted]" });
  assert.equal(t.upstreamRequest.headers["content-length"], String(t.upstreamRequest.body.length));
  assert.equal(t.logs, []);
  assert.equal(t.events.slice(0, 3), [
    "onRequestHeaders -> StopIteration",
    "onRequestData -> StopIterationAndBuffer",
    "onRequestData -> Continue",
  ]);
});

test("a body read on a request without a body resolves empty", () => {
  const t = one(
    `export default { async onRequest(req, ctx) { ctx.log.info("[" + (await req.body.text()) + "]"); } };`,
    get("/"),
  );
  assert.equal(t.logs, ["[info] []"]);
  assert.ok(t.upstreamRequest);
});

test("bytes() gives a Uint8Array and json() rejects invalid JSON into the failure policy", () => {
  const ok = one(
    `export default { async onRequest(req, ctx) { const b = await req.body.bytes(); ctx.log.info(b instanceof Uint8Array, b.length, b[0]); } };`,
    post("/", ["AB"]),
  );
  assert.equal(ok.logs, ["[info] true 2 65"]);
  const bad = one(`export default { async onRequest(req) { await req.body.json(); } };`, post("/", ["{nope"]));
  assert.equal(bad.localReply.status, 500);
  assert.match(bad.errors[0], /SyntaxError/);
});

test("a body over buffer_limit_bytes gets 413 on the request side", () => {
  const t = one(`export default { async onRequest(req) { await req.body.text(); } };`, post("/", ["12345", "67890"]), {
    settings: { buffer_limit_bytes: 8 },
  });
  assert.equal(t.localReply.status, 413);
  assert.equal(t.localReply.details, "envoy_js_request_body_too_large");
  assert.is(t.upstreamRequest, null);
});

test("a response body over buffer_limit_bytes gets 500", () => {
  const t = one(
    `export default { async onResponse(res) { await res.body.text(); } };`,
    {
      ...get("/"),
      upstream: { headers: { ":status": "200" }, body: ["12345", "67890"] },
    },
    { settings: { buffer_limit_bytes: 8 } },
  );
  assert.equal(t.localReply.status, 500);
  assert.equal(t.localReply.details, "envoy_js_response_body_too_large");
  assert.is(t.downstreamResponse, null);
});

test("local reply from the request side: body, headers, details; nothing reaches upstream", () => {
  const t = one(
    `export default { onRequest(req, ctx) { return ctx.respond(403, { body: "no", headers: { "x-why": "policy", "set-cookie": ["a=1", "b=2"] }, details: "denied by policy" }); } };`,
    get("/"),
  );
  // (Envoy adds content-type: text/plain to a reply with a body and none of its own.)
  assert.equal(t.localReply, {
    status: 403,
    body: "no",
    headers: { "x-why": "policy", "set-cookie": ["a=1", "b=2"], "content-type": "text/plain" },
    details: "denied_by_policy",
  });
  assert.is(t.upstreamRequest, null);
  assert.is(t.downstreamResponse, null);
});

test("local reply from an async request hook", () => {
  const t = one(
    sleep + `export default { async onRequest(req, ctx) { await sleep(3); return ctx.respond(429); } };`,
    get("/"),
  );
  assert.equal(t.localReply.status, 429);
  assert.is(t.upstreamRequest, null);
});

test("local reply from the response side replaces the upstream response", () => {
  const t = one(
    `export default { onResponse(res, ctx) { if (res.status >= 500) return ctx.respond(502, { body: "bad upstream" }); } };`,
    {
      ...get("/"),
      upstream: { headers: { ":status": "503" }, body: ["oops"] },
    },
  );
  assert.ok(t.upstreamRequest);
  assert.equal(t.localReply.status, 502);
  assert.equal(t.localReply.body, "bad upstream");
  assert.is(t.downstreamResponse, null);
});

test("respond() validates its status", () => {
  const t = one(`export default { onRequest(req, ctx) { return ctx.respond(99); } };`, get("/"));
  assert.equal(t.localReply.status, 500);
  assert.match(t.errors[0], /RangeError: respond\(status\)/);
});

test("late header writes throw a TypeError that says why", () => {
  const src =
    sleep +
    `
    let saved;
    export default {
      onRequest(req, ctx) { saved = req.headers; },
      async onResponse(res, ctx) {
        try { saved.set("x-late", "1"); } catch (e) { ctx.log.info(e.name + ": " + e.message); }
        ctx.log.info("read still works: " + saved.get(":path"));
      },
    };`;
  const t = one(src, get("/p"));
  assert.match(t.logs[0], /^\[info\] TypeError: request headers were already sent on/);
  assert.equal(t.logs[1], "[info] read still works: /p");
  assert.not.ok("x-late" in t.upstreamRequest.headers);
});

test("headers: get joins repeats, getAll, has, append, delete, entries and case-insensitivity", () => {
  const src = `
    export default { onRequest(req, ctx) {
      const h = req.headers;
      ctx.log.info(h.get("X-Multi"), JSON.stringify(h.getAll("x-multi")), h.has("X-MULTI"), h.get("absent"));
      h.append("x-multi", "c"); h.delete("x-gone"); h.set("X-New", "v");
      ctx.log.info(JSON.stringify([...h.entries()].filter(([k]) => k.startsWith("x-"))));
      try { h.set("bad name", "v"); } catch (e) { ctx.log.info(e.name); }
      try { h.set("x-ok", "a\\r\\nb"); } catch (e) { ctx.log.info(e.name); }
    } };`;
  const t = one(src, get("/", { "x-multi": ["a", "b"], "x-gone": "1" }));
  assert.equal(t.logs[0], '[info] a, b ["a","b"] true null');
  assert.equal(t.logs[1], '[info] [["x-multi","a"],["x-multi","b"],["x-multi","c"],["x-new","v"]]');
  assert.equal(t.logs.slice(2), ["[info] TypeError", "[info] TypeError"]);
  assert.equal(t.upstreamRequest.headers["x-multi"], ["a", "b", "c"]);
});

test("streaming chunk edits: replace, append, prepend, clear; content-length dropped when a data hook may change it", () => {
  const src = `export default {
    onResponseData(c) { const s = c.text(); if (s === "drop") c.clear(); else { c.prepend("<"); c.append(">"); c.replace(c.text().toUpperCase()); } },
  };`;
  const t = one(src, {
    ...get("/"),
    upstream: { headers: { ":status": "200", "content-length": "9" }, body: ["ab", "drop", "cde"] },
  });
  assert.equal(t.downstreamResponse.body, "<AB><CDE>");
  assert.not.ok("content-length" in t.downstreamResponse.headers);
});

test("a chunk used after its hook settled throws instead of touching gone memory", () => {
  const src =
    sleep +
    `
    let kept;
    export default {
      onRequestData(c) { kept = c; },
      async onResponse(res, ctx) { try { kept.text(); } catch (e) { ctx.log.info(e.name + ": " + e.message.slice(0, 40)); } },
    };`;
  const t = one(src, post("/", ["x"]));
  assert.match(t.logs[0], /TypeError: this request chunk (was already passed on|is no longer available)/);
});

test("binary chunks round-trip through bytes() and Uint8Array replace", () => {
  const src = `export default { onRequestData(c) { const b = c.bytes(); c.replace(b.map((x) => x ^ 0x20)); } };`;
  const t = one(src, post("/", ["aBc"]));
  assert.equal(t.upstreamRequest.body, "AbC");
});

test("ctx.config, ctx.worker from setup, and globals", () => {
  const src = `
    export default {
      setup(config, worker) { return { greeting: "hi " + config.who, worker: worker.index }; },
      onRequest(req, ctx) {
        const enc = new TextEncoder().encode("é"); const dec = new TextDecoder().decode(enc);
        queueMicrotask(() => ctx.log.info("microtask"));
        ctx.log.info(ctx.worker.greeting, ctx.worker.worker, ctx.config.who, enc.length, dec, typeof performance.now());
      },
    };`;
  const t = one(src, get("/"), { config: { who: "bob" } });
  assert.equal(t.logs, ["[info] hi bob 0 bob 2 é number", "[info] microtask"]);
});

test("many streams on one engine stay independent", () => {
  const src =
    sleep +
    `let n = 0; export default { async onRequest(req, ctx) { const me = ++n; await sleep(5 - me); req.headers.set("x-n", String(me)); } };`;
  const t = replay(src, { streams: [get("/1"), get("/2"), get("/3")] });
  assert.equal(
    t.streams.map((s) => s.upstreamRequest.headers["x-n"]),
    ["1", "2", "3"],
  );
});

test("a second whole-body read after the first completed resolves from the held body", () => {
  const src = `export default { async onRequest(req, ctx) {
    let v;
    try { v = await req.body.json(); } catch { v = "text:" + (await req.body.text()); }
    ctx.log.info(v);
  } };`;
  const t = one(src, post("/", ["not ", "json"]));
  assert.equal(t.logs, ["[info] text:not json"]);
  assert.equal(t.upstreamRequest.body, "not json");
});

test("respond() from a job after the hook settled, or from the stream's timer, is sent at once", () => {
  const fromJob = one(
    `export default { onRequest(req, ctx) { Promise.resolve().then(() => ctx.respond(418)); } };`,
    get("/"),
  );
  assert.equal(fromJob.localReply.status, 418);
  assert.is(fromJob.upstreamRequest, null);
  const fromTimer = one(
    `export default { async onRequest(req, ctx) {
    setTimeout(() => ctx.respond(503, { body: "late" }), 5);
    await new Promise((r) => setTimeout(r, 10));
  } };`,
    get("/"),
  );
  assert.equal(fromTimer.localReply.status, 503);
  assert.is(fromTimer.upstreamRequest, null);
});

test("a hook declared with one parameter gets no ctx; other shapes (rest, two, onDone) get it", () => {
  const src = `
    export default {
      onRequest(req) { req.headers.set("x-args", String(arguments.length)); },
      onRequestData(chunk, ctx) { chunk.append(typeof ctx.respond); },
      onResponse(...args) { args[0].headers.set("x-args", args.length + ":" + typeof args[1].respond); },
      onDone(ctx) { ctx.log.info("onDone", typeof ctx.respond); },
    };`;
  const t = one(src, { ...post("/p", ["a"]), upstream: { headers: { ":status": "200" } } });
  assert.equal(t.upstreamRequest.headers["x-args"], "1");
  assert.equal(t.upstreamRequest.body, "afunction");
  assert.equal(t.downstreamResponse.headers["x-args"], "2:function");
  assert.equal(t.logs, ["[info] onDone function"]);
});

test("an async one-parameter hook that stays pending still resumes the stream", () => {
  const t = one(
    `${sleep}export default { async onRequest(req) { await sleep(5); req.headers.set("x-late", "1"); } };`,
    get("/x"),
  );
  assert.equal(t.events[0], "onRequestHeaders -> StopIteration");
  assert.ok(t.events.some((e) => e.startsWith("continue")));
  assert.equal(t.upstreamRequest.headers["x-late"], "1");
});

test("req.headers becomes an own read-only, non-enumerable property on first read; a frozen request still reads it", () => {
  // Assigning stays refused, before and after the first read (modules are strict code).
  for (const body of ["req.headers = null;", "req.headers; req.headers = null;"]) {
    const t = one(`export default { onRequest(req) { ${body} } };`, get("/x"));
    assert.equal(t.localReply?.status, 500, body);
    assert.match(t.errors[0], /^TypeError/);
  }
  const src2 = `
    export default {
      onRequest(req) {
        const before = Object.getOwnPropertyNames(req).length;
        const same = req.headers === req.headers;
        const d = Object.getOwnPropertyDescriptor(req, "headers");
        req.headers.set("x-own", [before, same, d.writable, d.enumerable, d.configurable, Object.keys(req).length].join(","));
      },
      onResponse(res) {
        Object.freeze(res);
        res.headers.set("x-same", String(res.headers === res.headers));
      },
    };`;
  const t2 = one(src2, { ...get("/x"), upstream: { headers: { ":status": "200" } } });
  assert.equal(t2.upstreamRequest.headers["x-own"], "0,true,false,false,false,0");
  assert.equal(t2.downstreamResponse.headers["x-same"], "true");
});

// A held chunk is a window of the host's buffered body; a whole-body read may shrink that
// buffer under it. The window is clamped to what is there instead of reading or writing past it.
test("a held chunk whose buffer a whole-body replace shrank reads and edits what is left", () => {
  const src =
    sleep +
    `
    export default {
      async onRequest(req) { globalThis.r = req; await sleep(2); },
      async onRequestData(c, ctx) {
        await globalThis.r.body.text();
        globalThis.r.body.replace("x");
        ctx.log.info(c.size, c.text());
        c.append("zz");
        ctx.log.info(c.size, c.text());
      },
    };`;
  const t = one(src, post("/p", ["abcdef", "gh"]));
  assert.equal(t.errors, []);
  assert.equal(t.logs, ["[info] 1 x", "[info] 3 xzz"]);
});

// ---- issue 16: a body for a body-less message, the own local reply through the own response
// hooks, content-length kept by data hooks that keep the size.

test("a request that came without a body can be given one; content-length follows it", () => {
  const src = `export default { async onRequest(req, ctx) {
    const before = await req.body.text();
    if (req.headers.get("x-wait")) await new Promise((r) => setTimeout(r, 3));
    req.body.replace("foo!");
    ctx.log.info("[" + before + "]");
  } };`;
  for (const wait of [undefined, "1"]) {
    const t = one(src, get("/", wait ? { "x-wait": wait } : {}));
    assert.equal(t.errors, []);
    assert.equal(t.logs, ["[info] []"]);
    assert.equal(t.upstreamRequest.body, "foo!");
    assert.equal(t.upstreamRequest.headers["content-length"], "4");
  }
  // A content-length the filter set itself is corrected to the body's size.
  const own = one(
    `export default { async onRequest(req) { await req.body.text(); req.body.replace("abc"); req.headers.set("content-length", "9"); } };`,
    get("/"),
  );
  assert.equal(own.upstreamRequest.body, "abc");
  assert.equal(own.upstreamRequest.headers["content-length"], "3");
});

test("a response that came without a body can be given one", () => {
  const t = one(
    `export default { async onResponse(res) { await res.body.text(); res.body.replace(JSON.stringify({ status: res.status })); } };`,
    { ...get("/"), upstream: { headers: { ":status": "200", "content-length": "0" } } },
  );
  assert.equal(t.downstreamResponse.body, '{"status":200}');
  assert.equal(t.downstreamResponse.headers["content-length"], "14");
});

const OWN_REPLY = `
export default {
  onRequest(req, ctx) {
    if (req.path === "/deny") return ctx.respond(401, { body: "no", headers: { "x-why": "auth" } });
  },
  onResponse(res, ctx) {
    res.headers.set("x-cors", "*");
    ctx.log.info("onResponse " + res.status);
    if (res.headers.get("x-why") && ctx.config.again) return ctx.respond(500);
    if (res.headers.get("x-why") && ctx.config.fail) throw new Error("boom");
  },
  onResponseData(chunk, ctx) {
    ctx.log.info("onResponseData " + chunk.text());
    chunk.replace("[" + chunk.text() + "]");
  },
};`;

test("the filter's own local reply from the request phase runs its own onResponse and onResponseData", () => {
  const t = one(OWN_REPLY, get("/deny"));
  assert.equal(t.logs, ["[info] onResponse 401", "[info] onResponseData no"]);
  assert.is(t.upstreamRequest, null);
  // The transcript shows what the client received: the reply as the hooks left it.
  assert.equal(t.localReply.status, 401);
  assert.equal(t.localReply.body, "[no]");
  assert.equal(t.localReply.headers["x-cors"], "*");
  assert.equal(t.localReply.headers["x-why"], "auth");
  assert.equal(t.errors, []);
});

test("respond() or a throw in the response hooks of the own local reply: the reply goes on, the error is logged", () => {
  for (const config of [{ again: true }, { fail: true }]) {
    const t = one(OWN_REPLY, get("/deny"), { config });
    assert.equal(t.localReply.status, 401);
    assert.equal(t.localReply.body, "[no]");
    assert.equal(t.errors.length, 1);
    assert.match(
      t.errors[0],
      config.again ? /respond\(\) in a response hook of this filter's own local reply/ : /boom/,
    );
    assert.equal(t.counters["envoy_js.errors"], 1);
  }
});

test("a local reply from the response phase does not run the response hooks again", () => {
  const t = one(
    `export default {
      onResponse(res, ctx) { ctx.log.info("onResponse " + res.status); if (res.status === 503) return ctx.respond(502, { body: "bad" }); },
      onResponseData(c, ctx) { ctx.log.info("data " + c.text()); },
    };`,
    { ...get("/"), upstream: { headers: { ":status": "503" }, body: ["oops"] } },
  );
  assert.equal(t.logs, ["[info] onResponse 503"]);
  assert.equal(t.localReply.status, 502);
  assert.equal(t.localReply.body, "bad");
});

test("a data hook that only reads keeps content-length, both ways", () => {
  const src = `export default {
    onRequestData(c, ctx) { ctx.log.info("request " + c.size); },
    onResponseData(c, ctx) { ctx.log.info("response " + c.text()); },
  };`;
  const t = one(src, {
    ...post("/p", ["abc", "de"], { "content-length": "5" }),
    upstream: { headers: { ":status": "200", "content-length": "5" }, body: ["hel", "lo"] },
  });
  assert.equal(t.upstreamRequest.headers["content-length"], "5");
  assert.equal(t.upstreamRequest.body, "abcde");
  assert.equal(t.downstreamResponse.headers["content-length"], "5");
  assert.equal(t.downstreamResponse.body, "hello");
  assert.equal(t.logs, ["[info] request 3", "[info] request 2", "[info] response hel", "[info] response lo"]);
});

test("content-length follows a data hook that changes the size of a body in one piece", () => {
  const t = one(`export default { onResponseData(c) { c.replace(c.text() + "!!"); } };`, {
    ...get("/"),
    upstream: { headers: { ":status": "200", "content-length": "5" }, body: ["hello"] },
  });
  assert.equal(t.downstreamResponse.body, "hello!!");
  assert.equal(t.downstreamResponse.headers["content-length"], "7");
});

test("content-length follows a data hook when the data is all that content-length announced (HTTP/1.1 ends with an empty chunk)", () => {
  const t = one(`export default { onResponseData(c) { if (c.size) c.replace(c.text() + "!!"); } };`, {
    ...get("/"),
    upstream: { headers: { ":status": "200", "content-length": "4" }, body: ["grow", ""] },
  });
  assert.equal(t.downstreamResponse.body, "grow!!");
  assert.equal(t.downstreamResponse.headers["content-length"], "6");
});

test("once content-length went on unchanged, a chunk that would change size throws a TypeError that says what to do", () => {
  const src = `export default {
    onResponse(res) { if (res.headers.get("x-resize")) res.headers.delete("content-length"); },
    onResponseData(c, ctx) {
      if (c.text() !== "lo") return;
      try { c.append("!"); } catch (e) { ctx.log.info(e.name + ": " + e.message); }
      c.replace("LO");
    },
  };`;
  const upstream = (extra) => ({
    ...get("/"),
    upstream: { headers: { ":status": "200", "content-length": "5", ...extra }, body: ["hel", "lo"] },
  });
  const kept = one(src, upstream({}));
  assert.match(kept.logs[0], /^\[info\] TypeError: this response chunk cannot change size: content-length went on/);
  assert.match(kept.logs[0], /delete content-length in onResponse/);
  assert.equal(kept.downstreamResponse.body, "helLO");
  assert.equal(kept.downstreamResponse.headers["content-length"], "5");
  // Without content-length the body streams and chunks change size freely.
  const resized = one(src, upstream({ "x-resize": "1" }));
  assert.equal(resized.logs, []);
  assert.equal(resized.downstreamResponse.body, "helLO");
  assert.not.ok("content-length" in resized.downstreamResponse.headers);
});

// ---- chunk.addTrailers() ------------------------------------------------------------------

test("chunk.addTrailers() on the last response chunk sends trailers after the body", () => {
  const src = `
    let size = 0;
    export default {
      onResponseData(chunk) {
        size += chunk.size;
        if (chunk.endOfStream) {
          const t = chunk.addTrailers();
          t.set("x-body-bytes", String(size));
          if (chunk.addTrailers() !== t) throw new Error("a second call gave other trailers");
        }
      },
    };`;
  const t = one(src, { ...get("/"), upstream: { headers: { ":status": "200" }, body: ["abc", "de"] } });
  assert.equal(t.downstreamResponse.body, "abcde");
  assert.equal(t.downstreamResponse.trailers, { "x-body-bytes": "5" });
  assert.ok(t.events.includes("response trailers added by the filter"));
  assert.equal(t.errors, []);
});

test("trailers added before an await follow the held body when the request resumes", () => {
  const src =
    sleep +
    `
    export default {
      async onRequestData(chunk) {
        if (!chunk.endOfStream) return;
        chunk.addTrailers().set("x-sum", "1");
        await sleep(5);
        chunk.append("!");
      },
    };`;
  const t = one(src, post("/p", ["a", "b"]));
  assert.equal(t.upstreamRequest.body, "ab!");
  assert.equal(t.upstreamRequest.trailers, { "x-sum": "1" });
  assert.equal(t.errors, []);
});

test("chunk.addTrailers() is refused, with the reason, where Envoy cannot add trailers", () => {
  const src =
    sleep +
    `
    const attempt = (ctx, where, f) => { try { f(); ctx.log.info(where + ": added"); } catch (e) { ctx.log.info(where + ": " + e.constructor.name + ": " + e.message); } };
    export default {
      async onRequestData(chunk, ctx) {
        attempt(ctx, "request chunk " + chunk.text(), () => chunk.addTrailers());
      },
      async onResponseData(chunk, ctx) {
        await sleep(1);
        attempt(ctx, "after await", () => chunk.addTrailers());
      },
    };`;
  const t = one(src, {
    ...post("/p", ["a"], {}, { "x-own": "1" }),
    upstream: { headers: { ":status": "200" }, body: ["r"] },
  });
  assert.match(
    t.logs[0],
    /^\[info\] request chunk a: TypeError: chunk.addTrailers\(\): only the last chunk of the request/,
  );
  assert.match(t.logs[1], /^\[info\] after await: TypeError: chunk.addTrailers\(\): Envoy adds trailers only while/);
  assert.equal(t.upstreamRequest.trailers, { "x-own": "1" });
  assert.equal(t.downstreamResponse.trailers, null);
  assert.equal(t.errors, []);
});

test("added trailers can no longer be changed once the hook returned", () => {
  const src = `
    let kept;
    export default {
      onResponseData(chunk) { if (chunk.endOfStream) { kept = chunk.addTrailers(); kept.set("x-a", "1"); } },
      onDone(ctx) { try { kept.set("x-b", "2"); } catch (e) { ctx.log.info(e.message); } },
    };`;
  const t = one(src, { ...get("/"), upstream: { headers: { ":status": "200" }, body: ["x"] } });
  assert.equal(t.downstreamResponse.trailers, { "x-a": "1" });
  assert.match(t.logs[0], /response trailers were already sent on/);
});

test("ctx is one object per stream: state kept under it in onRequest is there in onResponse and onDone, not in another stream", () => {
  const src = `
    const paths = new WeakMap();
    let first = null;
    export default {
      onRequest(req, ctx) {
        paths.set(ctx, req.path);
        if (first === null) first = ctx;
        else ctx.log.info("shares the first stream's ctx:", first === ctx);
      },
      onRequestData(chunk) { chunk.append("!"); },
      onResponse(res, ctx) { res.headers.set("x-path", paths.get(ctx) ?? "lost"); },
      onDone(ctx) { ctx.log.info("done", paths.get(ctx) ?? "lost"); },
    };`;
  const answer = { upstream: { headers: { ":status": "200" } } };
  const t = replay(src, {
    streams: [
      { ...post("/a", ["x"]), ...answer },
      { ...get("/b"), ...answer },
    ],
  });
  const [a, b] = t.streams;
  assert.equal(a.downstreamResponse.headers["x-path"], "/a");
  assert.equal(a.logs, ["[info] done /a"]);
  assert.equal(b.downstreamResponse.headers["x-path"], "/b");
  assert.equal(b.logs, ["[info] shares the first stream's ctx: false", "[info] done /b"]);
});

test("chunk.hold() keeps the body in the host's buffer (StopIterationAndBuffer) until a data hook returns nothing", () => {
  const src = `export default {
    onRequestData(c, ctx) { ctx.log.info(c.text(), c.size); if (c.text() < "c") return c.hold(); }
  };`;
  const t = one(src, post("/p", ["a", "b", "c", "d"]));
  assert.equal(t.errors, []);
  assert.equal(t.logs, ["[info] a 1", "[info] b 1", "[info] c 1", "[info] d 1"]);
  assert.equal(t.upstreamRequest.body, "abcd");
  assert.equal(
    t.events.filter((e) => e.startsWith("onRequestData")),
    [
      "onRequestData -> StopIterationAndBuffer",
      "onRequestData -> StopIterationAndBuffer",
      "onRequestData -> Continue",
      "onRequestData -> Continue",
    ],
  );
});

test("a held body ends with the trailers: they pass it on with them", () => {
  const t = one(
    `export default { onRequestData(c) { return c.hold(); } };`,
    post("/p", ["a", "b"], {}, { "x-t": "1" }),
  );
  assert.equal(t.errors, []);
  assert.equal(t.upstreamRequest.body, "ab");
  assert.equal(t.upstreamRequest.trailers, { "x-t": "1" });
});

test("a held body over buffer_limit_bytes gets the limit's 413; chunk.hold() elsewhere is a clear error", () => {
  const over = one(`export default { onRequestData(c) { return c.hold(); } };`, post("/p", ["abcd", "efgh", "i"]), {
    settings: { buffer_limit_bytes: 6 },
  });
  assert.equal(over.localReply?.status, 413);
  assert.equal(over.upstreamRequest?.body ?? "", "");

  const wrongHook = one(
    `let kept; export default { onRequestData(c) { kept = c; }, onResponse() { return kept.hold(); } };`,
    post("/p", ["a", "b"]),
  );
  assert.match(wrongHook.errors[0], /already passed on/);

  const last = one(`export default { onRequestData(c) { return c.hold(); } };`, post("/p", ["a"]));
  assert.match(last.errors[0], /chunk.hold\(\) on the last request chunk/);
  assert.equal(last.localReply?.status, 500);
});

// ---- chunk.addTrailers() ------------------------------------------------------------------

test.run();
