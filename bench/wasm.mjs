// `make bench-wasm`: the wasm engine as filter tests meet it (sdk/cli/wasm.mjs loading
// sdk/wasm/envoy-js.wasm). Prints the numbers, writes bench/wasm-results.json, and replaces the
// "Wasm engine" section of bench/RESULTS.md (make bench keeps that section as it is).
//
//  - load_ms: the one-time cost a test run pays: read the .wasm, compile, instantiate, first
//    call. Measured in fresh Node processes (LOAD_RUNS of them), median.
//  - replay_5_streams_ms: a warm replay of samples/hello's scenario (5 streams; the filter is
//    compiled from source in every replay, as request()/runScenario do), median of REPLAYS
//    after WARMUP.
//  - request_ms: one request() of @envoy-js/sdk/testing, warm, median.
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

import { buildFilter } from "../sdk/cli/build.mjs";
import { loadWasmEngine, wasmPath } from "../sdk/cli/wasm.mjs";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const LOAD_RUNS = 15;
const WARMUP = 20;
const REPLAYS = 200;
const TARGETS = { replay_5_streams_ms: 20, load_ms: 150 };

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const round = (x, d = 2) => Math.round(x * 10 ** d) / 10 ** d;

// ---- load, in fresh processes ----
const loadProbe = `
const t0 = performance.now();
const { loadWasmEngine } = await import(${JSON.stringify(path.join(ROOT, "sdk", "cli", "wasm.mjs"))});
const engine = loadWasmEngine();
engine.replay({ source: "export default {};" }, { streams: [] });
process.stdout.write(String(performance.now() - t0));
`;
const loads = [];
for (let i = 0; i < LOAD_RUNS; i++) {
  loads.push(Number(execFileSync(process.execPath, ["--input-type=module", "-e", loadProbe], { encoding: "utf8" })));
}

// ---- warm replay ----
const outFile = path.join(ROOT, "build", "bench", "hello", "filter.js");
await buildFilter({
  entry: path.join(ROOT, "samples", "hello", "filter.ts"),
  outFile,
  typecheck: false,
  warn: () => {},
});
const bundle = {
  source: readFileSync(outFile, "utf8"),
  filename: "filter.js",
  sourceMap: readFileSync(`${outFile}.map`, "utf8"),
};
const scenario = JSON.parse(readFileSync(path.join(ROOT, "samples", "hello", "scenario.json"), "utf8"));
if (scenario.streams.length !== 5)
  throw new Error(`samples/hello/scenario.json has ${scenario.streams.length} streams, not 5`);
const engine = loadWasmEngine();
const replays = [];
for (let i = 0; i < WARMUP + REPLAYS; i++) {
  const t0 = performance.now();
  const t = engine.replay(bundle, scenario);
  const ms = performance.now() - t0;
  if (t.streams.length !== 5) throw new Error("the replay lost streams");
  if (i >= WARMUP) replays.push(ms);
}

const { request } = await import(path.join(ROOT, "sdk", "dist", "testing", "index.js"));
const requests = [];
for (let i = 0; i < WARMUP + REPLAYS; i++) {
  const t0 = performance.now();
  request(bundle, { path: "/hello" });
  if (i >= WARMUP) requests.push(performance.now() - t0);
}

const wasm = readFileSync(wasmPath());
const results = {
  date: new Date().toISOString(),
  commit: execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: ROOT, encoding: "utf8" }).trim(),
  cpu: os.cpus()[0]?.model ?? "unknown",
  cores: os.cpus().length,
  node: process.version,
  quickjs: engine.quickjsVersion,
  wasm_bytes: wasm.length,
  wasm_gzip_bytes: gzipSync(wasm, { level: 9 }).length,
  load_ms: round(median(loads)),
  load_ms_min: round(Math.min(...loads)),
  replay_5_streams_ms: round(median(replays), 3),
  replay_5_streams_ms_min: round(Math.min(...replays), 3),
  request_ms: round(median(requests), 3),
  targets: TARGETS,
  load_average: os.loadavg().map((x) => round(x)),
};
writeFileSync(path.join(ROOT, "bench", "wasm-results.json"), `${JSON.stringify(results, null, 2)}\n`);

const met = (v, t) => (v <= t ? "**met**" : "**not met**");
const section = `<!-- wasm:begin (written by make bench-wasm: bench/wasm.mjs) -->
## Wasm engine

What filter tests pay (\`@envoy-js/sdk/testing\`, \`envoy-js replay\`): the runtime, quickjs-ng ${results.quickjs} and the scripted Envoy model compiled to wasm32-wasi, run by Node ${results.node}. Last run: ${results.date.slice(0, 16).replace("T", " ")} UTC, commit \`${results.commit}\`, ${results.cpu}, ${results.cores} cores, load average ${results.load_average.join(" ")}.

| metric | value | notes |
|---|--:|---|
| wasm.bytes | ${results.wasm_bytes.toLocaleString("en-US")} | sdk/wasm/envoy-js.wasm; ${results.wasm_gzip_bytes.toLocaleString("en-US")} bytes gzipped (-9) |
| wasm.load_ms | ${results.load_ms} | read + compile + instantiate + first call, fresh process, median of ${LOAD_RUNS}; min ${results.load_ms_min} |
| wasm.replay_5_streams_ms | ${results.replay_5_streams_ms} | samples/hello scenario.json (5 streams), filter compiled from source each time, warm, median of ${REPLAYS}; min ${results.replay_5_streams_ms_min} |
| wasm.request_ms | ${results.request_ms} | one \`request()\` of @envoy-js/sdk/testing, warm, median of ${REPLAYS} |

| goal | target | measured | met? |
|---|---|---|---|
| warm replay of a 5-stream scenario | <= ${TARGETS.replay_5_streams_ms} ms | ${results.replay_5_streams_ms} ms | ${met(results.replay_5_streams_ms, TARGETS.replay_5_streams_ms)} |
| one-time load of the .wasm | <= ${TARGETS.load_ms} ms | ${results.load_ms} ms | ${met(results.load_ms, TARGETS.load_ms)} |
| .wasm size, gzipped | <= 2 MB | ${(results.wasm_gzip_bytes / 1e6).toFixed(2)} MB | ${met(results.wasm_gzip_bytes, 2e6)} |
<!-- wasm:end -->`;

const resultsMd = path.join(ROOT, "bench", "RESULTS.md");
let md = existsSync(resultsMd) ? readFileSync(resultsMd, "utf8") : "# envoy-js benchmarks\n\n";
const b = md.indexOf("<!-- wasm:begin");
const e = md.indexOf("<!-- wasm:end -->");
if (b >= 0 && e > b) md = md.slice(0, b) + section + md.slice(e + "<!-- wasm:end -->".length);
else if (md.includes("## History")) md = md.replace("## History", `${section}\n\n## History`);
else md = `${md.trimEnd()}\n\n${section}\n`;
writeFileSync(resultsMd, md);

console.log(JSON.stringify(results, null, 2));
console.log(
  `wrote bench/wasm-results.json and the Wasm engine section of bench/RESULTS.md (${statSync(resultsMd).size} bytes)`,
);
