// @ts-check
/**
 * Source-mapped errors on the JS side: QuickJS names places in the bundle
 * (`filter.js:12:15` in stacks, `filter.js:3:7: SyntaxError` at load); this
 * module rewrites them to the TypeScript source through the bundle's source
 * map, as `src/filter.ts:10:11 (filter.js:12:15)`. `replay` and `dev` map
 * transcripts with it. The engine does the same for Envoy's logs
 * (runtime/source_map.h), in the same format, so text that the engine has
 * already mapped is left alone here.
 *
 * Lines and columns in the text are 1-based on both sides (QuickJS and
 * `tsc` both count that way).
 *
 * @module
 */
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";

import { GREATEST_LOWER_BOUND, LEAST_UPPER_BOUND, TraceMap, originalPositionFor } from "@jridgewell/trace-mapping";

/**
 * A place in an original source file.
 *
 * @typedef {object} SourcePosition
 * @property {string} source path as shown: relative to the current directory when inside it
 * @property {number} line 1-based
 * @property {number} column 1-based
 */

/** @param {string} s */
function escapeRegExp(s) {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/**
 * Path as shown in messages: relative to the current directory when inside
 * it, absolute otherwise.
 *
 * @param {string} file absolute path
 */
function displayPath(file) {
  const rel = path.relative(process.cwd(), file);
  return rel && !rel.startsWith("..") && !path.isAbsolute(rel) ? rel : file;
}

/**
 * One bundle's source map, ready to map positions and rewrite text.
 *
 * @example
 * ```js
 * const map = new BundleSourceMap(readFileSync("dist/filter.js.map", "utf8"), {
 *   bundleFilename: "filter.js",
 *   mapFile: "dist/filter.js.map",
 * });
 * map.rewrite("Error: x\n    at f (filter.js:7:34)");
 * // "Error: x\n    at f (src/filter.ts:5:11 (filter.js:7:34))"
 * ```
 */
export class BundleSourceMap {
  /** @type {TraceMap} */
  #map;
  /** @type {string} */
  #mapDir;
  /** @type {RegExp} */
  #locations;

  /**
   * @param {string} mapText the source map (JSON text, version 3)
   * @param {{ bundleFilename: string, mapFile: string }} where the name the
   *   engine uses for the bundle in locations (its base name), and the map's
   *   path (sources are relative to its directory)
   * @throws {Error} when the text is not a source map
   */
  constructor(mapText, { bundleFilename, mapFile }) {
    this.#map = new TraceMap(mapText);
    this.#mapDir = path.dirname(path.resolve(mapFile));
    // `filter.js:L:C` not preceded by more of a file name, and not already
    // mapped (mapped text reads `src/filter.ts:L:C (filter.js:L:C)`).
    this.#locations = new RegExp(`(?<![\\w./-])(?<!:\\d+ \\()${escapeRegExp(bundleFilename)}:(\\d+):(\\d+)`, "g");
  }

  /**
   * The original position of a bundle position, or `null` when the map has
   * none for it. A column before the first mapped segment of its line maps
   * to that first segment.
   *
   * @param {number} line 1-based line in the bundle
   * @param {number} column 1-based column in the bundle
   * @returns {SourcePosition | null}
   */
  lookup(line, column) {
    const needle = { line, column: Math.max(0, column - 1) };
    let pos = originalPositionFor(this.#map, { ...needle, bias: GREATEST_LOWER_BOUND });
    if (pos.source === null) pos = originalPositionFor(this.#map, { ...needle, bias: LEAST_UPPER_BOUND });
    if (pos.source === null) return null;
    const root = this.#map.sourceRoot ?? "";
    const file = path.resolve(this.#mapDir, root, pos.source);
    return { source: displayPath(file), line: pos.line, column: pos.column + 1 };
  }

  /**
   * Rewrites every bundle location in `text` to
   * `source:line:col (bundle:line:col)`; locations the map does not cover
   * stay as they are.
   *
   * @param {string} text an error message, a stack, a log line
   * @returns {string}
   */
  rewrite(text) {
    return text.replace(this.#locations, (whole, l, c) => {
      const pos = this.lookup(Number(l), Number(c));
      return pos ? `${pos.source}:${pos.line}:${pos.column} (${whole})` : whole;
    });
  }
}

/**
 * Loads `<bundleFile>.map` when it exists. A map that cannot be parsed is
 * reported through `warn` and ignored: errors then show bundle positions.
 *
 * @param {string} bundleFile
 * @param {{ bundleFilename?: string, warn?: (message: string) => void }} [options]
 * @returns {BundleSourceMap | null}
 */
export function loadBundleSourceMap(bundleFile, options = {}) {
  const mapFile = `${bundleFile}.map`;
  if (!existsSync(mapFile)) return null;
  return parseBundleSourceMap(readFileSync(mapFile, "utf8"), {
    mapFile,
    bundleFilename: options.bundleFilename ?? path.basename(bundleFile),
    warn: options.warn,
  });
}

/**
 * {@link BundleSourceMap} from text, or `null` (reported through `warn`)
 * when it is not a usable source map.
 *
 * @param {string} mapText
 * @param {{ bundleFilename: string, mapFile: string, warn?: (message: string) => void }} options
 * @returns {BundleSourceMap | null}
 */
export function parseBundleSourceMap(mapText, { bundleFilename, mapFile, warn }) {
  try {
    return new BundleSourceMap(mapText, { bundleFilename, mapFile });
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    (warn ?? ((m) => process.stderr.write(`warning: ${m}\n`)))(`ignoring source map ${mapFile}: ${reason}`);
    return null;
  }
}

/**
 * The map text for an engine that maps locations itself (the wasm engine): each source
 * replaced by its path as shown here (see {@link BundleSourceMap.lookup}), `sourceRoot`
 * dropped. The engine only strips leading `../` from a source, which names the wrong file
 * unless the current directory is the map's. Text that is not a usable map is returned as it is.
 *
 * @example
 * ```js
 * engine.replay({ source, filename: "filter.js", sourceMap: withShownSources(mapText, "dist/filter.js.map") }, scenario);
 * ```
 *
 * @param {string} mapText
 * @param {string} mapFile the map's path (sources are relative to its directory)
 * @returns {string}
 */
export function withShownSources(mapText, mapFile) {
  /** @type {any} */
  let map;
  try {
    map = JSON.parse(mapText);
  } catch {
    return mapText;
  }
  if (typeof map !== "object" || map === null || !Array.isArray(map.sources)) return mapText;
  const dir = path.dirname(path.resolve(mapFile));
  const root = typeof map.sourceRoot === "string" ? map.sourceRoot : "";
  const sources = map.sources.map((/** @type {unknown} */ s) =>
    typeof s === "string" ? displayPath(path.resolve(dir, root, s)) : s,
  );
  const { sourceRoot: _root, ...rest } = map;
  return JSON.stringify({ ...rest, sources });
}

/**
 * Maps the places where a transcript carries engine messages: every
 * stream's `errors` and `logs`, and `workerLogs`. Returns the same object.
 *
 * @template T
 * @param {T} transcript a transcript (or one stream's transcript) from the engine
 * @param {BundleSourceMap | null} map
 * @returns {T}
 */
export function mapTranscript(transcript, map) {
  if (!map || typeof transcript !== "object" || transcript === null) return transcript;
  /** @param {unknown} list */
  const mapList = (list) =>
    Array.isArray(list) ? list.map((s) => (typeof s === "string" ? map.rewrite(s) : s)) : list;
  const t = /** @type {Record<string, unknown>} */ (transcript);
  for (const key of ["errors", "logs", "workerLogs"]) if (key in t) t[key] = mapList(t[key]);
  if (Array.isArray(t.streams)) for (const s of t.streams) mapTranscript(s, map);
  return transcript;
}
