// Whatever a filter does, every stream ends: no hang (a second body read, a runaway
// continuation, infinite timer delays, 100,000 timers), no silent drop (a late ctx.respond(),
// a hook's stray return value), no leak (headers kept past their stream). Each test failed
// before the runtime fix it guards (found by the reliability work, test/reliability/).
import { test } from "uvu";
import * as assert from "uvu/assert";
import { one, get, post, replay } from "../lib/wasm.mjs";

const sleep = "const sleep = (ms) => new Promise((r) => setTimeout(r, ms));\n";

test("a second whole-body read after the first finished resolves from the buffer instead of hanging", () => {
  const src = `export default {
    async onRequest(req, ctx) {
      const first = await req.body.text();
      req.body.replace(first.toUpperCase());
      const second = await req.body.text();
      const bytes = await req.body.bytes();
      ctx.log.info(first, second, bytes.length);
    },
  };`;
  const t = one(src, post("/", ["ab", "c"]));
  assert.equal(t.logs, ["[info] abc ABC 3"]);
  assert.equal(t.upstreamRequest.body, "ABC");
  assert.not.ok(
    t.events.some((e) => e.startsWith("stalled")),
    t.events.join("\n"),
  );
});

test("failure_mode open: a timer that throws while a hook awaits is logged and the hook carries on", () => {
  const src =
    sleep +
    `export default {
    async onRequest(req, ctx) {
      setTimeout(() => { throw new Error("timer failure"); }, 1);
      await sleep(5);
      req.headers.set("x-after", "1");
    },
    async onRequestData(chunk) { setTimeout(() => { throw new Error("data timer failure"); }, 1); await sleep(5); chunk.append("!"); },
  };`;
  const t = one(src, post("/", ["a", "b"]), { settings: { failure_mode: "open" } });
  assert.not.ok(
    t.events.some((e) => e.startsWith("stalled")),
    t.events.join("\n"),
  );
  assert.is(t.localReply, null);
  assert.equal(t.upstreamRequest.headers["x-after"], "1", "the hook finished its work");
  assert.equal(t.upstreamRequest.body, "a!b!", "so did the data hooks");
  assert.match(t.errors[0], /in a timer callback: Error: timer failure/);
  assert.equal(t.counters["envoy_js.errors"], 3);
});

test("failure_mode open: a hook whose continuation runs away does not stall the stream", () => {
  const src = `export default {
    async onRequest(req) { await null; if (req.path === "/spin") for (;;) {} req.headers.set("x-ok", "1"); },
    async onRequestData(c) { await null; if (c.text() === "spin") for (;;) {} c.append("."); },
  };`;
  const settings = { failure_mode: "open", max_cpu_ms_per_event: 10 };
  for (const stream of [get("/spin"), post("/x", ["a", "spin", "b"])]) {
    const t = one(src, stream, { settings });
    assert.not.ok(
      t.events.some((e) => e.startsWith("stalled")),
      t.events.join("\n"),
    );
    assert.match(t.errors[0], /max_cpu_ms_per_event exceeded/);
    assert.ok(t.upstreamRequest, "the request went on");
    assert.is(t.localReply, null);
    assert.equal(t.counters["envoy_js.cpu_limit"], 1);
  }
  const t = one(src, post("/x", ["a", "spin", "b"]), { settings });
  assert.equal(t.upstreamRequest.body, "a.spinb.", "the runaway data hook passed its chunk on unchanged");
  // The same after a timer: the continuation is killed in the timer's job drain.
  const later = sleep + `export default { async onRequest(req) { await sleep(2); for (;;) {} } };`;
  const u = one(later, get("/"), { settings });
  assert.not.ok(
    u.events.some((e) => e.startsWith("stalled")),
    u.events.join("\n"),
  );
  assert.ok(u.upstreamRequest);
  assert.match(u.errors[0], /max_cpu_ms_per_event exceeded/);
});

test("ctx.respond() from a promise callback after the hook returned is sent, not silently dropped", () => {
  const src = `export default {
    onRequest(req, ctx) {
      if (req.path === "/micro") Promise.resolve().then(() => ctx.respond(401, { body: "later" }));
      if (req.path === "/body") req.body.text().then((b) => { if (b.includes("bad")) ctx.respond(400, { body: "checked" }); });
    },
  };`;
  const micro = one(src, get("/micro"));
  assert.equal(micro.localReply?.status, 401, micro.events.join("\n"));
  assert.equal(micro.localReply.body, "later");
  assert.is(micro.upstreamRequest, null, "the request must not reach the upstream");
  const body = one(src, post("/body", ["a", "bad"]));
  assert.equal(body.localReply?.status, 400, body.events.join("\n"));
  assert.is(body.upstreamRequest, null);
  const fine = one(src, post("/body", ["a", "good"]));
  assert.is(fine.localReply, null);
  assert.equal(fine.upstreamRequest.body, "agood");
});

test("a hook returning something other than nothing or ctx.respond(...) fails the stream instead of letting it through", () => {
  const src =
    sleep +
    `export default {
    async onRequest(req, ctx) {
      if (req.path === "/number") return 403;
      if (req.path === "/object") return { status: 403, body: "denied" };
      if (req.path === "/late") { await sleep(1); return "deny"; }
      if (req.path === "/null") return null;
      if (req.path === "/reply") return ctx.respond(401);
    },
    onResponseData(chunk) { return chunk.text(); },
  };`;
  for (const path of ["/number", "/object", "/late"]) {
    const t = one(src, get(path));
    assert.equal(t.localReply?.status, 500, path);
    assert.is(t.upstreamRequest, null, path + ": must not reach the upstream");
    assert.match(
      t.errors[0],
      /^TypeError: onRequest returned .*: a hook returns nothing \(to continue\) or the value of ctx\.respond\(\.\.\.\)/,
      path,
    );
  }
  assert.match(one(src, get("/number")).errors[0], /returned 403 \(a number\)/);
  assert.match(one(src, get("/object")).errors[0], /returned an object/);
  assert.ok(one(src, get("/null")).upstreamRequest, "null counts as nothing");
  assert.equal(one(src, get("/reply")).localReply.status, 401);
  const open = one(src, get("/number"), { settings: { failure_mode: "open" } });
  assert.ok(open.upstreamRequest, "failure_mode open logs and continues");
  const data = one(src, { ...get("/ok"), upstream: { headers: { ":status": "200" }, body: ["abc"] } });
  assert.ok(data.resetByFilter, "a data hook returning a value after the response started resets");
  assert.match(data.errors[0], /onResponseData returned/);
});

test("setTimeout/setInterval with an infinite or too large delay run as soon as possible instead of handing the host a non-finite delay", () => {
  const src = `export default {
    async onRequest(req, ctx) {
      await new Promise((r) => setTimeout(r, Infinity));
      await new Promise((r) => setTimeout(r, 2 ** 31));
      await new Promise((r) => { const id = setInterval(() => { clearInterval(id); r(); }, 1e300); });
      ctx.log.info("all fired");
    },
  };`;
  const t = one(src, get("/"));
  assert.not.ok(
    t.events.some((e) => e.startsWith("stalled")),
    t.events.join("\n"),
  );
  assert.equal(t.logs, ["[info] all fired"]);
  assert.ok(t.upstreamRequest);
});

test("scripted host: a hook may wait on 100,000 timers, and a stream's 100,000 timers are cancelled in linear time", () => {
  const src = `export default { async onRequest(req, ctx) {
    let fired = 0;
    await new Promise((resolve) => { for (let i = 0; i < 100000; i++) setTimeout(() => { if (++fired === 100000) resolve(); }, i % 7); });
    for (let i = 0; i < 100000; i++) setTimeout(() => {}, 1000);
    ctx.log.info("fired", fired);
  } };`;
  // Before: waiting gave up after 10,000 fires (a false "stalled"), and cancelling scanned
  // every pending timer per cancel (minutes for this stream).
  const t = one(src, get("/"), { settings: { max_cpu_ms_per_event: 20000 } });
  assert.equal(t.logs, ["[info] fired 100000"]);
  assert.not.ok(t.events.some((e) => e.startsWith("stalled")));
});

test("headers of a request kept past its stream: StreamGone, and nothing leaks (the engine tears down cleanly)", () => {
  // Before: the getter cached a new Headers object on the freed stream state; that object and
  // the state leaked, and quickjs's leak assertion aborted the process at engine teardown.
  const src = `let kept;
  export default { onRequest(req, ctx) {
    if (kept) for (const f of [() => kept.headers.get("x"), () => kept.headers.set("x", "1")]) {
      try { f(); } catch (e) { ctx.log.info(e.name); }
    }
    kept = req;
  } };`;
  const t = replay(src, { streams: [get("/1"), get("/2")] });
  assert.equal(t.streams[1].logs, ["[info] StreamGone", "[info] StreamGone"]);
});

test.run();
