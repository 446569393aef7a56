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
//  - continueDecoding/continueEncoding are posted and run after the current callback returns.
//  - sendLocalReply: the request stops, the reply runs through the encoder path (our filter's
//    encode callbacks see it), the client receives it.
import {
  type BodyBuffer,
  type DataStatus,
  type Direction,
  type EngineHost,
  type HeaderMap,
  type HeaderMapKind,
  type HeadersStatus,
  type LocalReply,
  type LogLevel,
  type StreamHost,
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

export interface StreamScenario {
  request: Message;
  upstream: Message | null;
  reset: "none" | "afterRequestHeaders" | "afterRequestBody";
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
}

export interface WorkerRecord {
  counters: Map<string, number>;
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
});

const logLine = (level: LogLevel, message: string) => `[${LOG_LEVEL_NAMES[level]}] ${message}`;
const lowerAscii = (s: string) => s.replace(/[A-Z]/g, (c) => c.toLowerCase());

/** Envoy's header maps are case-insensitive with lower-case keys and keep insertion order. */
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
  set(name: string, value: string): void {
    const first = this.#list.findIndex(([k]) => k === name);
    if (first < 0) {
      this.#list.push([name, value]);
      return;
    }
    this.#list[first] = [name, value];
    for (let i = this.#list.length - 1; i > first; i--) if (this.#list[i]![0] === name) this.#list.splice(i, 1);
  }
  append(name: string, value: string): void {
    this.#list.push([name, value]);
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
}

/** The worker: engine services, posted tasks, a fake clock and its timers. */
export class FakeWorker implements EngineHost {
  readonly record: WorkerRecord = { counters: new Map(), workerLogs: [] };
  engine: Engine | null = null;
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
  startTimer(id: number, delayMs: number): void {
    const t = { due: this.now + delayMs, seq: this.#seq++, id };
    let i = this.#timers.length;
    while (i > 0 && (this.#timers[i - 1]!.due > t.due || (this.#timers[i - 1]!.due === t.due && this.#timers[i - 1]!.seq > t.seq))) i--;
    this.#timers.splice(i, 0, t);
  }
  cancelTimer(id: number): void {
    const i = this.#timers.findIndex((t) => t.id === id);
    if (i >= 0) this.#timers.splice(i, 1);
  }
  post(task: () => void): void {
    this.#posted.push(task);
  }
  drainPosted(): void {
    while (this.#posted.length > 0) this.#posted.shift()!();
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
    this.engine!.fireTimer(first.id);
    this.drainPosted();
    return true;
  }
}

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
    this.record.localReply = { ...reply, body: Buffer.from(reply.body), headers: reply.headers.map(([k, v]) => [k, v]) };
    this.#replied = true;
    // Envoy runs the reply through the encoder filters, ours included.
    const h: HeaderList = [[":status", String(reply.status)], ...reply.headers.map(([k, v]): [string, string] => [k, v])];
    if (reply.body.length > 0) {
      h.push(["content-length", String(reply.body.length)]);
      if (!reply.headers.some(([k]) => k === "content-type")) h.push(["content-type", "text/plain"]);
    }
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

  // ---- driving, event by event (the step API uses these directly) ----

  /** Creates the runtime's stream; call once before any event. */
  open(engine: Engine): void {
    this.#stream = engine.newStream(this);
  }

  /** Runs one scenario stream from start to destroy (FakeStream::run). */
  run(engine: Engine, sc: StreamScenario): void {
    this.open(engine);
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

  /** Envoy's onStreamComplete, unless the stream was reset. */
  complete(): void {
    if (!this.#reset) this.#stream!.onComplete();
    this.#worker.drainPosted();
  }

  destroy(why: string | null): void {
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
            this.#doContinue(d);
          } else {
            this.#forwardData(d, current.data, endStream);
          }
          break;
        case "StopIterationAndBuffer":
        case "StopIterationAndWatermark":
          s.buffered.append(current.data);
          s.stopped = true;
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
  for (const sc of streams) {
    const record = newStreamRecord();
    records.push(record);
    new FakeStream(worker, record).run(engine, sc);
  }
  // Worker-level timers would keep firing in Envoy; a replay ends here.
  engine.close();
  return records;
}
