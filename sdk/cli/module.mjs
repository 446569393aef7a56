// @ts-check
/**
 * The dynamic-module engine of `envoy-js replay --engine module`: runs the
 * ABI host stub (`build/release/abi_host`, built by `make module` from
 * `test/abi_host/`), which loads `libenvoy_js.so` through Envoy's
 * dynamic-module ABI the way Envoy >= 1.38 does and prints the transcript.
 * The path rule and the "run make module" message live here.
 *
 * @module
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

/**
 * Environment variables that override where the ABI host stub and the
 * module it loads are (default: the `make module` outputs of the repository
 * checkout this SDK lives in; the module beside the stub).
 *
 * @example
 * ```sh
 * ENVOY_JS_ABI_HOST=/opt/envoy-js/abi_host npx envoy-js replay dist/filter.js s.json --engine module
 * ```
 */
export const ABI_HOST_ENV = "ENVOY_JS_ABI_HOST";
export const MODULE_ENV = "ENVOY_JS_MODULE";

// sdk/cli/module.mjs -> <repo>/build/release/abi_host
const DEFAULT_ABI_HOST = fileURLToPath(new URL("../../build/release/abi_host", import.meta.url));

/** The ABI host stub is absent (`notBuilt`), or it could not load the module. */
export class ModuleEngineError extends Error {
  /**
   * @param {string} message
   * @param {ErrorOptions & { notBuilt?: boolean }} [options]
   */
  constructor(message, options) {
    super(message, options);
    this.name = "ModuleEngineError";
    this.notBuilt = options?.notBuilt ?? false;
  }
}

/**
 * Where the ABI host stub is: `$ENVOY_JS_ABI_HOST` when set, otherwise
 * `build/release/abi_host` of the repository.
 *
 * @param {NodeJS.ProcessEnv} [env]
 * @returns {string} an absolute path
 */
export function abiHostPath(env = process.env) {
  const override = env[ABI_HOST_ENV];
  return override ? path.resolve(override) : DEFAULT_ABI_HOST;
}

/**
 * @typedef {object} ModuleReplay
 * @property {string} bundleFile the built filter, given to the module as `source`
 * @property {string} scenarioFile the scenario (JSON)
 * @property {string} [bytecodeFile] given to the module as `bytecode`
 */

/**
 * Replays a scenario on the dynamic module and returns the transcript.
 *
 * @param {ModuleReplay} options
 * @param {NodeJS.ProcessEnv} [env]
 * @returns {unknown}
 * @throws {ModuleEngineError} when the stub is not built (the message says
 *   to run `make module`) or when the module, the filter or the scenario
 *   cannot be loaded (the stub's reason)
 */
export function replayOnModule({ bundleFile, scenarioFile, bytecodeFile }, env = process.env) {
  const host = abiHostPath(env);
  if (!existsSync(host)) {
    const hint = env[ABI_HOST_ENV]
      ? `${ABI_HOST_ENV} points there; build it with \`make module\``
      : "build it with `make module`";
    throw new ModuleEngineError(`the dynamic-module ABI host stub is not built at ${host}: ${hint}`, {
      notBuilt: true,
    });
  }
  const args = [];
  if (env[MODULE_ENV]) args.push("--module", path.resolve(env[MODULE_ENV]));
  if (bytecodeFile) args.push("--bytecode", path.resolve(bytecodeFile));
  args.push(bundleFile, scenarioFile);
  const r = spawnSync(host, args, { encoding: "utf8", maxBuffer: 1 << 30 });
  if (r.error) throw new ModuleEngineError(`cannot run ${host}: ${r.error.message}`, { cause: r.error });
  if (r.status !== 0) {
    const reason = r.stderr.trim() || `${path.basename(host)} exited with ${r.status ?? r.signal}`;
    throw new ModuleEngineError(reason);
  }
  try {
    return JSON.parse(r.stdout);
  } catch (err) {
    throw new ModuleEngineError(`${host} printed no transcript: ${r.stdout.slice(0, 200)}`, { cause: err });
  }
}
