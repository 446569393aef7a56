// Shared by the CLI tests: run `envoy-js` as a child process, make scratch
// directories with files in them.
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const CLI = fileURLToPath(new URL("../cli/envoy-js.mjs", import.meta.url));
export const REPO_ROOT = fileURLToPath(new URL("../..", import.meta.url));

/**
 * Runs the CLI. `env` entries are added to (or, when undefined, removed
 * from) the current environment.
 *
 * @param {string[]} args
 * @param {{ cwd?: string, env?: Record<string, string | undefined> }} [opts]
 */
export function runCli(args, opts = {}) {
  const env = { ...process.env };
  for (const [k, v] of Object.entries(opts.env ?? {})) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  const r = spawnSync(process.execPath, [CLI, ...args], {
    cwd: opts.cwd ?? process.cwd(),
    env,
    encoding: "utf8",
  });
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/**
 * A scratch directory holding `files` (relative path -> content). Remove it
 * with the returned `cleanup`.
 *
 * @param {Record<string, string>} files
 */
export function scratch(files = {}) {
  const dir = mkdtempSync(path.join(os.tmpdir(), "envoy-js-test-"));
  for (const [name, content] of Object.entries(files)) {
    const file = path.join(dir, name);
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, content);
  }
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * Environment entries that make the CLI use the wasm engine of this checkout
 * (sdk/wasm/envoy-js.wasm) and the default `make module` outputs, whatever
 * the calling shell has set.
 */
export const DEFAULT_ENGINES = { ENVOY_JS_WASM: undefined, ENVOY_JS_ABI_HOST: undefined, ENVOY_JS_MODULE: undefined };

/**
 * Environment entries that point the wasm engine at a file that does not
 * exist in `dir`, for the "engine missing" paths.
 *
 * @param {string} dir
 */
export function absentWasm(dir) {
  const file = path.join(dir, "absent.wasm");
  return { file, env: { ENVOY_JS_WASM: file } };
}
