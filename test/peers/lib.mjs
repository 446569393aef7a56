// The peers' tests use the samples' harness (samples/lib/harness.mjs) with test/peers/ as the
// folder of filters: each port's filter.ts is built once with the CLI's build function and its
// cases run on every engine of ENGINES (the wasm engine).
import path from "node:path";
import { fileURLToPath } from "node:url";

import { sampleSuite } from "../../samples/lib/harness.mjs";

export { get, send, postJson, upstream } from "../../samples/lib/harness.mjs";

export const PEERS_DIR = path.dirname(fileURLToPath(import.meta.url));

/**
 * Defines a port's tests (test/peers/<name>/) and runs them on every engine.
 *
 * @param {string} name
 * @param {(test: import("uvu").Test, port: import("../../samples/lib/harness.mjs").Sample) => void} define
 */
export function peerSuite(name, define) {
  sampleSuite(name, define, { root: PEERS_DIR });
}

/** The message of each `[level] message` log line. */
export const messages = (/** @type {string[]} */ logs) => logs.map((l) => l.replace(/^\[\w+\] /, ""));
