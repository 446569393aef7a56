// Test helpers: replay inline filter source through the dynamic module (libenvoy_js.so driven
// by the ABI host stub through Envoy's C ABI), next to the native host stub.
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { wasm } from "./wasm.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
export const buildDir = path.join(here, "..", "..", "build", "release");
export const abiHost = process.env.ENVOY_JS_ABI_HOST ?? path.join(buildDir, "abi_host");
// The stub for Envoy 1.38 (built beside abi_host; `abi_host --envoy 1.38` runs it).
export const abiHost138 = path.join(path.dirname(abiHost), "abi_host_1_38");
export const moduleSo = process.env.ENVOY_JS_MODULE ?? path.join(buildDir, "libenvoy_js.so");

/** Runs the ABI host stub; returns {code, stdout, stderr}. */
export function runAbiHost(args) {
  const r = spawnSync(abiHost, ["--module", moduleSo, ...args], { encoding: "utf8", maxBuffer: 1 << 28 });
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr.trim() };
}

/**
 * Replays `scenario` against the filter `source` on the dynamic module. The source is written
 * as `filename` in a scratch directory (its base name is what stacks show, as in the native
 * replay). `args` go to the stub (e.g. ["--envoy", "1.38"], ["--workers", "2"]). Throws an
 * Error with the stub's reason when the filter cannot be loaded.
 */
export function replayModule(source, scenario, { filename = "filter.js", bytecode, args: extra = [] } = {}) {
  const dir = mkdtempSync(path.join(os.tmpdir(), "envoy-js-module-"));
  try {
    const bundle = path.join(dir, path.basename(filename));
    const scenarioFile = path.join(dir, "scenario.json");
    writeFileSync(bundle, source);
    writeFileSync(scenarioFile, JSON.stringify(scenario));
    const args = [];
    if (bytecode) {
      writeFileSync(path.join(dir, "filter.qjsbc"), bytecode);
      args.push("--bytecode", path.join(dir, "filter.qjsbc"));
    }
    const r = runAbiHost([...args, ...extra, bundle, scenarioFile]);
    if (r.code !== 0) throw new Error(r.stderr || `abi_host exited with ${r.code}`);
    return JSON.parse(r.stdout);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The same replay on the native host stub. */
export function replayNative(source, scenario, { filename = "filter.js", bytecode } = {}) {
  return wasm.replay({ source, filename, bytecode }, scenario);
}
