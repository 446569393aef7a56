// The ports of other projects' example filters (test/peers/) in a real Envoy: one Envoy for
// all of them, a listener per port running its bundle through the dynamic module. Each stream
// of a port's scenario.json is sent through that listener and what the upstream and the
// client get must match what the wasm engine's replay of the same scenario says, and so must
// the port's metrics in Envoy's admin (/stats, /stats/prometheus) once its streams are through.
//
// A port's optional envoy.json shapes its listener (see test/peers/README.md):
//   virtualHosts / routes  routes with a per-route or per-virtual-host `config` override (the
//                          scenario's streams that carry `route.config` must meet the same one)
//                          and route `metadata` (filter_metadata: the scenario's streams that
//                          carry `routeMetadata` must meet the same), route `name`
//   config                 the filter config in Envoy instead of the scenario's (a shorter delay)
//   varyingHeaders         response headers whose value is checked by a pattern, not equality
//   varyingRequestHeaders  the same for the headers the upstream gets
//   streamClusters         the cluster each stream must reach (routing ports)
//   logs                   patterns that must show up in Envoy's log
//   coin                   a path left to chance: every outcome listed must occur
//   minEnvoy               the oldest Envoy the port runs on as on the wasm engine ("1.39"):
//                          on an older one the port is skipped with the reason (`minEnvoyWhy`),
//                          a documented host difference (docs/api.md, Properties)
import { existsSync, mkdirSync, readFileSync, readdirSync } from "node:fs";
import http from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { test } from "uvu";
import * as assert from "uvu/assert";

import { runScenario } from "@envoy-js/sdk/testing";

import { buildFilter } from "../../sdk/cli/build.mjs";
import { sleep } from "../../sdk/cli/envoy.mjs";
import { envoyHistogramCounts, envoyMetrics } from "../../sdk/cli/envoy-stats.mjs";
import { envoyJsPerRoute, envoyUnderTest, envoyWith, h1, jsListener, loopbackCluster } from "./lib.mjs";

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const PEERS = path.join(REPO, "test", "peers");
const names = readdirSync(PEERS).filter((n) => existsSync(path.join(PEERS, n, "scenario.json")));

// Headers Envoy or Node add or rewrite on their own; not the filter's doing.
const OWN_HEADERS = new Set([
  "content-length",
  "x-request-id",
  "date",
  "server",
  "connection",
  "keep-alive",
  "transfer-encoding",
  "x-envoy-upstream-service-time",
]);
const headerValue = (v) => (Array.isArray(v) ? v.join(", ") : v);

const versionOf = (v) => v.split(".").map(Number);
const [envoyMajor, envoyMinor] = versionOf(envoyUnderTest().version);
const olderEnvoy = (min) => {
  const [major, minor] = versionOf(min);
  return envoyMajor < major || (envoyMajor === major && envoyMinor < minor);
};

const ports = names.map((name) => {
  const dir = path.join(PEERS, name);
  const scenario = JSON.parse(readFileSync(path.join(dir, "scenario.json"), "utf8"));
  const envoyFile = path.join(dir, "envoy.json");
  const shape = existsSync(envoyFile) ? JSON.parse(readFileSync(envoyFile, "utf8")) : {};
  const config = shape.config ?? scenario.config;
  return { name, dir, scenario: { ...scenario, config }, shape, outFile: "" };
});

/** Envoy routes from a port's `{ prefix, name?, cluster?, config?, metadata? }` entries. */
function routesOf(entries) {
  return entries.map((r) => ({
    ...(r.name ? { name: r.name } : {}),
    match: { prefix: r.prefix },
    route: { cluster: r.cluster ?? "upstream", timeout: "10s" },
    ...(r.metadata ? { metadata: { filter_metadata: r.metadata } } : {}),
    ...(r.config ? { typed_per_filter_config: { envoy_js: envoyJsPerRoute({ config: r.config }) } } : {}),
  }));
}

function virtualHostsOf(shape) {
  if (shape.virtualHosts)
    return shape.virtualHosts.map((vh) => ({
      name: vh.name,
      domains: vh.domains,
      routes: routesOf(vh.routes),
      ...(vh.config ? { typed_per_filter_config: { envoy_js: envoyJsPerRoute({ config: vh.config }) } } : {}),
    }));
  return [{ name: "all", domains: ["*"], routes: routesOf(shape.routes ?? [{ prefix: "/" }]) }];
}

// One server per cluster. `plan.current` is the stream being sent: routed clusters answer as
// its `upstream`, the others as its `clusters[name]` (ctx.fetch callouts).
const plan = { current: null, seen: {}, routed: new Set() };
function scriptedServer(cluster) {
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      if (!plan.seen[cluster]) plan.seen[cluster] = [];
      plan.seen[cluster].push({ path: req.url, headers: req.headers, body: Buffer.concat(chunks).toString() });
      const spec = plan.routed.has(cluster) ? (plan.current?.upstream ?? {}) : plan.current?.clusters?.[cluster];
      if (!spec || spec.timeout) return; // never answers: the filter's timeout decides
      const headers = { ...(spec.headers ?? {}) };
      const status = Number(headers[":status"] ?? 200);
      delete headers[":status"];
      const body = Array.isArray(spec.body) ? spec.body.join("") : (spec.body ?? "");
      setTimeout(() => {
        res.writeHead(status, headers);
        res.end(body);
      }, spec.delayMs ?? 0);
    });
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

let envoy;
const servers = new Map();

test.before(async () => {
  const clusters = new Set(["upstream"]);
  for (const p of ports) {
    for (const s of p.scenario.streams) for (const c of Object.keys(s.clusters ?? {})) clusters.add(c);
    const routed = JSON.stringify(virtualHostsOf(p.shape)).match(/"cluster":"[^"]+"/g) ?? [];
    for (const m of routed) {
      clusters.add(m.slice(11, -1));
      plan.routed.add(m.slice(11, -1));
    }
    p.outFile = path.join(REPO, "build", "peers", p.name, "filter.js");
    mkdirSync(path.dirname(p.outFile), { recursive: true });
    // The wasm suite (test/peers/) type-checks each port; here only the bundle is needed.
    await buildFilter({ entry: path.join(p.dir, "filter.ts"), outFile: p.outFile, quiet: true, typecheck: false });
  }
  for (const c of clusters) servers.set(c, await scriptedServer(c));
  envoy = await envoyWith({
    listeners: ports.map((p) =>
      jsListener(p.name, {
        source: p.outFile,
        config: p.scenario.config,
        settings: p.scenario.settings,
        virtualHosts: virtualHostsOf(p.shape),
      }),
    ),
    clusters: [...servers].map(([name, s]) => loopbackCluster({ name, port: s.address().port })),
  });
});

test.after(async () => {
  await envoy?.stop();
  for (const s of servers.values()) await new Promise((r) => s.close(r));
});

/** Sends one scenario stream (or a plain request) through a port's listener. */
async function send(port, stream) {
  plan.current = stream;
  plan.seen = {};
  const headers = {};
  for (const [k, v] of Object.entries(stream.request.headers)) if (!k.startsWith(":")) headers[k] = v;
  headers.host = stream.request.headers[":authority"];
  const body = stream.request.body === undefined ? undefined : [].concat(stream.request.body).join("");
  return h1(await envoy.port(port.name), {
    method: stream.request.headers[":method"],
    path: stream.request.headers[":path"],
    headers,
    body,
  }).catch((err) => {
    throw new Error(`${port.name}: ${err.message}; Envoy's log ends:\n${envoy.logTail(15)}`);
  });
}

/**
 * The port's metrics in Envoy's admin (its own metric names: no two ports share one) are what
 * the wasm engine's transcript says: counters and gauges by value, each series of a labelled
 * metric included (envoyMetrics reads their labels from /stats/prometheus); a histogram by its
 * number of samples, which Envoy's admin shows once a stats flush (every 5 s) merged them.
 */
async function sameMetrics(port, want) {
  if (Object.keys(want).length === 0) return;
  const read = async () => {
    const statsOf = async (type) =>
      JSON.parse(await envoy.admin(`/stats?format=json&type=${type}&filter=%5Edynamicmodulescustom%5C.`)).stats;
    const prometheus = await envoy.admin("/stats/prometheus");
    const { metrics } = envoyMetrics({
      counters: await statsOf("Counters"),
      gauges: await statsOf("Gauges"),
      prometheus,
    });
    return { metrics, histograms: envoyHistogramCounts(prometheus) };
  };
  const histograms = Object.entries(want).filter(([, v]) => Array.isArray(v));
  let got = await read();
  for (let waited = 0; waited < 12000 && histograms.some(([k, v]) => got.histograms[k] !== v.length); waited += 250) {
    await sleep(250);
    got = await read();
  }
  for (const [key, value] of Object.entries(want)) {
    if (Array.isArray(value)) assert.is(got.histograms[key], value.length, `${port.name}: samples of ${key} in Envoy`);
    else assert.is(got.metrics[key] ?? 0, value, `${port.name}: ${key} in Envoy`);
  }
}

for (const port of ports) {
  if (port.shape.minEnvoy && olderEnvoy(port.shape.minEnvoy)) {
    console.log(`peer ${port.name}: skipped on Envoy ${envoyUnderTest().version}: ${port.shape.minEnvoyWhy}`);
    continue;
  }
  test(`peer ${port.name}: its scenario in a real Envoy gives what the wasm engine gives`, async () => {
    const bundle = { source: readFileSync(port.outFile, "utf8"), filename: "filter.js" };
    const expected = runScenario(bundle, port.scenario, { engine: "wasm" });
    const varying = port.shape.varyingHeaders ?? {};
    const logFrom = envoy.logOffset();
    for (const [i, stream] of port.scenario.streams.entries()) {
      const where = `${port.name} stream ${i}`;
      const got = await send(port, stream);
      const want = expected.streams[i];
      assert.equal(want.errors, [], `${where}: the wasm engine's run has no errors`);
      const wantStatus = Number(want.localReply?.status ?? want.downstreamResponse?.headers[":status"]);
      assert.is(got.status, wantStatus, `${where}: status, body ${got.text.slice(0, 200)}`);

      const reached = Object.keys(plan.seen).filter((c) => plan.routed.has(c));
      assert.is(reached.length > 0, want.upstreamRequest !== null, `${where}: reached the upstream`);
      if (want.upstreamRequest) {
        const cluster = port.shape.streamClusters?.[i];
        if (cluster) assert.equal(reached, [cluster], `${where}: the cluster it was routed to`);
        const seen = plan.seen[reached[0]][0];
        for (const [k, v] of Object.entries(want.upstreamRequest.headers)) {
          if (k.startsWith(":") || OWN_HEADERS.has(k)) continue;
          const pattern = port.shape.varyingRequestHeaders?.[k];
          if (pattern) assert.match(seen.headers[k] ?? "", new RegExp(pattern), `${where}: upstream header ${k}`);
          else assert.is(headerValue(seen.headers[k]), headerValue(v), `${where}: upstream header ${k}`);
        }
        assert.is(seen.headers.host, want.upstreamRequest.headers[":authority"], `${where}: upstream authority`);
        assert.is(seen.path, want.upstreamRequest.headers[":path"], `${where}: upstream path`);
        assert.is(seen.body, want.upstreamRequest.body, `${where}: upstream body`);
      }
      const called = new Set([...Object.keys(plan.seen), ...want.callouts.map((c) => c.cluster)]);
      for (const cluster of called) {
        if (plan.routed.has(cluster)) continue;
        const wantCalls = want.callouts.filter((c) => c.cluster === cluster).length;
        assert.is(plan.seen[cluster]?.length ?? 0, wantCalls, `${where}: calls to ${cluster}`);
      }

      const reply = want.localReply ?? want.downstreamResponse;
      for (const [k, v] of Object.entries(reply.headers)) {
        if (k.startsWith(":") || OWN_HEADERS.has(k)) continue;
        if (varying[k]) assert.match(got.headers[k] ?? "", new RegExp(varying[k]), `${where}: response header ${k}`);
        else assert.is(headerValue(got.headers[k]), headerValue(v), `${where}: response header ${k}`);
      }
      assert.is(got.text, reply.body, `${where}: response body`);
    }
    for (const pattern of port.shape.logs ?? []) await envoy.waitForLog(new RegExp(pattern), 5000, logFrom);
    await sameMetrics(port, expected.metrics);

    // A port left to chance: keep asking until every listed outcome has occurred.
    const coin = port.shape.coin;
    if (coin) {
      const statuses = new Set();
      const clusters = new Set();
      for (let n = 0; n < 64; n++) {
        const stream = {
          request: { headers: { ":method": "GET", ":path": coin.path, ":authority": "coin.example.com" } },
          upstream: { headers: { ":status": "200" }, body: "coin" },
        };
        const got = await send(port, stream);
        statuses.add(got.status);
        for (const c of Object.keys(plan.seen)) clusters.add(c);
        if ((coin.statuses ?? []).every((s) => statuses.has(s)) && (coin.clusters ?? []).every((c) => clusters.has(c)))
          break;
      }
      if (coin.statuses) assert.equal([...statuses].sort(), coin.statuses, `${port.name}: statuses left to chance`);
      if (coin.clusters) assert.equal([...clusters].sort(), coin.clusters, `${port.name}: clusters left to chance`);
    }
  });
}

test.run();
