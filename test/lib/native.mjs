// Test helpers: replay inline filter source through the native host stub (the real QuickJS
// engine behind the Node addon).
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);
const here = path.dirname(fileURLToPath(import.meta.url));
export const addonPath =
  process.env.ENVOY_JS_NATIVE_ADDON ?? path.join(here, "..", "host_stub", "build", "Release", "envoy_js_host.node");
export const addon = require(addonPath);

/** Replays `scenario` against the filter `source` (an ES module) and returns the transcript. */
export function replay(source, scenario, { filename = "filter.js", bytecode } = {}) {
  return addon.replay({ source, filename, bytecode }, scenario);
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
