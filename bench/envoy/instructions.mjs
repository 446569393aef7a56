// `make bench-envoy-ir`: instructions per request on the Envoy worker thread, counted by
// callgrind, for the jobs whose targets compare CPU costs (header_rewrite, passthrough_1mib).
//
// Why: the time-based figures of `make bench-envoy` (the worker's schedstat CPU time) move by tens
// of microseconds between rounds on a shared 2-core machine, more than the few microseconds the
// header_rewrite target is about, so those targets stay "undecided". Instructions executed do not
// depend on the neighbours' load: the same requests through the same Envoy give the same count
// within a fraction of a percent. They are not time (cache misses and the kernel's share are not
// in them; syscalls are counted as the user-space instructions around them), so the report gives
// both and says which decided a target.
//
// How, per filter: the upstream Envoy runs normally (core 1); the Envoy under test runs under
// `valgrind --tool=callgrind --separate-threads=yes --instr-atstart=no` (core 0), one worker.
// After warm-up requests, instrumentation is switched on (`callgrind_control -i on`, then
// `-z` to zero the counts), IR_REQUESTS
// requests go through one keep-alive connection at a time, then the counts are dumped. The worker
// thread's file is the one with the most instructions in that window; Ir / requests is the
// figure, and the no-filter Envoy's figure subtracted from it is the filter's added instructions.
//
// Writes build/bench-envoy/instructions.json (read by report.mjs, which puts it in
// bench/envoy-results.json's notes and bench/RESULTS.md). Environment: BENCH_ENVOY_VERSION,
// BENCH_ENVOY_IR_REQUESTS (default 1000), BENCH_ENVOY_FILTERS (comma list).
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { buildFilter } from "@envoy-js/sdk/build";

import { findEnvoy, pinnedEnvoyVersions, startEnvoy } from "../../sdk/cli/envoy.mjs";
import { BODY_16K, BODY_1M, FILTERS, JOB_PATH, REQUEST_HEADERS, frontConfig, upstreamConfig } from "./configs.mjs";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const OUT = path.join(ROOT, "build", "bench-envoy");
const IR_OUT = path.join(OUT, "callgrind");
const IR_JOBS = ["header_rewrite", "passthrough_1mib"];
const REQUESTS = Number(process.env.BENCH_ENVOY_IR_REQUESTS || 1000);
// A 1 MiB request under valgrind takes ~50x its normal time: fewer of them give the same precision.
const REQUESTS_OF = { header_rewrite: REQUESTS, passthrough_1mib: Math.max(20, Math.round(REQUESTS / 10)) };
const WARMUP = 50;
const ONLY = process.env.BENCH_ENVOY_FILTERS ? process.env.BENCH_ENVOY_FILTERS.split(",") : null;
const started = Date.now();
const log = (...a) => console.log(`[ir ${((Date.now() - started) / 1000).toFixed(0).padStart(4)} s]`, ...a);

for (const tool of ["valgrind", "callgrind_control", "h2load", "taskset"]) {
  if (spawnSync("sh", ["-c", `command -v ${tool}`]).status !== 0) throw new Error(`${tool} not found (make bench-envoy-ir installs it)`);
}
const version = process.env.BENCH_ENVOY_VERSION || pinnedEnvoyVersions()[0];
const envoy = findEnvoy({ ENVOY_VERSION: version, PATH: "" });
if (!envoy || envoy.version !== version) throw new Error(`Envoy ${version} is not installed: make envoy`);
mkdirSync(IR_OUT, { recursive: true });

function wrapper(name, command) {
  const file = path.join(OUT, name);
  writeFileSync(file, `#!/bin/sh\n${command} "$@"\n`, { mode: 0o755 });
  return { bin: file, version, from: "make envoy" };
}
const upstreamEnvoy = wrapper("envoy-ir-upstream.sh", `exec taskset -c 1 '${envoy.bin}'`);
const underTest = (filter) =>
  wrapper(
    `envoy-ir-${filter}.sh`,
    `GODEBUG=cgocheck=0 exec taskset -c 0 valgrind --tool=callgrind --separate-threads=yes --instr-atstart=no ` +
      `--dump-instr=no --dump-line=no --callgrind-out-file='${IR_OUT}/${filter}.%p' '${envoy.bin}'`,
  );

const moduleDirectory = path.join(OUT, "modules");
mkdirSync(moduleDirectory, { recursive: true });
const envoyJsSo = path.join(ROOT, "build", "release", "libenvoy_js.so");
rmSync(path.join(moduleDirectory, "libenvoy_js.so"), { force: true });
symlinkSync(envoyJsSo, path.join(moduleDirectory, "libenvoy_js.so"));
const peers = { luaDir: path.join(ROOT, "bench", "peers", "lua"), wasm: path.join(OUT, "peer.wasm"), envoyJs: {} };
for (const job of IR_JOBS) {
  peers.envoyJs[job] = await buildFilter({ entry: path.join(ROOT, "bench", "peers", "envoy_js", `${job}.ts`), outFile: path.join(OUT, "envoy_js", `${job}.js`) });
}

const bodyFile = (name, size) => {
  const f = path.join(OUT, name);
  writeFileSync(f, "abcdefghijklmnopqrstuvwxyz".repeat(Math.ceil(size / 26)).slice(0, size));
  return f;
};
const options = (extra) => ({ moduleDirectory, logLevel: "warning", componentLogLevel: "dynamic_modules:warning,wasm:warning,lua:warning", maxLogChars: 200000, ...extra });
const running = new Set();
process.on("exit", () => {
  for (const p of running) if (!p.exited) p.child.kill("SIGKILL");
});
const upstream = await startEnvoy(options({ envoy: upstreamEnvoy, readyTimeoutMs: 60000, config: upstreamConfig({ body16k: bodyFile("body16k.txt", BODY_16K), body1m: bodyFile("body1m.txt", BODY_1M) }) }));
running.add(upstream);
const upstreamPort = await upstream.listenerPort("upstream");

const headerArgs = Object.entries(REQUEST_HEADERS).flatMap(([k, v]) => ["-H", `${k}: ${v}`]);
function h2load(port, job, n) {
  const r = spawnSync("taskset", ["-c", "1", "h2load", "--h1", "-n", String(n), "-c", "1", "-m", "1", "-t", "1", ...headerArgs, `http://127.0.0.1:${port}${JOB_PATH[job]}`], { encoding: "utf8", timeout: 900000 });
  const codes = /status codes: (\d+) 2xx/.exec(`${r.stdout}`);
  if (!codes || Number(codes[1]) !== n) throw new Error(`h2load: ${n} requests, not all 2xx:\n${`${r.stdout}\n${r.stderr}`.slice(-600)}`);
}
function control(pid, ...args) {
  const r = spawnSync("callgrind_control", [...args, String(pid)], { encoding: "utf8", timeout: 120000 });
  if (r.status !== 0) throw new Error(`callgrind_control ${args.join(" ")}: ${r.stdout}${r.stderr}`);
}
/** The "summary:" (or "totals:") Ir of one callgrind output file. */
function totalIr(file) {
  const m = /^(?:summary|totals):\s+(\d+)/m.exec(readFileSync(file, "utf8"));
  return m ? Number(m[1]) : 0;
}

const results = { envoy_version: version, requests: REQUESTS_OF, ir_per_request: {}, unavailable: {} };
const filters = FILTERS.filter((f) => !ONLY || ONLY.includes(f));
for (const filter of filters) {
  if (filter === "wasm_go" && !existsSync(peers.wasm)) {
    results.unavailable[filter] = "build/bench-envoy/peer.wasm is missing (make bench-envoy-peers)";
    continue;
  }
  if (filter === "dynmod" && !existsSync(path.join(moduleDirectory, "libbench_dynmod.so"))) {
    results.unavailable[filter] = "libbench_dynmod.so is missing (make bench-envoy-peers)";
    continue;
  }
  for (const f of readdirSync(IR_OUT)) if (f.startsWith(`${filter}.`)) rmSync(path.join(IR_OUT, f));
  let proc;
  try {
    proc = await startEnvoy(options({ envoy: underTest(filter), concurrency: 1, readyTimeoutMs: 400000, config: frontConfig({ filter, jobs: IR_JOBS, peers, upstreamPort, verify: false }) }));
    running.add(proc);
    const pid = proc.child.pid;
    results.ir_per_request[filter] = {};
    for (const job of IR_JOBS) {
      const port = await proc.listenerPort(job);
      h2load(port, job, WARMUP);
      const before = new Set(readdirSync(IR_OUT));
      control(pid, "-i", "on");
      control(pid, "-z");
      h2load(port, job, REQUESTS_OF[job]);
      control(pid, "-d", job);
      control(pid, "-i", "off");
      // The dump writes one file per thread; the worker's is the one with the most instructions.
      const dumped = readdirSync(IR_OUT).filter((f) => f.startsWith(`${filter}.`) && !before.has(f));
      const ir = Math.max(...dumped.map((f) => totalIr(path.join(IR_OUT, f))));
      results.ir_per_request[filter][job] = Math.round(ir / REQUESTS_OF[job]);
      log(`${filter} ${job}: ${results.ir_per_request[filter][job].toLocaleString("en-US")} Ir/request on the worker (${REQUESTS_OF[job]} requests, ${dumped.length} thread files)`);
    }
  } catch (err) {
    results.unavailable[filter] = String(err.message).split("\n").slice(0, 4).join(" | ");
    delete results.ir_per_request[filter];
    log(`${filter}: ${results.unavailable[filter]}`);
  } finally {
    if (proc) await proc.stop();
  }
}
await upstream.stop();
const base = results.ir_per_request.none;
results.added_ir_per_request = {};
for (const [filter, jobs] of Object.entries(results.ir_per_request)) {
  if (!base || filter === "none") continue;
  results.added_ir_per_request[filter] = Object.fromEntries(Object.entries(jobs).map(([job, ir]) => [job, ir - base[job]]));
}
writeFileSync(path.join(OUT, "instructions.json"), `${JSON.stringify(results, null, 2)}\n`);
log(`wrote ${path.relative(ROOT, path.join(OUT, "instructions.json"))}: ${JSON.stringify(results.added_ir_per_request)}`);
