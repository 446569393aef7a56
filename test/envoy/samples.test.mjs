// Every sample runs in a real Envoy with the config users copy: its committed
// envoy-dynamic-module.yaml, changed only where a test must (loopback ports picked by the
// kernel, the clusters pointed at this test's servers). Each stream of the sample's
// scenario.json is sent through Envoy, and what the client gets must match what the wasm
// engine's replay of the same scenario says.
import { createSign, generateKeyPairSync } from "node:crypto";
import { mkdirSync, readFileSync, readdirSync, existsSync, writeFileSync } from "node:fs";
import http from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { test } from "uvu";
import * as assert from "uvu/assert";
import YAML from "yaml";

import { runScenario } from "@envoy-js/sdk/testing";

import { buildFilter } from "../../sdk/cli/build.mjs";
import { h1, envoyUnderTest, scratchDir, startEnvoy } from "./lib.mjs";

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const SAMPLES = path.join(REPO, "samples");
const names = readdirSync(SAMPLES).filter((n) => existsSync(path.join(SAMPLES, n, "envoy-dynamic-module.yaml")));

// One server per cluster; `plan.current` says how the stream being sent wants it answered.
async function scriptedServer(plan, cluster) {
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      plan.seen[cluster] = { headers: req.headers, body: Buffer.concat(chunks).toString() };
      const spec = cluster === "upstream" ? (plan.current.upstream ?? {}) : plan.current.clusters?.[cluster];
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
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return server;
}

const headerValue = (v) => (Array.isArray(v) ? v.join(", ") : v);

// Envoy's jwt_authn runs before the jwt-claims filter and verifies signatures, which the
// scenario's tokens (made for the scripted host, which has no jwt_authn) do not carry. The test makes a
// key, points local_jwks at it, and signs every well-formed token's header and payload again.
function signTokensFor(config, scenario, dir) {
  const { publicKey, privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const jwks = path.join(dir, "jwks.json");
  writeFileSync(
    jwks,
    JSON.stringify({ keys: [{ ...publicKey.export({ format: "jwk" }), kid: "k1", alg: "RS256", use: "sig" }] }),
  );
  const text = JSON.stringify(config).replace(
    /"filename":"[^"]*jwks[^"]*"/,
    JSON.stringify("filename") + ":" + JSON.stringify(jwks),
  );
  for (const stream of scenario.streams) {
    const m = /^Bearer ([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)\.[A-Za-z0-9_-]*$/.exec(
      stream.request.headers.authorization ?? "",
    );
    if (!m) continue;
    const signature = createSign("RSA-SHA256").update(m[1]).sign(privateKey).toString("base64url");
    stream.request.headers.authorization = `Bearer ${m[1]}.${signature}`;
  }
  return JSON.parse(text);
}

for (const name of names) {
  test(`sample ${name}: its envoy-dynamic-module.yaml serves its scenario in a real Envoy`, async () => {
    const dir = path.join(SAMPLES, name);
    let config = YAML.parse(readFileSync(path.join(dir, "envoy-dynamic-module.yaml"), "utf8"));
    const scenario = JSON.parse(readFileSync(path.join(dir, "scenario.json"), "utf8"));
    const scratch = scratchDir();
    // Another filter in front answers some requests itself: only the status is ours to compare.
    const envoyAnswersFirst = JSON.stringify(config).includes("jwt_authn");
    if (envoyAnswersFirst) config = signTokensFor(config, scenario, scratch.dir);
    // The yaml names the bundle by a path relative to the repository root: build it there.
    const filterConfig = JSON.parse(
      config.static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters.find((f) =>
        f.name.includes("dynamic_modules"),
      ).typed_config.filter_config.value,
    );
    mkdirSync(path.dirname(path.join(REPO, filterConfig.source)), { recursive: true });
    const { outFile } = await buildFilter({
      entry: path.join(dir, "filter.ts"),
      outFile: path.join(REPO, filterConfig.source),
      quiet: true,
    });

    const plan = { current: null, seen: {} };
    const servers = new Map();
    // Clusters that routes name play the scenario's upstream; the others are ctx.fetch clusters.
    const routed = new Set(
      JSON.stringify(config.static_resources.listeners)
        .match(/"cluster":"[^"]+"/g)
        ?.map((m) => m.slice(11, -1)),
    );
    for (const c of config.static_resources.clusters) {
      const role = routed.has(c.name) ? "upstream" : c.name;
      const server = await scriptedServer(plan, role);
      servers.set(c.name, server);
      c.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address = {
        address: "127.0.0.1",
        port_value: server.address().port,
      };
    }
    for (const l of config.static_resources.listeners)
      l.address.socket_address = { address: "127.0.0.1", port_value: 0 };
    config.admin = { address: { socket_address: { address: "127.0.0.1", port_value: 0 } } };

    const envoy = await startEnvoy({ envoy: envoyUnderTest(), config, cwd: REPO });
    try {
      const port = await envoy.listenerPort(config.static_resources.listeners[0].name);
      const expected = runScenario(
        { source: readFileSync(outFile, "utf8"), filename: "filter.js" },
        { ...scenario, config: filterConfig.config, settings: pickSettings(filterConfig) },
        { engine: "wasm" },
      );
      for (const [i, stream] of scenario.streams.entries()) {
        // A scenario's own per-route override is not in the committed yaml.
        if (stream.route) continue;
        plan.current = stream;
        plan.seen = {};
        const headers = {};
        for (const [k, v] of Object.entries(stream.request.headers)) if (!k.startsWith(":")) headers[k] = v;
        headers.host = stream.request.headers[":authority"];
        const body = stream.request.body === undefined ? undefined : [].concat(stream.request.body).join("");
        if (process.env.DEBUG_SAMPLES)
          console.log(name, i, stream.request.headers[":method"], stream.request.headers[":path"]);
        const got = await h1(port, {
          method: stream.request.headers[":method"],
          path: stream.request.headers[":path"],
          headers,
          body,
        }).catch((err) => {
          throw new Error(`stream ${i}: ${err.message}; Envoy's log ends:\n${envoy.logTail(15)}`);
        });
        const want = expected.streams[i];
        const wantStatus = Number(want.localReply?.status ?? want.downstreamResponse?.headers[":status"]);
        assert.is(
          got.status,
          wantStatus,
          `stream ${i}: status, body ${got.text.slice(0, 100)} (wasm transcript: ${JSON.stringify(want).slice(0, 300)})`,
        );
        if (envoyAnswersFirst && want.upstreamRequest === null) continue;
        assert.is(Boolean(plan.seen.upstream), want.upstreamRequest !== null, `stream ${i}: reached the upstream`);
        if (want.upstreamRequest) {
          for (const [k, v] of Object.entries(want.upstreamRequest.headers)) {
            // Envoy makes its own x-request-id when the client sends none, as the scripted host does.
            if (k.startsWith(":") || k === "content-length" || k === "x-request-id") continue;
            assert.is(headerValue(plan.seen.upstream.headers[k]), headerValue(v), `stream ${i}: upstream header ${k}`);
          }
        }
        if (want.localReply) assert.is(got.text, want.localReply.body, `stream ${i}: local reply body`);
      }
    } finally {
      await envoy.stop();
      for (const s of servers.values()) await new Promise((r) => s.close(r));
      scratch.remove();
    }
  });
}

// The settings keys of a module filter_config (docs/configuration.md).
function pickSettings(filterConfig) {
  const out = {};
  for (const k of ["failure_mode", "max_heap_bytes", "max_cpu_ms_per_event", "buffer_limit_bytes"])
    if (k in filterConfig) out[k] = filterConfig[k];
  return out;
}

test.run();
