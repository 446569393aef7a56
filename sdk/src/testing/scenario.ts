// Scenario input and transcript output, in the shapes of DESIGN.md section 7 and with the
// native addon's rules (test/host_stub/addon.cc): the same validation messages, header names
// lower-cased by the host, repeated headers as arrays, bodies as UTF-8 strings.
import { transcriptText } from "./bytes.js";
import type { HeaderList, Message, StreamRecord, StreamScenario, WorkerRecord } from "./scripted-host.js";
import type { HeadersObject, SentMessageJson, StreamTranscript, Transcript } from "./types.js";

const isObject = (v: unknown): v is Record<string, unknown> => (typeof v === "object" && v !== null) || typeof v === "function";

function readHeaders(v: unknown, where: string): HeaderList {
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

export function parseScenario(v: unknown): ParsedScenario {
  if (!isObject(v)) throw new TypeError("scenario must be an object");
  const streams = v["streams"];
  if (!Array.isArray(streams)) throw new TypeError("scenario.streams must be an array");
  return {
    configJson: jsonOf(v["config"]),
    settings: v["settings"],
    streams: streams.map((sv: unknown, i) => {
      const where = `streams[${i}]`;
      if (!isObject(sv)) throw new TypeError(`${where} must be an object`);
      const up = sv["upstream"];
      const s: StreamScenario = {
        request: readMessage(sv["request"], `${where}.request`),
        upstream: up === undefined || up === null ? null : readMessage(up, `${where}.upstream`),
        reset: "none",
      };
      const reset = sv["reset"];
      if (reset !== undefined) {
        const r = String(reset);
        if (r !== "none" && r !== "afterRequestHeaders" && r !== "afterRequestBody") {
          throw new TypeError(`${where}.reset must be none, afterRequestHeaders or afterRequestBody`);
        }
        s.reset = r;
      }
      return s;
    }),
  };
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
  };
}

export function transcriptJson(streams: StreamRecord[], worker: WorkerRecord): Transcript {
  const counters: Record<string, number> = {};
  for (const k of [...worker.counters.keys()].sort()) counters[k] = worker.counters.get(k)!;
  return { streams: streams.map(streamJson), counters, workerLogs: [...worker.workerLogs] };
}
