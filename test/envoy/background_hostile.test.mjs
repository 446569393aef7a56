// `background(config, bg)` used badly, inside a real Envoy (issue 18): callouts to a cluster
// that does not exist or never answers, a burst of concurrent callouts, the shared store's
// bounds, a `background` that throws, rejects or never yields, and many rapid reloads while
// callouts are in flight. Each has its outcome asserted; after each Envoy must still serve, its
// admin must answer, and it must not crash. One Envoy: a static listener per hostile filter
// (never reloaded), one listener from an LDS file and one whose filter comes from ECDS, each of
// which a test replaces 20 times in 2 s.
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";

import { test } from "uvu";
import * as assert from "uvu/assert";

import { envoyJsEcdsFilter, ldsCounters, writeEcdsFile, writeLdsFile } from "../../sdk/cli/envoy.mjs";
import {
  ROUTER_FILTER,
  envoyWith,
  filterConfigJson,
  h1,
  httpListener,
  jsListener,
  loopbackCluster,
  routeTo,
  sleep,
  startUpstream,
} from "./lib.mjs";

// One filter; `config.mode` picks the hostile background. Results go to bg.shared under
// "<mode>:<what>", which any listener's request reads back with `x-key`.
const FILTER = String.raw`
async function rejecting(note) {
  await null;
  setTimeout(() => note("timer", "ran"), 20);
  throw new Error("async background failed on purpose");
}
export default {
  background(config, bg) {
    const note = (what, v) => bg.shared.set((config.tag ?? config.mode) + ":" + what, String(v));
    const settled = (p) => p.then((r) => "status " + r.status, (e) => e.name + " " + e.code);
    switch (config.mode) {
      case "nocluster":
        settled(bg.fetch("no_such_cluster", { path: "/" })).then((v) => note("result", v));
        return;
      case "big":
        // The body is over buffer_limit_bytes (1 MiB by default); a small one follows.
        settled(bg.fetch("idp", { path: "/big" })).then((v) => {
          note("result", v);
          return settled(bg.fetch("idp", { path: "/small" })).then((w) => note("after", w));
        });
        return;
      case "hang":
        settled(bg.fetch("hang", { path: "/never", timeoutMs: 300 })).then((v) => note("result", v));
        return;
      case "burst":
      case "capped": {
        const cluster = config.mode === "burst" ? "idp" : "capped";
        const path = config.mode === "burst" ? "/burst?i=" : "/slow?capped=";
        const all = [];
        for (let i = 0; i < config.n; i++) all.push(settled(bg.fetch(cluster, { path: path + i, timeoutMs: 20000 })));
        Promise.all(all).then((rs) => {
          const by = {};
          for (const r of rs) by[r] = (by[r] ?? 0) + 1;
          bg.log.info("burst of " + config.n + " settled: " + JSON.stringify(by));
          note("result", JSON.stringify(by));
        });
        return;
      }
      case "shared": {
        const out = [];
        for (const [k, v] of [["big", "x".repeat(64 * 1024 + 1)], ["k".repeat(257), "v"], ["", "v"]]) {
          try {
            bg.shared.set(k, v);
            out.push("accepted");
          } catch (e) {
            out.push(e.name);
          }
        }
        note("caught", out.join(","));
        // Not caught: logged and counted as a failed timer callback; the next timer still runs.
        setTimeout(() => bg.shared.set("big2", "y".repeat(70000)), 10);
        setTimeout(() => note("after", "ran"), 50);
        return;
      }
      case "throws":
        setTimeout(() => note("timer", "ran"), 20);
        throw new Error("background failed on purpose at start");
      case "rejects":
        return rejecting(note);
      case "runaway":
        for (;;) {}
      case "reload": {
        // Callouts in flight at every moment: the upstream holds each 300 ms.
        const tick = () => settled(bg.fetch("idp", { path: "/slow?gen=" + config.gen, timeoutMs: 5000 })).then((v) => note("gen", config.gen));
        tick();
        setInterval(tick, 20);
        return;
      }
    }
  },
  onRequest(req, ctx) {
    return ctx.respond(200, { body: ctx.shared.get(req.headers.get("x-key") ?? "")?.value ?? "none" });
  },
};`;

const MODES = ["nocluster", "big", "hang", "burst", "capped", "shared", "throws", "rejects", "runaway"];
const BURST = 500;
// The bound that applies to concurrent callouts is Envoy's: the cluster's circuit breakers
// (1024 requests by default), over which Envoy refuses to start one (cannot_create); "capped"
// is the upstream of "idp" behind a limit of 50.
const CAP = 50;
const CAPPED_BREAKERS = {
  thresholds: [{ max_connections: CAP, max_pending_requests: CAP, max_requests: CAP, max_retries: 3 }],
};

let envoy, idp, hang, dir, ldsFile, ecdsDir;

const listenerFor = (name, config) => jsListener(name, { inline: FILTER, config, routes: [routeTo("idp")] });
const reloadListener = (gen) => listenerFor("reload", { mode: "reload", gen });
// The same background behind ECDS: a replaced filter config goes when its last stream ended,
// with no listener drain in between.
const ecdsVersion = (gen) =>
  writeEcdsFile(
    ecdsDir,
    filterConfigJson({ inline: FILTER, config: { mode: "reload", tag: "ecds", gen: `e${gen}` } }),
    gen,
  );
const ecdsListener = () =>
  httpListener({ name: "ecds", routes: [routeTo("idp")], httpFilters: [envoyJsEcdsFilter(ecdsDir), ROUTER_FILTER] });
const hits = (gen) => idp.received.filter((r) => r.url === `/slow?gen=${gen}`).length;

async function until(what, fn, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${envoy.logTail(40)}`);
    await sleep(20);
  }
}

// What the filter noted under `key`, read through a request on listener `name`.
async function read(key, name = "nocluster") {
  const r = await h1(await envoy.port(name), { headers: { "x-key": key } });
  assert.is(r.status, 200);
  return r.body.toString();
}

const noted = (key) => until(`${key} noted`, async () => (await read(key)) !== "none");

// Envoy serves every listener and its admin answers.
async function stillServing() {
  assert.not.ok(envoy.exited, "Envoy still runs");
  for (const m of [...MODES, "reload", "ecds"])
    assert.is((await h1(await envoy.port(m), { headers: { "x-key": "-" } })).status, 200);
  assert.ok((await envoy.stats("^server\\.live$")).get("server.live") === 1, "admin answers: live");
}

const stopped = () =>
  envoy.log.match(/envoy_js\(envoy_js\) background: stopped: the filter config is gone/g)?.length ?? 0;

test.before(async () => {
  idp = await startUpstream({
    handler: (req, res) => {
      const answer = () => {
        res.writeHead(200, { "content-type": "text/plain" });
        res.end("ok");
      };
      if (req.url.startsWith("/slow")) setTimeout(answer, 300);
      else if (req.url === "/big") res.end(Buffer.alloc(3 << 20, 0x62));
      else answer();
    },
  });
  hang = await startUpstream({ handler: () => {} }); // never answers
  dir = mkdtempSync(path.join(os.tmpdir(), "envoy-js-bg-hostile-"));
  ldsFile = path.join(dir, "listeners.json");
  writeLdsFile(ldsFile, [reloadListener(0)], "0");
  ecdsDir = path.join(dir, "ecds");
  mkdirSync(ecdsDir);
  ecdsVersion(0);
  envoy = await envoyWith({
    listeners: [...MODES.map((m) => listenerFor(m, { mode: m, n: BURST })), ecdsListener()],
    clusters: [
      loopbackCluster({ name: "idp", port: idp.port }),
      loopbackCluster({ name: "hang", port: hang.port }),
      { ...loopbackCluster({ name: "capped", port: idp.port }), circuit_breakers: CAPPED_BREAKERS },
    ],
    concurrency: 2,
    ldsFile,
    args: ["--drain-time-s", "1", "--drain-strategy", "immediate"],
  });
});

test.after(async () => {
  await envoy?.stop();
  await idp?.close();
  await hang?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("bg.fetch to a cluster that does not exist rejects with unknown_cluster", async () => {
  await noted("nocluster:result");
  assert.is(await read("nocluster:result"), "FetchError unknown_cluster");
  await stillServing();
});

test("bg.fetch of a response over buffer_limit_bytes rejects with response_too_large; the next one works", async () => {
  await noted("big:after");
  assert.is(await read("big:result"), "FetchError response_too_large");
  assert.is(await read("big:after"), "status 200");
  await stillServing();
});

test("bg.fetch to an upstream that never answers rejects with timeout after timeoutMs", async () => {
  await noted("hang:result");
  assert.is(await read("hang:result"), "FetchError timeout");
  assert.ok(
    hang.received.some((r) => r.url === "/never"),
    "the callout reached the upstream",
  );
  await stillServing();
});

test(`a burst of ${BURST} concurrent bg.fetch calls: every one settles, Envoy serves on`, async () => {
  await noted("burst:result");
  const by = JSON.parse(await read("burst:result"));
  const total = Object.values(by).reduce((a, b) => a + b, 0);
  assert.is(total, BURST);
  // Under the cluster's default circuit breakers (1024 requests): all of them answered.
  assert.equal(by, { "status 200": BURST });
  assert.is(idp.received.filter((r) => r.url.startsWith("/burst?")).length, BURST);
  await stillServing();
});

test(`${BURST} concurrent bg.fetch calls over a cluster's circuit breakers (${CAP}): the overflow is refused at once`, async () => {
  await noted("capped:result");
  const by = JSON.parse(await read("capped:result"));
  // Envoy refuses to start a callout over the limit: the promise rejects with cannot_create.
  assert.is((by["status 200"] ?? 0) + (by["FetchError cannot_create"] ?? 0), BURST, JSON.stringify(by));
  assert.ok(by["FetchError cannot_create"] > 0, JSON.stringify(by));
  const reached = idp.received.filter((r) => r.url.startsWith("/slow?capped=")).length;
  assert.is(reached, by["status 200"], "only the callouts within the limit reached the upstream");
  await stillServing();
});

test("bg.shared.set beyond the store's bounds: a RangeError, caught or logged; later timers run", async () => {
  await noted("shared:after");
  assert.is(await read("shared:caught"), "RangeError,RangeError,RangeError");
  await envoy.waitForLog(
    /envoy_js\(envoy_js\) background: error in a timer callback: RangeError: shared\.set\(\): value is 70000 bytes/,
  );
  assert.is(await read("big2"), "none");
  await stillServing();
});

test("a background that throws at start is logged with its stack; the timers it started run", async () => {
  await envoy.waitForLog(
    /background: error in background work: background\(\) threw: Error: background failed on purpose at start\n\s+at background \(inline\.js:\d+:\d+\)/,
  );
  await noted("throws:timer");
  await stillServing();
});

test("a background whose promise rejects is logged as an unhandled rejection; its timers run", async () => {
  await envoy.waitForLog(
    /background: error in background work: unhandled promise rejection: .*async background failed on purpose/,
  );
  await noted("rejects:timer");
  await stillServing();
});

test("a background that never yields is stopped by the CPU deadline; Envoy's main thread goes on", async () => {
  await envoy.waitForLog(/background: error in background work: background\(\) threw: InternalError: interrupted/);
  // The main thread serves the admin and applies config: the other backgrounds went on too.
  await stillServing();
  // The counts reach Envoy's stats with the config's next request.
  await until("cpu_limit counted", async () => {
    await h1(await envoy.port("runaway"));
    return [...(await envoy.stats("envoy_js\\.cpu_limit$")).values()].reduce((a, b) => a + b, 0) >= 1;
  });
});

test("20 reloads in 2 s with callouts in flight: the last config serves, old backgrounds stop, no crash", async () => {
  await until("the first reload config fetches", () => hits(0) >= 3);
  const before = await ldsCounters(envoy);
  const stoppedBefore = stopped();
  for (let gen = 1; gen <= 20; gen++) {
    writeLdsFile(ldsFile, [reloadListener(gen)], String(gen));
    await sleep(100);
  }
  await until("Envoy took the last listener version", async () => (await read("reload:gen", "reload")) === "20");
  const applied = (await ldsCounters(envoy)).success - before.success;
  assert.ok(applied >= 1, `LDS updates applied: ${applied}`);
  assert.is((await ldsCounters(envoy)).rejected, before.rejected);
  // Every replaced listener drains (1 s) and its config goes with its background: no old
  // generation is fetched any more, the last one goes on.
  await until("no listener draining", async () => {
    const g = await envoy.stats("^listener_manager\\.total_listeners_draining$");
    return g.get("listener_manager.total_listeners_draining") === 0;
  });
  // Each old config whose background started (it fetched at once) is destroyed with it.
  const started = () => Array.from({ length: 20 }, (_, gen) => hits(gen)).filter((n) => n > 0).length;
  await until("every started old background stopped", () => stopped() - stoppedBefore >= started());
  const old = () => Array.from({ length: 20 }, (_, gen) => hits(gen)).join(",");
  const oldHits = old();
  const lastHits = hits(20);
  await sleep(1000); // fifty of its intervals
  assert.is(old(), oldHits, "no callout of a destroyed config's background");
  assert.ok(hits(20) > lastHits, "the last config's background goes on");
  assert.is(stopped() - stoppedBefore, started(), "one stopped line per started background");
  await stillServing();
});

test("20 ECDS updates in 2 s with callouts in flight: the last config serves, old backgrounds stop", async () => {
  const ecds = async () => {
    const s = await envoy.stats("^extension_config_discovery\\..*\\.config_(reload|fail)$");
    let reload = 0;
    let fail = 0;
    for (const [k, v] of s) {
      if (k.endsWith(".config_reload")) reload += v;
      else fail += v;
    }
    return { reload, fail };
  };
  await until("the first ECDS config fetches", () => hits("e0") >= 3);
  const before = await ecds();
  const stoppedBefore = stopped();
  for (let gen = 1; gen <= 20; gen++) {
    ecdsVersion(gen);
    await sleep(100);
  }
  await until("Envoy took the last ECDS version", async () => (await read("ecds:gen", "ecds")) === "e20");
  const after = await ecds();
  assert.ok(after.reload > before.reload, `ECDS updates applied: ${after.reload - before.reload}`);
  assert.is(after.fail, before.fail);
  const started = () => Array.from({ length: 20 }, (_, gen) => hits(`e${gen}`)).filter((n) => n > 0).length;
  await until("every started old ECDS background stopped", () => stopped() - stoppedBefore >= started());
  const old = () => Array.from({ length: 20 }, (_, gen) => hits(`e${gen}`)).join(",");
  const oldHits = old();
  const lastHits = hits("e20");
  await sleep(1000); // fifty of its intervals
  assert.is(old(), oldHits, "no callout of a destroyed config's background");
  assert.ok(hits("e20") > lastHits, "the last config's background goes on");
  assert.is(stopped() - stoppedBefore, started(), "one stopped line per started background");
  await stillServing();
});

test("the replaced configs are freed, program and all, although each went with callouts in flight", async () => {
  // Every old reload config was destroyed with /slow callouts in flight (each held 300 ms, one
  // started every 20 ms). Workers free their engines of a dropped config at their next stream.
  const alive = () => {
    const all = [...envoy.log.matchAll(/envoy_js: filter configs alive: (\d+)/g)];
    return all.length ? Number(all[all.length - 1][1]) : -1;
  };
  const inUse = MODES.length + 2; // and the LDS and the ECDS reload listeners
  await until(
    `filter configs alive back to the ${inUse} in use`,
    async () => {
      await h1(await envoy.port("reload"), { headers: { "x-key": "-" } });
      return alive() === inUse;
    },
    20000,
  );
});

test.run();
