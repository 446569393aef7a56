// @ts-check
/**
 * Replay: run a scenario (DESIGN.md section 7) against a built filter on one
 * of the engines and return the transcript.
 *
 * @module
 */
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";

import { ModuleEngineError, replayOnModule } from "./module.mjs";
import { EnvoyEngineError, replayOnEnvoy } from "./replay-envoy.mjs";
import { mapTranscript, parseBundleSourceMap, withShownSources } from "./sourcemap.mjs";
import { loadWasmEngine } from "./wasm.mjs";

/**
 * Engines `replay` knows, in the order shown to users.
 *
 * @example
 * ```js
 * ENGINES.includes("wasm"); // true
 * ```
 */
export const ENGINES = /** @type {const} */ (["wasm", "module", "envoy"]);

/**
 * Names of retired engines, and what runs instead: the TypeScript stub and the Node addon
 * both gave way to the wasm engine (the same C++ runtime, compiled to WebAssembly).
 *
 * @example
 * ```js
 * RETIRED_ENGINES.stub; // "wasm"
 * ```
 */
export const RETIRED_ENGINES = /** @type {const} */ ({ stub: "wasm", native: "wasm" });

/** @typedef {(typeof ENGINES)[number]} Engine */

/**
 * A replay that cannot start. `exitCode` is 2 for a usage error (bad or
 * unavailable engine) and 1 when the filter or scenario cannot be loaded.
 */
export class ReplayError extends Error {
  /**
   * @param {string} message
   * @param {1 | 2} exitCode
   * @param {ErrorOptions} [options]
   */
  constructor(message, exitCode, options) {
    super(message, options);
    this.name = "ReplayError";
    this.exitCode = exitCode;
  }
}

/**
 * Checks an engine name; throws a {@link ReplayError} (exit 2) for an
 * unknown one. A retired name gives the engine that replaced it, with a
 * notice through `onNotice`.
 *
 * @param {string} name
 * @param {(message: string) => void} [onNotice]
 * @returns {Engine}
 */
export function checkEngine(name, onNotice) {
  if (name === "wasm" || name === "module" || name === "envoy") return name;
  if (name === "stub" || name === "native") {
    const instead = RETIRED_ENGINES[name];
    onNotice?.(`--engine ${name} is retired: running on --engine ${instead} (the C++ runtime compiled to WebAssembly)`);
    return instead;
  }
  throw new ReplayError(`unknown engine '${name}': valid engines are ${ENGINES.join(", ")}`, 2);
}

/**
 * @param {string} file
 * @param {string} what
 * @returns {Buffer}
 */
function readInput(file, what) {
  try {
    return readFileSync(file);
  } catch (err) {
    const reason = /** @type {NodeJS.ErrnoException} */ (err).code === "ENOENT" ? "not found" : String(err);
    throw new ReplayError(`cannot read ${what} ${file}: ${reason}`, 1, { cause: err });
  }
}

/**
 * Reads and parses a scenario file. Throws a {@link ReplayError} (exit 1)
 * when it cannot be read, is not JSON, or is not a JSON object.
 *
 * @param {string} file
 * @returns {Record<string, unknown>}
 */
export function readScenario(file) {
  const text = readInput(file, "scenario").toString("utf8");
  /** @type {unknown} */
  let scenario;
  try {
    scenario = JSON.parse(text);
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new ReplayError(`scenario ${file} is not valid JSON: ${reason}`, 1, { cause: err });
  }
  if (typeof scenario !== "object" || scenario === null || Array.isArray(scenario)) {
    throw new ReplayError(`scenario ${file} must be a JSON object (with "streams")`, 1);
  }
  return /** @type {Record<string, unknown>} */ (scenario);
}

/**
 * Reads a bundle, with `<bundle>.map` when it exists and the given bytecode.
 * The filename given to the engine is the bundle's base name, as it is in
 * bytecode built by `envoy-js build --bytecode`.
 *
 * @param {string} bundleFile
 * @param {string} [bytecodeFile]
 * @returns {import("./wasm.mjs").Bundle}
 */
export function readBundle(bundleFile, bytecodeFile) {
  /** @type {import("./wasm.mjs").Bundle} */
  const bundle = {
    source: readInput(bundleFile, "bundle").toString("utf8"),
    filename: path.basename(bundleFile),
  };
  const mapFile = `${bundleFile}.map`;
  if (existsSync(mapFile)) bundle.sourceMap = readInput(mapFile, "source map").toString("utf8");
  if (bytecodeFile) bundle.bytecode = readInput(bytecodeFile, "bytecode");
  return bundle;
}

/**
 * @typedef {object} ReplayOptions
 * @property {string} bundleFile the built filter (`dist/filter.js`)
 * @property {string} scenarioFile the scenario (JSON)
 * @property {string} [engine] `wasm` (default: the runtime compiled to
 *   WebAssembly, shipped in this package), `module` (the
 *   dynamic module `libenvoy_js.so` driven through Envoy's C ABI by the ABI
 *   host stub; needs `make module`), or `envoy` (a real Envoy loading the
 *   module, see replay-envoy.mjs; needs `make module` and an Envoy)
 * @property {string} [bytecodeFile] bytecode to load instead of the source
 * @property {(message: string) => void} [onWarning] the envoy engine's
 *   notes on streams that could not go as the scenario says
 */

/**
 * Runs a scenario and returns the engine's transcript, with the locations in
 * `errors` and logs mapped to the TypeScript sources when the bundle has a
 * source map (`src/filter.ts:5:11 (filter.js:7:34)`). Every way of not
 * getting that far throws a {@link ReplayError} carrying the exit code.
 *
 * @param {ReplayOptions} options
 * @returns {Promise<unknown>} the transcript
 */
export async function replay({ bundleFile, scenarioFile, engine = "wasm", bytecodeFile, onWarning }) {
  const checked = checkEngine(engine, onWarning ?? ((m) => process.stderr.write(`envoy-js: ${m}\n`)));
  const bundle = readBundle(bundleFile, bytecodeFile);
  const scenario = readScenario(scenarioFile);
  /** @type {(bundle: import("./wasm.mjs").Bundle, scenario: unknown) => unknown} the transcript, or a promise of it */
  let run;
  if (checked === "module") {
    // The stub loads the files itself, as Envoy would (filter_config "source", "bytecode").
    run = () => replayOnModule({ bundleFile, scenarioFile, bytecodeFile });
  } else if (checked === "envoy") {
    // Envoy loads the files itself (filter_config "source", "bytecode").
    run = () =>
      replayOnEnvoy({
        bundleFile,
        scenario,
        ...(bytecodeFile ? { bytecodeFile } : {}),
        ...(onWarning ? { onWarning } : {}),
      });
  } else {
    let wasm;
    try {
      wasm = loadWasmEngine();
    } catch (err) {
      throw new ReplayError(err instanceof Error ? err.message : String(err), 1, { cause: err });
    }
    // The engine maps error locations itself: give it the sources as they are shown here.
    const mapFile = `${bundleFile}.map`;
    run = (b, s) => wasm.replay(b.sourceMap ? { ...b, sourceMap: withShownSources(b.sourceMap, mapFile) } : b, s);
  }
  const map = bundle.sourceMap
    ? parseBundleSourceMap(bundle.sourceMap, {
        bundleFilename: bundle.filename ?? path.basename(bundleFile),
        mapFile: `${bundleFile}.map`,
      })
    : null;
  try {
    return mapTranscript(await run(bundle, scenario), map);
  } catch (err) {
    if (err instanceof ModuleEngineError && err.notBuilt) throw new ReplayError(err.message, 1, { cause: err });
    if (err instanceof EnvoyEngineError) {
      throw new ReplayError(err.notAvailable ? err.message : map ? map.rewrite(err.message) : err.message, 1, {
        cause: err,
      });
    }
    const reason = err instanceof Error ? err.message : String(err);
    throw new ReplayError(`replay of ${bundleFile} failed: ${map ? map.rewrite(reason) : reason}`, 1, { cause: err });
  }
}
