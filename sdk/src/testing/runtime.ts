// The stub's runtime: the per-stream state machine, the engine (loading, job pump, failure
// policy) and timers, ported from the native runtime (runtime/stream.cc, engine.cc,
// timers.cc) function by function, with the same names, so that a change on one side can be
// carried over to the other. Comments here say only what differs or what is easy to miss;
// the reasons live in the C++.
//
// The one structural difference: JS runs in a node:vm realm instead of a QuickJS context.
// Jobs are drained with Realm.drain() wherever the native code calls JS_ExecutePendingJob,
// and a hook's promise is watched from the moment it is returned (the watch records the
// settlement until the hook is known to be pending, then acts as the native hookReaction).
//
// Not enforced (documented in the SDK README): max_cpu_ms_per_event and max_heap_bytes. A
// synchronous infinite loop cannot be interrupted in-process, and V8 has no per-realm heap
// limit. Both settings are validated and accepted like the native engine does.
import { types } from "node:util";

import { Bindings } from "./bindings.js";
import { FetchApi } from "./fetch.js";
import { decodeUtf8 } from "./bytes.js";
import {
  type BodyBuffer,
  type CalloutResponse,
  type DataStatus,
  type Direction,
  type EngineHost,
  type HeaderMap,
  type HeadersStatus,
  type LocalReply,
  type LogLevel,
  type MetricKind,
  type StreamHost,
  type TrailersStatus,
  REQUEST,
  RESPONSE,
  headersKind,
  trailersKind,
} from "./host.js";
import { type CompiledModule, LoadError, Realm } from "./realm.js";

// ---- hooks -------------------------------------------------------------------------------------

export const HOOK_NAMES = [
  "onRequest",
  "onRequestData",
  "onRequestTrailers",
  "onResponse",
  "onResponseData",
  "onResponseTrailers",
  "onDone",
] as const;
export type HookId = 0 | 1 | 2 | 3 | 4 | 5 | 6;
const ON_DONE: HookId = 6;
const NO_HOOK = 7;
const headersHook = (d: Direction): HookId => (d === REQUEST ? 0 : 3);
const dataHook = (d: Direction): HookId => (d === REQUEST ? 1 : 4);
const trailersHook = (d: Direction): HookId => (d === REQUEST ? 2 : 5);

const ERROR: LogLevel = 4;
const WARN: LogLevel = 3;
const FILTER_ERROR_DETAILS = "envoy_js_error";

// ---- settings (Settings::fromJson) --------------------------------------------------------------

export interface Settings {
  failureMode: "closed" | "open";
  maxHeapBytes: number;
  maxCpuMsPerEvent: number;
  bufferLimitBytes: number;
}

/** Reads the section 5 keys; throws an Error with the native engine's message. */
export function parseSettings(value: unknown): Settings {
  const out: Settings = { failureMode: "closed", maxHeapBytes: 64 * 1024 * 1024, maxCpuMsPerEvent: 50, bufferLimitBytes: 1024 * 1024 };
  const text = value === undefined || value === null ? "{}" : (JSON.stringify(value) ?? "{}");
  const obj = JSON.parse(text) as unknown;
  if (typeof obj !== "object" || obj === null || Array.isArray(obj)) throw new Error("settings must be a JSON object");
  const o = obj as Record<string, unknown>;
  if (o["failure_mode"] !== undefined) {
    if (o["failure_mode"] === "closed" || o["failure_mode"] === "open") out.failureMode = o["failure_mode"];
    else throw new Error('failure_mode must be "closed" or "open"');
  }
  const limits: Array<[string, number, number, keyof Settings]> = [
    ["max_heap_bytes", 1 << 20, 2 ** 34, "maxHeapBytes"],
    ["max_cpu_ms_per_event", 1, 60000, "maxCpuMsPerEvent"],
    ["buffer_limit_bytes", 0, 2 ** 32, "bufferLimitBytes"],
  ];
  for (const [key, min, max, field] of limits) {
    const v = o[key];
    if (v === undefined) continue;
    if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
      throw new Error(`${key} must be an integer between ${min} and ${max}`);
    }
    (out as unknown as Record<string, number>)[field] = v;
  }
  return out;
}

// ---- per-stream state (internal.h) ------------------------------------------------------------

/**
 * Where a streaming chunk's bytes live: the host's data of the running data callback
 * ("current"), or a window of the host's buffered data ("buffered": the hook went async, or
 * the data arrived while an earlier hook was pending and waited in the host's buffer).
 */
export type ChunkTarget = "current" | "buffered";

/**
 * A window [start, start + len) of the host's buffered body (BufferWindow): a chunk that waits
 * there behind data the hooks are already done with, and in front of data that arrived after
 * it. Edits splice the window; the bytes around it stay as they are.
 */
export class BufferWindow implements BodyBuffer {
  base: BodyBuffer | null = null;
  start = 0;
  len = 0;
  get length(): number {
    return this.len;
  }
  bytes(): Buffer {
    return Buffer.from(this.base!.bytes().subarray(this.start, this.start + this.len));
  }
  replace(data: Uint8Array): void {
    this.#splice(0, this.len, data);
  }
  append(data: Uint8Array): void {
    this.#splice(this.len, 0, data);
  }
  prepend(data: Uint8Array): void {
    this.#splice(0, 0, data);
  }
  #splice(at: number, remove: number, data: Uint8Array): void {
    const base = this.base!;
    const total = base.length;
    const { start, len } = this;
    if (start === 0 && len === total && at === 0 && remove === len) {
      base.replace(data); // the window is the whole buffer
    } else if (start === 0 && at === 0 && remove === 0) {
      base.prepend(data);
    } else if (start + len === total && at === len && remove === 0) {
      base.append(data); // the window ends the buffer
    } else {
      const all = base.bytes();
      base.replace(Buffer.concat([all.subarray(0, start + at), data, all.subarray(start + at + remove)]));
    }
    this.len = len - remove + data.length;
  }
}

export interface ChunkRef {
  stream: StreamState;
  dir: Direction;
  target: ChunkTarget;
  endOfStream: boolean;
  dead: boolean; // its hook settled: the chunk has moved on
  window: BufferWindow; // where a "buffered" chunk is
}

type BodyFormat = "text" | "json" | "bytes";
interface BodyWaiter {
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
  format: BodyFormat;
}

export class DirectionState {
  headersSeen = false;
  endSeen = false;
  headersReleased = false;
  trailersReleased = false;
  stopped = false;
  inCallback = false;
  hookPending = false;
  settled = false;
  settledRejected = false;
  settledValue: unknown = undefined;
  hookGeneration = 0;
  pendingHook: number = NO_HOOK;
  pendingChunk: object | undefined = undefined;
  // What arrived while a hook was pending. Data waits in the host's buffer, under the host's
  // flow control (watermarks), behind `processedBytes` that the hooks are done with; trailers
  // wait for the data before them.
  heldChunks: number[] = []; // sizes, in arrival order
  heldTrailers = false;
  dataEnded = false; // a data callback came with end of stream
  processedBytes = 0; // front of the host's buffered body the data hooks are done with
  bodyRead: "none" | "waiting" | "done" = "none";
  bodyWaiters: BodyWaiter[] = [];
}

export class StreamState {
  host: StreamHost | null;
  destroyed = false;
  responded = false;
  failed = false;
  reset = false;
  completed = false;
  aborted = false;
  /** The route disabled the filter: every callback continues. */
  disabled = false;
  /** ctx.config when the route overrides it. */
  routeConfig: unknown = undefined;
  pendingReply: LocalReply | null = null;
  /** How many of this stream's hooks are running now (called and not yet past their drain). */
  hooksRunning = 0;
  readonly dirs: [DirectionState, DirectionState] = [new DirectionState(), new DirectionState()];
  // Cached wrappers (the native StreamState's JSValue slots); cleared when the host destroys
  // the stream.
  ctx: object | undefined;
  req: object | undefined;
  res: object | undefined;
  log: object | undefined;
  info: object | undefined;
  metadata: object | undefined;
  filterState: object | undefined;
  headers: Array<object | undefined> = [undefined, undefined, undefined, undefined];
  bodies: Array<object | undefined> = [undefined, undefined];

  constructor(
    readonly engine: Engine,
    host: StreamHost,
    readonly id: number,
  ) {
    this.host = host;
  }

  dir(d: Direction): DirectionState {
    return this.dirs[d];
  }

  finished(): boolean {
    return this.responded || this.failed || this.reset || this.destroyed;
  }
}

function isFree(d: DirectionState): boolean {
  return !d.hookPending && d.bodyRead !== "waiting" && d.heldChunks.length === 0 && !d.heldTrailers;
}

// Marks the entry of a host callback for one direction; restores on exit.
function withCallback<T>(s: StreamState, dir: Direction, body: () => T): T {
  const d = s.dir(dir);
  const savedCurrent = s.engine.current;
  const savedInCallback = d.inCallback; // callbacks nest when a local reply runs the encoder path
  s.engine.current = s;
  d.inCallback = true;
  try {
    return body();
  } finally {
    d.inCallback = savedInCallback;
    s.engine.current = savedCurrent;
  }
}

// ---- the state machine (stream.cc) ------------------------------------------------------------

function setContentLength(headers: HeaderMap, length: number): void {
  headers.set("content-length", String(length));
}

function releaseHeaders(s: StreamState, dir: Direction): void {
  const d = s.dir(dir);
  if (d.headersReleased || s.host === null) return;
  d.headersReleased = true;
  const headers = s.host.headerMap(headersKind(dir));
  if (headers === null) return;
  if (headers.values("content-length").length === 0) return;
  if (d.endSeen) {
    let length = s.host.bufferedData(dir).length;
    if (d.inCallback) {
      const current = s.host.currentData(dir);
      if (current) length += current.length;
    }
    if (length > 0 || d.bodyRead === "done") setContentLength(headers, length);
  } else if (s.engine.hasHook[dataHook(dir)]) {
    headers.remove("content-length");
  }
}

function release(s: StreamState, dir: Direction): void {
  const d = s.dir(dir);
  releaseHeaders(s, dir);
  d.processedBytes = 0; // the host passes its buffered body on
  if (d.endSeen && s.host && s.host.headerMap(trailersKind(dir)) !== null) d.trailersReleased = true;
}

function sendReply(s: StreamState, reply: LocalReply): void {
  s.responded = true;
  s.pendingReply = null;
  for (const d of s.dirs) {
    d.heldChunks = [];
    d.heldTrailers = false;
    d.stopped = false;
  }
  if (s.host !== null) s.host.sendLocalReply(reply);
}

const responseStarted = (s: StreamState): boolean => s.dir(RESPONSE).headersReleased;

/** What a hook call produced, filled in by the watch on its promise. */
interface HookCall {
  settled: boolean;
  rejected: boolean;
  value: unknown;
  /** Set once the hook is known to be pending: the native hookReaction. */
  later: ((rejected: boolean, value: unknown) => void) | null;
}

function startHook(s: StreamState, dir: Direction, id: HookId, arg: unknown, chunk: object | undefined): void {
  const e = s.engine;
  const d = s.dir(dir);
  const takesCtx = e.hookTakesCtx[id];
  if (takesCtx && s.ctx === undefined) s.ctx = e.bindings.makeContext(s);
  const savedCurrent = e.current;
  e.current = s;
  let rejected = false;
  let value: unknown = undefined;
  let pending = false;
  let call: HookCall | null = null;
  let ret: unknown;
  let threw = false;
  s.hooksRunning++;
  try {
    ret = Reflect.apply(e.hooks[id] as (...a: unknown[]) => unknown, undefined, takesCtx ? [arg, s.ctx] : [arg]);
  } catch (err) {
    threw = true;
    rejected = true;
    value = err;
  }
  if (!threw && types.isPromise(ret)) {
    const c: HookCall = { settled: false, rejected: false, value: undefined, later: null };
    call = c;
    e.watch(ret, (rej, v) => {
      if (c.later) c.later(rej, v);
      else if (!c.settled) Object.assign(c, { settled: true, rejected: rej, value: v });
    });
    try {
      e.drainJobQueue();
    } finally {
      s.hooksRunning--;
    }
    if (c.settled) {
      rejected = c.rejected;
      value = c.value;
      // A hook promise rejected by the end of the drain goes to the failure policy, which
      // handles it: it is not an unhandled rejection (forgetRejection in the engine).
      if (rejected) e.handlerAttached(ret as object);
    } else {
      pending = true;
    }
  } else {
    s.hooksRunning--;
    if (!threw) value = ret;
  }
  e.current = savedCurrent;

  if (pending && !s.finished() && call !== null) {
    d.hookPending = true;
    d.pendingHook = id;
    d.hookGeneration++;
    d.pendingChunk = chunk;
    const generation = d.hookGeneration & 0x3fff;
    call.later = (rej, v) => hookReaction(s, dir, generation, rej, v);
    e.handlerAttached(ret as object); // JS_PromiseThen
    return;
  }
  if (pending) return; // finished meanwhile: nobody waits for this promise, no reaction
  d.pendingHook = id;
  d.pendingChunk = chunk;
  streamHookSettled(s, dir, false, rejected, value);
}

// Delivers what arrived while a hook was pending, in order: each held chunk (a window of the
// host's buffer, behind the bytes already processed), then the trailers.
function runQueued(s: StreamState, dir: Direction): void {
  const d = s.dir(dir);
  const e = s.engine;
  while (!s.finished() && !d.hookPending && d.bodyRead !== "waiting") {
    if (d.heldChunks.length > 0) {
      const size = d.heldChunks.shift()!;
      const last = d.heldChunks.length === 0 && d.dataEnded;
      const chunk = e.bindings.makeChunk(s, dir, last, "buffered", d.processedBytes, size);
      startHook(s, dir, dataHook(dir), chunk, chunk);
    } else if (d.heldTrailers) {
      d.heldTrailers = false;
      if (e.hasHook[trailersHook(dir)] && s.host!.headerMap(trailersKind(dir)) !== null) {
        startHook(s, dir, trailersHook(dir), e.bindings.headersObject(s, trailersKind(dir)), undefined);
      }
    } else {
      break;
    }
  }
}

function resumeIfFree(s: StreamState, dir: Direction): void {
  const d = s.dir(dir);
  runQueued(s, dir);
  if (s.finished() || !isFree(d) || !d.stopped || d.inCallback) return;
  d.stopped = false;
  release(s, dir);
  s.host!.continueStream(dir);
}

function hookReaction(s: StreamState, dir: Direction, generation: number, rejected: boolean, value: unknown): void {
  const e = s.engine;
  const d = s.dir(dir);
  if (!d.hookPending || (d.hookGeneration & 0x3fff) !== generation || s.destroyed) return;
  if (d.settled) return;
  d.settled = true;
  d.settledRejected = rejected;
  d.settledValue = value;
  e.settledQueue.push(s);
}

function streamHookSettled(s: StreamState, dir: Direction, runaway: boolean, rejected: boolean, value: unknown): void {
  const e = s.engine;
  const d = s.dir(dir);
  const hook = d.pendingHook;
  d.hookPending = false;
  d.pendingHook = NO_HOOK;
  const chunk = d.pendingChunk;
  d.pendingChunk = undefined;
  if (chunk !== undefined) {
    // A chunk that waited in the host's buffer is done: what follows it is not yet.
    const end = e.bindings.chunkWindowEnd(chunk);
    if (end > d.processedBytes) d.processedBytes = end;
    e.bindings.killChunk(chunk);
  }
  if (s.destroyed) return;
  if (hook === ON_DONE) {
    if (rejected) {
      e.logEngine(ERROR, "onDone failed: " + e.describeException(value));
      e.host.incrementCounter("envoy_js.errors", 1);
    }
    return;
  }
  if (rejected) {
    streamFail(s, dir, e.describeException(value), runaway);
  } else if (s.pendingReply !== null && !s.finished()) {
    sendReply(s, s.pendingReply);
  }
  if (!s.finished()) resumeIfFree(s, dir);
}

export function streamFail(s: StreamState, dir: Direction, message: string, runaway: boolean): void {
  const e = s.engine;
  const heap = message.includes("out of memory");
  e.host.incrementCounter("envoy_js.errors", 1);
  if (runaway) e.host.incrementCounter("envoy_js.cpu_limit", 1);
  if (heap) e.host.incrementCounter("envoy_js.heap_limit", 1);
  const text = (runaway ? "max_cpu_ms_per_event exceeded: " : "") + message;
  e.logEngine(ERROR, `stream ${s.id}: filter failed: ${text}`);
  if (s.host !== null) s.host.recordError(text);
  if (s.finished()) return;
  const d = s.dir(dir);
  if (e.settings.failureMode === "open") {
    if (d.hookPending) d.hookPending = false;
    s.pendingReply = null;
    return;
  }
  s.failed = true;
  if (responseStarted(s)) {
    s.reset = true;
    s.host!.resetStream();
    return;
  }
  sendReply(s, { status: 500, body: Buffer.alloc(0), headers: [], details: FILTER_ERROR_DETAILS });
}

function overLimit(s: StreamState, dir: Direction): void {
  const e = s.engine;
  e.logEngine(
    WARN,
    `stream ${s.id}: ${dir === REQUEST ? "request" : "response"} body is over buffer_limit_bytes (${e.settings.bufferLimitBytes})`,
  );
  if (responseStarted(s)) {
    s.reset = true;
    s.host!.resetStream();
    return;
  }
  if (dir === REQUEST) {
    sendReply(s, { status: 413, body: Buffer.from("Payload Too Large"), headers: [], details: "envoy_js_request_body_too_large" });
  } else {
    sendReply(s, { status: 500, body: Buffer.from("Internal Server Error"), headers: [], details: "envoy_js_response_body_too_large" });
  }
}

function completeBodyRead(s: StreamState, dir: Direction): void {
  const e = s.engine;
  const d = s.dir(dir);
  d.bodyRead = "done";
  const waiters = d.bodyWaiters;
  d.bodyWaiters = [];
  const body = waiters.length === 0 ? Buffer.alloc(0) : streamWholeBody(s, dir);
  for (const w of waiters) {
    let value: unknown;
    let ok = true;
    if (w.format === "bytes") {
      value = e.realm.uint8Array(body);
    } else {
      value = decodeUtf8(body);
      if (w.format === "json") {
        try {
          value = e.realm.intrinsics.JSON.parse(value as string);
        } catch (err) {
          ok = false;
          value = err;
        }
      }
    }
    (ok ? w.resolve : w.reject)(value);
  }
}

/** Why the body of `dir` cannot be read now, or null when it can. */
export function streamBodyReadRefusal(s: StreamState, dir: Direction): string | null {
  const d = s.dir(dir);
  const what = dir === REQUEST ? "request" : "response";
  if (!d.headersSeen) return `the ${what} has not arrived yet`;
  if (d.headersReleased) {
    return (
      `the ${what} headers were already sent on, so its body is streaming: read the whole body by ` +
      `awaiting it inside ${dir === REQUEST ? "onRequest" : "onResponse"}, or use the ` +
      `${dir === REQUEST ? "onRequestData" : "onResponseData"} hook`
    );
  }
  return null;
}

/** A whole-body read of `format` (body.text/json/bytes); the caller checked it is allowed. */
export function streamReadBody(s: StreamState, dir: Direction, format: BodyFormat): unknown {
  const { promise, resolve, reject } = s.engine.newPromise();
  s.dir(dir).bodyWaiters.push({ resolve, reject, format });
  streamStartBodyRead(s, dir);
  return promise;
}

function streamStartBodyRead(s: StreamState, dir: Direction): void {
  const d = s.dir(dir);
  if (d.bodyRead === "done") {
    completeBodyRead(s, dir); // held whole already: answer the new reader at once
    return;
  }
  if (d.bodyRead !== "none") return;
  d.bodyRead = "waiting";
  // Data that arrived while an earlier hook was pending, already in the host's buffer, belongs
  // to the body now (the data hooks are not called for data consumed by a body read).
  d.heldChunks = [];
  if (d.endSeen) completeBodyRead(s, dir);
}

function streamWholeBody(s: StreamState, dir: Direction): Buffer {
  const host = s.host!;
  const parts = [host.bufferedData(dir).bytes()];
  if (s.dir(dir).inCallback) {
    const current = host.currentData(dir);
    if (current) parts.push(current.bytes());
  }
  return Buffer.concat(parts);
}

export function streamReplaceWholeBody(s: StreamState, dir: Direction, data: Buffer): void {
  const host = s.host!;
  // The callback's data first (stream.cc says why: it may be the buffered body itself).
  if (s.dir(dir).inCallback) host.currentData(dir)?.replace(Buffer.alloc(0));
  host.bufferedData(dir).replace(data);
}

/**
 * Whether ctx.respond() must wait for a hook of `s` to settle: one is pending, or one is
 * running now. Anywhere else (a timer, a job run after the hook settled) the reply goes out
 * at once.
 */
export function replyMustWait(s: StreamState): boolean {
  return s.dirs[0].hookPending || s.dirs[1].hookPending || s.hooksRunning > 0;
}

/** ctx.respond() outside any hook of this stream (e.g. from a timer): send at once. */
export function sendReplyNow(s: StreamState): void {
  if (s.pendingReply !== null && !s.finished()) sendReply(s, s.pendingReply);
}

const deliverCallout = (s: StreamState, id: number, r: CalloutResponse): void => s.engine.fetchApi.deliver(s, id, r);
const cancelStreamCallouts = (s: StreamState): void => s.engine.fetchApi.cancelStream(s);

// ---- host callbacks ----------------------------------------------------------------------------

// The route decides whether the filter runs and which config it sees.
function applyRoute(s: StreamState): void {
  if (s.host === null || s.routeConfig !== undefined) return;
  const route = s.host.routeOverride();
  if (route.disabled) {
    s.disabled = true;
    return;
  }
  if (route.configJson === "") return;
  let config: unknown;
  try {
    config = s.engine.configFor(route.configJson);
  } catch (err) {
    streamFail(s, REQUEST, "invalid per-route config JSON: " + s.engine.describeException(err), false);
    return;
  }
  s.routeConfig = config;
}

function onHeaders(s: StreamState, dir: Direction, endStream: boolean): HeadersStatus {
  const e = s.engine;
  const d = s.dir(dir);
  return withCallback(s, dir, () => {
    d.headersSeen = true;
    d.endSeen = endStream;
    if (dir === REQUEST && !s.finished()) applyRoute(s);
    if (s.disabled) return "Continue";
    if (s.finished()) return s.responded && dir === RESPONSE ? "Continue" : "StopIteration";
    if (e.hasHook[headersHook(dir)]) {
      const msg = dir === REQUEST ? e.bindings.makeRequest(s) : e.bindings.makeResponse(s);
      startHook(s, dir, headersHook(dir), msg, undefined);
      e.runJobs();
    }
    if (s.finished()) return "StopIteration";
    if (isFree(d)) {
      release(s, dir);
      return "Continue";
    }
    d.stopped = true;
    return "StopIteration";
  });
}

function onData(s: StreamState, dir: Direction, endStream: boolean): DataStatus {
  const e = s.engine;
  const d = s.dir(dir);
  return withCallback(s, dir, (): DataStatus => {
    d.endSeen = d.endSeen || endStream;
    d.dataEnded = d.dataEnded || endStream;
    if (s.disabled) return "Continue";
    if (s.finished()) return s.responded && dir === RESPONSE && !s.failed ? "Continue" : "StopIterationNoBuffer";
    const host = s.host!;
    const current = host.currentData(dir);
    const limit = e.settings.bufferLimitBytes;
    const hasDataHook = e.hasHook[dataHook(dir)];

    if (d.bodyRead === "waiting") {
      const total = host.bufferedData(dir).length + (current ? current.length : 0);
      if (total > limit) {
        overLimit(s, dir);
        return "StopIterationNoBuffer";
      }
      if (endStream) {
        completeBodyRead(s, dir);
        e.runJobs();
      }
    } else if (!isFree(d)) {
      // A hook is pending: the data waits in the host's buffer, under the host's flow control
      // (watermarks: a slow hook slows the sender down, it does not fail the stream), and goes
      // to the data hook once the pending one settles.
      if (hasDataHook && d.bodyRead === "none") d.heldChunks.push(current ? current.length : 0);
      d.stopped = true;
      return "StopIterationAndWatermark";
    } else if (hasDataHook) {
      // The data goes into the host's buffer behind what is there if the hook goes async.
      const start = host.bufferedData(dir).length;
      const chunk = e.bindings.makeChunk(s, dir, endStream, "current");
      startHook(s, dir, dataHook(dir), chunk, chunk);
      e.runJobs();
      if (!s.finished() && d.hookPending) {
        // The chunk is about to be buffered by the host: follow it there.
        e.bindings.retargetChunk(d.pendingChunk, start, current ? current.length : 0);
        d.stopped = true;
        return "StopIterationAndWatermark";
      }
    }
    if (s.finished()) return "StopIterationNoBuffer";
    if (isFree(d)) {
      if (d.stopped) {
        d.stopped = false;
        release(s, dir);
      }
      return "Continue";
    }
    d.stopped = true;
    return "StopIterationAndBuffer";
  });
}

function onTrailers(s: StreamState, dir: Direction): TrailersStatus {
  const e = s.engine;
  const d = s.dir(dir);
  return withCallback(s, dir, (): TrailersStatus => {
    d.endSeen = true;
    if (s.disabled) return "Continue";
    if (s.finished()) return s.responded && dir === RESPONSE && !s.failed ? "Continue" : "StopIteration";
    if (d.bodyRead === "waiting") {
      completeBodyRead(s, dir);
      e.runJobs();
      if (s.finished()) return "StopIteration";
    }
    if (e.hasHook[trailersHook(dir)]) {
      if (isFree(d)) {
        startHook(s, dir, trailersHook(dir), e.bindings.headersObject(s, trailersKind(dir)), undefined);
        e.runJobs();
      } else {
        d.heldTrailers = true;
      }
    }
    if (s.finished()) return "StopIteration";
    if (isFree(d)) {
      d.stopped = false;
      release(s, dir);
      d.trailersReleased = true;
      return "Continue";
    }
    d.stopped = true;
    return "StopIteration";
  });
}

// Runs onDone once; the stream's maps become read-only.
function completeStream(s: StreamState): void {
  if (s.completed || s.destroyed || s.disabled) return;
  s.completed = true;
  const e = s.engine;
  if (!e.hasHook[ON_DONE]) return;
  withCallback(s, RESPONSE, () => {
    for (const d of s.dirs) {
      d.headersReleased = true;
      d.trailersReleased = true;
    }
    if (s.dir(RESPONSE).hookPending) return; // a response hook never settled
    startHook(s, RESPONSE, ON_DONE, e.bindings.makeContext(s), undefined);
    e.runJobs();
  });
}

/** One HTTP stream (runtime/engine.h Stream). The host calls on* in Envoy's order. */
export class Stream {
  #state: StreamState | null;

  constructor(state: StreamState) {
    this.#state = state;
  }

  onRequestHeaders(endStream: boolean): HeadersStatus {
    return this.#state ? onHeaders(this.#state, REQUEST, endStream) : "Continue";
  }
  onRequestData(endStream: boolean): DataStatus {
    return this.#state ? onData(this.#state, REQUEST, endStream) : "Continue";
  }
  onRequestTrailers(): TrailersStatus {
    return this.#state ? onTrailers(this.#state, REQUEST) : "Continue";
  }
  onResponseHeaders(endStream: boolean): HeadersStatus {
    return this.#state ? onHeaders(this.#state, RESPONSE, endStream) : "Continue";
  }
  onResponseData(endStream: boolean): DataStatus {
    return this.#state ? onData(this.#state, RESPONSE, endStream) : "Continue";
  }
  onResponseTrailers(): TrailersStatus {
    return this.#state ? onTrailers(this.#state, RESPONSE) : "Continue";
  }
  /** A callout started through StreamHost.startCallout finished. */
  onCalloutDone(id: number, response: CalloutResponse): void {
    const s = this.#state;
    if (s === null || s.destroyed) return;
    const e = s.engine;
    const saved = e.current;
    e.current = s;
    deliverCallout(s, id, response);
    e.runJobs();
    e.current = saved;
  }
  /**
   * The stream finished, completely or not (Envoy's onStreamComplete, before the access log):
   * runs onDone, with `ctx.aborted` true when the response did not end.
   */
  onComplete(): void {
    const s = this.#state;
    if (s === null) return;
    if (!s.destroyed && !s.dir(RESPONSE).endSeen && !s.responded) s.aborted = true;
    completeStream(s);
  }
  /** The host is about to free the stream; pending work is abandoned, `ctx.aborted` is true. */
  onDestroy(): void {
    const s = this.#state;
    if (s === null || s.destroyed) return;
    this.#state = null;
    const e = s.engine;
    const ended = s.dir(RESPONSE).endSeen || s.responded;
    if (!ended) s.aborted = true;
    completeStream(s);
    cancelStreamCallouts(s); // while the host can still cancel them
    s.destroyed = true;
    s.host = null;
    s.aborted = s.aborted || !ended;
    for (const d of s.dirs) {
      d.heldChunks = [];
      d.heldTrailers = false;
      const waiters = d.bodyWaiters;
      d.bodyWaiters = [];
      for (const w of waiters) w.reject(e.bindings.newStreamGoneError());
      if (d.settled) d.settledValue = undefined;
      d.hookPending = false;
    }
    const saved = e.current;
    e.current = s;
    e.runJobs();
    e.current = saved;
    e.cancelStreamTimers(s);
    // freeStreamValues: the cached wrappers go; JS may still hold them.
    s.ctx = s.req = s.res = s.log = s.info = s.metadata = s.filterState = s.routeConfig = undefined;
    s.headers = [undefined, undefined, undefined, undefined];
    s.bodies = [undefined, undefined];
    for (const d of s.dirs) d.pendingChunk = undefined;
  }
}

// ---- the engine (engine.cc, timers.cc) ----------------------------------------------------------

interface Timer {
  callback: (...args: unknown[]) => unknown;
  args: unknown[] | undefined;
  owner: StreamState | null; // null for worker-level timers (created outside any stream)
  intervalMs: number; // < 0 for one-shot timers
}

/** A callout in flight (PendingCallout). */
export interface PendingCallout {
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
  owner: StreamState;
}

export interface MetricDeclaration {
  name: string;
  kind: MetricKind;
}

/** Deep merge for plain objects: `over` wins; arrays and other values replace. */
function mergeConfig(realm: Realm, base: unknown, over: unknown): unknown {
  const plain = (v: unknown): v is Record<string, unknown> =>
    ((typeof v === "object" && v !== null) || typeof v === "function") && !Array.isArray(v);
  if (!plain(base) || !plain(over)) return over;
  const out = new realm.intrinsics.Object() as Record<string, unknown>;
  for (const [pass, src] of [[0, base], [1, over]] as const) {
    for (const key of Object.keys(src)) {
      const v = src[key];
      const prev = out[key];
      out[key] = prev === undefined || pass === 0 ? v : mergeConfig(realm, prev, v);
    }
  }
  return out;
}

/** One engine per worker: a realm, the filter's hooks, its streams and timers. */
export class Engine {
  readonly realm: Realm;
  readonly bindings: Bindings;
  readonly fetchApi: FetchApi;
  readonly hooks: Array<unknown> = new Array(HOOK_NAMES.length).fill(undefined);
  readonly hookTakesCtx: boolean[] = new Array<boolean>(HOOK_NAMES.length).fill(true);
  readonly hasHook: boolean[] = new Array(HOOK_NAMES.length).fill(false);
  config: unknown = undefined;
  worker: unknown = undefined;
  current: StreamState | null = null;
  settledQueue: StreamState[] = [];
  /** The static `metrics` declaration, in order (FilterProgram::metrics()). */
  metricDeclarations: MetricDeclaration[] = [];
  /** ctx.metrics: one object per engine. */
  metrics: object | undefined = undefined;
  readonly callouts = new Map<number, PendingCallout>();
  nextCalloutId = 1;
  /** An exception of the stub itself raised inside a job; rethrown after the drain. */
  internalError: { error: unknown } | null = null;
  readonly #timers = new Map<number, Timer>();
  // Merged configs per route override text: routes are few and long-lived, streams many.
  readonly #routeConfigs = new Map<string, unknown>();
  #nextTimerId = 1;
  #nextStreamId = 1;
  #pumpDepth = 0;
  /** While the module body's jobs run, a failing job fails the load (loadModule's job loop). */
  #loadJobError: { error: unknown } | null | undefined = undefined;

  private constructor(
    readonly host: EngineHost,
    readonly settings: Settings,
    readonly workerIndex: number,
  ) {
    this.realm = new Realm((err) => this.#guard(() => this.#jobFailed(err)));
    this.bindings = new Bindings(this);
    this.fetchApi = new FetchApi(this);
  }

  /**
   * Loads the module, checks its default export, calls `setup` (FilterProgram::compile +
   * Engine::create). Throws a LoadError with the native engine's message when it cannot.
   */
  static create(module: CompiledModule, filename: string, configJson: string, settings: Settings, host: EngineHost, workerIndex = 0): Engine {
    const e = new Engine(host, settings, workerIndex);
    e.#load(module, filename, configJson);
    return e;
  }

  newStream(host: StreamHost): Stream {
    return new Stream(new StreamState(this, host, this.#nextStreamId++));
  }

  /** Stops every timer, as the native engine does when it is destroyed. */
  close(): void {
    for (const id of this.#timers.keys()) this.host.cancelTimer(id);
    this.#timers.clear();
  }

  // Runs `body` as part of a realm job; a stub bug there must not vanish into a rejection.
  #guard(body: () => void): void {
    try {
      body();
    } catch (error) {
      this.internalError ??= { error };
    }
  }

  /** Calls onSettled from a realm job when `promise` settles. */
  watch(promise: unknown, onSettled: (rejected: boolean, value: unknown) => void): void {
    this.realm.helpers.watch(promise, (rejected, value) => this.#guard(() => onSettled(rejected, value)));
  }

  logEngine(level: LogLevel, message: string): void {
    this.host.log(level, message);
  }

  // ---- promises the runtime makes, and unhandled rejections ----
  // The realm keeps the rejection tracker's list (realm.ts); the runtime reports it after
  // the job queue drained, as engine.cc does.

  /** A pending promise of the realm that the runtime settles. */
  newPromise(): { promise: unknown; resolve: (v: unknown) => void; reject: (e: unknown) => void } {
    return this.realm.helpers.capability();
  }

  /** A promise of the realm rejected at once (JS_NewSettledPromise). */
  rejectedPromise(reason: unknown): unknown {
    return this.realm.helpers.rejected(reason);
  }

  /** The runtime attached its own reaction to `promise` (JS_PromiseThen). */
  handlerAttached(promise: object): void {
    this.realm.handlerAttached(promise);
  }

  reportUnhandledRejections(): void {
    for (const reason of this.realm.takeUnhandledRejections()) {
      this.logEngine(WARN, "unhandled promise rejection: " + this.describeException(reason));
    }
  }

  // ---- per-route config ----

  /** ctx.config for a route override (JSON text); throws what JSON.parse throws. */
  configFor(overrideJson: string): unknown {
    if (this.#routeConfigs.has(overrideJson)) return this.#routeConfigs.get(overrideJson);
    const over = this.realm.intrinsics.JSON.parse(overrideJson) as unknown;
    const merged = mergeConfig(this.realm, this.config, over);
    if (this.#routeConfigs.size < 4096) this.#routeConfigs.set(overrideJson, merged);
    return merged;
  }

  /** "Name: message\n    at ..." for errors, "thrown value: ..." for anything else. */
  describeException(exc: unknown): string {
    if (types.isNativeError(exc)) {
      const err = exc as { name?: unknown; message?: unknown; stack?: unknown };
      let out = `${cString(err.name) ?? "Error"}: ${cString(err.message) ?? ""}`;
      const stack = err.stack;
      if (typeof stack === "string") {
        // V8 starts the stack with "Name: message"; quickjs's holds only the frames. Frames of
        // the stub itself stand for what natively is C code: they go.
        const at = stack.search(/^ {4}at /m);
        const frames = at < 0 ? [] : stack.slice(at).split("\n").filter((l) => l.trim() !== "" && !isStubFrame(l));
        if (frames.length > 0) out += "\n" + frames.join("\n");
      }
      return out;
    }
    return "thrown value: " + (cString(exc) ?? "(unprintable)");
  }

  drainJobQueue(): void {
    this.realm.drain();
    const internal = this.internalError;
    if (internal !== null) {
      this.internalError = null;
      throw internal.error;
    }
  }

  // A job threw (natively: JS_ExecutePendingJob < 0). Here only queueMicrotask callbacks can.
  #jobFailed(err: unknown): void {
    if (this.#loadJobError !== undefined) {
      this.#loadJobError ??= { error: err };
      return;
    }
    const message = this.describeException(err);
    const cur = this.current;
    if (cur !== null && !cur.finished()) {
      const d: Direction = cur.dirs[1].hookPending ? RESPONSE : REQUEST;
      streamFail(cur, d, message, false);
    } else {
      this.logEngine(ERROR, "error in a pending job: " + message);
      this.host.incrementCounter("envoy_js.errors", 1);
    }
  }

  processSettled(): void {
    while (this.settledQueue.length > 0) {
      const batch = this.settledQueue;
      this.settledQueue = [];
      for (const s of batch) {
        const saved = this.current;
        this.current = s;
        for (const dir of [REQUEST, RESPONSE] as const) {
          const d = s.dir(dir);
          if (!d.settled) continue;
          d.settled = false;
          const value = d.settledValue;
          d.settledValue = undefined;
          streamHookSettled(s, dir, false, d.settledRejected, value);
        }
        this.current = saved;
      }
    }
  }

  /** Runs pending jobs, then advances every stream whose pending hook settled. */
  runJobs(): void {
    if (this.#pumpDepth > 0) return; // the outer pump drains what this call would have
    this.#pumpDepth++;
    try {
      for (;;) {
        this.drainJobQueue();
        if (this.settledQueue.length === 0) break;
        this.processSettled();
      }
      this.reportUnhandledRejections();
    } finally {
      this.#pumpDepth--;
    }
  }

  // ---- timers (timers.cc) ----

  setTimer(args: unknown[], repeat: boolean): number {
    const fn = args[0];
    if (args.length < 1 || typeof fn !== "function") {
      throw this.realm.typeError(`${repeat ? "setInterval" : "setTimeout"} needs a function`);
    }
    let delay = args.length > 1 ? Number(args[1]) : 0;
    if (!(delay >= 0)) delay = 0; // NaN and negatives mean "as soon as possible"
    const owner = this.current;
    if (owner !== null && owner.destroyed) throw this.bindings.newStreamGoneError();
    const id = this.#nextTimerId++;
    this.#timers.set(id, {
      callback: fn as Timer["callback"],
      args: args.length > 2 ? args.slice(2) : undefined,
      owner,
      intervalMs: repeat ? delay : -1,
    });
    this.host.startTimer(id, delay);
    return id;
  }

  clearTimer(idArg: unknown): void {
    if (typeof idArg !== "number") return;
    const id = Math.trunc(idArg);
    if (!this.#timers.has(id)) return;
    this.#timers.delete(id);
    this.host.cancelTimer(id);
  }

  cancelStreamTimers(s: StreamState): void {
    for (const [id, t] of [...this.#timers]) {
      if (t.owner === s) {
        this.host.cancelTimer(id);
        this.#timers.delete(id);
      }
    }
  }

  /** A timer started through EngineHost.startTimer is due. */
  fireTimer(id: number): void {
    const t = this.#timers.get(id);
    if (t === undefined) return; // cancelled meanwhile
    if (t.intervalMs >= 0) this.host.startTimer(id, t.intervalMs);
    else this.#timers.delete(id);
    const saved = this.current;
    this.current = t.owner;
    try {
      Reflect.apply(t.callback, undefined, t.args ?? []);
    } catch (err) {
      const message = this.describeException(err);
      if (t.owner !== null && !t.owner.finished()) {
        const d: Direction = t.owner.dirs[1].hookPending ? RESPONSE : REQUEST;
        streamFail(t.owner, d, "in a timer callback: " + message, false);
      } else {
        this.logEngine(ERROR, "error in a timer callback: " + message);
        this.host.incrementCounter("envoy_js.errors", 1);
      }
    }
    this.runJobs();
    this.current = saved;
  }

  // ---- loading (engine.cc loadModule, callSetup) ----

  #load(module: CompiledModule, file: string, configJson: string): void {
    this.bindings.installGlobals();
    const fail = (message: string): never => {
      throw new LoadError(`${file}: ${message}`);
    };
    let evaluated: { promise: unknown; exports: Record<string, unknown> };
    try {
      evaluated = module.evaluate(this.realm);
    } catch (err) {
      return fail("the module threw while loading: " + this.describeException(err));
    }
    this.#loadJobError = null;
    const outcome = this.#settle(evaluated.promise);
    const jobError = this.#loadJobError as { error: unknown } | null | undefined;
    this.#loadJobError = undefined;
    if (jobError) fail("the module threw while loading: " + this.describeException(jobError.error));
    if (outcome.state === "rejected") fail("the module threw while loading: " + this.describeException(outcome.value));

    const filter = evaluated.exports["default"];
    if ((typeof filter !== "object" && typeof filter !== "function") || filter === null) {
      fail("the filter module has no default export object: write `export default defineFilter({ ... })`");
    }
    const f = filter as Record<string, unknown>;
    HOOK_NAMES.forEach((name, i) => {
      const hook = f[name];
      if (hook === undefined || hook === null) return;
      if (typeof hook !== "function") fail(`\`${name}\` must be a function`);
      this.hooks[i] = hook;
      this.hasHook[i] = true;
      // As the native engine: a hook declared with exactly one parameter is called without ctx.
      this.hookTakesCtx[i] = i === HOOK_NAMES.indexOf("onDone") || (hook as (...a: unknown[]) => unknown).length !== 1;
    });
    // A misspelt hook would otherwise be silently ignored.
    for (const name of Object.keys(f)) {
      if (!(HOOK_NAMES as readonly string[]).includes(name) && /^on[A-Z]/.test(name)) {
        fail(`unknown hook \`${name}\`: hooks are ${HOOK_NAMES.join(", ")}`);
      }
    }
    const metrics = f["metrics"];
    if (metrics !== undefined) {
      if ((typeof metrics !== "object" && typeof metrics !== "function") || metrics === null) {
        fail('`metrics` must be an object like { requests: "counter" }');
      }
      const m = metrics as Record<string, unknown>;
      for (const name of Object.keys(m)) {
        const kind = m[name];
        if (kind !== "counter" && kind !== "gauge" && kind !== "histogram") {
          fail(`metric \`${name}\` must be "counter", "gauge" or "histogram"`);
        }
        this.metricDeclarations.push({ name, kind: kind as MetricKind });
      }
    }
    this.metrics = this.bindings.buildMetrics(this.metricDeclarations);
    try {
      this.config = this.realm.intrinsics.JSON.parse(configJson);
    } catch (err) {
      fail("invalid filter config JSON: " + this.describeException(err));
    }
    const setup = f["setup"];
    if (setup !== undefined && typeof setup !== "function") fail("`setup` must be a function");
    if (setup === undefined) return;
    // setup(config, worker): its result becomes ctx.worker.
    const info = new this.realm.intrinsics.Object() as Record<string, unknown>;
    info["index"] = this.workerIndex;
    let result: unknown;
    try {
      result = Reflect.apply(setup as (...a: unknown[]) => unknown, filter, [this.config, info]);
    } catch (err) {
      return fail("setup() threw: " + this.describeException(err));
    }
    if (types.isPromise(result)) {
      const r = this.#settle(result);
      if (r.state === "pending") {
        fail("setup() returned a promise that did not settle: setup runs before any stream, so it cannot wait for timers or callouts");
      }
      if (r.state === "rejected") fail("setup() failed: " + this.describeException(r.value));
      result = r.value;
    } else {
      this.drainJobQueue();
    }
    this.worker = result;
  }

  // Drains the jobs and reports where `promise` stands (JS_PromiseState after the drain).
  #settle(promise: unknown): { state: "pending" | "fulfilled" | "rejected"; value: unknown } {
    const out: { state: "pending" | "fulfilled" | "rejected"; value: unknown } = { state: "pending", value: undefined };
    this.watch(promise, (rejected, value) => {
      out.state = rejected ? "rejected" : "fulfilled";
      out.value = value;
    });
    this.drainJobQueue();
    return out;
  }
}

const STUB_DIR = new URL(".", import.meta.url).href;
const isStubFrame = (line: string): boolean => line.includes(STUB_DIR) || line.includes("envoy-js:") || line.includes("(node:");

/** JS_ToCString: a value as a string, or undefined when it cannot be converted. */
export function cString(v: unknown): string | undefined {
  if (typeof v === "symbol") return undefined;
  try {
    return String(v);
  } catch {
    return undefined;
  }
}
