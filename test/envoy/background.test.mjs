// `background(config, bg)` in a real Envoy: one engine per filter config on Envoy's main thread
// (envoy_ext/module/background.cc). With NO request in flight it fetches from a local upstream
// every 100 ms (config scheduler + config callout), requests then read the result through
// ctx.shared, and a reload (a new listener version from an LDS file) stops the old config's
// background for good while the new one takes over. Last, the port of proxy-wasm's
// dispatch_call_on_tick (test/peers/) in Envoy.
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";

import { test } from "uvu";
import * as assert from "uvu/assert";

import { buildSample } from "../../samples/lib/harness.mjs";
import { freePort, ldsCounters, moduleDir, writeLdsFile } from "../../sdk/cli/envoy.mjs";
import { PEERS_DIR } from "../peers/lib.mjs";
import {
  bootstrap,
  envoyUnderTest,
  envoyWith,
  h1,
  jsListener,
  loopbackCluster,
  sleep,
  startEnvoy,
  startUpstream,
} from "./lib.mjs";

const FILTER = String.raw`
let n = 0;
export default {
  background(config, bg) {
    const refresh = async () => {
      n++;
      if (config.throwEvery && n % config.throwEvery === 0) throw new Error("refresh " + n + " failed on purpose");
      if (config.spinAt === n) for (;;) {} // a runaway callback on Envoy's main thread
      const r = await bg.fetch("idp", { path: "/keys?gen=" + config.gen + "&n=" + n, timeoutMs: 2000 });
      if (r.status === 200) bg.shared.set("jwks", config.gen + ":" + (await r.text()));
      else bg.log.warn("refresh got", r.status);
    };
    refresh();
    setInterval(refresh, 100);
  },
  onRequest(req, ctx) {
    return ctx.respond(200, { body: ctx.shared.get("jwks")?.value ?? "none" });
  },
};`;

let envoy, upstream, dir, ldsFile, port;

const seen = (gen) => upstream.received.filter((r) => r.url.startsWith(`/keys?gen=${gen}&`)).length;

async function until(what, fn, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${envoy.logTail(30)}`);
    await sleep(20);
  }
}

function listener(config) {
  return {
    ...jsListener("bg", { inline: FILTER, config, routes: [{ match: { prefix: "/" }, route: { cluster: "idp" } }] }),
    address: { socket_address: { address: "127.0.0.1", port_value: port } },
  };
}

test.before(async () => {
  upstream = await startUpstream({
    handler: (req, res) => {
      res.writeHead(200, { "content-type": "text/plain" });
      res.end(`key-${new URL(req.url, "http://x").searchParams.get("n")}`);
    },
  });
  dir = mkdtempSync(path.join(os.tmpdir(), "envoy-js-bg-"));
  ldsFile = path.join(dir, "listeners.json");
  port = await freePort();
  writeLdsFile(ldsFile, [listener({ gen: "A", throwEvery: 4, spinAt: 6 })], "1");
  envoy = await startEnvoy({
    envoy: envoyUnderTest(),
    config: bootstrap({ clusters: [loopbackCluster({ name: "idp", port: upstream.port })], ldsFile }),
    concurrency: 2,
    args: ["--drain-time-s", "1", "--drain-strategy", "immediate"],
  });
});

test.after(async () => {
  await envoy?.stop();
  await upstream?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("background fetches every 100 ms with no request in flight; a request then sees the result", async () => {
  // Not one request has reached Envoy yet: only the background engine calls the upstream.
  await until("5 background refreshes", () => seen("A") >= 5);
  assert.ok(upstream.received.every((r) => r.url.startsWith("/keys?gen=A&")));
  const r = await h1(port, { path: "/" });
  assert.is(r.status, 200);
  assert.match(r.body, /^A:key-\d+$/);
  // Every 4th refresh throws: logged with its location, counted in envoy_js.errors (which
  // the main thread hands to the next stream to count), and the interval goes on.
  await envoy.waitForLog(/envoy_js\(envoy_js\) background: error in background work: .*refresh 4 failed on purpose/);
  // Refresh 6 never ends by itself: the CPU deadline interrupts it, Envoy's main thread goes on.
  await envoy.waitForLog(/envoy_js\(envoy_js\) background: error in a timer callback: InternalError: interrupted/);
  const before = seen("A");
  await until("more refreshes after the failures", () => seen("A") > before + 2);
  await h1(port, { path: "/" });
  const sum = async (name) => [...(await envoy.stats(`envoy_js\\.${name}$`)).values()].reduce((a, b) => a + b, 0);
  assert.ok((await sum("errors")) >= 2, `envoy_js.errors ${await sum("errors")}`);
  assert.is(await sum("cpu_limit"), 1);
});

test("a reload starts the new config's background and stops the old one for good", async () => {
  const { success } = await ldsCounters(envoy);
  writeLdsFile(ldsFile, [listener({ gen: "B" })], "2");
  await until("Envoy took the new listener", async () => (await ldsCounters(envoy)).success > success);
  await until("the new config's background refreshes", () => seen("B") >= 3);
  await until("a request sees the new config's value", async () => /^B:key-\d+$/.test((await h1(port)).body));
  // The old listener drains (1 s), then Envoy destroys its filter config with its background.
  await envoy.waitForLog(/envoy_js\(envoy_js\) background: stopped: the filter config is gone/, 20000);
  const oldCount = seen("A");
  const newCount = seen("B");
  // Ten of its intervals: the old engine would have fetched again by now.
  await sleep(1000);
  assert.is(seen("A"), oldCount, "no request of the destroyed config's background");
  assert.ok(seen("B") > newCount, "the new config's background goes on");
  assert.not.ok(envoy.exited, "Envoy still runs");
  assert.is((await h1(port)).status, 200);
});

test("the proxy-wasm dispatch_call_on_tick port calls web_service on every tick, with no request", async () => {
  const { outFile } = await buildSample("pw-dispatch-call-on-tick", PEERS_DIR);
  const web = await startUpstream();
  const tick = await envoyWith({
    listeners: [
      jsListener("tick", { source: outFile, routes: [{ match: { prefix: "/" }, route: { cluster: "web_service" } }] }),
    ],
    clusters: [loopbackCluster({ name: "web_service", port: web.port })],
  });
  try {
    await tick.waitForLog(/set tick period milliseconds: 100/);
    await tick.waitForLog(/called 3 for contextID=1/);
    await tick.waitForLog(/response header for the dispatched call: content-type: text\/plain/);
    assert.ok(web.received.length >= 3);
    for (const r of web.received) {
      assert.ok(r.url === "/ok" || r.url === "/fail", r.url);
      assert.is(r.headers.host, "some_authority");
      assert.is(r.headers.accept, "*/*");
    }
  } finally {
    await tick.stop();
    await web.close();
  }
});

test("a config check (envoy --mode validate) builds the filter config but never starts its background", async () => {
  const web = await startUpstream();
  const work = mkdtempSync(path.join(os.tmpdir(), "envoy-js-bg-validate-"));
  try {
    const configFile = path.join(work, "envoy.json");
    const filter = jsListener("check", {
      inline: FILTER,
      config: { gen: "V" },
      routes: [{ match: { prefix: "/" }, route: { cluster: "idp" } }],
    });
    writeFileSync(
      configFile,
      JSON.stringify(bootstrap({ listeners: [filter], clusters: [loopbackCluster({ name: "idp", port: web.port })] })),
    );
    const r = spawnSync(
      envoyUnderTest().bin,
      ["--mode", "validate", "-c", configFile, "-l", "info", "--component-log-level", "dynamic_modules:debug"],
      {
        env: { ...process.env, ENVOY_DYNAMIC_MODULES_SEARCH_PATH: moduleDir() },
        encoding: "utf8",
        timeout: 60000,
      },
    );
    // Validation runs on_http_filter_config_new (a bundle with a syntax error fails it here), so
    // the config was built: only its background must not have started.
    assert.is(r.status, 0, r.stderr.slice(-2000));
    assert.match(r.stderr + r.stdout, /OK/);
    await sleep(300); // three of its intervals, had it started
    assert.equal(web.received, []);
    assert.not.match(r.stderr, /background: (error|stopped)/);
  } finally {
    rmSync(work, { recursive: true, force: true });
    await web.close();
  }
});

test.run();
