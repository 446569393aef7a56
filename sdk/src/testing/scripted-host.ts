// The Envoy-like scripted host, ported from test/host_stub/scripted_host.cc: it plays the HTTP
// connection manager's filter manager around one envoy-js filter (request in, an upstream
// that answers, a downstream that receives), with a fake clock for timers, and records the
// same transcript, `events` strings included.
//
// What it models from Envoy's filter manager, for a chain [envoy-js, router]:
//  - Continue passes the message on; StopIteration holds headers; StopIterationAndBuffer /
//    AndWatermark add the data to the filter's buffer; StopIterationNoBuffer drops it;
//    Continue from a data/trailers callback after a header stop sends the held headers, the
//    buffer plus the current data, then the trailers.
//  - Envoy's buffer limit (its default 1 MiB, which the adapter raises to buffer_limit_bytes
//    when that is more) as Envoy's watermark buffer applies it to the filter's buffer: over it
//    after StopIterationAndWatermark, flow control only (nothing fails); after
//    StopIterationAndBuffer, Envoy's own 413 (request) or 500 (response; a reset once the
//    response headers went downstream).
//  - continueDecoding/continueEncoding are posted and run after the current callback returns.
//  - sendLocalReply: the request stops, the reply runs through the encoder path (our filter's
//    encode callbacks see it), the client receives it.
import {
  type BodyBuffer,
  type CalloutRequest,
  type CalloutResponse,
  type CalloutStart,
  type DataStatus,
  type Direction,
  type EngineHost,
  type HeaderMap,
  type HeaderMapKind,
  type HeadersStatus,
  type LocalReply,
  type LogLevel,
  type MetricKind,
  type RouteOverride,
  type StreamHost,
  type StreamInfo,
  type TrailersStatus,
  LOG_LEVEL_NAMES,
  REQUEST,
  RESPONSE,
} from "./host.js";
import type { Engine, Stream } from "./runtime.js";

export type HeaderList = Array<[string, string]>;

export interface Message {
  headers: HeaderList;
  body: Buffer[]; // chunks as they arrive
  trailers: HeaderList | null;
}

/** How a scripted cluster answers callouts (`ctx.fetch`). */
export interface ClusterScript {
  response: Message; // headers (with :status) and body
  delayMs: number;
  reset: boolean; // the callout is reset instead
  timeout: boolean; // never answers: the callout times out after its timeoutMs
}

export interface StreamScenario {
  request: Message;
  clusters: Map<string, ClusterScript>;
  route: RouteOverride; // scenario "route": {"config": {...}, "disabled": bool}
  info: StreamInfo; // scenario "stream"
  metadata: Map<string, Map<string, string>>; // ns -> key -> JSON text
  filterState: Map<string, string>;
  upstream: Message | null;
  reset: "none" | "afterRequestHeaders" | "afterRequestBody";
}

/** A stream scenario with nothing set: what newStream() without a setup uses. */
export const emptyStreamScenario = (): StreamScenario => ({
  request: { headers: [], body: [], trailers: null },
  clusters: new Map(),
  route: { disabled: false, configJson: "" },
  info: { id: "", protocol: "", remoteAddress: "", localAddress: "", routeName: "" },
  metadata: new Map(),
  filterState: new Map(),
  upstream: null,
  reset: "none",
});

/** Stream info defaults: id = index + 1, HTTP/1.1, loopback addresses (withDefaults). */
function withDefaults(sc: StreamScenario, index: number): StreamScenario {
  const info = { ...sc.info };
  if (info.id === "") info.id = String(index + 1);
  if (info.protocol === "") info.protocol = "HTTP/1.1";
  if (info.remoteAddress === "") info.remoteAddress = "127.0.0.1:50000";
  if (info.localAddress === "") info.localAddress = "127.0.0.1:10000";
  return { ...sc, info };
}

export interface SentMessage {
  headers: HeaderList;
  body: Buffer;
  trailers: HeaderList | null;
}

export interface StreamRecord {
  upstreamRequest: SentMessage | null;
  localReply: LocalReply | null;
  downstreamResponse: SentMessage | null;
  logs: string[];
  errors: string[];
  events: string[];
  resetByFilter: boolean;
  metadata: Map<string, Map<string, string>>; // final, JSON texts
  filterState: Map<string, string>;
  routeCacheClears: number;
  callouts: CalloutRequest[]; // what the filter sent to clusters, in order
}

export interface MetricValue {
  kind: MetricKind;
  value: number; // counter total or gauge's last value
  samples: number[]; // histogram
}

export interface WorkerRecord {
  counters: Map<string, number>;
  metrics: Map<string, MetricValue>; // the filter's declared metrics
  workerLogs: string[]; // logs outside any stream (setup, worker timers)
}

export const newStreamRecord = (): StreamRecord => ({
  upstreamRequest: null,
  localReply: null,
  downstreamResponse: null,
  logs: [],
  errors: [],
  events: [],
  resetByFilter: false,
  metadata: new Map(),
  filterState: new Map(),
  routeCacheClears: 0,
  callouts: [],
});

const logLine = (level: LogLevel, message: string) => `[${LOG_LEVEL_NAMES[level]}] ${message}`;
const lowerAscii = (s: string) => s.replace(/[A-Z]/g, (c) => c.toLowerCase());

/** Envoy's header maps are case-insensitive with lower-case keys and keep insertion order. */
// The headers of a local reply as Envoy sends it (Utility::prepareLocalReply): :status, the
// filter's headers (the module's modify_headers adds them in order), then with a body
// content-length is set to its size (in place when the filter gave one; appended otherwise)
// and content-type: text/plain is appended when there is none; with no body both are removed.
function localReplyHeaders(reply: LocalReply): HeaderList {
  const h: HeaderList = [[":status", String(reply.status)], ...reply.headers.map(([k, v]): [string, string] => [k, v])];
  if (reply.body.length === 0) return h.filter(([k]) => k !== "content-length" && k !== "content-type");
  const length = h.findIndex(([k]) => k === "content-length");
  const out = length < 0 ? h : h.filter(([k], i) => k !== "content-length" || i === length);
  if (length < 0) out.push(["content-length", String(reply.body.length)]);
  else out[length] = ["content-length", String(reply.body.length)];
  if (!out.some(([k]) => k === "content-type")) out.push(["content-type", "text/plain"]);
  return out;
}

export class ListHeaderMap implements HeaderMap {
  readonly #list: HeaderList;

  constructor(list: HeaderList) {
    this.#list = list.map(([k, v]) => [lowerAscii(k), v]);
  }
  values(name: string): string[] {
    return this.#list.filter(([k]) => k === name).map(([, v]) => v);
  }
  entries(): HeaderList {
    return this.#list.map(([k, v]) => [k, v]);
  }
  get size(): number {
    return this.#list.length;
  }
  // The module's set_header is Envoy's setCopy(): remove() every entry of the name, then
  // addCopy() one, which HeaderList::insert puts at the end (a pseudo-header: after the last
  // pseudo-header). Inline (built-in) headers too.
  set(name: string, value: string): void {
    this.remove(name);
    this.append(name, value);
  }
  // addCopy() of a new entry: HeaderList::insert, pseudo-headers before every other header.
  append(name: string, value: string): void {
    if (!name.startsWith(":")) {
      this.#list.push([name, value]);
      return;
    }
    const at = this.#list.findIndex(([k]) => !k.startsWith(":"));
    this.#list.splice(at < 0 ? this.#list.length : at, 0, [name, value]);
  }
  remove(name: string): void {
    for (let i = this.#list.length - 1; i >= 0; i--) if (this.#list[i]![0] === name) this.#list.splice(i, 1);
  }
  list(): HeaderList {
    return this.entries();
  }
}

export class ByteBuffer implements BodyBuffer {
  data: Buffer;
  constructor(data: Buffer = Buffer.alloc(0)) {
    this.data = data;
  }
  get length(): number {
    return this.data.length;
  }
  bytes(): Buffer {
    return Buffer.from(this.data);
  }
  replace(d: Uint8Array): void {
    this.data = Buffer.from(d);
  }
  append(d: Uint8Array): void {
    this.data = Buffer.concat([this.data, d]);
  }
  prepend(d: Uint8Array): void {
    this.data = Buffer.concat([d, this.data]);
  }
}

interface PendingTimer {
  due: number;
  seq: number;
  id: number;
  task: (() => void) | null; // host-side work (a callout answer), not an engine timer
}

/** The worker: engine services, posted tasks, a fake clock and its timers. */
export class FakeWorker implements EngineHost {
  readonly record: WorkerRecord = { counters: new Map(), metrics: new Map(), workerLogs: [] };
  engine: Engine | null = null;
  /** Names of the filter's declared metrics, by declaration index. */
  metricNames: string[] = [];
  now = 0;
  #timers: PendingTimer[] = []; // kept sorted by (due, seq)
  #seq = 0;
  #posted: Array<() => void> = [];

  log(level: LogLevel, message: string): void {
    this.record.workerLogs.push(logLine(level, message));
  }
  nowMs(): number {
    return this.now;
  }
  incrementCounter(name: string, delta: number): void {
    this.record.counters.set(name, (this.record.counters.get(name) ?? 0) + delta);
  }
  recordMetric(index: number, kind: MetricKind, value: number): void {
    const name = this.metricNames[index]!;
    let m = this.record.metrics.get(name);
    if (m === undefined) {
      m = { kind, value: 0, samples: [] };
      this.record.metrics.set(name, m);
    }
    m.kind = kind;
    if (kind === "counter") m.value += value;
    else if (kind === "gauge") m.value = value;
    else m.samples.push(value);
  }
  startTimer(id: number, delayMs: number): void {
    this.#insert({ due: this.now + delayMs, seq: this.#seq++, id, task: null });
  }
  cancelTimer(id: number): void {
    const i = this.#timers.findIndex((t) => t.id === id && t.task === null);
    if (i >= 0) this.#timers.splice(i, 1);
  }
  /** Host-side work due later on the fake clock (callout answers); not an engine timer. */
  at(delayMs: number, task: () => void): void {
    this.#insert({ due: this.now + delayMs, seq: this.#seq++, id: 0, task });
  }
  #insert(t: PendingTimer): void {
    let i = this.#timers.length;
    while (i > 0 && (this.#timers[i - 1]!.due > t.due || (this.#timers[i - 1]!.due === t.due && this.#timers[i - 1]!.seq > t.seq))) i--;
    this.#timers.splice(i, 0, t);
  }
  post(task: () => void): void {
    this.#posted.push(task);
  }
  drainPosted(): void {
    while (this.#posted.length > 0) this.#posted.shift()!();
  }
  /** Whether a timer or a callout answer is due by `horizonMs`. */
  hasDue(horizonMs: number): boolean {
    const first = this.#timers[0];
    return first !== undefined && first.due <= horizonMs;
  }
  /**
   * Advances the fake clock to the next timer and fires it. False when none is due within the
   * horizon.
   */
  fireNextTimer(horizonMs: number): boolean {
    const first = this.#timers[0];
    if (first === undefined || first.due > horizonMs) return false;
    this.#timers.shift();
    this.now = Math.max(this.now, first.due);
    if (first.task !== null) first.task();
    else this.engine!.fireTimer(first.id);
    this.drainPosted();
    return true;
  }
}

/** Envoy's default per-stream buffer limit (per_connection_buffer_limit_bytes). */
const ENVOY_DEFAULT_BUFFER_LIMIT = 1 << 20;

const statusEvent = (what: string, status: string) => `${what} -> ${status}`;
const sideName = (d: Direction) => (d === REQUEST ? "request" : "response");

// One side (request = decoding, response = encoding) of the filter manager around our filter.
class Side {
  headers: ListHeaderMap | null = null;
  trailers: ListHeaderMap | null = null;
  buffered = new ByteBuffer();
  current: ByteBuffer | null = null;
  stopped = false; // our filter stopped iteration; nothing goes past it
  headersForwarded = false;
  trailersForwarded = false;
  endReceived = false; // the last event (eos data or trailers) reached our filter
  endForwarded = false; // ... and went past it
  // Envoy's watermark buffer around `buffered` (checkWatermarks); `streaming` is the filter
  // manager's *_filters_streaming_, set by the last StopIterationAndWatermark / AndBuffer.
  aboveHighWatermark = false;
  streaming = true;
  constructor(readonly sink: (m?: SentMessage) => SentMessage | null) {}
}

/** One stream through the filter manager (FakeStream). */
export class FakeStream implements StreamHost {
  readonly record: StreamRecord;
  readonly #worker: FakeWorker;
  #sides: [Side, Side];
  #hadData = [false, false];
  #localSink: SentMessage | null = null;
  #replied = false;
  #reset = false;
  #alive = { value: true };
  #stream: Stream | null = null;
  #info: StreamInfo = emptyStreamScenario().info;
  #clusters = new Map<string, ClusterScript>();
  #route: RouteOverride = { disabled: false, configJson: "" };
  #pendingCallouts = new Set<number>();
  #bufferLimit = 0;
  /** Envoy's buffer limit for this stream (FilterUnderTest::envoyBufferLimit). */
  #envoyBufferLimit = ENVOY_DEFAULT_BUFFER_LIMIT;

  constructor(worker: FakeWorker, record: StreamRecord) {
    this.#worker = worker;
    this.record = record;
    this.#sides = [
      new Side((m) => (m === undefined ? this.record.upstreamRequest : (this.record.upstreamRequest = m))),
      new Side((m) => (m === undefined ? this.record.downstreamResponse : (this.record.downstreamResponse = m))),
    ];
  }

  // ---- StreamHost ----
  headerMap(kind: HeaderMapKind): HeaderMap | null {
    const s = this.#sides[kind === 0 || kind === 1 ? 0 : 1];
    return (kind === 0 || kind === 2 ? s.headers : s.trailers) ?? null;
  }
  currentData(dir: Direction): BodyBuffer | null {
    return this.#sides[dir].current;
  }
  bufferedData(dir: Direction): BodyBuffer {
    return this.#sides[dir].buffered;
  }
  continueStream(dir: Direction): void {
    this.#event(`continue ${sideName(dir)} (posted)`);
    const token = this.#alive;
    this.#worker.post(() => {
      if (!token.value) return;
      this.#event(`continue ${sideName(dir)}`);
      this.#doContinue(dir);
    });
  }
  sendLocalReply(reply: LocalReply): void {
    this.#event(`localReply ${reply.status} ${reply.details}`);
    this.#localReplyViaFilterChain(reply);
  }
  // The reply runs through the encoder filters, ours included (the response has not started).
  #localReplyViaFilterChain(reply: LocalReply): void {
    const h = localReplyHeaders(reply);
    // As the client gets them, less :status and content-length.
    const headers = h.filter(([k]) => k !== ":status" && k !== "content-length").map(([k, v]): [string, string] => [k, v]);
    this.record.localReply = { ...reply, body: Buffer.from(reply.body), headers };
    this.#replied = true;
    const side = new Side((m) => (m === undefined ? this.#localSink : (this.#localSink = m)));
    side.headers = new ListHeaderMap(h);
    this.#sides[1] = side;
    const hs = this.#stream!.onResponseHeaders(reply.body.length === 0);
    this.#event(statusEvent("local reply onResponseHeaders", hs));
    if (reply.body.length > 0) {
      side.current = new ByteBuffer(Buffer.from(reply.body));
      const ds = this.#stream!.onResponseData(true);
      side.current = null;
      this.#event(statusEvent("local reply onResponseData", ds));
    }
  }
  resetStream(): void {
    this.#event("reset by filter");
    this.record.resetByFilter = true;
    this.#reset = true;
  }
  log(level: LogLevel, message: string): void {
    this.record.logs.push(logLine(level, message));
  }
  recordError(message: string): void {
    this.record.errors.push(message);
  }
  streamInfo(): StreamInfo {
    return { ...this.#info };
  }
  getMetadata(ns: string, key: string): string | undefined {
    return this.record.metadata.get(ns)?.get(key);
  }
  setMetadata(ns: string, key: string, json: string): void {
    let keys = this.record.metadata.get(ns);
    if (keys === undefined) {
      keys = new Map();
      this.record.metadata.set(ns, keys);
    }
    keys.set(key, json);
  }
  getFilterState(key: string): string | undefined {
    return this.record.filterState.get(key);
  }
  setFilterState(key: string, value: string): void {
    this.record.filterState.set(key, value);
  }
  startCallout(id: number, request: CalloutRequest): CalloutStart {
    this.record.callouts.push({ ...request, headers: request.headers.map(([k, v]): [string, string] => [k, v]), body: Buffer.from(request.body) });
    const script = this.#clusters.get(request.cluster);
    if (script === undefined) {
      this.#event(`callout ${request.cluster}: unknown cluster`);
      return "unknown_cluster";
    }
    this.#event(`callout ${request.cluster} ${request.headers[0]![1]} ${request.headers[1]![1]}`);
    let response: CalloutResponse = { result: "success", headers: [], body: Buffer.alloc(0) };
    let delay = script.delayMs;
    if (script.timeout) {
      response.result = "timeout";
      delay = request.timeoutMs;
    } else if (script.reset) {
      response.result = "reset";
    } else {
      response.headers = script.response.headers.map(([k, v]): [string, string] => [k, v]);
      response.body = Buffer.concat(script.response.body);
      if (response.body.length > this.#bufferLimit) response = { result: "response_too_large", headers: [], body: Buffer.alloc(0) };
    }
    const token = this.#alive;
    this.#pendingCallouts.add(id);
    this.#worker.at(delay, () => {
      if (!token.value || !this.#pendingCallouts.delete(id)) return;
      this.#event(`callout ${id} done`);
      this.#stream!.onCalloutDone(id, response);
    });
    return "started";
  }
  cancelCallout(id: number): void {
    if (this.#pendingCallouts.delete(id)) this.#event(`callout ${id} cancelled`);
  }
  routeOverride(): RouteOverride {
    return { ...this.#route };
  }
  clearRouteCache(): void {
    this.#event("clearRouteCache");
    this.record.routeCacheClears++;
  }

  // ---- driving, event by event (the step API uses these directly) ----

  /**
   * Per-stream setup (info, metadata, filter state, clusters, route) and the runtime's
   * stream; call once before any event. `index` gives the stream info defaults.
   */
  start(engine: Engine, setup: StreamScenario, index: number): void {
    const sc = withDefaults(setup, index);
    this.#info = sc.info;
    this.#clusters = sc.clusters;
    this.#route = sc.route;
    this.#bufferLimit = engine.settings.bufferLimitBytes;
    // The adapter raises Envoy's limit to buffer_limit_bytes when that is more (decodeHeaders).
    this.#envoyBufferLimit = Math.max(ENVOY_DEFAULT_BUFFER_LIMIT, engine.settings.bufferLimitBytes);
    this.record.metadata = new Map([...sc.metadata].map(([ns, keys]) => [ns, new Map(keys)]));
    this.record.filterState = new Map(sc.filterState);
    this.#stream = engine.newStream(this);
  }

  /** Runs one scenario stream from start to destroy (FakeStream::run). */
  run(engine: Engine, sc: StreamScenario, index: number): void {
    this.start(engine, sc, index);
    const rq = sc.request;
    const body = rq.body.length > 0;
    const trailers = rq.trailers !== null;
    this.decodeHeaders(rq.headers, !body && !trailers);
    if (sc.reset === "afterRequestHeaders") return this.destroy("client reset after request headers");
    for (let i = 0; i < rq.body.length && this.live(); i++) this.decodeData(rq.body[i]!, i + 1 === rq.body.length && !trailers);
    if (trailers && this.live()) this.decodeTrailers(rq.trailers!);
    if (sc.reset === "afterRequestBody") return this.destroy("client reset after request body");
    this.waitFor(() => this.#sides[0].endForwarded);
    if (this.live() && this.#sides[0].endForwarded) {
      const up = sc.upstream ?? { headers: [[":status", "200"]], body: [], trailers: null };
      const ubody = up.body.length > 0;
      const utrailers = up.trailers !== null;
      this.encodeHeaders(up.headers, !ubody && !utrailers);
      for (let i = 0; i < up.body.length && this.live(); i++) this.encodeData(up.body[i]!, i + 1 === up.body.length && !utrailers);
      if (utrailers && this.live()) this.encodeTrailers(up.trailers!);
      this.waitFor(() => this.#sides[1].endForwarded);
    }
    if (this.live() && !(this.#sides[1].endForwarded || this.#replied)) this.#event("stalled: the filter never let the stream finish");
    this.complete();
    this.destroy(null);
  }

  live(): boolean {
    return !this.#replied && !this.#reset;
  }
  destroyed(): boolean {
    return this.#stream === null;
  }
  requestSentUpstream(): boolean {
    return this.#sides[0].endForwarded;
  }
  responseSentDownstream(): boolean {
    return this.#sides[1].endForwarded || this.#replied;
  }

  /** Envoy's onStreamComplete, unless the stream was reset. */
  complete(): void {
    if (this.#stream === null) return;
    if (!this.#reset) this.#stream.onComplete();
    this.#worker.drainPosted();
  }

  destroy(why: string | null): void {
    if (this.#stream === null) return;
    if (why) this.#event(why);
    this.#alive.value = false;
    this.#stream!.onDestroy();
    this.#worker.drainPosted();
    this.#stream = null;
  }

  // Fires timers (on the fake clock) until `done` or nothing more can happen.
  waitFor(done: () => boolean): void {
    this.#worker.drainPosted();
    let fired = 0;
    while (this.live() && !done() && fired < 10000 && this.#worker.fireNextTimer(this.#worker.now + 3600 * 1000)) fired++;
  }

  decodeHeaders(h: HeaderList, endStream: boolean): HeadersStatus {
    return this.#onHeaders(REQUEST, h, endStream);
  }
  encodeHeaders(h: HeaderList, endStream: boolean): HeadersStatus {
    return this.#onHeaders(RESPONSE, h, endStream);
  }
  decodeData(chunk: Buffer, endStream: boolean): DataStatus {
    return this.#onData(REQUEST, chunk, endStream);
  }
  encodeData(chunk: Buffer, endStream: boolean): DataStatus {
    return this.#onData(RESPONSE, chunk, endStream);
  }
  decodeTrailers(h: HeaderList): TrailersStatus {
    return this.#onTrailers(REQUEST, h);
  }
  encodeTrailers(h: HeaderList): TrailersStatus {
    return this.#onTrailers(RESPONSE, h);
  }

  #event(e: string): void {
    this.record.events.push(e);
  }

  #forwardHeaders(d: Direction, endStream: boolean): void {
    const s = this.#sides[d];
    if (s.headersForwarded) return;
    s.headersForwarded = true;
    s.sink({ headers: s.headers!.list(), body: Buffer.alloc(0), trailers: null });
    if (endStream) s.endForwarded = true;
  }
  #forwardData(d: Direction, bytes: Buffer, endStream: boolean): void {
    const s = this.#sides[d];
    const sent = s.sink();
    if (sent) sent.body = Buffer.concat([sent.body, bytes]);
    if (endStream) s.endForwarded = true;
  }
  #forwardTrailers(d: Direction): void {
    const s = this.#sides[d];
    s.trailersForwarded = true;
    const sent = s.sink();
    if (sent) sent.trailers = s.trailers!.list();
    s.endForwarded = true;
  }

  // Data went into our filter's buffer: Envoy's watermark callbacks (checkWatermarks in
  // scripted_host.cc, where the reasons are).
  #checkWatermarks(d: Direction): void {
    const s = this.#sides[d];
    const n = s.buffered.length;
    const limit = this.#envoyBufferLimit;
    if (limit === 0) return; // no limit
    if (s.aboveHighWatermark && n <= Math.floor(limit / 2)) {
      s.aboveHighWatermark = false;
      this.#event(`${sideName(d)} buffer below low watermark`);
    }
    if (s.aboveHighWatermark || n <= limit) return;
    s.aboveHighWatermark = true;
    if (s.streaming) {
      this.#event(`${sideName(d)} buffer above high watermark: flow control`);
      return;
    }
    if (d === REQUEST) {
      this.#event("localReply 413 request_payload_too_large (by Envoy)");
      this.#localReplyViaFilterChain({ status: 413, body: Buffer.from("Payload Too Large"), headers: [], details: "request_payload_too_large" });
    } else if (this.#sides[RESPONSE].headersForwarded) {
      this.#event("reset by Envoy: response_payload_too_large");
      this.#reset = true;
    } else {
      this.#event("localReply 500 response_payload_too_large (by Envoy, to the codec)");
      // (Utility::sendLocalReply's content-type.)
      this.record.localReply = { status: 500, body: Buffer.from("Internal Server Error"), headers: [["content-type", "text/plain"]], details: "response_payload_too_large" };
      this.#replied = true;
    }
  }

  // Envoy's commonContinue for our filter: held headers, then the buffer, then trailers.
  #doContinue(d: Direction): void {
    const s = this.#sides[d];
    if (!this.live() || !s.stopped) return;
    s.stopped = false;
    const trailersIn = s.trailers !== null;
    const headersOnlyEnd = s.endReceived && !trailersIn && s.buffered.length === 0 && !s.headersForwarded && !this.#hadData[d];
    this.#forwardHeaders(d, headersOnlyEnd);
    if (s.buffered.length > 0 || (s.endReceived && !trailersIn && !s.endForwarded)) {
      const bytes = s.buffered.data;
      s.buffered.data = Buffer.alloc(0);
      this.#forwardData(d, bytes, s.endReceived && !trailersIn);
      this.#checkWatermarks(d); // drained
    }
    if (trailersIn && !s.trailersForwarded) this.#forwardTrailers(d);
  }

  #onHeaders(d: Direction, h: HeaderList, endStream: boolean): HeadersStatus {
    const s = this.#sides[d];
    s.headers = new ListHeaderMap(h);
    s.endReceived = endStream;
    const st = d === REQUEST ? this.#stream!.onRequestHeaders(endStream) : this.#stream!.onResponseHeaders(endStream);
    this.#event(statusEvent(d === REQUEST ? "onRequestHeaders" : "onResponseHeaders", st));
    if (this.live()) {
      if (st === "Continue") this.#forwardHeaders(d, endStream);
      else s.stopped = true;
    }
    this.#worker.drainPosted();
    return st;
  }

  #onData(d: Direction, chunk: Buffer, endStream: boolean): DataStatus {
    const s = this.#sides[d];
    this.#hadData[d] = true;
    const current = new ByteBuffer(Buffer.from(chunk));
    s.current = current;
    s.endReceived = endStream;
    const st = d === REQUEST ? this.#stream!.onRequestData(endStream) : this.#stream!.onResponseData(endStream);
    s.current = null;
    this.#event(statusEvent(d === REQUEST ? "onRequestData" : "onResponseData", st));
    if (this.live()) {
      // `s` may have been replaced by a local reply's side; the scripted host keeps using the
      // reference it took (the reply made the stream not live, so this is not reached then).
      switch (st) {
        case "Continue":
          if (s.stopped || !s.headersForwarded) {
            s.buffered.append(current.data);
            s.stopped = true;
            this.#checkWatermarks(d);
            if (this.live()) this.#doContinue(d);
          } else {
            this.#forwardData(d, current.data, endStream);
          }
          break;
        case "StopIterationAndBuffer":
        case "StopIterationAndWatermark":
          s.buffered.append(current.data);
          s.stopped = true;
          s.streaming = st === "StopIterationAndWatermark";
          this.#checkWatermarks(d);
          break;
        case "StopIterationNoBuffer":
          s.stopped = true;
          break;
      }
    }
    this.#worker.drainPosted();
    return st;
  }

  #onTrailers(d: Direction, h: HeaderList): TrailersStatus {
    const s = this.#sides[d];
    s.trailers = new ListHeaderMap(h);
    s.endReceived = true;
    const st = d === REQUEST ? this.#stream!.onRequestTrailers() : this.#stream!.onResponseTrailers();
    this.#event(statusEvent(d === REQUEST ? "onRequestTrailers" : "onResponseTrailers", st));
    if (this.live()) {
      if (st === "Continue") {
        if (s.stopped || !s.headersForwarded) {
          s.stopped = true;
          this.#doContinue(d);
        } else {
          this.#forwardTrailers(d);
        }
      } else {
        s.stopped = true;
      }
    }
    this.#worker.drainPosted();
    return st;
  }
}

/** Runs the scenario's streams on one worker engine (runScenario in scripted_host.cc). */
export function runStreams(engine: Engine, worker: FakeWorker, streams: StreamScenario[]): StreamRecord[] {
  const records: StreamRecord[] = [];
  streams.forEach((sc, i) => {
    const record = newStreamRecord();
    records.push(record);
    new FakeStream(worker, record).run(engine, sc, i);
  });
  // Worker-level timers would keep firing in Envoy; a replay ends here.
  engine.close();
  return records;
}
