// ctx.fetch, metrics, dynamic metadata, filter state, per-route config and clearRouteCache(),
// and the CPU and heap limits, inside a real Envoy.
import { test } from "uvu";
import * as assert from "uvu/assert";

import {
  closedPort,
  envoyJsPerRoute,
  envoyWith,
  h1,
  h2,
  jsListener,
  loopbackCluster,
  scratchDir,
  startUpstream,
} from "./lib.mjs";

const FILTER = String.raw`
export default {
  metrics: { requests: "counter", inflight: "gauge", sizes: "histogram" },
  async onRequest(req, ctx) {
    ctx.metrics.requests.inc();
    ctx.metrics.inflight.set(7);
    ctx.metrics.sizes.record(42);
    const p = req.path;
    if (p.startsWith("/fetch/")) {
      const [, , cluster, what] = p.split("/");
      try {
        const r = await ctx.fetch(cluster, { method: "POST", path: "/check?what=" + what, body: "payload", headers: { "x-from": "js" }, timeoutMs: what === "slow" ? 200 : 3000 });
        return ctx.respond(200, { body: JSON.stringify({ status: r.status, user: r.headers.get("x-user"), body: await r.text() }) });
      } catch (err) {
        return ctx.respond(599, { body: JSON.stringify({ name: err.name, code: err.code, message: String(err.message) }) });
      }
    }
    if (p === "/config") return ctx.respond(200, { body: JSON.stringify(ctx.config) });
    if (p === "/meta") {
      ctx.metadata.set("envoy_js.test", "user", "alice");
      ctx.metadata.set("envoy_js.test", "score", 7);
      ctx.filterState.set("envoy_js.test.tenant", "acme");
      req.headers.set("x-filter-state", ctx.filterState.get("envoy_js.test.tenant") ?? "none");
    }
    if (p === "/reroute") {
      req.headers.set("x-target", "b");
      ctx.clearRouteCache();
    }
    if (p === "/reroute-config") {
      const before = String(ctx.config.tag);
      req.headers.set("x-target", "c");
      ctx.clearRouteCache();
      req.headers.set("x-config-tags", before + "," + String(ctx.config.tag));
    }
    if (p === "/reroute-off") {
      req.headers.set("x-target", "off");
      ctx.clearRouteCache();
      req.headers.set("x-config-tags", String(ctx.config.tag));
    }
    if (p === "/no-reroute") req.headers.set("x-target", "b");
    if (p === "/eval") {
      try {
        return ctx.respond(200, { body: String(new Function("return " + req.headers.get("x-code"))()) });
      } catch (err) {
        return ctx.respond(403, { body: err.name + ": " + err.message });
      }
    }
    if (p === "/spin") { for (;;) {} }
    if (p === "/hog") { const keep = []; for (;;) keep.push(new Array(100000).fill(1)); }
    if (p === "/throw") throw new Error("boom from the filter");
  },
  onResponse(res, ctx) {
    res.headers.set("x-config-tag", String(ctx.config.tag));
    res.headers.set("x-meta-user", String(ctx.metadata.get("envoy_js.test", "user")));
  },
};`;

// rerouteOnHeaderChange: a request-header write clears the route cache by itself.
const REROUTING = `
export default {
  rerouteOnHeaderChange: true,
  onRequest(req, ctx) {
    if (req.path === "/auto-reroute") req.headers.set("x-target", "c");
    req.headers.set("x-config-tags", String(ctx.config.tag));
  },
  onResponse(res, ctx) {
    res.headers.set("x-config-tag", String(ctx.config.tag));
  },
};`;

let envoy, upstreamA, upstreamB, authz, slow, scratch;

test.before(async () => {
  scratch = scratchDir();
  upstreamA = await startUpstream({
    handler: (req, res) => {
      res.writeHead(200, { "x-upstream": "a" });
      res.end("a");
    },
  });
  upstreamB = await startUpstream({
    handler: (req, res) => {
      res.writeHead(200, { "x-upstream": "b" });
      res.end("b");
    },
  });
  authz = await startUpstream({
    handler: (req, res, e) => {
      res.writeHead(201, { "x-user": "bob" });
      res.end(`${e.method} ${e.url} ${e.headers["x-from"]} ${e.body}`);
    },
  });
  slow = await startUpstream({
    handler: (req, res) => {
      setTimeout(() => {
        res.writeHead(200);
        res.end("late");
      }, 2000);
    },
  });
  const refused = await closedPort();
  // The access log goes to Envoy's stdout, which the test reads (a file would be flushed late).
  const accessLog = [
    {
      name: "envoy.access_loggers.stdout",
      typed_config: {
        "@type": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
        log_format: {
          text_format_source: {
            inline_string:
              "%REQ(:PATH)% %RESPONSE_CODE% %RESPONSE_CODE_DETAILS% user=%DYNAMIC_METADATA(envoy_js.test:user)% score=%DYNAMIC_METADATA(envoy_js.test:score)% tenant=%FILTER_STATE(envoy_js.test.tenant:PLAIN)%\n",
          },
        },
      },
    },
  ];
  const routes = [
    { match: { prefix: "/", headers: [{ name: "x-target", string_match: { exact: "b" } }] }, route: { cluster: "b" } },
    {
      match: { prefix: "/", headers: [{ name: "x-target", string_match: { exact: "c" } }] },
      route: { cluster: "b" },
      typed_per_filter_config: { envoy_js: envoyJsPerRoute({ config: { tag: "rerouted" } }) },
    },
    {
      match: { prefix: "/", headers: [{ name: "x-target", string_match: { exact: "off" } }] },
      route: { cluster: "b" },
      typed_per_filter_config: { envoy_js: envoyJsPerRoute({ disabled: true }) },
    },
    {
      match: { prefix: "/override" },
      route: { cluster: "a" },
      typed_per_filter_config: { envoy_js: envoyJsPerRoute({ config: { tag: "route", extra: true } }) },
    },
    {
      match: { prefix: "/disabled" },
      route: { cluster: "a" },
      typed_per_filter_config: { envoy_js: envoyJsPerRoute({ disabled: true }) },
    },
    { match: { prefix: "/" }, route: { cluster: "a" } },
  ];
  envoy = await envoyWith({
    listeners: [
      jsListener("main", { inline: FILTER, config: { tag: "filter", keep: 1 }, routes, accessLog }),
      jsListener("limited", {
        inline: FILTER,
        config: { tag: "limited" },
        settings: { max_cpu_ms_per_event: 50, max_heap_bytes: 8 * 1024 * 1024 },
        routes,
      }),
      jsListener("open", { inline: FILTER, config: { tag: "open" }, settings: { failure_mode: "open" }, routes }),
      jsListener("rerouting", { inline: REROUTING, config: { tag: "filter" }, routes }),
      jsListener("eval", {
        inline: FILTER,
        config: { tag: "eval" },
        settings: { allow_code_from_strings: true },
        routes,
      }),
    ],
    clusters: [
      loopbackCluster({ name: "a", port: upstreamA.port }),
      loopbackCluster({ name: "b", port: upstreamB.port }),
      loopbackCluster({ name: "authz", port: authz.port }),
      loopbackCluster({ name: "slow", port: slow.port }),
      loopbackCluster({ name: "refused", port: refused }),
    ],
  });
});

test.after(async () => {
  await envoy?.stop();
  for (const u of [upstreamA, upstreamB, authz, slow]) await u?.close();
  scratch?.remove();
});

const json = (r) => JSON.parse(r.text);

test("ctx.fetch: a cluster's answer, with method, path, headers and body sent", async () => {
  const r = await h1(await envoy.port("main"), { path: "/fetch/authz/ok" });
  assert.is(r.status, 200);
  assert.equal(json(r), { status: 201, user: "bob", body: "POST /check?what=ok js payload" });
});

test("ctx.fetch: over timeoutMs rejects with FetchError code timeout", async () => {
  const r = await h2(await envoy.port("main"), { path: "/fetch/slow/slow" });
  assert.is(r.status, 599);
  assert.is(json(r).name, "FetchError");
  assert.is(json(r).code, "timeout");
});

// Envoy answers a callout it cannot connect with its own 503 (a response, not a failure).
test("ctx.fetch: connection refused resolves with Envoy's 503", async () => {
  const r = await h1(await envoy.port("main"), { path: "/fetch/refused/x" });
  assert.is(r.status, 200);
  assert.is(json(r).status, 503);
  assert.match(json(r).body, /connect/);
});

test("ctx.fetch: an unknown cluster rejects with FetchError code unknown_cluster", async () => {
  const r = await h1(await envoy.port("main"), { path: "/fetch/nosuch/x" });
  assert.is(r.status, 599);
  assert.is(json(r).code, "unknown_cluster");
});

test("per-route config is deep-merged over the filter's config (typed_per_filter_config)", async () => {
  const a = await h1(await envoy.port("main"), { path: "/config" });
  assert.equal(json(a), { tag: "filter", keep: 1 });
  const b = await h1(await envoy.port("main"), { path: "/override/config" });
  assert.is(b.headers["x-config-tag"], "route");
  assert.is(b.text, "a");
  const c = await h1(await envoy.port("main"), { path: "/disabled/x" });
  assert.is(c.status, 200);
  assert.is(c.headers["x-config-tag"], undefined);
});

test("clearRouteCache() after a header change re-routes the request", async () => {
  const r = await h1(await envoy.port("main"), { path: "/reroute" });
  assert.is(r.status, 200);
  assert.is(r.headers["x-upstream"], "b");
});

// Review finding 7: the route may change after clearRouteCache(), and with it the per-route
// config: the runtime asks the host again on the next ctx.config read.
test("after clearRouteCache() the new route's per-route config is what ctx.config shows", async () => {
  const r = await h1(await envoy.port("main"), { path: "/reroute-config" });
  assert.is(r.status, 200);
  assert.is(r.headers["x-upstream"], "b");
  assert.is(upstreamB.last().headers["x-config-tags"], "filter,rerouted");
  assert.is(r.headers["x-config-tag"], "rerouted");
});

test("a route that disables the filter, picked after clearRouteCache(), leaves ctx.config at the filter's own", async () => {
  const r = await h1(await envoy.port("main"), { path: "/reroute-off" });
  assert.is(r.status, 200);
  assert.is(r.headers["x-upstream"], "b");
  assert.is(upstreamB.last().headers["x-config-tags"], "filter");
  // the filter keeps running on this stream: its onResponse still runs
  assert.is(r.headers["x-config-tag"], "filter");
});

test("without rerouteOnHeaderChange a header change alone keeps the route Envoy picked", async () => {
  const r = await h1(await envoy.port("main"), { path: "/no-reroute" });
  assert.is(r.status, 200);
  assert.is(r.headers["x-upstream"], "a");
});

test("with rerouteOnHeaderChange a request-header change re-routes, and ctx.config follows", async () => {
  const moved = await h1(await envoy.port("rerouting"), { path: "/auto-reroute" });
  assert.is(moved.status, 200);
  assert.is(moved.headers["x-upstream"], "b");
  assert.is(upstreamB.last().headers["x-config-tags"], "rerouted");
  assert.is(moved.headers["x-config-tag"], "rerouted");
  const stays = await h1(await envoy.port("rerouting"), { path: "/x" });
  assert.is(stays.headers["x-upstream"], "a");
  assert.is(stays.headers["x-config-tag"], "filter");
});

test("dynamic metadata and filter state reach the access log", async () => {
  const r = await h1(await envoy.port("main"), { path: "/meta" });
  assert.is(r.status, 200);
  assert.is(r.headers["x-meta-user"], "alice");
  assert.is(upstreamA.last().headers["x-filter-state"], "acme");
  const [line] = await envoy.waitForLog(/^\/meta .*$/m);
  assert.is(line, "/meta 200 via_upstream user=alice score=7 tenant=acme");
});

test("a runaway loop hits max_cpu_ms_per_event: that stream gets 500, the next is served", async () => {
  const port = await envoy.port("limited");
  const r = await h1(port, { path: "/spin" });
  assert.is(r.status, 500);
  const ok = await h1(port, { path: "/fine" });
  assert.is(ok.status, 200);
});

test("an allocation loop hits max_heap_bytes: that stream gets 500, the next is served", async () => {
  const port = await envoy.port("limited");
  const r = await h1(port, { path: "/hog" });
  assert.is(r.status, 500);
  const ok = await h1(port, { path: "/fine-again" });
  assert.is(ok.status, 200);
});

test("code from strings: new Function throws an EvalError by default; allow_code_from_strings lets it compile", async () => {
  const refused = await h2(await envoy.port("main"), { path: "/eval", headers: { "x-code": "6 * 7" } });
  assert.is(refused.status, 403);
  assert.match(refused.text, /^EvalError: code generation from strings is disabled: .*"allow_code_from_strings": true/);
  const allowed = await h2(await envoy.port("eval"), { path: "/eval", headers: { "x-code": "6 * 7" } });
  assert.is(allowed.status, 200);
  assert.is(allowed.text, "42");
});

test("failure_mode open: a throwing filter lets the request through", async () => {
  const r = await h1(await envoy.port("open"), { path: "/throw" });
  assert.is(r.status, 200);
  assert.is(r.text, "a");
});

test("metrics appear in the admin /stats under the documented names", async () => {
  // docs/configuration.md: Envoy puts a dynamic module's metrics under `dynamicmodulescustom.`.
  const stats = await envoy.stats("^dynamicmodulescustom\\.");
  const names = [...stats.keys()].join(", ");
  assert.ok(stats.get("dynamicmodulescustom.requests") >= 10, names);
  // A gauge is the sum over engines: the four listeners' filter configs declare `inflight`
  // (one Envoy gauge), each has an engine on the one worker, and each set it to 7.
  assert.is(stats.get("dynamicmodulescustom.inflight"), 28);
  assert.ok(stats.get("dynamicmodulescustom.envoy_js.errors") >= 3, names);
  assert.ok(stats.get("dynamicmodulescustom.envoy_js.cpu_limit") >= 1, names);
  assert.ok(stats.get("dynamicmodulescustom.envoy_js.heap_limit") >= 1, names);
  const histograms = await envoy.admin("/stats?filter=sizes");
  assert.match(histograms, /dynamicmodulescustom\.sizes/);
});

test.run();
