// The scripted host driven step by step, on the stub: the same class, methods, argument rules
// and messages as the native addon's `ScriptedHost` (test/host_stub/addon.cc, HostWrap), so
// that the step API (index.ts) and the samples harness drive either engine through one
// interface. Streams are numbered from 0 in creation order.
import { loadFilter } from "./filter-source.js";
import { compileModule, type CompiledModule } from "./realm.js";
import { Engine, parseSettings } from "./runtime.js";
import { jsonOf, readHeaders, readStream, streamJson, transcriptJson } from "./scenario.js";
import { FakeStream, FakeWorker, type StreamRecord, emptyStreamScenario, newStreamRecord } from "./scripted-host.js";
import type { FilterText, StreamTranscript, Transcript } from "./types.js";

/** A stream's transcript so far, plus where it stands (the addon's `stream(i)`). */
export interface StepStreamState extends StreamTranscript {
  /**
   * The whole request went past the filter to the upstream.
   *
   * @example
   * ```ts
   * assert.ok(host.stream(i).requestSentUpstream);
   * ```
   */
  requestSentUpstream: boolean;
  /**
   * The whole response (or a local reply) went to the client.
   *
   * @example
   * ```ts
   * assert.ok(host.stream(i).responseSentDownstream);
   * ```
   */
  responseSentDownstream: boolean;
  /**
   * Not replied to, not reset, not destroyed.
   *
   * @example
   * ```ts
   * assert.not.ok(host.stream(i).live);
   * ```
   */
  live: boolean;
}

// Compiled modules, by filename and source: parsing is the slow part of loading.
const compiled = new Map<string, CompiledModule>();

/** Compiles a filter for the stub (cached); bytecode is the native engine's only. */
export function compileFilter(filter: { source: string; filename: string; bytecode?: Uint8Array }): CompiledModule {
  if (filter.bytecode !== undefined) {
    throw new TypeError("bytecode runs on the native engine only: give the stub the bundle's source");
  }
  const key = `${filter.filename}\0${filter.source}`;
  let module = compiled.get(key);
  if (module === undefined) {
    module = compileModule(filter.source, filter.filename);
    if (compiled.size >= 64) compiled.delete(compiled.keys().next().value!);
    compiled.set(key, module);
  }
  return module;
}

/** A worker with a loaded engine, as scripted_host.cc sets one up. */
export function startWorker(
  filter: { source: string; filename: string; bytecode?: Uint8Array },
  configJson: string,
  settings: unknown,
): { engine: Engine; worker: FakeWorker } {
  const parsed = parseSettings(settings);
  const module = compileFilter(filter);
  const worker = new FakeWorker();
  const engine = Engine.create(module, filter.filename, configJson, parsed, worker, 0);
  worker.engine = engine;
  worker.metricNames = engine.metricDeclarations.map((m) => m.name);
  return { engine, worker };
}

const MAX_TIMERS_PER_ADVANCE = 100000; // ScriptedHost::kMaxTimersPerAdvance

const isObject = (v: unknown): v is Record<string, unknown> => (typeof v === "object" && v !== null) || typeof v === "function";

function chunkOf(v: unknown): Buffer {
  if (v === undefined) return Buffer.alloc(0);
  if (v instanceof Uint8Array) return Buffer.from(v);
  return Buffer.from(String(v), "utf8");
}

/**
 * The stub's counterpart of the native addon's `ScriptedHost`: one worker engine with the
 * filter loaded, streams created and fed by the caller, time advanced explicitly. Most tests
 * want {@link createHost} instead, which wraps either engine's host in named methods.
 *
 * @example
 * ```ts
 * const host = new ScriptedHost({ source, filename: "filter.js" }, { config: {} });
 * const i = host.newStream({ stream: { id: "s1" } });
 * host.requestHeaders(i, { ":method": "GET", ":path": "/", ":authority": "h" }, true);
 * host.advanceTime(100);
 * assert.ok(host.stream(i).requestSentUpstream);
 * host.close();
 * ```
 */
export class ScriptedHost {
  #engine: Engine | null;
  readonly #worker: FakeWorker;
  readonly #streams: FakeStream[] = [];
  readonly #records: StreamRecord[] = [];

  /** Loads the filter; throws with the engine's message when it cannot. */
  constructor(bundle: FilterText, options: { config?: unknown; settings?: unknown } = {}) {
    if (!isObject(bundle)) throw new TypeError("bundle must be {source, filename, bytecode?}");
    const o = isObject(options) ? options : {};
    const { engine, worker } = startWorker(loadFilter(bundle), jsonOf(o.config), o.settings);
    this.#engine = engine;
    this.#worker = worker;
  }

  #host(): Engine {
    if (this.#engine === null) throw new Error("this host was closed");
    return this.#engine;
  }

  #at(i: unknown): FakeStream {
    this.#host();
    if (typeof i !== "number") throw new TypeError("stream index expected");
    const index = i >>> 0;
    const s = this.#streams[index];
    if (s === undefined) throw new RangeError("no such stream");
    return s;
  }

  /** Starts a stream with the per-stream setup of a scenario stream; returns its index. */
  newStream(setup?: unknown): number {
    const engine = this.#host();
    const sc = isObject(setup) ? readStream(setup, "stream", false) : emptyStreamScenario();
    const index = this.#streams.length;
    const record = newStreamRecord();
    const stream = new FakeStream(this.#worker, record);
    this.#records.push(record);
    this.#streams.push(stream);
    stream.start(engine, sc, index);
    return index;
  }

  requestHeaders(i: number, headers: unknown, endStream?: unknown): void {
    this.#at(i).decodeHeaders(readHeaders(headers, "headers"), Boolean(endStream));
  }
  requestData(i: number, chunk: unknown, endStream?: unknown): void {
    this.#at(i).decodeData(chunkOf(chunk), Boolean(endStream));
  }
  requestTrailers(i: number, trailers: unknown): void {
    this.#at(i).decodeTrailers(readHeaders(trailers, "trailers"));
  }
  responseHeaders(i: number, headers: unknown, endStream?: unknown): void {
    this.#at(i).encodeHeaders(readHeaders(headers, "headers"), Boolean(endStream));
  }
  responseData(i: number, chunk: unknown, endStream?: unknown): void {
    this.#at(i).encodeData(chunkOf(chunk), Boolean(endStream));
  }
  responseTrailers(i: number, trailers: unknown): void {
    this.#at(i).encodeTrailers(readHeaders(trailers, "trailers"));
  }
  complete(i: number): void {
    this.#at(i).complete();
  }
  destroy(i: number, why?: unknown): void {
    const s = this.#at(i);
    s.destroy(typeof why === "string" && why !== "" ? why : null);
  }

  /** Fires every timer and callout answer due within `ms` on the fake clock. */
  advanceTime(ms?: unknown): void {
    this.#host();
    const until = this.#worker.now + (typeof ms === "number" ? ms : 0);
    let fired = 0;
    while (this.#worker.fireNextTimer(until)) {
      // An interval of 0 ms would fire forever at the same instant.
      if (++fired >= MAX_TIMERS_PER_ADVANCE && this.#worker.hasDue(until)) {
        throw new Error("advanceTime: more than 100000 timers fired; is an interval of 0 ms running?");
      }
    }
    this.#worker.now = Math.max(this.#worker.now, until);
  }

  now(): number {
    this.#host();
    return this.#worker.now;
  }

  /** The stream's transcript so far, plus where it stands. */
  stream(i: number): StepStreamState {
    const s = this.#at(i);
    return {
      ...streamJson(this.#records[i >>> 0]!),
      requestSentUpstream: s.requestSentUpstream(),
      responseSentDownstream: s.responseSentDownstream(),
      live: s.live() && !s.destroyed(),
    };
  }

  transcript(): Transcript {
    this.#host();
    return transcriptJson(this.#records, this.#worker.record);
  }

  /** Destroys the live streams and the engine; the host cannot be used afterwards. */
  close(): void {
    const engine = this.#engine;
    if (engine === null) return;
    for (const s of this.#streams) s.destroy(null);
    engine.close();
    this.#engine = null;
  }
}
