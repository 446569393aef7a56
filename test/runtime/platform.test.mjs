// Platform APIs of DESIGN.md section 3 beyond headers and bodies: timers, metrics, dynamic
// metadata, filter state, stream info, clearRouteCache, crypto.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { one, get, post, replay } from "../lib/wasm.mjs";

test("setTimeout/clearTimeout/setInterval run on the host clock in order", () => {
  const src = `
    export default {
      async onRequest(req, ctx) {
        const seen = [];
        const cancelled = setTimeout(() => seen.push("never"), 5);
        clearTimeout(cancelled);
        await new Promise((resolve) => {
          let n = 0;
          const id = setInterval((tag) => { seen.push(tag + ++n); if (n === 3) { clearInterval(id); resolve(); } }, 10, "tick");
          setTimeout(() => seen.push("t15"), 15);
        });
        ctx.log.info(seen.join(","), performance.now());
      },
    };`;
  const t = one(src, get("/"));
  assert.equal(t.logs, ["[info] tick1,t15,tick2,tick3 30"]);
});

test("worker-level timers from setup keep running across streams", () => {
  const src = `
    let ticks = 0;
    export default {
      setup() { setInterval(() => ticks++, 10); return {}; },
      async onRequest(req, ctx) { await new Promise((r) => setTimeout(r, 26)); ctx.log.info("ticks " + ticks); },
    };`;
  const t = replay(src, { streams: [get("/a"), get("/b")] });
  assert.equal(t.streams[0].logs, ["[info] ticks 2"]);
  assert.equal(t.streams[1].logs, ["[info] ticks 5"]);
});

test("metrics declared statically: counters add, gauges set, histograms record", () => {
  const src = `
    export default {
      metrics: { requests: "counter", inflight: "gauge", latency: "histogram" },
      onRequest(req, ctx) {
        ctx.metrics.requests.inc(); ctx.metrics.requests.inc(2);
        ctx.metrics.inflight.set(7); ctx.metrics.latency.record(12.5);
        try { ctx.metrics.requests.set(1); } catch (e) { ctx.log.info(e.message); }
        try { ctx.metrics.requests.inc(-1); } catch (e) { ctx.log.info(e.name); }
        ctx.log.info(Object.keys(ctx.metrics).join(","), typeof ctx.metrics.nope);
      },
    };`;
  const t = replay(src, { streams: [get("/"), get("/")] });
  assert.equal(t.metrics, { requests: 6, inflight: 7, latency: [12.5, 12.5] });
  assert.equal(t.streams[0].logs, [
    "[info] metric `requests` is a counter: use inc(n)",
    "[info] RangeError",
    "[info] requests,inflight,latency undefined",
  ]);
});

test("dynamic metadata and filter state: read what the scenario set, write what others read", () => {
  const src = `
    export default {
      onRequest(req, ctx) {
        const tenant = ctx.metadata.get("envoy.filters.http.jwt_authn", "tenant");
        ctx.metadata.set("envoy-js", "decision", { allowed: true, tenant });
        ctx.filterState.set("envoy-js.user", "bob");
        ctx.log.info(JSON.stringify(tenant), String(ctx.metadata.get("x", "y")), ctx.filterState.get("upstream.tag"));
      },
    };`;
  const t = one(src, {
    ...get("/"),
    metadata: { "envoy.filters.http.jwt_authn": { tenant: { id: 42 } } },
    filterState: { "upstream.tag": "blue" },
  });
  assert.equal(t.logs, ['[info] {"id":42} undefined blue']);
  assert.equal(t.metadata["envoy-js"], { decision: { allowed: true, tenant: { id: 42 } } });
  assert.equal(t.filterState["envoy-js.user"], "bob");
});

test("dynamic metadata keeps JSON's data model: nested objects, arrays, null, booleans, numbers and strings round-trip", () => {
  const src = `
    const value = {
      user: { name: "bob", roles: ["admin", "ops"], level: 3, active: true, manager: null },
      "2": "integer-like keys first, as in JS", "a b": [], nested: [[{ deep: [0.5, -1e-7, 1e21] }]],
      text: 'quote " backslash \\\\ newline \\n \\u00e9 \\u{1F600}',
      when: new Date(0),   // toJSON() is called, as JSON.stringify does
      skipped: undefined,  // left out, as JSON.stringify does
    };
    export default {
      onRequest(req, ctx) {
        ctx.metadata.set("envoy-js", "value", value);
        for (const [k, v] of [["null", null], ["true", true], ["false", false], ["zero", 0], ["float", 0.1 + 0.2], ["empty", ""]]) ctx.metadata.set("envoy-js", k, v);
        const back = ctx.metadata.get("envoy-js", "value");
        ctx.log.info(JSON.stringify(back) === JSON.stringify(value), back !== ctx.metadata.get("envoy-js", "value"), Object.keys(back).join(","));
        ctx.log.info(JSON.stringify(["null", "true", "false", "zero", "float", "empty"].map((k) => ctx.metadata.get("envoy-js", k))));
      },
      onResponse(res, ctx) {
        ctx.log.info(JSON.stringify(ctx.metadata.get("envoy-js", "value").user), typeof ctx.metadata.get("envoy-js", "absent"));
      },
    };`;
  const t = one(src, get("/"));
  assert.equal(t.errors, []);
  assert.equal(t.logs, [
    "[info] true true 2,user,a b,nested,text,when",
    '[info] [null,true,false,0,0.30000000000000004,""]',
    '[info] {"name":"bob","roles":["admin","ops"],"level":3,"active":true,"manager":null} undefined',
  ]);
  assert.equal(t.metadata["envoy-js"].value, {
    user: { name: "bob", roles: ["admin", "ops"], level: 3, active: true, manager: null },
    2: "integer-like keys first, as in JS",
    "a b": [],
    nested: [[{ deep: [0.5, -1e-7, 1e21] }]],
    text: 'quote " backslash \\ newline \n \u00e9 \u{1F600}',
    when: "1970-01-01T00:00:00.000Z",
  });
  assert.equal(t.metadata["envoy-js"].null, null);
  assert.equal(t.metadata["envoy-js"].false, false);
});

test("metadata values that are not JSON data are a TypeError that says where: functions, symbols, BigInt, NaN, Infinity, undefined, cycles, too deep", () => {
  const src = `
    export default {
      onRequest(req, ctx) {
        const cycle = { list: [] };
        cycle.list.push(cycle);
        let deep = [];
        for (let i = 0; i < 70; i++) deep = [deep];
        const bad = [undefined, () => 1, Symbol("s"), 10n, NaN, -Infinity, [1, undefined], { f() {} }, { a: { "b c": [{ n: NaN }] } }, cycle, deep];
        for (const b of bad) {
          try { ctx.metadata.set("ns", "k", b); ctx.log.info("ok?!"); } catch (e) { ctx.log.info(e.name + ": " + e.message.split(": metadata values")[0]); }
        }
        ctx.log.info(String(ctx.metadata.get("ns", "k")));
      },
    };`;
  const t = one(src, get("/"));
  assert.equal(t.logs, [
    "[info] TypeError: metadata.set(): value is undefined",
    "[info] TypeError: metadata.set(): value is a function",
    "[info] TypeError: metadata.set(): value is a symbol",
    "[info] TypeError: metadata.set(): value is a BigInt",
    "[info] TypeError: metadata.set(): value is NaN",
    "[info] TypeError: metadata.set(): value is an infinite number",
    "[info] TypeError: metadata.set(): value[1] is undefined",
    "[info] TypeError: metadata.set(): value.f is a function",
    '[info] TypeError: metadata.set(): value.a["b c"][0].n is NaN',
    "[info] TypeError: metadata.set(): value.list[0] is an object that contains itself (a cycle)",
    "[info] TypeError: metadata.set(): value[0][0][0][0][0][0][0][0][0][0][0]...[0][0][0][0][0][0][0][0][0][0][0][0] is nested too deep (more than 64 levels)",
    "[info] undefined",
  ]);
  assert.equal(t.metadata, {});
});

test("ctx.stream describes the stream; it is read-only", () => {
  const src = `
    export default { onRequest(req, ctx) {
      const s = ctx.stream;
      ctx.log.info(s.id, s.protocol, s.remoteAddress, s.localAddress, s.routeName, s.workerIndex, Object.isFrozen(s));
    } };`;
  const t = one(src, {
    ...get("/"),
    stream: { id: "abc", protocol: "HTTP/2", remoteAddress: "10.0.0.1:1234", routeName: "r1" },
  });
  assert.equal(t.logs, ["[info] abc HTTP/2 10.0.0.1:1234 127.0.0.1:10000 r1 0 true"]);
});

test("clearRouteCache in onRequest reaches the host; later it throws", () => {
  const src = `
    export default {
      onRequest(req, ctx) { req.headers.set("x-canary", "1"); ctx.clearRouteCache(); },
      onResponse(res, ctx) { try { ctx.clearRouteCache(); } catch (e) { ctx.log.info(e.name); } },
    };`;
  const t = one(src, get("/"));
  assert.equal(t.routeCacheClears, 1);
  assert.ok(t.events.indexOf("clearRouteCache") < t.events.indexOf("onRequestHeaders -> Continue"));
  assert.equal(t.logs, ["[info] TypeError"]);
});

test("crypto.getRandomValues fills integer arrays; randomUUID is a v4 UUID", () => {
  const src = `
    export default { onRequest(req, ctx) {
      const a = crypto.getRandomValues(new Uint8Array(64));
      const b = crypto.getRandomValues(new Uint32Array(4));
      const u = crypto.randomUUID();
      let bad = "";
      try { crypto.getRandomValues(new Float64Array(2)); } catch (e) { bad = e.name; }
      ctx.log.info(a.some((x) => x !== 0), b.length, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(u), u !== crypto.randomUUID(), bad);
    } };`;
  const t = one(src, get("/"));
  assert.equal(t.logs, ["[info] true 4 true true TypeError"]);
});

const authz = `
  export default {
    async onRequest(req, ctx) {
      let r;
      try {
        r = await ctx.fetch("authz", { method: "post", path: "/check", headers: { "X-Token": req.headers.get("x-token") ?? "" }, body: req.path, timeoutMs: 50 });
      } catch (e) {
        ctx.log.info(e.name + " " + e.code);
        return ctx.respond(503, { body: e.code });
      }
      if (r.status !== 200) return ctx.respond(403);
      const info = await r.json();
      req.headers.set("x-user", r.headers.get("X-User") ?? "?");
      req.headers.set("x-role", info.role);
      ctx.log.info(String(r.headers.has("x-user")), JSON.stringify(r.headers.getAll("x-user")), (await r.text()).length, (await r.bytes()).length);
    },
  };`;

test("fetch: a callout to a cluster resolves with status, headers and body; the request waits for it", () => {
  const t = one(authz, {
    ...get("/orders", { "x-token": "t1" }),
    clusters: { authz: { headers: { ":status": "200", "x-user": "bob" }, body: '{"role":"admin"}', delayMs: 5 } },
  });
  assert.equal(t.callouts, [
    {
      cluster: "authz",
      headers: { ":method": "POST", ":path": "/check", ":authority": "authz", "x-token": "t1", "content-length": "7" },
      body: "/orders",
    },
  ]);
  assert.equal(t.upstreamRequest.headers["x-user"], "bob");
  assert.equal(t.upstreamRequest.headers["x-role"], "admin");
  assert.equal(t.logs, ['[info] true ["bob"] 16 16']);
  assert.equal(t.events[0], "callout authz POST /check");
  assert.equal(t.events[1], "onRequestHeaders -> StopIteration");
});

test("fetch: a non-200 answer lets the filter deny", () => {
  const t = one(authz, { ...get("/"), clusters: { authz: { headers: { ":status": "401" } } } });
  assert.equal(t.localReply.status, 403);
});

test("fetch rejects with typed errors: unknown cluster, timeout, reset, response too large", () => {
  const streams = [
    get("/"),
    { ...get("/"), clusters: { authz: { timeout: true } } },
    { ...get("/"), clusters: { authz: { reset: true } } },
    { ...get("/"), clusters: { authz: { body: "x".repeat(100) } } },
  ];
  const t = replay(authz, { settings: { buffer_limit_bytes: 64 }, streams });
  assert.equal(
    t.streams.map((s) => s.logs[0]),
    [
      "[info] FetchError unknown_cluster",
      "[info] FetchError timeout",
      "[info] FetchError reset",
      "[info] FetchError response_too_large",
    ],
  );
  assert.ok(t.streams.every((s) => s.localReply.status === 503));
});

test("fetch: a header given as an array is sent once per value, as HeadersInit says", () => {
  const src = `export default { async onRequest(req, ctx) {
    await ctx.fetch("c", { headers: { "x-a": ["1", "2"], "x-b": "3", "x-empty": [] } });
    try { await ctx.fetch("c", { headers: { "x-a": ["ok", "bad\\r\\nvalue"] } }); } catch (e) { ctx.log.info(e.name + ": " + e.message); }
  } };`;
  const t = one(src, { ...get("/"), clusters: { c: {} } });
  assert.equal(t.callouts[0].headers, {
    ":method": "GET",
    ":path": "/",
    ":authority": "c",
    "x-a": ["1", "2"],
    "x-b": "3",
  });
  assert.equal(t.logs, ["[info] TypeError: fetch(): header 'x-a': values may not contain CR, LF or NUL"]);
  assert.is(t.callouts.length, 1);
});

test("fetch and respond take every kind of body data the body API takes: string, ArrayBuffer, typed arrays, DataView", () => {
  const src = `export default { async onRequest(req, ctx) {
    const bytes = new TextEncoder().encode("xxabcdefyy");
    const bodies = [
      "text",
      bytes.buffer,                                  // an ArrayBuffer: all of it
      bytes.subarray(2, 8),                          // a Uint8Array over part of a buffer
      new DataView(bytes.buffer, 2, 3),              // a DataView: the bytes it covers
      new Uint16Array(new TextEncoder().encode("wxyz").buffer),
      new ArrayBuffer(0),
    ];
    for (const body of bodies) await ctx.fetch("c", { method: "POST", path: "/", body });
    return ctx.respond(200, { body: new DataView(bytes.buffer, 8) });
  } };`;
  const t = one(src, { ...get("/"), clusters: { c: {} } });
  assert.equal(
    t.callouts.map((c) => c.body),
    ["text", "xxabcdefyy", "abcdef", "abc", "wxyz", ""],
  );
  assert.equal(
    t.callouts.map((c) => c.headers["content-length"]),
    ["4", "10", "6", "3", "4", undefined],
  );
  assert.is(t.localReply.body, "yy");
  assert.equal(t.errors, []);
});

test("body data that is not a string or bytes is a TypeError naming the API, the same for fetch, respond and chunks", () => {
  const src = `export default {
    async onRequest(req, ctx) {
      const tries = {
        fetch: () => ctx.fetch("c", { body: { a: 1 } }),
        fetchNumber: () => ctx.fetch("c", { body: 5 }),
        respond: () => ctx.respond(200, { body: [1, 2] }),
      };
      for (const [name, f] of Object.entries(tries)) {
        try { await f(); ctx.log.info(name, "ok?!"); } catch (e) { ctx.log.info(name, e.name + ": " + e.message); }
      }
    },
    onRequestData(chunk, ctx) {
      try { chunk.replace({}); } catch (e) { ctx.log.info("chunk", e.name + ": " + e.message); }
      chunk.replace(new Uint8Array([0x41, 0x42]).buffer);
      chunk.append(new DataView(new TextEncoder().encode("-C-").buffer, 1, 1));
    },
  };`;
  const t = one(src, { ...post("/", ["body"]), clusters: { c: {} } });
  const what = "must be a string, an ArrayBuffer, a typed array (Uint8Array, ...) or a DataView";
  assert.equal(t.logs, [
    `[info] fetch TypeError: fetch(): body ${what}`,
    `[info] fetchNumber TypeError: fetch(): body ${what}`,
    `[info] respond TypeError: respond(): body ${what}`,
    `[info] chunk TypeError: body data ${what}`,
  ]);
  assert.is(t.callouts.length, 0);
  assert.is(t.upstreamRequest.body, "ABC");
});

test("a detached ArrayBuffer is refused with the engine's TypeError, not sent as an empty body", () => {
  const src = `export default { async onRequest(req, ctx) {
    const buffer = new ArrayBuffer(4);
    const views = [new Uint8Array(buffer), new DataView(buffer)];
    buffer.transfer();
    for (const body of [buffer, ...views]) {
      try { await ctx.fetch("c", { body }); ctx.log.info("ok?!"); } catch (e) { ctx.log.info(e.name); }
    }
  } };`;
  const t = one(src, { ...get("/"), clusters: { c: {} } });
  assert.equal(t.logs, ["[info] TypeError", "[info] TypeError", "[info] TypeError"]);
  assert.is(t.callouts.length, 0);
});

test("fetch states the body's length itself: a filter-given content-length is replaced", () => {
  const src = `export default { async onRequest(req, ctx) {
    await ctx.fetch("c", { method: "POST", path: "/", headers: { "content-length": "99" }, body: "abc" });
    await ctx.fetch("c", { headers: { "Content-Length": "5" } });
  } };`;
  const t = one(src, { ...get("/"), clusters: { c: {} } });
  assert.equal(t.callouts[0].headers["content-length"], "3");
  assert.not.ok("content-length" in t.callouts[1].headers);
});

test("fetch validates its arguments", () => {
  const src = `export default { async onRequest(req, ctx) {
    for (const args of [[42], ["c", { path: "no-slash" }], ["c", { timeoutMs: 0 }], ["c", { body: 5 }], ["c", { headers: { "bad name": "v" } }]]) {
      try { await ctx.fetch(...args); } catch (e) { ctx.log.info(e.name); }
    }
  } };`;
  const t = one(src, get("/"));
  assert.equal(t.logs, Array(5).fill("[info] TypeError"));
});

test("destroy while a callout is pending cancels it and the fetch rejects with StreamGone", () => {
  const src = `
    export default {
      async onRequest(req, ctx) {
        try { await ctx.fetch("slow", {}); ctx.log.info("resolved?!"); }
        catch (e) { console.log("fetch: " + e.name + " aborted=" + ctx.aborted); }
      },
    };`;
  const t = replay(src, {
    streams: [{ ...get("/"), clusters: { slow: { delayMs: 1000 } }, reset: "afterRequestHeaders" }, get("/next")],
  });
  const s = t.streams[0];
  assert.ok(s.events.includes("callout 1 cancelled"));
  assert.not.ok(s.events.includes("callout 1 done"));
  assert.ok(t.workerLogs.includes("[info] fetch: StreamGone aborted=true"), JSON.stringify(t.workerLogs));
  assert.ok(t.streams[1].upstreamRequest);
});

test("a destroyed stream's callouts are cancelled, and reject, in the order they were made", () => {
  const src = `export default { async onRequest(req, ctx) {
    await Promise.all(Array.from({ length: 14 }, (_, i) => ctx.fetch("slow", { path: "/" + i }).catch((e) => console.log(i + " " + e.name))));
  } };`;
  const t = replay(src, {
    streams: [{ ...get("/"), clusters: { slow: { delayMs: 100 } }, reset: "afterRequestHeaders" }],
  });
  const ids = Array.from({ length: 14 }, (_, i) => i + 1);
  assert.equal(
    t.streams[0].events.filter((e) => e.endsWith("cancelled")),
    ids.map((id) => `callout ${id} cancelled`),
  );
  assert.equal(
    t.workerLogs,
    ids.map((id) => `[info] ${id - 1} StreamGone`),
  );
});

test("per-route config is merged over the filter config; disabled routes skip the filter", () => {
  const src = `export default {
    onRequest(req, ctx) { ctx.log.info(JSON.stringify(ctx.config)); req.headers.set("x-seen", "1"); },
    onDone(ctx) { ctx.log.info("done"); },
  };`;
  const t = replay(src, {
    config: { limit: 10, auth: { header: "x-key", realm: "shop" }, tags: ["a"] },
    streams: [
      get("/"),
      { ...get("/admin"), route: { config: { limit: 1, auth: { realm: "admin" }, tags: ["b", "c"] } } },
      { ...get("/health"), route: { disabled: true } },
      { ...get("/admin"), route: { config: { limit: 1, auth: { realm: "admin" }, tags: ["b", "c"] } } },
    ],
  });
  assert.equal(t.streams[0].logs[0], '[info] {"limit":10,"auth":{"header":"x-key","realm":"shop"},"tags":["a"]}');
  assert.equal(t.streams[1].logs[0], '[info] {"limit":1,"auth":{"header":"x-key","realm":"admin"},"tags":["b","c"]}');
  assert.equal(t.streams[3].logs, t.streams[1].logs);
  assert.equal(t.streams[2].logs, []);
  assert.not.ok("x-seen" in t.streams[2].upstreamRequest.headers);
  assert.equal(t.streams[2].events[0], "onRequestHeaders -> Continue");
});

test("a per-route config that is not an object replaces the filter config", () => {
  const t = one(
    `export default { onRequest(req, ctx) { ctx.log.info(typeof ctx.config, ctx.config); } };`,
    {
      ...get("/"),
      route: { config: "maintenance" },
    },
    { config: { mode: "normal" } },
  );
  assert.equal(t.logs, ["[info] string maintenance"]);
});

test("rerouteOnHeaderChange must be true or false: anything else refuses the filter", () => {
  assert.throws(
    () => one(`export default { rerouteOnHeaderChange: "yes", onRequest() {} };`, get("/")),
    /`rerouteOnHeaderChange` must be true or false/,
  );
});

test("without rerouteOnHeaderChange, request-header writes leave the route cache alone", () => {
  const t = one(`export default { onRequest(req) { req.headers.set("x-a", "1"); } };`, get("/"));
  assert.is(t.routeCacheClears, 0);
});

test("setUpstreamOverrideHost records host and strictness; IPv6 in brackets and bare; late calls throw", () => {
  const t = one(
    `export default { onRequest(req, ctx) { ctx.setUpstreamOverrideHost("::1"); ctx.setUpstreamOverrideHost("[2001:db8::7]:443", { strict: true }); } };`,
    get("/"),
  );
  assert.equal(t.errors, []);
  assert.equal(t.upstreamOverrideHost, { host: "[2001:db8::7]:443", strict: true });
  const late = one(
    `export default { async onRequest(req, ctx) { await null; }, onResponse(res, ctx) { ctx.setUpstreamOverrideHost("10.0.0.1"); } };`,
    get("/"),
  );
  assert.match(late.errors[0], /after the request headers were sent on/);
  assert.is(late.upstreamOverrideHost, null);
});

test.run();
