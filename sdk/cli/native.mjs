// @ts-check
/**
 * Loader for the native host stub: the Node addon (built by node-gyp from
 * `test/host_stub/`) that links the C++ runtime and quickjs-ng. The CLI
 * (`--bytecode`, `replay --engine native`) and tests load it through here,
 * so the path rule and the "run make native" message live in one place.
 *
 * @module
 */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

/**
 * Environment variable that overrides where the addon is loaded from.
 *
 * @example
 * ```sh
 * ENVOY_JS_NATIVE_ADDON=/tmp/envoy_js_host.node npx envoy-js replay dist/filter.js s.json
 * ```
 */
export const NATIVE_ADDON_ENV = "ENVOY_JS_NATIVE_ADDON";

/**
 * What `replay` gets to load: the bundle's source, the name that error
 * locations use, and optionally its source map and bytecode.
 *
 * @typedef {object} ReplayBundle
 * @property {string} source The bundle (one ES module).
 * @property {string} filename Name of the bundle in stack traces, e.g. `filter.js`.
 * @property {string} [sourceMap] The bundle's source map (JSON text).
 * @property {Uint8Array} [bytecode] Bytecode from `compileBytecode`, used instead of `source`.
 */

/**
 * The addon's exports.
 *
 * @typedef {object} NativeAddon
 * @property {string} quickjsVersion Version of the linked quickjs-ng, e.g. `0.17.0`.
 * @property {(source: string, filename: string) => Buffer} compileBytecode
 *   Compiles a bundle to bytecode tagged with the quickjs-ng version; throws a
 *   SyntaxError naming `filename:line:col`.
 * @property {(bundle: ReplayBundle, scenario: unknown) => unknown} replay
 *   Runs a replay scenario (DESIGN.md section 7) and returns the transcript;
 *   throws when the bundle or the scenario cannot be loaded.
 * @property {new (bundle: ReplayBundle, options?: { config?: unknown, settings?: unknown }) => any} ScriptedHost
 *   The same host driven step by step (newStream, requestHeaders, requestData,
 *   ..., advanceTime, stream(i), transcript(), close()); used by `envoy-js dev`.
 */

/** Raised when the addon is absent, fails to load, or lacks an export. */
export class NativeAddonError extends Error {
  /**
   * @param {string} message
   * @param {ErrorOptions} [options]
   */
  constructor(message, options) {
    super(message, options);
    this.name = "NativeAddonError";
  }
}

// sdk/cli/native.mjs -> <repo>/test/host_stub/build/Release/envoy_js_host.node
const DEFAULT_ADDON = fileURLToPath(
  new URL("../../test/host_stub/build/Release/envoy_js_host.node", import.meta.url),
);

/**
 * Where the addon is loaded from: `$ENVOY_JS_NATIVE_ADDON` when set,
 * otherwise the node-gyp output of the repository checkout this SDK lives in.
 *
 * @param {NodeJS.ProcessEnv} [env]
 * @returns {string} an absolute path
 */
export function nativeAddonPath(env = process.env) {
  const override = env[NATIVE_ADDON_ENV];
  return override ? path.resolve(override) : DEFAULT_ADDON;
}

/** @type {Map<string, NativeAddon>} */
const loaded = new Map();

/**
 * Loads the addon (once per path) and checks that it has the expected
 * exports.
 *
 * @param {NodeJS.ProcessEnv} [env]
 * @returns {NativeAddon}
 * @throws {NativeAddonError} with a message that says how to build it
 */
export function loadNativeAddon(env = process.env) {
  const file = nativeAddonPath(env);
  const cached = loaded.get(file);
  if (cached) return cached;

  const hint = env[NATIVE_ADDON_ENV]
    ? `${NATIVE_ADDON_ENV} points there; build the addon with \`make native\``
    : "build it with `make native`";
  if (!existsSync(file)) {
    throw new NativeAddonError(`native addon not found at ${file}: ${hint}`);
  }
  /** @type {Record<string, unknown>} */
  let addon;
  try {
    addon = createRequire(import.meta.url)(file);
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new NativeAddonError(`native addon at ${file} failed to load: ${reason} (${hint})`, {
      cause: err,
    });
  }
  const missing = [
    ["quickjsVersion", "string"],
    ["compileBytecode", "function"],
    ["replay", "function"],
  ].filter(([name, type]) => typeof addon[/** @type {string} */ (name)] !== type);
  if (missing.length > 0) {
    const names = missing.map(([name, type]) => `${name} (${type})`).join(", ");
    throw new NativeAddonError(`native addon at ${file} lacks ${names}: rebuild it with \`make native\``);
  }
  const typed = /** @type {NativeAddon} */ (/** @type {unknown} */ (addon));
  loaded.set(file, typed);
  return typed;
}
