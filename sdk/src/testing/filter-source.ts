// How a test names its filter: a built bundle on disk (path or file: URL) or ES module
// source text. Both engines load the same thing, so one test runs on either.
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

import type { FilterSource } from "./types.js";

/** A filter read and named: what both engines get. */
export interface LoadedFilter {
  source: string;
  filename: string;
  sourceMap?: string;
  bytecode?: Uint8Array;
}

/** Reads a FilterSource. A file is named by its base name, as `envoy-js replay` names it. */
export function loadFilter(filter: FilterSource): LoadedFilter {
  if (typeof filter === "string" || filter instanceof URL) {
    const file = filter instanceof URL ? fileURLToPath(filter) : filter;
    let source: string;
    try {
      source = readFileSync(file, "utf8");
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const hint = /\bexport\b|\n/.test(file)
        ? "; to give source text, pass { source }"
        : " (build it with `envoy-js build`)";
      throw new Error(
        `cannot read filter ${file.slice(0, 80)}: ${code === "ENOENT" ? `not found${hint}` : String(err)}`,
      );
    }
    const loaded: LoadedFilter = { source, filename: path.basename(file) };
    if (existsSync(`${file}.map`)) loaded.sourceMap = readFileSync(`${file}.map`, "utf8");
    return loaded;
  }
  if (typeof filter === "object" && filter !== null && typeof filter.source === "string") {
    const loaded: LoadedFilter = { source: filter.source, filename: filter.filename ?? "filter.js" };
    if (filter.sourceMap !== undefined) loaded.sourceMap = filter.sourceMap;
    if (filter.bytecode !== undefined) loaded.bytecode = filter.bytecode;
    return loaded;
  }
  throw new TypeError(
    "filter must be the path of a built bundle (string or file: URL) or { source, filename? }; " +
      "a filter definition object cannot run on the host stubs: build it with `envoy-js build`",
  );
}
