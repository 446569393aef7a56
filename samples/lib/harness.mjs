// Shared by the samples' tests. Each sample's filter is built once per test run with the
// CLI's own build function (sdk/cli/build.mjs, the same as `envoy-js build`), then its
// cases run on every engine in ENGINES, each engine as its own uvu suite:
//
//   import { sampleSuite, get } from "../lib/harness.mjs";
//   sampleSuite("header-rewrite", (test, sample) => {
//     test("adds x-request-id", () => {
//       const s = sample.run(get("/a"));
//       assert.ok(s.upstreamRequest.headers["x-request-id"]);
//     });
//   });
//
// Errors and logs in transcripts are source-mapped (src lines of filter.ts), as replay
// prints them.
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { suite } from "uvu";

import { buildFilter } from "../../sdk/cli/build.mjs";
import { mapTranscript, parseBundleSourceMap } from "../../sdk/cli/sourcemap.mjs";
import { loadWasmEngine } from "../../sdk/cli/wasm.mjs";

export const SAMPLES_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const REPO_ROOT = path.resolve(SAMPLES_DIR, "..");

/**
 * An engine runs a built bundle: `replay(bundle, scenario)` -> transcript, and
 * `createHost(bundle, {config, settings})` -> a host driven step by step (newStream,
 * requestHeaders, ..., advanceTime, stream(i), transcript(), close()).
 *
 * @typedef {{ name: string,
 *   replay(bundle: object, scenario: object): any,
 *   createHost(bundle: object, options: object): any }} Engine
 */

/** @type {Engine} The wasm engine: the C++ runtime and quickjs-ng Envoy runs, in WebAssembly. */
const wasm = {
  name: "wasm",
  replay: (bundle, scenario) => loadWasmEngine().replay(bundle, scenario),
  createHost: (bundle, options) => new (loadWasmEngine().ScriptedHost)(bundle, options),
};

/**
 * Every sample runs on each of these. (The samples also run in a real Envoy:
 * test/envoy/samples.test.mjs.)
 *
 * @type {Engine[]}
 */
export const ENGINES = [wasm];

/** @type {Map<string, Promise<Built>>} */
const builds = new Map();

/**
 * @typedef {{ bundle: { source: string, filename: string, sourceMap: string },
 *   map: import("../../sdk/cli/sourcemap.mjs").BundleSourceMap | null, outFile: string }} Built
 */

/**
 * Builds <root>/<name>/filter.ts into build/<root relative to the repository>/<name>/filter.js
 * (once per process).
 *
 * @param {string} name
 * @param {string} [root] the folder that holds the filter folders (default samples/)
 * @returns {Promise<Built>}
 */
export function buildSample(name, root = SAMPLES_DIR) {
  const dir = path.join(root, name);
  let built = builds.get(dir);
  if (!built) {
    built = (async () => {
      const outFile = path.join(REPO_ROOT, "build", path.relative(REPO_ROOT, dir), "filter.js");
      await buildFilter({ entry: path.join(dir, "filter.ts"), outFile });
      const sourceMap = readFileSync(`${outFile}.map`, "utf8");
      const bundle = { source: readFileSync(outFile, "utf8"), filename: "filter.js", sourceMap };
      const map = parseBundleSourceMap(sourceMap, { bundleFilename: "filter.js", mapFile: `${outFile}.map` });
      return { bundle, map, outFile };
    })();
    builds.set(dir, built);
  }
  return built;
}

/** One sample on one engine; usable once `load()` has resolved (the suite's `before`). */
export class Sample {
  /**
   * @param {string} name folder under `root`
   * @param {Engine} engine
   * @param {string} [root] the folder that holds the filter folders (default samples/)
   */
  constructor(name, engine, root = SAMPLES_DIR) {
    this.name = name;
    this.engine = engine;
    this.root = root;
    this.dir = path.join(root, name);
    /** The sample's scenario.json: its config and settings are the defaults of run(). */
    this.scenario = JSON.parse(readFileSync(path.join(this.dir, "scenario.json"), "utf8"));
    /** @type {Built | null} */
    this.built = null;
  }

  async load() {
    this.built = await buildSample(this.name, this.root);
  }

  /** @returns {Built} */
  #built() {
    if (!this.built) throw new Error(`sample ${this.name} is not built yet: call load() first`);
    return this.built;
  }

  /** The scenario's config, or a copy of it with `patch` merged in (shallow). */
  config(patch = {}) {
    return { ...this.scenario.config, ...patch };
  }

  /**
   * Replays a whole scenario (default: scenario.json) and returns the transcript.
   *
   * @param {object} [scenario]
   */
  replay(scenario = this.scenario) {
    const { bundle, map } = this.#built();
    return mapTranscript(this.engine.replay(bundle, scenario), map);
  }

  /**
   * Runs streams with the scenario's config and settings (or the given ones) and returns
   * the transcript.
   *
   * @param {object[]} streams
   * @param {{ config?: object, settings?: object }} [options]
   */
  streams(streams, { config = this.scenario.config, settings = this.scenario.settings } = {}) {
    return this.replay({ config, settings, streams });
  }

  /**
   * Runs one stream; returns its transcript plus the run's `metrics`, `counters` and
   * `workerLogs`.
   *
   * @param {object} stream
   * @param {{ config?: object, settings?: object }} [options]
   */
  run(stream, options) {
    const t = this.streams([stream], options);
    return { ...t.streams[0], metrics: t.metrics, counters: t.counters, workerLogs: t.workerLogs };
  }

  /**
   * A host driven step by step, with the scenario's config and settings by default.
   * `stream(i)` and `transcript()` results are source-mapped too.
   *
   * @param {{ config?: object, settings?: object }} [options]
   */
  host({ config = this.scenario.config, settings = this.scenario.settings } = {}) {
    const { bundle, map } = this.#built();
    const host = this.engine.createHost(bundle, { config, settings });
    return new Proxy(host, {
      get(target, prop) {
        const value = Reflect.get(target, prop, target);
        if (typeof value !== "function") return value;
        if (prop === "stream" || prop === "transcript") {
          return (...args) => mapTranscript(value.apply(target, args), map);
        }
        return value.bind(target);
      },
    });
  }
}

/**
 * Defines a sample's tests once and runs them on every engine in {@link ENGINES}, each as a
 * uvu suite named "<sample> [<engine>]".
 *
 * @param {string} name folder under `root`
 * @param {(test: import("uvu").Test, sample: Sample) => void} define
 * @param {{ root?: string }} [options] `root`: the folder that holds the filter folders
 *   (default samples/; test/peers/ keeps the ports of other projects' examples)
 */
export function sampleSuite(name, define, { root = SAMPLES_DIR } = {}) {
  for (const engine of ENGINES) {
    const s = suite(`${name} [${engine.name}]`);
    const sample = new Sample(name, engine, root);
    s.before(() => sample.load());
    define(s, sample);
    s.run();
  }
}

// ---- request builders -----------------------------------------------------------------------

const base = (method, path, headers) => ({
  ":method": method,
  ":path": path,
  ":authority": "api.example.com",
  ":scheme": "https",
  ...headers,
});

/** A GET stream (no body). */
export const get = (path = "/", headers = {}, extra = {}) => ({
  request: { headers: base("GET", path, headers) },
  ...extra,
});

/** A stream with a body, given as one string or a list of chunks. */
export const send = (method, path, body, headers = {}, extra = {}) => ({
  request: { headers: base(method, path, headers), body: Array.isArray(body) ? body : [body] },
  ...extra,
});

/** A POST stream with a JSON body (one chunk, or `chunks` pieces). */
export const postJson = (path, value, headers = {}, extra = {}) =>
  send("POST", path, JSON.stringify(value), { "content-type": "application/json", ...headers }, extra);

/** The upstream's response for a stream: `{ upstream: { headers, body } }`. */
export const upstream = (status, headers = {}, body) => ({
  upstream: { headers: { ":status": String(status), ...headers }, ...(body === undefined ? {} : { body }) },
});
