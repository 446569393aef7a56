// @ts-check
/**
 * The real-Envoy engine of `envoy-js replay --engine envoy`: the scenario
 * (DESIGN.md section 7, docs/configuration.md "Scenario format") is played
 * through a real Envoy that loads `libenvoy_js.so`, and the transcript is
 * read from what Envoy's peers saw.
 *
 * One Envoy per replay (`--concurrency 1`, loopback, ports picked by the
 * kernel, every wait bounded, always stopped). This process plays the
 * downstream client (HTTP/1.1, or HTTP/2: see planStreams), the upstream and
 * one server per cluster named in any stream's `clusters` (for `ctx.fetch`);
 * the servers speak h2c, so that trailers pass both ways. Streams run one
 * after another, so the servers know which stream they answer; a stream is
 * over when Envoy has written its access log line.
 *
 * Where each transcript field comes from:
 * - `upstreamRequest`: what the upstream server received (null when nothing
 *   reached it).
 * - `localReply` / `downstreamResponse`: what the client received. The
 *   stream's RESPONSE_CODE_DETAILS (from a JSON access log on Envoy's stdout,
 *   keyed by x-request-id) tells them apart: anything but `via_upstream` is
 *   a local reply (`details` is that value).
 * - `logs`, `errors`: Envoy's log lines of the module for that stream
 *   (`envoy_js(<filter>) stream <x-request-id>: ...` and, at debug level,
 *   `... stream <x-request-id> failed: ...`). The client sends each request
 *   with a known x-request-id (the scenario's `stream.id`, else the stream's
 *   number from 1, as the host stubs number them) and the connection manager
 *   preserves it.
 * - `workerLogs`: the engine's own lines (`envoy_js(<filter>): ...`) logged
 *   after Envoy was ready.
 * - `counters`, `metrics`: the admin `/stats` under `dynamicmodulescustom.`
 *   (engine counters `envoy_js.*` and declared counters when not zero,
 *   declared gauges always; histogram samples cannot be read back); a series
 *   of a metric with labels as `name{label="value",...}`, as the wasm engine
 *   writes it, its labels read from `/stats/prometheus` (envoy-stats.mjs).
 *
 * Envoy's own headers are taken out in one place, {@link normaliseHeaders},
 * listed in {@link ENVOY_REQUEST_HEADERS} and {@link ENVOY_RESPONSE_HEADERS}.
 *
 * @module
 */
import { readFileSync } from "node:fs";
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import path from "node:path";

import {
  ENVOY_BIN_ENV,
  ENVOY_VERSION_ENV,
  EnvoyError,
  HOW_TO_GET_ENVOY,
  ROUTER_FILTER,
  bootstrap,
  envoyJsHttpFilter,
  envoyJsPerRoute,
  filterConfigJson,
  findEnvoy,
  httpListener,
  loopbackCluster,
  moduleDir,
  sleep,
  startEnvoy,
} from "./envoy.mjs";
import { envoyMetrics } from "./envoy-stats.mjs";

/**
 * The envoy engine cannot run (no Envoy, module not built: `notAvailable`),
 * or Envoy refused the filter, its settings or the scenario's config (the
 * message quotes Envoy's log line), or the scenario is malformed.
 */
export class EnvoyEngineError extends Error {
  /**
   * @param {string} message
   * @param {ErrorOptions & { notAvailable?: boolean }} [options]
   */
  constructor(message, options) {
    super(message, options);
    this.name = "EnvoyEngineError";
    this.notAvailable = options?.notAvailable ?? false;
  }
}

/**
 * Request headers that Envoy (or the HTTP/2 hop to the upstream) adds on its
 * own. They are left out of `upstreamRequest` unless the scenario's request
 * had them.
 *
 * - `x-request-id`: the connection manager's request id (the harness sends
 *   its own to find the stream's lines; it is preserved).
 * - `x-forwarded-proto`: added by the connection manager.
 * - `x-envoy-expected-rq-timeout-ms`: added by the router.
 * - `:scheme`: always on the HTTP/2 hop to the upstream; an HTTP/1.1 client
 *   cannot send one.
 */
export const ENVOY_REQUEST_HEADERS = Object.freeze([
  "x-request-id",
  "x-forwarded-proto",
  "x-envoy-expected-rq-timeout-ms",
  ":scheme",
]);

/**
 * Response headers that Envoy or the HTTP/1.1 codec adds on its own. They
 * are left out of `downstreamResponse` unless the scenario's upstream
 * response had them, and always out of `localReply.headers`.
 *
 * - `date`: added to local replies.
 * - `x-envoy-upstream-service-time`: added by the router.
 * - the hop-by-hop `transfer-encoding`, `connection`, `keep-alive` of
 *   HTTP/1.1.
 *
 * And `content-length`, which Envoy sets on every local reply (left out of
 * `localReply.headers`) and which the HTTP/1.1 codec adds as
 * `content-length: 0` to an empty response (left out of
 * `downstreamResponse` in that case only, unless the upstream sent it).
 *
 * `server` needs no entry: the connection manager is configured with
 * `server_header_transformation: PASS_THROUGH`, so it neither adds nor
 * overwrites one. The Node upstream sends no `date` of its own.
 */
export const ENVOY_RESPONSE_HEADERS = Object.freeze([
  "date",
  "x-envoy-upstream-service-time",
  "transfer-encoding",
  "connection",
  "keep-alive",
]);

/**
 * The one normalisation of the envoy engine's transcript: Envoy's own
 * headers ({@link ENVOY_REQUEST_HEADERS} for `upstreamRequest`,
 * {@link ENVOY_RESPONSE_HEADERS} and `content-length` as described there for
 * `localReply` and `downstreamResponse`) are dropped unless `given` (what
 * the scenario sent) has them. A header the filter set itself under one of
 * these names is dropped too.
 *
 * @param {HeadersObject} headers what a peer received, names lower-case
 * @param {"request" | "response" | "localReply"} what which message it is
 * @param {HeadersObject | null} given the scenario's message headers, or null for none
 * @param {string} [body] the message's body (for `content-length: 0`)
 * @returns {HeadersObject}
 */
export function normaliseHeaders(headers, what, given, body = "") {
  const names = what === "request" ? ENVOY_REQUEST_HEADERS : ENVOY_RESPONSE_HEADERS;
  const local = what === "localReply";
  /** @type {HeadersObject} */
  const out = {};
  for (const [k, v] of Object.entries(headers)) {
    const isGiven = !local && given !== null && Object.hasOwn(given, k);
    if (names.includes(k) && !isGiven) continue;
    if (k === "content-length" && what !== "request" && !isGiven && (local || (v === "0" && body === ""))) continue;
    out[k] = v;
  }
  return out;
}

/** @typedef {Record<string, string | string[]>} HeadersObject */

/**
 * @typedef {object} SentMessage
 * @property {HeadersObject} headers
 * @property {string} body
 * @property {HeadersObject | null} trailers
 */

/**
 * @typedef {object} LocalReply
 * @property {number} status
 * @property {string} body
 * @property {HeadersObject} headers
 * @property {string} details
 */

/**
 * @typedef {object} StreamTranscript
 * @property {SentMessage | null} upstreamRequest
 * @property {LocalReply | null} localReply
 * @property {SentMessage | null} downstreamResponse
 * @property {string[]} logs
 * @property {string[]} errors
 */

/**
 * @typedef {object} EnvoyTranscript
 * @property {StreamTranscript[]} streams
 * @property {Record<string, number>} counters
 * @property {Record<string, number>} metrics
 * @property {string[]} workerLogs
 */

/**
 * @typedef {object} EnvoyReplay
 * @property {string} bundleFile the built filter, given to the module as `source`
 * @property {string} [scenarioFile] the scenario (JSON); or:
 * @property {Record<string, unknown>} [scenario] the scenario, already parsed
 * @property {string} [bytecodeFile] given to the module as `bytecode`
 * @property {number} [streamTimeoutMs] how long the client waits for a
 *   stream's response before it gives up and resets (default 5000)
 * @property {(message: string) => void} [onWarning] told about streams that
 *   cannot go as the scenario says (a `content-length` that does not match
 *   the body: Envoy waits for the rest) and streams the client gave up on
 */

// Names used in the generated Envoy config.
const LISTENER = "replay";
const FILTER_NAME = "envoy_js";
const UPSTREAM_CLUSTER = "envoy_js_replay_upstream";
// Where the harness's Lua filter puts a stream's `filterState` for set_filter_state to read.
const FILTER_STATE_NS = "envoy_js.replay.filter_state";

// Bounds (ms). A stream that gets no complete response within the stream timeout (default
// STREAM_TIMEOUT_MS) is abandoned by the client (it resets), and its transcript has what arrived
// until then.
const STREAM_TIMEOUT_MS = 5000;
const ACCESS_LOG_TIMEOUT_MS = 5000;
// Gap between body chunks, so that Envoy reads (and the filter sees) each chunk on its own.
const CHUNK_GAP_MS = 4;

/** @type {Map<string, import("./envoy.mjs").EnvoyBinary | null>} */
const envoyCache = new Map();

/**
 * {@link findEnvoy}, remembered per environment (it asks each candidate for
 * its version, which takes a while).
 *
 * @param {NodeJS.ProcessEnv} env
 */
function cachedEnvoy(env) {
  const key = JSON.stringify([env[ENVOY_BIN_ENV], env[ENVOY_VERSION_ENV], env.PATH]);
  if (!envoyCache.has(key)) envoyCache.set(key, findEnvoy(env));
  return envoyCache.get(key) ?? null;
}

/** @param {unknown} v */
const isObject = (v) => typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * A scenario header map as [name, value] pairs, names lower-case, arrays
 * spread in order.
 *
 * @param {unknown} headers
 * @returns {Array<[string, string]>}
 */
function headerPairs(headers) {
  /** @type {Array<[string, string]>} */
  const out = [];
  if (!isObject(headers)) return out;
  for (const [k, v] of Object.entries(/** @type {Record<string, unknown>} */ (headers))) {
    for (const one of Array.isArray(v) ? v : [v]) out.push([k.toLowerCase(), String(one)]);
  }
  return out;
}

/**
 * Raw headers (Node's `rawHeaders`: name, value, name, value...) as a
 * transcript header object: names lower-case, a repeated name an array.
 *
 * @param {string[]} raw
 * @returns {HeadersObject}
 */
function headersObject(raw) {
  /** @type {HeadersObject} */
  const out = {};
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const k = raw[i].toLowerCase();
    const v = raw[i + 1];
    const prev = out[k];
    if (prev === undefined) out[k] = v;
    else if (Array.isArray(prev)) prev.push(v);
    else out[k] = [prev, v];
  }
  return out;
}

/**
 * A body (a string or chunks of strings) as Buffers, one per chunk.
 *
 * @param {unknown} body
 * @returns {Buffer[]}
 */
function bodyChunks(body) {
  if (body === undefined || body === null) return [];
  const list = Array.isArray(body) ? body : [body];
  return list
    .map((c) => (c instanceof Uint8Array ? Buffer.from(c) : Buffer.from(String(c), "utf8")))
    .filter((b) => b.length > 0);
}

// HTTP/2 forbids connection-specific headers; they are left out of what the harness sends on
// an HTTP/2 hop (the client in h2 mode, the upstream always).
const H2_FORBIDDEN = new Set(["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"]);

/**
 * @typedef {object} StreamPlan
 * @property {number} index
 * @property {string} id the x-request-id
 * @property {Record<string, unknown>} spec the scenario's stream
 * @property {"h1" | "h2"} protocol
 */

/**
 * Reads and checks the scenario's shape as far as the harness needs it, and
 * gives each stream its x-request-id (`stream.id`, else the request's own
 * `x-request-id`, else the stream's number from 1) and the client's
 * protocol: `h2` when the stream's (else the scenario's) `protocol` says so,
 * when the request or the upstream response has trailers (HTTP/1.1 drops
 * them), when `stream.protocol` is `HTTP/2`, or when `:scheme` is not `http`
 * (HTTP/1.1 cannot send one); else `h1`.
 *
 * @param {Record<string, unknown>} scenario
 * @returns {StreamPlan[]}
 */
function planStreams(scenario) {
  const streams = scenario.streams;
  if (!Array.isArray(streams)) throw new EnvoyEngineError('the scenario has no "streams" array');
  const seen = new Set();
  return streams.map((s, index) => {
    if (!isObject(s)) throw new EnvoyEngineError(`streams[${index}] is not an object`);
    const spec = /** @type {Record<string, unknown>} */ (s);
    if (!isObject(spec.request)) throw new EnvoyEngineError(`streams[${index}].request is missing`);
    const request = /** @type {Record<string, unknown>} */ (spec.request);
    const reset = spec.reset ?? "none";
    if (!["none", "afterRequestHeaders", "afterRequestBody"].includes(/** @type {string} */ (reset))) {
      throw new EnvoyEngineError(
        `streams[${index}].reset must be none, afterRequestHeaders or afterRequestBody, not ${JSON.stringify(reset)}`,
      );
    }
    const info = isObject(spec.stream) ? /** @type {Record<string, unknown>} */ (spec.stream) : {};
    const sent = headerPairs(request.headers).find(([k]) => k === "x-request-id")?.[1];
    let id = typeof info.id === "string" && info.id !== "" ? info.id : sent || String(index + 1);
    if (seen.has(id)) id = `${id}-${index + 1}`;
    seen.add(id);
    const asked = spec.protocol ?? scenario.protocol ?? "h1";
    if (asked !== "h1" && asked !== "h2")
      throw new EnvoyEngineError(`streams[${index}].protocol must be "h1" or "h2", not ${JSON.stringify(asked)}`);
    const scheme = headerPairs(request.headers).find(([k]) => k === ":scheme")?.[1];
    const upstream = isObject(spec.upstream) ? /** @type {Record<string, unknown>} */ (spec.upstream) : {};
    const trailers = (request.trailers ?? null) !== null || (upstream.trailers ?? null) !== null;
    const h2 = asked === "h2" || trailers || info.protocol === "HTTP/2" || (scheme !== undefined && scheme !== "http");
    return { index, id, spec, protocol: h2 ? "h2" : "h1" };
  });
}

/** @param {unknown} v @returns {string} a Lua literal for a JSON value */
function luaLiteral(v) {
  if (v === null || v === undefined) return "nil";
  if (typeof v === "boolean" || typeof v === "number") return String(v);
  if (typeof v === "string") return JSON.stringify(v).replace(/\\u([0-9a-fA-F]{4})/g, (_, h) => `\\u{${h}}`);
  if (Array.isArray(v)) return `{${v.map(luaLiteral).join(", ")}}`;
  const entries = Object.entries(/** @type {Record<string, unknown>} */ (v)).filter(
    ([, x]) => x !== null && x !== undefined,
  );
  return `{${entries.map(([k, x]) => `[${luaLiteral(k)}] = ${luaLiteral(x)}`).join(", ")}}`;
}

/**
 * The filters in front of envoy-js that play "what earlier filters left": a
 * Lua filter sets each stream's `metadata` (and its `filterState` values,
 * under {@link FILTER_STATE_NS}), and set_filter_state turns those into
 * filter state (`envoy.string` objects). Empty when no stream needs them.
 *
 * @param {StreamPlan[]} plans
 * @returns {object[]}
 */
function earlierFilters(plans) {
  /** @type {Record<string, Record<string, Record<string, unknown>>>} */
  const byId = {};
  const stateKeys = new Set();
  for (const p of plans) {
    /** @type {Record<string, Record<string, unknown>>} */
    const md = {};
    if (isObject(p.spec.metadata)) {
      for (const [ns, kv] of Object.entries(/** @type {Record<string, unknown>} */ (p.spec.metadata))) {
        if (isObject(kv)) md[ns] = { .../** @type {Record<string, unknown>} */ (kv) };
      }
    }
    if (isObject(p.spec.filterState)) {
      md[FILTER_STATE_NS] = {};
      for (const [k, v] of Object.entries(/** @type {Record<string, unknown>} */ (p.spec.filterState))) {
        md[FILTER_STATE_NS][k] = String(v);
        stateKeys.add(k);
      }
    }
    if (Object.keys(md).length > 0) byId[p.id] = md;
  }
  if (Object.keys(byId).length === 0) return [];
  const lua = `local by_id = ${luaLiteral(byId)}
function envoy_on_request(h)
  local md = by_id[h:headers():get("x-request-id") or ""]
  if md == nil then return end
  for ns, kv in pairs(md) do
    for k, v in pairs(kv) do h:streamInfo():dynamicMetadata():set(ns, k, v) end
  end
end
`;
  /** @type {object[]} */
  const filters = [
    {
      name: "envoy_js_replay_metadata",
      typed_config: {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua",
        default_source_code: { inline_string: lua },
      },
    },
  ];
  if (stateKeys.size > 0) {
    filters.push({
      name: "envoy_js_replay_filter_state",
      typed_config: {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.set_filter_state.v3.Config",
        on_request_headers: [...stateKeys].map((k) => ({
          object_key: k,
          factory_key: "envoy.string",
          skip_if_empty: true,
          format_string: {
            text_format_source: { inline_string: `%DYNAMIC_METADATA(${FILTER_STATE_NS}:${k})%` },
            omit_empty_values: true,
          },
        })),
      },
    });
  }
  return filters;
}

/**
 * Routes: one per stream that has a `route` override or a `stream.routeName`
 * (matched on its x-request-id), then the default route to the upstream.
 *
 * @param {StreamPlan[]} plans
 */
function routes(plans) {
  const out = [];
  for (const p of plans) {
    const route = isObject(p.spec.route) ? /** @type {Record<string, unknown>} */ (p.spec.route) : null;
    const info = isObject(p.spec.stream) ? /** @type {Record<string, unknown>} */ (p.spec.stream) : {};
    const name = typeof info.routeName === "string" ? info.routeName : "";
    if (!route && !name) continue;
    out.push({
      ...(name ? { name } : {}),
      match: { prefix: "/", headers: [{ name: "x-request-id", string_match: { exact: p.id } }] },
      route: { cluster: UPSTREAM_CLUSTER, timeout: "10s" },
      ...(route
        ? {
            typed_per_filter_config: {
              [FILTER_NAME]: envoyJsPerRoute(route.disabled === true ? { disabled: true } : { config: route.config }),
            },
          }
        : {}),
    });
  }
  out.push({ match: { prefix: "/" }, route: { cluster: UPSTREAM_CLUSTER, timeout: "10s" } });
  return out;
}

/**
 * What a peer received: headers (raw pairs), body, trailers, and whether
 * the message ended normally.
 *
 * @typedef {object} Received
 * @property {string[]} rawHeaders
 * @property {Buffer[]} body
 * @property {string[] | null} rawTrailers
 * @property {boolean} complete
 */

/** @param {Received} r @returns {SentMessage} */
function message(r) {
  return {
    headers: headersObject(r.rawHeaders),
    body: Buffer.concat(r.body).toString("utf8"),
    trailers: r.rawTrailers ? headersObject(r.rawTrailers) : null,
  };
}

/**
 * What the servers share with the replay: the stream being sent, and a way to
 * say that something arrived.
 *
 * @typedef {object} ServerState
 * @property {StreamPlan | null} current
 * @property {() => void} notify
 */

/** Waits for conditions that change when Envoy logs or a server receives something. */
class Watch {
  constructor() {
    /** @type {Array<() => void>} */
    this.waiters = [];
  }

  notify() {
    for (const w of this.waiters.splice(0)) w();
  }

  /**
   * Resolves once `done()` is true, or after `timeoutMs`.
   *
   * @param {() => boolean} done
   * @param {number} timeoutMs
   */
  async until(done, timeoutMs) {
    const deadline = Date.now() + timeoutMs;
    while (!done()) {
      const left = deadline - Date.now();
      if (left <= 0) return;
      await new Promise((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 50));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve(undefined);
        });
      });
    }
  }
}

/**
 * How far Envoy got with one request, from its `http` trace lines.
 *
 * @typedef {object} RequestProgress
 * @property {boolean} ended the whole request was dispatched
 * @property {number} [filterStatus] what envoy-js returned for the request headers (0: Continue)
 * @property {boolean} routed the router got the request headers
 */

/**
 * Reads one message of Envoy's `http` logger: "request headers complete"
 * (whose header dump has the x-request-id), "request end stream", "decode
 * headers called: filter=<name> status=<n>".
 *
 * @param {string} message
 * @param {Map<string, RequestProgress>} progress
 * @param {Map<string, string>} streamIds
 */
function trackRequest(message, progress, streamIds) {
  const sid = /"StreamId":"(\d+)"/.exec(message)?.[1];
  if (!sid) return;
  const complete = /request headers complete \(end_stream=(true|false)\):[\s\S]*'x-request-id', '(.*?)'(?:\n|$)/.exec(
    message,
  );
  if (complete) {
    streamIds.set(sid, complete[2]);
    progress.set(complete[2], { ended: complete[1] === "true", routed: false });
    return;
  }
  const id = streamIds.get(sid);
  const p = id === undefined ? undefined : progress.get(id);
  if (!p) return;
  if (/request end stream/.test(message)) p.ended = true;
  const called = /decode headers called: filter=(\S+) status=(\d+)/.exec(message);
  if (called?.[1] === FILTER_NAME) p.filterStatus = Number(called[2]);
  if (called?.[1] === ROUTER_FILTER.name) p.routed = true;
}

/**
 * An h2c server on a free loopback port; `onStream` gets each request
 * stream with its raw headers.
 *
 * @param {(stream: import("node:http2").ServerHttp2Stream, rawHeaders: string[]) => void} onStream
 */
async function startH2Server(onStream) {
  const server = http2.createServer();
  // Node passes the raw headers (name, value, ...) as the listener's fourth argument.
  server.on(
    "stream",
    /** @type {(stream: import("node:http2").ServerHttp2Stream, headers: unknown, flags: number, rawHeaders: string[]) => void} */ (
      (stream, _headers, _flags, rawHeaders) => {
        stream.on("error", () => {});
        onStream(stream, [...rawHeaders]);
      }
    ),
  );
  /** @type {Set<import("node:http2").ServerHttp2Session>} */
  const sessions = new Set();
  server.on("session", (s) => {
    sessions.add(s);
    s.on("close", () => sessions.delete(s));
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(undefined)));
  return {
    port: /** @type {import("node:net").AddressInfo} */ (server.address()).port,
    close: async () => {
      for (const s of sessions) s.destroy();
      await new Promise((resolve) => server.close(() => resolve(undefined)));
    },
  };
}

/**
 * @param {Array<[string, string]>} pairs
 * @returns {Record<string, string | string[]>} for Node's http2 (a repeated name is an array)
 */
function h2Headers(pairs) {
  /** @type {Record<string, string | string[]>} */
  const out = {};
  for (const [k, v] of pairs) {
    if (H2_FORBIDDEN.has(k)) continue;
    const prev = out[k];
    if (prev === undefined || k.startsWith(":")) out[k] = v;
    else out[k] = Array.isArray(prev) ? [...prev, v] : [prev, v];
  }
  return out;
}

/**
 * Answers an HTTP/2 request stream with a scenario message: `headers`
 * (`:status` default 200), `body` chunks (a short gap between them),
 * `trailers`, after `delayMs`. Node adds no `date`.
 *
 * @param {import("node:http2").ServerHttp2Stream} stream
 * @param {Record<string, unknown>} spec
 */
async function answer(stream, spec) {
  const delay = Number(spec.delayMs ?? 0);
  if (delay > 0) await sleep(delay);
  if (stream.destroyed || stream.closed) return;
  const headers = { ":status": "200", ...h2Headers(headerPairs(spec.headers)) };
  const chunks = bodyChunks(spec.body);
  const hasTrailers = (spec.trailers ?? null) !== null;
  try {
    // sendDate: false (Node's own option, not in its types): no date header of Node's.
    const options = { endStream: chunks.length === 0 && !hasTrailers, waitForTrailers: hasTrailers, sendDate: false };
    stream.respond(headers, options);
    if (hasTrailers) stream.on("wantTrailers", () => stream.sendTrailers(h2Headers(headerPairs(spec.trailers))));
    for (let i = 0; i < chunks.length; i++) {
      if (i > 0) await sleep(CHUNK_GAP_MS);
      if (stream.destroyed || stream.closed) return;
      if (i === chunks.length - 1) stream.end(chunks[i]);
      else stream.write(chunks[i]);
    }
    if (chunks.length === 0 && hasTrailers) stream.end();
  } catch {
    // a status or header Node refuses to send: the upstream resets instead
    if (!stream.closed) stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
  }
}

/**
 * The upstream: an h2c server that records the request of the current stream
 * and answers with the stream's `upstream` (default 200, no body) once the
 * whole request arrived. A stream that the client resets gets no answer
 * (the host stubs never get that far either).
 *
 * @param {ServerState} state
 */
async function startUpstream(state) {
  /** @type {Map<number, Received>} */
  const received = new Map();
  const server = await startH2Server((stream, rawHeaders) => {
    const plan = state.current;
    if (!plan) return stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
    /** @type {Received} */
    const rec = { rawHeaders, body: [], rawTrailers: null, complete: false };
    if (!received.has(plan.index)) received.set(plan.index, rec);
    state.notify();
    stream.on("data", (/** @type {Buffer} */ c) => rec.body.push(c));
    stream.on("trailers", (/** @type {unknown} */ _t, /** @type {number} */ _f, /** @type {string[]} */ raw) => {
      rec.rawTrailers = [...raw];
    });
    stream.on("end", () => {
      rec.complete = true;
      state.notify();
      if ((plan.spec.reset ?? "none") !== "none") return;
      answer(stream, isObject(plan.spec.upstream) ? /** @type {Record<string, unknown>} */ (plan.spec.upstream) : {});
    });
  });
  return { ...server, received };
}

/**
 * A cluster for `ctx.fetch`: an h2c server answering with the current
 * stream's `clusters[name]`: `headers` (`:status` default 200), `body`,
 * `delayMs`; `reset: true` resets the stream; `timeout: true` (or no entry
 * for this stream) never answers.
 *
 * @param {ServerState} state
 * @param {string} name
 */
async function startCluster(state, name) {
  const server = await startH2Server((stream) => {
    const plan = state.current;
    stream.resume();
    stream.on("end", async () => {
      const clusters =
        plan && isObject(plan.spec.clusters) ? /** @type {Record<string, unknown>} */ (plan.spec.clusters) : {};
      const spec = isObject(clusters[name]) ? /** @type {Record<string, unknown>} */ (clusters[name]) : null;
      if (!spec || spec.timeout === true) return;
      if (spec.reset === true) {
        const delay = Number(spec.delayMs ?? 0);
        if (delay > 0) await sleep(delay);
        if (!stream.closed) stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
        return;
      }
      answer(stream, spec);
    });
  });
  return { ...server, name };
}

/**
 * Sends one stream's request and collects the response. `onSent(stage)` is
 * awaited after the headers ("headers") and after the whole request
 * ("body"); it returns true to make the client go away there.
 *
 * @param {number} port
 * @param {StreamPlan} plan
 * @param {(stage: "headers" | "body") => Promise<boolean>} onSent
 * @param {number} timeoutMs
 * @returns {Promise<Received | null>} null when no response headers arrived
 */
async function sendRequest(port, plan, onSent, timeoutMs) {
  // Connected first, so that nothing of the request waits in a queue and goes out merged with
  // what follows (each body chunk is to arrive on its own).
  /** @param {import("node:events").EventEmitter & { destroy(): void }} c @returns {Promise<boolean>} */
  const connected = (c) =>
    new Promise((resolve) => {
      c.once("connect", () => resolve(true));
      c.once("error", () => {
        c.destroy();
        resolve(false);
      });
    });
  if (plan.protocol === "h2") {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    return (await connected(session)) ? sendH2(session, plan, onSent, timeoutMs) : null;
  }
  const socket = net.connect(port, "127.0.0.1");
  return (await connected(socket)) ? sendH1(socket, plan, onSent, timeoutMs) : null;
}

/** @param {StreamPlan} plan */
function requestParts(plan) {
  const request = /** @type {Record<string, unknown>} */ (plan.spec.request);
  const pairs = headerPairs(request.headers).filter(([k]) => k !== "x-request-id");
  const pseudo = Object.fromEntries(pairs.filter(([k]) => k.startsWith(":")));
  const regular = pairs.filter(([k]) => !k.startsWith(":"));
  regular.push(["x-request-id", plan.id]);
  const chunks = bodyChunks(request.body);
  const trailers = request.trailers === undefined || request.trailers === null ? null : headerPairs(request.trailers);
  return { pseudo, regular, chunks, trailers };
}

/**
 * @param {import("node:net").Socket} socket connected to Envoy
 * @param {StreamPlan} plan
 * @param {(stage: "headers" | "body") => Promise<boolean>} onSent
 * @param {number} timeoutMs
 * @returns {Promise<Received | null>}
 */
function sendH1(socket, plan, onSent, timeoutMs) {
  const { pseudo, regular, chunks } = requestParts(plan);
  return new Promise((resolve) => {
    /** @type {Received | null} */
    let got = null;
    let settled = false;
    const finish = () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.destroy();
      resolve(got);
    };
    const headers = regular.filter(([k]) => k !== "host");
    if (pseudo[":authority"] !== undefined) headers.unshift(["host", pseudo[":authority"]]);
    else {
      const host = regular.find(([k]) => k === "host");
      if (host) headers.unshift(host);
    }
    const req = http.request({
      createConnection: () => socket,
      method: pseudo[":method"] ?? "GET",
      path: pseudo[":path"] ?? "/",
      headers: headers.flat(),
      setHost: !headers.some(([k]) => k === "host"),
    });
    const timer = setTimeout(finish, timeoutMs);
    req.on("error", finish);
    req.on("response", (res) => {
      got = {
        rawHeaders: [":status", String(res.statusCode), ...res.rawHeaders],
        body: [],
        rawTrailers: null,
        complete: false,
      };
      const r = got;
      res.on("data", (/** @type {Buffer} */ c) => r.body.push(c));
      res.on("end", () => {
        if (res.rawTrailers.length > 0) r.rawTrailers = [...res.rawTrailers];
        r.complete = true;
        finish();
      });
      res.on("aborted", finish);
      res.on("error", finish);
      res.on("close", finish);
    });
    (async () => {
      if (chunks.length === 0) {
        // No body: the request ends with its headers.
        req.end();
        if (await onSent("headers")) return finish();
        if (await onSent("body")) return finish();
        return;
      }
      req.flushHeaders();
      if (await onSent("headers")) return finish();
      for (let i = 0; i < chunks.length && !settled; i++) {
        if (i > 0) await sleep(CHUNK_GAP_MS);
        if (settled) return;
        // (Whatever the client does, Envoy's HTTP/1.1 codec ends a body with an empty data
        // chunk of its own: the filter's last onRequestData has size 0 and endOfStream.)
        if (i < chunks.length - 1) req.write(chunks[i]);
        else req.end(chunks[i]);
      }
      if (!settled && (await onSent("body"))) finish();
    })().catch(finish);
  });
}

/**
 * @param {import("node:http2").ClientHttp2Session} session connected to Envoy
 * @param {StreamPlan} plan
 * @param {(stage: "headers" | "body") => Promise<boolean>} onSent
 * @param {number} timeoutMs
 * @returns {Promise<Received | null>}
 */
function sendH2(session, plan, onSent, timeoutMs) {
  const { pseudo, regular, chunks, trailers } = requestParts(plan);
  return new Promise((resolve) => {
    /** @type {Received | null} */
    let got = null;
    let settled = false;
    const finish = () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (!stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL);
      session.close();
      setTimeout(() => session.destroy(), 100).unref();
      resolve(got);
    };
    session.on("error", finish);
    const headers = h2Headers([
      [":method", "GET"],
      [":path", "/"],
      ...Object.entries(pseudo),
      ...regular.filter(([k]) => k !== "host"),
    ]);
    const hasBody = chunks.length > 0 || trailers !== null;
    const stream = session.request(headers, { endStream: !hasBody, waitForTrailers: trailers !== null });
    const timer = setTimeout(finish, timeoutMs);
    stream.on("error", finish);
    if (trailers !== null) stream.on("wantTrailers", () => stream.sendTrailers(h2Headers(trailers)));
    stream.on("response", (/** @type {unknown} */ _h, /** @type {number} */ _f, /** @type {string[]} */ raw) => {
      got = { rawHeaders: [...raw], body: [], rawTrailers: null, complete: false };
    });
    stream.on("data", (/** @type {Buffer} */ c) => got?.body.push(c));
    stream.on("trailers", (/** @type {unknown} */ _t, /** @type {number} */ _f, /** @type {string[]} */ raw) => {
      if (got) got.rawTrailers = [...raw];
    });
    stream.on("end", () => {
      if (got) got.complete = true;
      finish();
    });
    stream.on("close", finish);
    (async () => {
      if (await onSent("headers")) return finish();
      for (let i = 0; i < chunks.length && !settled; i++) {
        if (i > 0) await sleep(CHUNK_GAP_MS);
        if (settled) return;
        if (i === chunks.length - 1 && trailers === null) stream.end(chunks[i]);
        else stream.write(chunks[i]);
      }
      // Trailers (or an empty body that has them) follow the last chunk.
      if (hasBody && !settled && (chunks.length === 0 || trailers !== null)) stream.end();
      if (!settled && (await onSent("body"))) finish();
    })().catch(finish);
  });
}

/**
 * One line of Envoy's application log, as written with {@link LOG_FORMAT}.
 *
 * @typedef {object} LogLine
 * @property {string} level trace, debug, info, warn, error, critical
 * @property {string} logger
 * @property {string} message
 */

// Envoy's log format for the replay: level, logger, and the message JSON-escaped (%j), so that
// a message with newlines (an error's stack) stays on one line.
const LOG_FORMAT = "[%l][%n] %j";

/**
 * Splits Envoy's stderr (written with {@link LOG_FORMAT}) into lines.
 *
 * @param {string} text
 * @returns {LogLine[]}
 */
export function parseEnvoyLog(text) {
  /** @type {LogLine[]} */
  const out = [];
  for (const line of text.split("\n")) {
    const m = /^\[([a-z]+)\]\[([^\]]*)\] (.*)$/.exec(line);
    if (!m) continue;
    let message = m[3];
    try {
      message = JSON.parse(`"${m[3]}"`);
    } catch {
      // not escaped as expected: keep the text
    }
    out.push({ level: m[1] === "warning" ? "warn" : m[1], logger: m[2], message });
  }
  return out;
}

/**
 * The reason Envoy refused to start, for the user: Envoy's log line with our
 * located message (`envoy_js(...): filter_config rejected: filter.js:3:7:
 * ...`) when there is one, else Envoy's critical lines, else the log's tail.
 *
 * @param {string} log Envoy's log (written with {@link LOG_FORMAT})
 * @returns {string}
 */
export function refusalReason(log) {
  const lines = parseEnvoyLog(log);
  const show = (/** @type {LogLine} */ l) => `[${l.level}][${l.logger}] ${l.message}`;
  const picked = lines.filter(
    (l) =>
      /^envoy_js\([^)]*\): .*rejected: /.test(l.message) ||
      l.level === "critical" ||
      (l.level === "error" && l.logger !== "dynamic_modules"),
  );
  if (picked.length > 0) return picked.map(show).join("\n");
  return log.split("\n").slice(-20).join("\n");
}

/**
 * Replays a scenario through a real Envoy and returns the transcript.
 *
 * @param {EnvoyReplay} options
 * @param {NodeJS.ProcessEnv} [env] `ENVOY_BIN`, `ENVOY_VERSION`, `ENVOY_JS_MODULE` (see envoy.mjs)
 * @returns {Promise<EnvoyTranscript>}
 * @throws {EnvoyEngineError} when Envoy or the module is not available
 *   (`notAvailable`), when Envoy refuses the filter (the message quotes
 *   Envoy's log line) or when the scenario cannot be read
 */
export async function replayOnEnvoy(
  { bundleFile, scenarioFile, scenario, bytecodeFile, streamTimeoutMs = STREAM_TIMEOUT_MS, onWarning = () => {} },
  env = process.env,
) {
  /** @type {Record<string, unknown>} */
  let sc;
  if (scenario !== undefined) sc = scenario;
  else if (scenarioFile !== undefined) {
    try {
      sc = JSON.parse(readFileSync(scenarioFile, "utf8"));
    } catch (err) {
      throw new EnvoyEngineError(
        `cannot read scenario ${scenarioFile}: ${err instanceof Error ? err.message : String(err)}`,
        { cause: err },
      );
    }
    if (!isObject(sc)) throw new EnvoyEngineError(`scenario ${scenarioFile} must be a JSON object (with "streams")`);
  } else throw new EnvoyEngineError("replayOnEnvoy needs scenarioFile or scenario");
  const plans = planStreams(sc);

  const envoyBin = cachedEnvoy(env);
  if (!envoyBin) throw new EnvoyEngineError(HOW_TO_GET_ENVOY, { notAvailable: true });
  /** @type {string} */
  let modules;
  try {
    modules = moduleDir(env);
  } catch (err) {
    throw new EnvoyEngineError(err instanceof Error ? err.message : String(err), { cause: err, notAvailable: true });
  }
  for (const p of plans) {
    const request = /** @type {Record<string, unknown>} */ (p.spec.request);
    const declared = headerPairs(request.headers).find(([k]) => k === "content-length")?.[1];
    const size = bodyChunks(request.body).reduce((n, c) => n + c.length, 0);
    if (declared !== undefined && Number(declared) !== size) {
      onWarning(
        `stream ${p.index + 1}: content-length ${declared} but the body has ${size} bytes; ` +
          (Number(declared) > size ? "Envoy waits for the rest" : "Envoy refuses the extra bytes"),
      );
    }
  }

  /** @type {ServerState} */
  const state = { current: null, notify: () => {} };
  /** @type {Awaited<ReturnType<typeof startUpstream>> | null} */
  let upstream = null;
  /** @type {Array<Awaited<ReturnType<typeof startCluster>>>} */
  const clusterServers = [];
  /** @type {import("./envoy.mjs").EnvoyProcess | null} */
  let envoy = null;
  try {
    upstream = await startUpstream(state);
    const clusterNames = new Set();
    for (const p of plans) {
      if (isObject(p.spec.clusters))
        for (const n of Object.keys(/** @type {object} */ (p.spec.clusters))) clusterNames.add(n);
    }
    for (const n of clusterNames) clusterServers.push(await startCluster(state, n));

    const settings = isObject(sc.settings) ? /** @type {Record<string, unknown>} */ (sc.settings) : {};
    const filterConfig = filterConfigJson({
      source: path.resolve(bundleFile),
      ...(bytecodeFile ? { bytecode: path.resolve(bytecodeFile) } : {}),
      ...(sc.config !== undefined ? { config: sc.config } : {}),
      settings,
    });
    const accessLog = [
      {
        name: "envoy.access_loggers.stdout",
        typed_config: {
          "@type": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
          log_format: {
            json_format: {
              envoy_js_replay: "%REQ(X-REQUEST-ID)%",
              code: "%RESPONSE_CODE%",
              details: "%RESPONSE_CODE_DETAILS%",
              flags: "%RESPONSE_FLAGS%",
            },
          },
        },
      },
    ];
    const config = bootstrap({
      listeners: [
        httpListener({
          name: LISTENER,
          routes: routes(plans),
          httpFilters: [...earlierFilters(plans), envoyJsHttpFilter(filterConfig, FILTER_NAME), ROUTER_FILTER],
          accessLog,
          hcm: { preserve_external_request_id: true, server_header_transformation: "PASS_THROUGH" },
        }),
      ],
      clusters: [
        loopbackCluster({ name: UPSTREAM_CLUSTER, port: upstream.port, http2: true }),
        ...clusterServers.map((c) => loopbackCluster({ name: c.name, port: c.port, http2: true })),
      ],
    });
    try {
      envoy = await startEnvoy({
        config,
        envoy: envoyBin,
        moduleDirectory: modules,
        concurrency: 1,
        // dynamic_modules: the module's lines; http: the progress of each request (trackRequest).
        componentLogLevel: "dynamic_modules:trace,http:trace",
        readyTimeoutMs: 20000,
        args: ["--log-format", LOG_FORMAT, "--file-flush-interval-msec", "5"],
      });
    } catch (err) {
      if (err instanceof EnvoyError && err.log) {
        throw new EnvoyEngineError(
          `Envoy ${envoyBin.version} refused the filter or the scenario:\n${refusalReason(err.log)}`,
          { cause: err },
        );
      }
      throw new EnvoyEngineError(err instanceof Error ? err.message : String(err), { cause: err });
    }
    const proc = envoy;
    const watch = new Watch();
    state.notify = () => watch.notify();
    // Everything Envoy writes from now on: stderr is its log (kept whole, and read as it comes
    // for the progress of the stream being sent), stdout the access log.
    let stderr = "";
    let stderrLine = "";
    /** @type {Map<string, RequestProgress>} by x-request-id */
    const progress = new Map();
    /** @type {Map<string, string>} Envoy's stream id -> x-request-id */
    const streamIds = new Map();
    proc.child.stderr?.on("data", (/** @type {Buffer} */ d) => {
      const text = d.toString("utf8");
      stderr += text;
      stderrLine += text;
      const lines = stderrLine.split("\n");
      stderrLine = lines.pop() ?? "";
      for (const l of parseEnvoyLog(lines.join("\n"))) {
        if (l.logger === "http") trackRequest(l.message, progress, streamIds);
      }
      watch.notify();
    });
    let stdout = "";
    /** @type {Map<string, { code: string, details: string, flags: string }>} */
    const accessLines = new Map();
    proc.child.stdout?.on("data", (/** @type {Buffer} */ d) => {
      stdout += d.toString("utf8");
      for (let nl = stdout.indexOf("\n"); nl >= 0; nl = stdout.indexOf("\n")) {
        const line = stdout.slice(0, nl);
        stdout = stdout.slice(nl + 1);
        try {
          const j = JSON.parse(line);
          if (typeof j.envoy_js_replay === "string")
            accessLines.set(j.envoy_js_replay, {
              code: String(j.code),
              details: String(j.details ?? ""),
              flags: String(j.flags ?? ""),
            });
        } catch {
          // not an access log line
        }
      }
      watch.notify();
    });
    const port = await proc.listenerPort(LISTENER);

    /** @type {Array<Received | null>} */
    const responses = [];
    for (const plan of plans) {
      state.current = plan;
      const reset = plan.spec.reset ?? "none";
      const p = () => progress.get(plan.id);
      // The client goes away as soon as Envoy has dispatched what it was sent: Envoy handles the
      // reset after that dispatch, so the filter has seen the headers (or the whole request)
      // first. When the filter let the headers go on at once, the upstream gets them first too,
      // as on the host stubs.
      const response = await sendRequest(
        port,
        plan,
        async (stage) => {
          if (stage === "headers" && reset === "afterRequestHeaders") {
            await watch.until(() => p()?.filterStatus !== undefined || proc.exited, 2000);
            if (p()?.filterStatus === 0) await watch.until(() => upstream?.received.has(plan.index) === true, 200);
            return true;
          }
          if (stage === "body" && reset === "afterRequestBody") {
            await watch.until(() => p()?.ended === true || proc.exited, 2000);
            if (p()?.routed) await watch.until(() => upstream?.received.get(plan.index)?.complete === true, 100);
            return true;
          }
          return false;
        },
        streamTimeoutMs,
      );
      if (reset === "none" && !response?.complete) {
        onWarning(`stream ${plan.index + 1}: no complete response within ${streamTimeoutMs} ms; the client gave up`);
      }
      responses.push(response);
      // The stream is over once Envoy wrote its access log line.
      await watch.until(() => accessLines.has(plan.id) || proc.exited, ACCESS_LOG_TIMEOUT_MS);
      state.current = null;
    }

    if (proc.exited) {
      const tail = parseEnvoyLog(stderr)
        .slice(-20)
        .map((l) => `[${l.level}][${l.logger}] ${l.message}`);
      throw new EnvoyEngineError(
        `Envoy ${envoyBin.version} exited (${proc.exitStatus}) during the replay:\n${tail.join("\n")}`,
      );
    }
    // Metrics while Envoy runs; then stop it, so that its whole log is in.
    const statsOf = async (/** @type {string} */ type) =>
      JSON.parse(await proc.admin(`/stats?format=json&type=${type}&filter=%5Edynamicmodulescustom%5C.`)).stats ?? [];
    const counters = await statsOf("Counters");
    const gauges = await statsOf("Gauges");
    const prometheus = await proc.admin("/stats/prometheus");
    await proc.stop();
    const log = parseEnvoyLog(stderr);
    const { counters: counterOut, metrics: metricOut } = envoyMetrics({ counters, gauges, prometheus });

    const enginePrefix = `envoy_js(${FILTER_NAME}): `;
    const workerLogs = log
      .filter((l) => l.logger === "dynamic_modules" && l.message.startsWith(enginePrefix))
      .map((l) => `[${l.level}] ${l.message.slice(enginePrefix.length)}`);

    /** @type {StreamTranscript[]} */
    const streams = plans.map((plan, i) => {
      const request = /** @type {Record<string, unknown>} */ (plan.spec.request);
      const up = isObject(plan.spec.upstream) ? /** @type {Record<string, unknown>} */ (plan.spec.upstream) : null;
      const givenRequest = Object.fromEntries(headerPairs(request.headers));
      const givenResponse = up ? Object.fromEntries(headerPairs(up.headers)) : null;
      const rec = upstream?.received.get(plan.index);
      /** @type {SentMessage | null} */
      let upstreamRequest = null;
      if (rec) {
        const m = message(rec);
        upstreamRequest = { ...m, headers: normaliseHeaders(m.headers, "request", givenRequest) };
      }
      const access = accessLines.get(plan.id);
      const response = responses[i];
      /** @type {LocalReply | null} */
      let localReply = null;
      /** @type {SentMessage | null} */
      let downstreamResponse = null;
      if (response) {
        const m = message(response);
        const local = access !== undefined && access.details !== "via_upstream" && access.details !== "-";
        if (local) {
          const { ":status": status, ...rest } = m.headers;
          localReply = {
            status: Number(status),
            body: m.body,
            headers: normaliseHeaders(rest, "localReply", null),
            details: access.details,
          };
        } else {
          const headers = normaliseHeaders(m.headers, "response", givenResponse, m.body);
          downstreamResponse = { ...m, headers };
        }
      }
      const streamPrefix = `envoy_js(${FILTER_NAME}) stream ${plan.id}: `;
      const failedPrefix = `envoy_js(${FILTER_NAME}) stream ${plan.id} failed: `;
      /** @type {string[]} */
      const logs = [];
      /** @type {string[]} */
      const errors = [];
      for (const l of log) {
        if (l.logger !== "dynamic_modules") continue;
        if (l.message.startsWith(streamPrefix)) logs.push(`[${l.level}] ${l.message.slice(streamPrefix.length)}`);
        else if (l.message.startsWith(failedPrefix)) errors.push(l.message.slice(failedPrefix.length));
      }
      return { upstreamRequest, localReply, downstreamResponse, logs, errors };
    });
    return { streams, counters: counterOut, metrics: metricOut, workerLogs };
  } finally {
    state.current = null;
    await envoy?.stop().catch(() => {});
    await upstream?.close().catch(() => {});
    for (const c of clusterServers) await c.close().catch(() => {});
  }
}
