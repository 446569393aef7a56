// @ts-check
/**
 * The wasm engine: envoy-js's C++ runtime, quickjs-ng and the scripted Envoy model compiled to
 * WebAssembly (`wasm/` in the repository, shipped here as `wasm/envoy-js.wasm`). Filter tests,
 * `envoy-js replay`, `dev` and `build --bytecode` run on it: the engine Envoy runs, with its CPU
 * and heap limits, and no compiler on the user's machine.
 *
 * Everything about filters and Envoy lives in the C++ behind this file; here are only the
 * loader and the marshalling (strings in, JSON text out).
 *
 * @module
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

/**
 * Environment variable that overrides where the `.wasm` is loaded from.
 *
 * @example
 * ```sh
 * ENVOY_JS_WASM=/tmp/envoy-js.wasm npx envoy-js replay dist/filter.js s.json
 * ```
 */
export const WASM_ENV = "ENVOY_JS_WASM";

/**
 * What the engine loads: the bundle's source, the name that error locations use, and
 * optionally its source map and bytecode.
 *
 * @typedef {object} Bundle
 * @property {string} source The bundle (one ES module).
 * @property {string} [filename] Name of the bundle in stack traces, e.g. `filter.js`.
 * @property {string} [sourceMap] The bundle's source map (JSON text): errors then name the TypeScript source.
 * @property {Uint8Array} [bytecode] Bytecode from `compileBytecode`, used instead of `source`.
 */

/**
 * The wasm engine's API (the shape the retired Node addon had).
 *
 * @typedef {object} WasmEngine
 * @property {string} quickjsVersion Version of the quickjs-ng inside, e.g. `0.10.1`.
 * @property {(source: string, filename: string) => Buffer} compileBytecode
 *   Compiles a bundle to bytecode tagged with the quickjs-ng version; throws a
 *   SyntaxError naming `filename:line:col`.
 * @property {(bundle: Bundle, scenario: unknown) => any} replay
 *   Runs a replay scenario (DESIGN.md section 7) and returns the transcript;
 *   throws when the bundle or the scenario cannot be loaded.
 * @property {new (bundle: Bundle, options?: { config?: unknown, settings?: unknown }) => WasmScriptedHost} ScriptedHost
 *   The same scripted Envoy driven step by step.
 */

/** Raised when the `.wasm` is absent or cannot be loaded, or when the engine crashed. */
export class WasmEngineError extends Error {
  /**
   * @param {string} message
   * @param {ErrorOptions} [options]
   */
  constructor(message, options) {
    super(message, options);
    this.name = "WasmEngineError";
  }
}

// sdk/cli/wasm.mjs -> sdk/wasm/envoy-js.wasm (`make wasm` writes it there; the package ships it)
const DEFAULT_WASM = fileURLToPath(new URL("../wasm/envoy-js.wasm", import.meta.url));

/**
 * Where the `.wasm` is loaded from: `$ENVOY_JS_WASM` when set, otherwise the one in this package.
 *
 * @param {NodeJS.ProcessEnv} [env]
 * @returns {string} an absolute path
 */
export function wasmPath(env = process.env) {
  const override = env[WASM_ENV];
  return override ? path.resolve(override) : DEFAULT_WASM;
}

// ---- WASI ----------------------------------------------------------------------------------
// The module is a wasi-libc reactor that imports six WASI functions. They are provided here
// rather than by node:wasi, which prints an "experimental" warning into every test run: the
// engine needs clocks, random bytes and stderr, nothing else (no files, no environment).

// The CLI is type-checked against ES2023 and Node's types, which do not declare WebAssembly.
/** @typedef {{ readonly buffer: ArrayBuffer }} WasmMemory */
/** @typedef {object} WasmModule */
const WA =
  /** @type {{ Module: new (bytes: Uint8Array) => WasmModule, Instance: new (m: WasmModule, imports: object) => { exports: object }, RuntimeError: new () => Error }} */ (
    /** @type {any} */ (globalThis).WebAssembly
  );

const ERRNO_SUCCESS = 0;
const ERRNO_BADF = 8;
const ERRNO_INVAL = 28;
const FILETYPE_CHARACTER_DEVICE = 2;

/** @param {() => WasmMemory} memory */
function wasiImports(memory) {
  const view = () => new DataView(memory().buffer);
  const start = process.hrtime.bigint();
  return {
    /** @type {(id: number, precision: bigint, out: number) => number} */
    clock_time_get(id, _precision, out) {
      // 0 realtime; 1 monotonic; 2, 3 process and thread CPU time (monotonic is near enough)
      let ns;
      if (id === 0) ns = BigInt(Date.now()) * 1_000_000n;
      else if (id >= 1 && id <= 3) ns = process.hrtime.bigint() - start;
      else return ERRNO_INVAL;
      view().setBigUint64(out, ns, true);
      return ERRNO_SUCCESS;
    },
    /** @type {(fd: number, iovs: number, count: number, written: number) => number} */
    fd_write(fd, iovs, count, written) {
      if (fd !== 1 && fd !== 2) return ERRNO_BADF;
      const dv = view();
      let total = 0;
      const parts = [];
      for (let i = 0; i < count; i++) {
        const ptr = dv.getUint32(iovs + i * 8, true);
        const len = dv.getUint32(iovs + i * 8 + 4, true);
        parts.push(Buffer.from(memory().buffer, ptr, len));
        total += len;
      }
      // The engine writes only diagnostics (an abort's reason); they go to stderr.
      process.stderr.write(Buffer.concat(parts));
      dv.setUint32(written, total, true);
      return ERRNO_SUCCESS;
    },
    /** @type {(fd: number, out: number) => number} */
    fd_fdstat_get(fd, out) {
      if (fd > 2) return ERRNO_BADF;
      const dv = view();
      for (let i = 0; i < 24; i++) dv.setUint8(out + i, 0);
      dv.setUint8(out, FILETYPE_CHARACTER_DEVICE);
      return ERRNO_SUCCESS;
    },
    fd_close: () => ERRNO_BADF,
    fd_seek: () => ERRNO_BADF,
    /** @type {(buf: number, len: number) => number} */
    random_get(buf, len) {
      const bytes = new Uint8Array(memory().buffer, buf, len);
      for (let at = 0; at < len; at += 65536) crypto.getRandomValues(bytes.subarray(at, Math.min(len, at + 65536)));
      return ERRNO_SUCCESS;
    },
  };
}

// ---- one instance ----------------------------------------------------------------------------

/**
 * The exports of wasm/exports.cc.
 *
 * @typedef {object} Exports
 * @property {WasmMemory} memory
 * @property {() => void} _initialize
 * @property {(size: number) => number} ejs_alloc
 * @property {(ptr: number) => void} ejs_free
 * @property {() => number} ejs_result_data
 * @property {() => number} ejs_result_size
 * @property {() => number} ejs_quickjs_version
 * @property {(...args: number[]) => number} ejs_compile_bytecode
 * @property {(...args: number[]) => number} ejs_replay
 * @property {(...args: number[]) => number} ejs_host_create
 * @property {(handle: number) => void} ejs_host_close
 * @property {(...args: number[]) => number} ejs_host_new_stream
 * @property {(...args: number[]) => number} ejs_host_headers
 * @property {(...args: number[]) => number} ejs_host_data
 * @property {(handle: number, stream: number) => number} ejs_host_complete
 * @property {(...args: number[]) => number} ejs_host_destroy
 * @property {(handle: number, ms: number) => number} ejs_host_advance_time
 * @property {(handle: number) => number} ejs_host_now
 * @property {(handle: number, stream: number) => number} ejs_host_stream
 * @property {(handle: number) => number} ejs_host_transcript
 * @property {(handle: number, stream: number) => number} ejs_host_live
 * @property {(...args: number[]) => number} ejs_host_start_background
 * @property {(handle: number) => number} ejs_host_stop_background
 * @property {(...args: number[]) => number} ejs_host_shared_get
 */

const utf8 = new TextEncoder();
const utf8Text = new TextDecoder();

/** @typedef {string | Uint8Array | undefined | null} Arg */

/** One instantiated engine. A trap (an abort inside) makes it unusable; the next call gets a new one. */
class Instance {
  /** @param {WasmModule} module */
  constructor(module) {
    /** @type {Exports | undefined} */
    let exports;
    const instance = new WA.Instance(module, {
      wasi_snapshot_preview1: wasiImports(() => /** @type {Exports} */ (exports).memory),
    });
    exports = /** @type {Exports} */ (/** @type {unknown} */ (instance.exports));
    exports._initialize();
    /** @type {Exports} */
    this.x = exports;
    /** @type {string | undefined} why it can no longer be used */
    this.crashed = undefined;
  }

  /**
   * Calls `fn` with each argument copied into the module's memory as (pointer, length) pairs;
   * numbers pass as they are. A null or undefined argument passes as (0, 0).
   *
   * @param {(...args: number[]) => number} fn
   * @param {(Arg | number)[]} args
   * @returns {number}
   */
  call(fn, args) {
    if (this.crashed) throw new WasmEngineError(`the wasm engine crashed earlier: ${this.crashed}`);
    /** @type {number[]} */
    const flat = [];
    /** @type {number[]} */
    const owned = [];
    try {
      for (const a of args) {
        if (typeof a === "number") {
          flat.push(a);
        } else if (a === undefined || a === null) {
          flat.push(0, 0);
        } else {
          const bytes = typeof a === "string" ? utf8.encode(a) : a;
          const ptr = this.x.ejs_alloc(bytes.length);
          owned.push(ptr);
          new Uint8Array(this.x.memory.buffer, ptr, bytes.length).set(bytes);
          flat.push(ptr, bytes.length);
        }
      }
      return fn(...flat);
    } catch (err) {
      if (err instanceof WA.RuntimeError) {
        this.crashed = err.message;
        throw new WasmEngineError(`the wasm engine crashed: ${err.message}`, { cause: err });
      }
      throw err;
    } finally {
      if (!this.crashed) for (const p of owned) this.x.ejs_free(p);
    }
  }

  /** The result slot's bytes (a copy). */
  resultBytes() {
    const size = this.x.ejs_result_size();
    return Buffer.from(new Uint8Array(this.x.memory.buffer, this.x.ejs_result_data(), size));
  }

  /** The result slot as text. */
  resultText() {
    return utf8Text.decode(new Uint8Array(this.x.memory.buffer, this.x.ejs_result_data(), this.x.ejs_result_size()));
  }
}

// JSON for the engine: a Uint8Array (a Buffer too) body chunk travels as {"base64": ...}.
/** @param {unknown} value */
function toJson(value) {
  if (value === undefined) return "null";
  return JSON.stringify(value, function (key, v) {
    const raw = /** @type {Record<string, unknown>} */ (this)[key];
    if (raw instanceof Uint8Array)
      return { base64: Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString("base64") };
    return v;
  });
}

/** @param {Bundle} bundle */
function checkBundle(bundle) {
  if (typeof bundle !== "object" || bundle === null || typeof bundle.source !== "string") {
    throw new TypeError("bundle must be {source, filename?, sourceMap?, bytecode?}");
  }
  return [bundle.source, bundle.filename ?? "filter.js", bundle.bytecode ?? null, bundle.sourceMap ?? null];
}

/** @type {Map<string, { module: WasmModule, instance?: Instance, engine: WasmEngine }>} */
const loaded = new Map();

/**
 * Loads the wasm engine (compiled once per path; instantiated again after a crash).
 *
 * @param {NodeJS.ProcessEnv} [env]
 * @returns {WasmEngine}
 * @throws {WasmEngineError} when the `.wasm` is missing or does not load
 */
export function loadWasmEngine(env = process.env) {
  const file = wasmPath(env);
  const cached = loaded.get(file);
  if (cached) return cached.engine;
  /** @type {WasmModule} */
  let module;
  try {
    module = new WA.Module(readFileSync(file));
  } catch (/** @type {any} */ err) {
    const reason = err?.code === "ENOENT" ? "not found" : String(err);
    const hint = env[WASM_ENV] ? `${WASM_ENV} points there` : "in a checkout, build it with `make wasm`";
    throw new WasmEngineError(`the wasm engine at ${file} cannot be loaded: ${reason} (${hint})`, { cause: err });
  }
  const entry = /** @type {{ module: WasmModule, instance?: Instance, engine: WasmEngine }} */ ({ module });
  const live = () => {
    if (!entry.instance || entry.instance.crashed) entry.instance = new Instance(module);
    return entry.instance;
  };
  entry.engine = makeEngine(live);
  loaded.set(file, entry);
  return entry.engine;
}

/**
 * @param {() => Instance} live the current instance
 * @returns {WasmEngine}
 */
function makeEngine(live) {
  const version = live();
  version.call(version.x.ejs_quickjs_version, []);
  const quickjsVersion = version.resultText();

  /**
   * @param {Bundle} bundle
   * @param {unknown} scenario
   */
  function replay(bundle, scenario) {
    const inst = live();
    const failed = inst.call(inst.x.ejs_replay, [...checkBundle(bundle), toJson(scenario)]);
    if (failed) throw new Error(inst.resultText());
    return JSON.parse(inst.resultText());
  }

  /**
   * @param {string} source
   * @param {string} filename
   */
  function compileBytecode(source, filename) {
    if (typeof source !== "string" || typeof filename !== "string")
      throw new TypeError("compileBytecode(source, filename)");
    const inst = live();
    if (inst.call(inst.x.ejs_compile_bytecode, [source, filename])) {
      const message = inst.resultText();
      throw /SyntaxError/.test(message) ? new SyntaxError(message.replace(/^SyntaxError: /, "")) : new Error(message);
    }
    return inst.resultBytes();
  }

  class ScriptedHost extends WasmScriptedHost {
    /**
     * @param {Bundle} bundle
     * @param {{ config?: unknown, settings?: unknown }} [options]
     */
    constructor(bundle, options = {}) {
      super(live(), bundle, options);
    }
  }

  return { quickjsVersion, compileBytecode, replay, ScriptedHost };
}

/** Header block numbers of ejs_host_headers. */
const REQUEST_HEADERS = 0;
const RESPONSE_HEADERS = 1;
const REQUEST_TRAILERS = 2;
const RESPONSE_TRAILERS = 3;

/**
 * The scripted Envoy with one worker engine, driven step by step: streams created and fed by
 * the caller, time advanced explicitly. Streams are numbered from 0.
 */
export class WasmScriptedHost {
  /** @type {Instance} */
  #inst;
  /** @type {number} 0 once closed */
  #handle;

  /**
   * @param {Instance} inst
   * @param {Bundle} bundle
   * @param {{ config?: unknown, settings?: unknown }} options
   */
  constructor(inst, bundle, options) {
    this.#inst = inst;
    const handle = inst.call(inst.x.ejs_host_create, [
      ...checkBundle(bundle),
      toJson(options.config ?? null),
      toJson(options.settings ?? null),
    ]);
    if (!handle) throw new Error(inst.resultText());
    this.#handle = handle;
  }

  /** @returns {number} the host's handle; throws once closed */
  #open() {
    if (!this.#handle) throw new Error("this host was closed");
    return this.#handle;
  }

  /**
   * Calls `fn` with the handle and `args`; throws the engine's error. Returns the result slot
   * (for a callback: the filter's status, "" when the model recorded none).
   *
   * @param {(...args: number[]) => number} fn
   * @param {(Arg | number)[]} args
   */
  #run(fn, args) {
    const failed = this.#inst.call(fn, [this.#open(), ...args]);
    const result = this.#inst.resultText();
    if (failed) throw result === "no such stream" ? new RangeError(result) : new Error(result);
    return result;
  }

  /** @param {number} i @param {number} block @param {unknown} headers @param {boolean} endStream */
  #headers(i, block, headers, endStream) {
    return this.#run(this.#inst.x.ejs_host_headers, [i, block, toJson(headers ?? null), endStream ? 1 : 0]);
  }

  /** @param {number} i @param {0 | 1} response @param {string | Uint8Array} chunk @param {boolean} endStream */
  #data(i, response, chunk, endStream) {
    return this.#run(this.#inst.x.ejs_host_data, [i, response, chunkOf(chunk), endStream ? 1 : 0]);
  }

  /** @param {unknown} [setup] stream info, metadata, filter state, clusters, route */
  newStream(setup) {
    const index = this.#inst.call(this.#inst.x.ejs_host_new_stream, [this.#open(), toJson(setup ?? null)]);
    if (index < 0) throw new TypeError(this.#inst.resultText());
    return index;
  }

  // Each Envoy callback returns the filter's status as the model recorded it.
  /** @param {number} i @param {unknown} headers @param {boolean} [endStream] */
  requestHeaders(i, headers, endStream = false) {
    return this.#headers(i, REQUEST_HEADERS, headers, endStream);
  }
  /** @param {number} i @param {string | Uint8Array} chunk @param {boolean} [endStream] */
  requestData(i, chunk, endStream = false) {
    return this.#data(i, 0, chunk, endStream);
  }
  /** @param {number} i @param {unknown} trailers */
  requestTrailers(i, trailers) {
    return this.#headers(i, REQUEST_TRAILERS, trailers, true);
  }
  /** @param {number} i @param {unknown} headers @param {boolean} [endStream] */
  responseHeaders(i, headers, endStream = false) {
    return this.#headers(i, RESPONSE_HEADERS, headers, endStream);
  }
  /** @param {number} i @param {string | Uint8Array} chunk @param {boolean} [endStream] */
  responseData(i, chunk, endStream = false) {
    return this.#data(i, 1, chunk, endStream);
  }
  /** @param {number} i @param {unknown} trailers */
  responseTrailers(i, trailers) {
    return this.#headers(i, RESPONSE_TRAILERS, trailers, true);
  }
  /** Not replied to, not reset, not destroyed (without reading the transcript). @param {number} i */
  live(i) {
    return this.#inst.x.ejs_host_live(this.#open(), i) === 1;
  }
  /** Envoy's onStreamComplete. @param {number} i */
  complete(i) {
    this.#run(this.#inst.x.ejs_host_complete, [i]);
  }
  /** The stream is destroyed (`why`: the reset reason, if any). @param {number} i @param {string} [why] */
  destroy(i, why) {
    this.#run(this.#inst.x.ejs_host_destroy, [i, why ?? null]);
  }
  /** Fires every timer and callout answer due within `ms` on the fake clock. @param {number} ms */
  advanceTime(ms) {
    this.#run(this.#inst.x.ejs_host_advance_time, [typeof ms === "number" ? ms : 0]);
  }
  /** The fake clock, in ms. */
  now() {
    return this.#inst.x.ejs_host_now(this.#open());
  }
  /** The stream's transcript so far, plus requestSentUpstream, responseSentDownstream, live. @param {number} i */
  stream(i) {
    return JSON.parse(this.#run(this.#inst.x.ejs_host_stream, [i]));
  }
  /** The whole transcript so far. */
  transcript() {
    return JSON.parse(this.#run(this.#inst.x.ejs_host_transcript, []));
  }
  /** Starts the filter config's background engine. @param {unknown} [setup] {clusters} */
  startBackground(setup) {
    this.#run(this.#inst.x.ejs_host_start_background, [toJson(setup ?? null)]);
  }
  /** Destroys the background engine (the config goes away). */
  stopBackground() {
    this.#run(this.#inst.x.ejs_host_stop_background, []);
  }
  /** The shared store's value under `key`, or null. @param {string} key */
  sharedGet(key) {
    const r = this.#run(this.#inst.x.ejs_host_shared_get, [String(key)]);
    return r.startsWith("+") ? r.slice(1) : null;
  }
  /** Destroys the worker engine; the host can no longer be used. */
  close() {
    if (this.#handle && !this.#inst.crashed) this.#inst.x.ejs_host_close(this.#handle);
    this.#handle = 0;
  }
}

/** @param {string | Uint8Array} chunk */
function chunkOf(chunk) {
  if (typeof chunk === "string" || chunk instanceof Uint8Array) return chunk;
  return String(chunk ?? "");
}
