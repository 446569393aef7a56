// The filter config's background engine (`background(config, bg)`, runtime/background.cc) on
// the wasm engine: timers with no stream, bg.fetch answered by scripted clusters, results in the
// shared store that the workers' streams read, failures logged and counted, and nothing at all
// for a filter without `background`.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { wasm } from "../lib/wasm.mjs";

const GET = { ":method": "GET", ":path": "/", ":authority": "h" };

// A JWKS refresher: fetches at start and every 100 ms; streams answer with what it stored.
const refresher = `
  let n = 0;
  export default {
    background(config, bg) {
      const refresh = async () => {
        n++;
        const r = await bg.fetch("idp", { path: config.path, timeoutMs: 50 });
        if (r.status === 200) bg.shared.set("jwks", (await r.text()) + "#" + n + "@" + performance.now());
        else bg.log.warn("refresh failed with", r.status);
      };
      refresh();
      setInterval(refresh, 100);
    },
    onRequest(req, ctx) {
      return ctx.respond(200, { body: ctx.shared.get("jwks")?.value ?? "none" });
    },
  };`;

function served(host) {
  const s = host.newStream();
  host.requestHeaders(s, GET, true);
  return host.stream(s).localReply?.body;
}

test("background timers fire with no stream, and fetch results reach later requests", () => {
  const host = new wasm.ScriptedHost({ source: refresher, filename: "jwks.js" }, { config: { path: "/keys" } });
  assert.is(host.sharedGet("jwks"), null);
  assert.is(served(host), "none");
  host.startBackground({ clusters: { idp: { headers: { ":status": "200" }, body: "K", delayMs: 5 } } });
  // The first refresh's callout is in flight: nothing stored yet.
  assert.is(host.sharedGet("jwks"), null);
  host.advanceTime(5);
  assert.is(host.sharedGet("jwks"), "K#1@5");
  // No stream exists now; the interval keeps refreshing on the fake clock.
  host.advanceTime(300);
  assert.is(host.sharedGet("jwks"), "K#4@305");
  assert.is(served(host), "K#4@305");
  assert.equal(host.transcript().counters["envoy_js.errors"] ?? 0, 0);
  host.close();
});

test("a stopped background engine never fires again (the config went away)", () => {
  const host = new wasm.ScriptedHost({ source: refresher, filename: "jwks.js" }, { config: { path: "/keys" } });
  host.startBackground({ clusters: { idp: { headers: { ":status": "200" }, body: "K", delayMs: 5 } } });
  host.advanceTime(102); // the second refresh's callout is in flight
  assert.is(host.sharedGet("jwks"), "K#1@5");
  host.stopBackground();
  host.advanceTime(1000);
  assert.is(host.sharedGet("jwks"), "K#1@5");
  // It can start again (a new config): a new engine, module state from scratch.
  host.startBackground({ clusters: { idp: { headers: { ":status": "200" }, body: "L" } } });
  host.advanceTime(0);
  assert.is(host.sharedGet("jwks"), "L#1@1102");
  host.close();
});

test("bg.fetch fails as ctx.fetch does: unknown cluster, timeout, non-200", () => {
  const source = `
    export default {
      background(config, bg) {
        const attempt = (cluster) => bg.fetch(cluster, { path: "/", timeoutMs: 20 }).then(
          (r) => bg.log.info(cluster, r.status, r.headers.get("x-a")),
          (e) => bg.log.info(cluster, e.name, e.code));
        attempt("nowhere"); attempt("slow"); attempt("down");
      },
      onRequest() {},
    };`;
  const host = new wasm.ScriptedHost({ source, filename: "f.js" }, {});
  host.startBackground({
    clusters: { slow: { timeout: true }, down: { headers: { ":status": "503", "x-a": "b" } } },
  });
  host.advanceTime(100);
  assert.equal(host.transcript().backgroundLogs, [
    "[info] nowhere FetchError unknown_cluster",
    "[info] down 503 b",
    "[info] slow FetchError timeout",
  ]);
  host.close();
});

test("a throwing, rejecting or runaway background callback is logged and counted; later ticks go on", () => {
  const source = `
    let tick = 0;
    export default {
      background(config, bg) {
        setInterval(async () => {
          tick++;
          if (tick === 1) throw new Error("sync throw");
          if (tick === 2) { await null; throw new Error("async reject"); }
          if (tick === 3) for (;;) {}
          bg.shared.set("tick", String(tick));
        }, 10);
        throw new Error("background itself threw");
      },
      onRequest() {},
    };`;
  const host = new wasm.ScriptedHost({ source, filename: "f.js" }, { settings: { max_cpu_ms_per_event: 20 } });
  host.startBackground({});
  host.advanceTime(50);
  assert.is(host.sharedGet("tick"), "5");
  const t = host.transcript();
  assert.is(t.counters["envoy_js.errors"], 4);
  assert.is(t.counters["envoy_js.cpu_limit"], 1);
  const errors = t.backgroundLogs.filter((l) => l.startsWith("[error]"));
  assert.is(errors.length, 4);
  assert.match(errors[0], /background\(\) threw: Error: background itself threw\n.*f\.js:\d+:\d+/);
  assert.match(errors.join("\n"), /sync throw\n.*f\.js:\d+:\d+/);
  assert.match(errors.join("\n"), /async reject/);
  assert.match(errors.join("\n"), /interrupted/);
  // The workers' logs saw none of it.
  assert.equal(t.workerLogs, []);
  host.close();
});

test("a background callback over max_heap_bytes is logged and counted; the next tick runs", () => {
  const source = `
    let tick = 0;
    export default {
      background(config, bg) {
        setInterval(() => {
          tick++;
          if (tick === 2) { const hog = []; for (;;) hog.push(new Array(100000).fill(tick)); }
          bg.shared.set("tick", String(tick));
        }, 10);
      },
    };`;
  const host = new wasm.ScriptedHost({ source, filename: "f.js" }, { settings: { max_heap_bytes: 8 << 20 } });
  host.startBackground({});
  host.advanceTime(30);
  assert.is(host.sharedGet("tick"), "3");
  const t = host.transcript();
  assert.is(t.counters["envoy_js.errors"], 1);
  assert.is(t.counters["envoy_js.heap_limit"], 1);
  assert.match(t.backgroundLogs.join("\n"), /error in a timer callback: .*out of memory/);
  host.close();
});

test("a filter without background gets no background engine", () => {
  const host = new wasm.ScriptedHost({ source: "export default { onRequest() {} };", filename: "f.js" }, {});
  assert.throws(() => host.startBackground({}), /f\.js: the filter has no `background` function/);
  host.close();
});

test("background must be a function, checked when the filter loads", () => {
  assert.throws(
    () => new wasm.ScriptedHost({ source: "export default { background: 1 };", filename: "f.js" }, {}),
    /`background` must be a function/,
  );
});

test("the worker engines never run background: setup-time and request-time code see no bg", () => {
  const source = `
    let ran = 0;
    export default {
      background() { ran++; },
      onRequest(req, ctx) { return ctx.respond(200, { body: String(ran) }); },
    };`;
  const host = new wasm.ScriptedHost({ source, filename: "f.js" }, {});
  assert.is(served(host), "0");
  host.startBackground({});
  assert.is(served(host), "0"); // module state is per engine: the background ran in its own
  host.close();
});

test.run();
