// Scenario input and transcript output, in the shapes of DESIGN.md section 7 and with the
// native addon's rules (test/host_stub/addon.cc): the same validation messages, header names
// lower-cased by the host, repeated headers as arrays, bodies as UTF-8 strings.
import { transcriptText } from "./bytes.js";
import {
  type ClusterScript,
  type HeaderList,
  type Message,
  type StreamRecord,
  type StreamScenario,
  type WorkerRecord,
  emptyStreamScenario,
} from "./scripted-host.js";
import type { CalloutJson, HeadersObject, MetadataJson, SentMessageJson, StreamTranscript, Transcript } from "./types.js";

const isObject = (v: unknown): v is Record<string, unknown> => (typeof v === "object" && v !== null) || typeof v === "function";

export function readHeaders(v: unknown, where: string): HeaderList {
  const out: HeaderList = [];
  if (v === undefined || v === null) return out;
  if (!isObject(v) || Array.isArray(v)) throw new TypeError(`${where} must be an object of name: value`);
  for (const name in v) {
    const value = v[name];
    if (Array.isArray(value)) for (const one of value) out.push([name, String(one)]);
    else out.push([name, String(value)]);
  }
  return out;
}

function readBody(v: unknown, where: string): Buffer[] {
  if (v === undefined || v === null) return [];
  if (typeof v === "string") return [Buffer.from(v, "utf8")];
  if (!Array.isArray(v)) throw new TypeError(`${where} must be a string or an array of strings`);
  return v.map((c) => (c instanceof Uint8Array ? Buffer.from(c) : Buffer.from(String(c), "utf8")));
}

function readMessage(v: unknown, where: string): Message {
  if (!isObject(v)) throw new TypeError(`${where} must be an object`);
  const t = v["trailers"];
  return {
    headers: readHeaders(v["headers"], `${where}.headers`),
    body: readBody(v["body"], `${where}.body`),
    trailers: t === undefined || t === null ? null : readHeaders(t, `${where}.trailers`),
  };
}

/** The parts of a scenario the host needs; throws a TypeError as the addon does. */
export interface ParsedScenario {
  configJson: string;
  settings: unknown;
  streams: StreamScenario[];
}

/** JSON text of a config/settings value; "{}" for nothing (the addon's stringify()). */
export function jsonOf(v: unknown): string {
  if (v === undefined || v === null) return "{}";
  const s = JSON.stringify(v) as string | undefined;
  return typeof s === "string" ? s : "{}";
}

/** JSON text of a value that stands for itself (a route's config, a metadata value): null stays null, as Envoy has it (the addon's stringifyValue()). */
export function valueJsonOf(v: unknown): string {
  return v === null ? "null" : jsonOf(v);
}

/**
 * One stream's scenario: its messages (unless only the setup is wanted, as for a stream of
 * the step API) and its setup, read in the addon's order with its messages (readStream).
 */
export function readStream(sv: unknown, where: string, withRequest: boolean): StreamScenario {
  if (!isObject(sv)) throw new TypeError(`${where} must be an object`);
  const s = emptyStreamScenario();
  if (withRequest) s.request = readMessage(sv["request"], `${where}.request`);
  const up = sv["upstream"];
  if (up !== undefined && up !== null) s.upstream = readMessage(up, `${where}.upstream`);
  const info = sv["stream"];
  if (isObject(info)) {
    for (const k of ["id", "protocol", "remoteAddress", "localAddress", "routeName"] as const) {
      const f = info[k];
      if (typeof f === "string") s.info[k] = f;
    }
  }
  const md = sv["metadata"];
  if (isObject(md)) {
    for (const ns in md) {
      const keys = md[ns];
      if (!isObject(keys)) throw new TypeError(`${where}.metadata.${ns} must be an object`);
      const m = new Map<string, string>();
      for (const key in keys) m.set(key, valueJsonOf(keys[key]));
      s.metadata.set(ns, m);
    }
  }
  const fs = sv["filterState"];
  if (isObject(fs)) for (const key in fs) s.filterState.set(key, String(fs[key]));
  const route = sv["route"];
  if (isObject(route)) {
    s.route.disabled = Boolean(route["disabled"]);
    if (route["config"] !== undefined) s.route.configJson = valueJsonOf(route["config"]);
  }
  const clusters = sv["clusters"];
  if (isObject(clusters)) {
    for (const name in clusters) {
      const cw = `${where}.clusters.${name}`;
      const cv = clusters[name];
      if (!isObject(cv)) throw new TypeError(`${cw} must be an object`);
      const script: ClusterScript = {
        response: { headers: readHeaders(cv["headers"], `${cw}.headers`), body: readBody(cv["body"], `${cw}.body`), trailers: null },
        delayMs: typeof cv["delayMs"] === "number" ? cv["delayMs"] : 0,
        reset: Boolean(cv["reset"]),
        timeout: Boolean(cv["timeout"]),
      };
      if (script.response.headers.length === 0) script.response.headers.push([":status", "200"]);
      s.clusters.set(name, script);
    }
  }
  const reset = sv["reset"];
  if (reset !== undefined) {
    const r = String(reset);
    if (r !== "none" && r !== "afterRequestHeaders" && r !== "afterRequestBody") {
      throw new TypeError(`${where}.reset must be none, afterRequestHeaders or afterRequestBody`);
    }
    s.reset = r;
  }
  return s;
}

export function parseScenario(v: unknown): ParsedScenario {
  if (!isObject(v)) throw new TypeError("scenario must be an object");
  const configJson = jsonOf(v["config"]);
  const settings = v["settings"];
  const streams = v["streams"];
  if (!Array.isArray(streams)) throw new TypeError("scenario.streams must be an array");
  return { configJson, settings, streams: streams.map((sv: unknown, i) => readStream(sv, `streams[${i}]`, true)) };
}

/** Keys in std::map order: byte-wise over UTF-8. */
function sortedKeys<V>(m: Map<string, V>): string[] {
  return [...m.keys()].sort((a, b) => Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8")));
}

/** Header names lower-case; a name that occurs more than once becomes an array, in order. */
export function headersJson(list: HeaderList): HeadersObject {
  const o: HeadersObject = {};
  for (const [k, v] of list) {
    const prev = Object.prototype.hasOwnProperty.call(o, k) ? o[k] : undefined;
    if (prev === undefined) o[k] = v;
    else if (Array.isArray(prev)) prev.push(v);
    else o[k] = [prev, v];
  }
  return o;
}

const sentJson = (m: { headers: HeaderList; body: Buffer; trailers: HeaderList | null } | null): SentMessageJson | null =>
  m === null ? null : { headers: headersJson(m.headers), body: transcriptText(m.body), trailers: m.trailers === null ? null : headersJson(m.trailers) };

export function streamJson(r: StreamRecord): StreamTranscript {
  return {
    upstreamRequest: sentJson(r.upstreamRequest),
    localReply:
      r.localReply === null
        ? null
        : { status: r.localReply.status, body: transcriptText(r.localReply.body), headers: headersJson(r.localReply.headers), details: r.localReply.details },
    downstreamResponse: sentJson(r.downstreamResponse),
    logs: [...r.logs],
    errors: [...r.errors],
    events: [...r.events],
    resetByFilter: r.resetByFilter,
    metadata: metadataJson(r.metadata),
    filterState: Object.fromEntries(sortedKeys(r.filterState).map((k) => [k, r.filterState.get(k)!])),
    routeCacheClears: r.routeCacheClears,
    callouts: r.callouts.map((c): CalloutJson => ({ cluster: c.cluster, headers: headersJson(c.headers), body: transcriptText(c.body) })),
  };
}

function metadataJson(md: Map<string, Map<string, string>>): MetadataJson {
  const out: MetadataJson = {};
  for (const ns of sortedKeys(md)) {
    const keys = md.get(ns)!;
    const o: Record<string, unknown> = {};
    for (const k of sortedKeys(keys)) o[k] = JSON.parse(keys.get(k)!);
    out[ns] = o;
  }
  return out;
}

export function transcriptJson(streams: StreamRecord[], worker: WorkerRecord): Transcript {
  const counters: Record<string, number> = {};
  for (const k of sortedKeys(worker.counters)) counters[k] = worker.counters.get(k)!;
  const metrics: Record<string, number | number[]> = {};
  for (const k of sortedKeys(worker.metrics)) {
    const m = worker.metrics.get(k)!;
    metrics[k] = m.kind === "histogram" ? [...m.samples] : m.value;
  }
  return { streams: streams.map(streamJson), counters, metrics, workerLogs: [...worker.workerLogs] };
}
