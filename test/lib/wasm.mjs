// Test helpers: replay inline filter source on the wasm engine (runtime/, quickjs-ng and the
// scripted Envoy model of test/host_stub, compiled to WebAssembly by `make wasm`).
import { loadWasmEngine, wasmPath } from "../../sdk/cli/wasm.mjs";

export const enginePath = wasmPath();
export const wasm = loadWasmEngine();

/** Replays `scenario` against the filter `source` (an ES module) and returns the transcript. */
export function replay(source, scenario, { filename = "filter.js", bytecode } = {}) {
  return wasm.replay({ source, filename, bytecode }, scenario);
}

/** One stream: returns that stream's transcript (plus counters and worker logs). */
export function one(source, stream, { config, settings } = {}) {
  const t = replay(source, { config, settings, streams: [stream] });
  return { ...t.streams[0], counters: t.counters, workerLogs: t.workerLogs };
}

export const get = (path = "/", headers = {}) => ({
  request: { headers: { ":method": "GET", ":path": path, ":authority": "example.com", ":scheme": "http", ...headers } },
});

export const post = (path, body, headers = {}, trailers) => ({
  request: {
    headers: { ":method": "POST", ":path": path, ":authority": "example.com", ":scheme": "http", ...headers },
    body,
    ...(trailers ? { trailers } : {}),
  },
});
