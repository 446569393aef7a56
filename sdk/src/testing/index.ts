/**
 * `@envoy-js/sdk/testing`: run a filter on a host stub, in the spirit of proxy-wasm's
 * `proxytest`. The same tests run on two engines:
 *
 * - `"stub"` (default): a pure TypeScript re-implementation of the envoy-js runtime and of
 *   the Envoy-like scripted host. No native code; the filter runs in its own V8 realm.
 * - `"native"`: the real QuickJS engine through the native addon (`make native`).
 *
 * Pick the engine per call (`{ engine: "native" }`) or for a whole test run with the
 * environment variable `ENVOY_JS_ENGINE=native`. Both engines take the filter as a built
 * bundle (`envoy-js build`) or as module source text, and return the same transcript.
 *
 * @example
 * ```ts
 * import { request } from "@envoy-js/sdk/testing";
 *
 * const r = request("dist/filter.js", { path: "/admin", headers: { "x-api-key": "k" } });
 * assert.equal(r.localReply?.status, 403);
 * ```
 *
 * @packageDocumentation
 */
import type { NativeAddon } from "@envoy-js/sdk/native";
import { loadNativeAddon } from "@envoy-js/sdk/native";

import { encodeUtf8 } from "./bytes.js";
import { type LoadedFilter, loadFilter } from "./filter-source.js";
import type { DataStatus, HeadersStatus, TrailersStatus } from "./host.js";
import { type CompiledModule, compileModule } from "./realm.js";
import { Engine, parseSettings } from "./runtime.js";
import { jsonOf, parseScenario, streamJson, transcriptJson } from "./scenario.js";
import { FakeStream, FakeWorker, type HeaderList, newStreamRecord, runStreams } from "./scripted-host.js";
import type {
  BodyInput,
  FilterSource,
  HeadersInput,
  LocalReplyJson,
  Scenario,
  SentMessageJson,
  SettingsInit,
  StreamTranscript,
  Transcript,
} from "./types.js";

export type { DataStatus, HeadersStatus, TrailersStatus } from "./host.js";
export type * from "./types.js";

/**
 * The engines a filter can run on.
 *
 * @example
 * ```ts
 * const engine: EngineName = process.env.CI ? "native" : "stub";
 * ```
 */
export type EngineName = "stub" | "native";

/**
 * Environment variable that picks the default engine for every call that does not name one.
 *
 * @example
 * ```sh
 * ENVOY_JS_ENGINE=native npm test
 * ```
 */
export const ENGINE_ENV = "ENVOY_JS_ENGINE";

/**
 * The engine used when a call does not name one: `$ENVOY_JS_ENGINE`, else `"stub"`.
 *
 * @example
 * ```ts
 * if (defaultEngine() === "native") console.log("running on QuickJS");
 * ```
 */
export function defaultEngine(env: NodeJS.ProcessEnv = process.env): EngineName {
  return checkEngine(env[ENGINE_ENV] ?? "stub");
}

function checkEngine(name: string): EngineName {
  if (name === "stub" || name === "native") return name;
  throw new TypeError(`unknown engine '${name}': the host stubs are "stub" and "native"`);
}

/**
 * Options of {@link runScenario}.
 *
 * @example
 * ```ts
 * const options: RunOptions = { engine: "native" };
 * ```
 */
export interface RunOptions {
  /**
   * `"stub"` or `"native"`; default {@link defaultEngine}.
   *
   * @example
   * ```ts
   * runScenario(filter, scenario, { engine: "native" });
   * ```
   */
  engine?: EngineName | undefined;
}

// Compiled modules, by filename and source: parsing is the slow part of loading.
const compiled = new Map<string, CompiledModule>();
function compile(filter: LoadedFilter): CompiledModule {
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

// A worker with a loaded engine, as scripted_host.cc's runScenario sets one up.
function startWorker(filter: LoadedFilter, configJson: string, settings: unknown): { engine: Engine; worker: FakeWorker } {
  const parsed = parseSettings(settings);
  const module = compile(filter);
  const worker = new FakeWorker();
  const engine = Engine.create(module, filter.filename, configJson, parsed, worker, 0);
  worker.engine = engine;
  return { engine, worker };
}

let native: NativeAddon | undefined;

/**
 * Runs a replay scenario (DESIGN.md section 7) and returns its transcript. Throws when the
 * filter, its settings or the scenario cannot be loaded, with the engine's message.
 *
 * @example
 * ```ts
 * const t = runScenario("dist/filter.js", {
 *   config: { header: "x-api-key" },
 *   streams: [{ request: { headers: { ":method": "GET", ":path": "/", ":authority": "h" } } }],
 * });
 * assert.equal(t.streams[0]?.localReply?.status, 401);
 * ```
 */
export function runScenario(filter: FilterSource, scenario: Scenario, options: RunOptions = {}): Transcript {
  const engine = options.engine === undefined ? defaultEngine() : checkEngine(options.engine);
  const loaded = loadFilter(filter);
  if (engine === "native") {
    native ??= loadNativeAddon();
    return native.replay(loaded, scenario) as Transcript;
  }
  const sc = parseScenario(scenario);
  const { engine: e, worker } = startWorker(loaded, sc.configJson, sc.settings);
  const records = runStreams(e, worker, sc.streams);
  return transcriptJson(records, worker.record);
}

/**
 * One request through the filter: {@link request}'s input. Pseudo-headers default to
 * `GET /`, authority `example.com`, scheme `http`.
 *
 * @example
 * ```ts
 * const init: RequestInit = {
 *   method: "POST", path: "/orders", headers: { "content-type": "application/json" },
 *   body: ['{"item":', '"tea"}'], upstream: { headers: { ":status": "201" } },
 * };
 * ```
 */
export interface RequestInit {
  /**
   * `:method` (default `GET`).
   *
   * @example
   * ```ts
   * request(filter, { method: "POST" });
   * ```
   */
  method?: string;
  /**
   * `:path` (default `/`).
   *
   * @example
   * ```ts
   * request(filter, { path: "/admin?x=1" });
   * ```
   */
  path?: string;
  /**
   * `:authority` (default `example.com`).
   *
   * @example
   * ```ts
   * request(filter, { authority: "api.internal" });
   * ```
   */
  authority?: string;
  /**
   * `:scheme` (default `http`).
   *
   * @example
   * ```ts
   * request(filter, { scheme: "https" });
   * ```
   */
  scheme?: string;
  /**
   * More request headers; a repeated header is an array of its values.
   *
   * @example
   * ```ts
   * request(filter, { headers: { "x-api-key": "k", cookie: ["a=1", "b=2"] } });
   * ```
   */
  headers?: HeadersInput;
  /**
   * The request body: one string, or its chunks in order.
   *
   * @example
   * ```ts
   * request(filter, { method: "POST", body: ["{\"a\":", "1}"] });
   * ```
   */
  body?: BodyInput;
  /**
   * Request trailers.
   *
   * @example
   * ```ts
   * request(filter, { method: "POST", body: "x", trailers: { "x-sum": "1" } });
   * ```
   */
  trailers?: HeadersInput;
  /**
   * What the upstream answers (default `:status 200`, no body).
   *
   * @example
   * ```ts
   * request(filter, { upstream: { headers: { ":status": "503" }, body: "down" } });
   * ```
   */
  upstream?: { headers?: HeadersInput; body?: BodyInput; trailers?: HeadersInput };
  /**
   * The client goes away after the request headers or body.
   *
   * @example
   * ```ts
   * request(filter, { reset: "afterRequestHeaders" }); // onDone sees ctx.aborted
   * ```
   */
  reset?: "none" | "afterRequestHeaders" | "afterRequestBody";
  /**
   * The filter's config (`ctx.config`).
   *
   * @example
   * ```ts
   * request(filter, { config: { header: "x-api-key" } });
   * ```
   */
  config?: unknown;
  /**
   * The section 5 settings.
   *
   * @example
   * ```ts
   * request(filter, { settings: { buffer_limit_bytes: 16 } });
   * ```
   */
  settings?: SettingsInit;
  /**
   * `"stub"` or `"native"`; default {@link defaultEngine}.
   *
   * @example
   * ```ts
   * request(filter, { engine: "native" });
   * ```
   */
  engine?: EngineName;
}

/**
 * What {@link request} returns: that stream's transcript plus the worker's counters and logs.
 *
 * @example
 * ```ts
 * const { upstreamRequest, localReply, downstreamResponse, logs, errors } = request(filter, {});
 * ```
 */
export interface RequestResult extends StreamTranscript {
  /**
   * Counters of the engine (`envoy_js.errors`, ...).
   *
   * @example
   * ```ts
   * assert.is(request(filter).counters["envoy_js.errors"], undefined);
   * ```
   */
  counters: Record<string, number>;
  /**
   * Logs outside any stream (setup, worker timers, engine failures).
   *
   * @example
   * ```ts
   * assert.match(request(filter).workerLogs[0] ?? "", /filter failed/);
   * ```
   */
  workerLogs: string[];
}

/**
 * Sends one request through the filter and returns what happened to it.
 *
 * @example
 * ```ts
 * const r = request("dist/filter.js", { path: "/", headers: { "x-api-key": "k-123" } });
 * assert.equal(r.upstreamRequest?.headers["x-client"], "shop-frontend");
 * assert.equal(r.errors, []);
 * ```
 */
export function request(filter: FilterSource, init: RequestInit = {}): RequestResult {
  const headers = {
    ":method": init.method ?? "GET",
    ":path": init.path ?? "/",
    ":authority": init.authority ?? "example.com",
    ":scheme": init.scheme ?? "http",
    ...init.headers,
  };
  const stream: Scenario["streams"][number] = { request: { headers } };
  if (init.body !== undefined) stream.request.body = init.body;
  if (init.trailers !== undefined) stream.request.trailers = init.trailers;
  if (init.upstream !== undefined) stream.upstream = init.upstream;
  if (init.reset !== undefined) stream.reset = init.reset;
  const scenario: Scenario = { streams: [stream] };
  if (init.config !== undefined) scenario.config = init.config;
  if (init.settings !== undefined) scenario.settings = init.settings;
  const t = runScenario(filter, scenario, { engine: init.engine });
  return { ...t.streams[0]!, counters: t.counters, workerLogs: t.workerLogs };
}

// ---- the step API --------------------------------------------------------------------------

/**
 * Options of {@link createHost}.
 *
 * @example
 * ```ts
 * const options: HostOptions = { config: { header: "x-api-key" }, settings: { buffer_limit_bytes: 1024 } };
 * ```
 */
export interface HostOptions {
  /**
   * The filter's config (`ctx.config`).
   *
   * @example
   * ```ts
   * createHost(filter, { config: { header: "x-api-key" } });
   * ```
   */
  config?: unknown;
  /**
   * The section 5 settings.
   *
   * @example
   * ```ts
   * createHost(filter, { settings: { failure_mode: "open" } });
   * ```
   */
  settings?: SettingsInit;
  /**
   * Only `"stub"`: the native addon replays whole scenarios, it has no step API.
   *
   * @example
   * ```ts
   * createHost(filter, { engine: "stub" }); // even when ENVOY_JS_ENGINE=native
   * ```
   */
  engine?: EngineName;
}

function headerList(h: HeadersInput, where: string): HeaderList {
  if (typeof h !== "object" || h === null || Array.isArray(h)) throw new TypeError(`${where} must be an object of name: value`);
  const out: HeaderList = [];
  for (const [k, v] of Object.entries(h)) {
    if (Array.isArray(v)) for (const one of v) out.push([k, String(one)]);
    else out.push([k, String(v)]);
  }
  return out;
}

/**
 * A worker engine with the filter loaded, driven event by event (the step API). Create
 * streams with {@link Host.newStream}; timers run on a fake clock moved by
 * {@link Host.advanceTime}.
 *
 * @example
 * ```ts
 * const host = createHost("dist/filter.js", { config: { header: "x-api-key" } });
 * const s = host.newStream();
 * assert.is(s.callOnRequestHeaders({ ":method": "GET", ":path": "/", ":authority": "h" }, true), "StopIteration");
 * assert.equal(s.getCurrentLocalReply()?.status, 401);
 * ```
 */
export class Host {
  readonly #engine: Engine;
  readonly #worker: FakeWorker;
  #closed = false;

  /** @internal use {@link createHost} */
  constructor(engine: Engine, worker: FakeWorker) {
    this.#engine = engine;
    this.#worker = worker;
  }

  /**
   * Starts a new stream on this worker.
   *
   * @example
   * ```ts
   * const s = host.newStream();
   * s.callOnRequestHeaders({ ":method": "GET", ":path": "/a", ":authority": "h" }, true);
   * ```
   */
  newStream(): HostStream {
    this.#checkOpen();
    return new HostStream(this, this.#engine, this.#worker);
  }

  /**
   * Moves the fake clock forward by `ms`, firing every timer that falls due on the way, in
   * order (interval timers included).
   *
   * @example
   * ```ts
   * host.advanceTime(100); // a filter awaiting `sleep(50)` has resumed now
   * ```
   */
  advanceTime(ms: number): void {
    this.#checkOpen();
    if (!(ms >= 0)) throw new RangeError("advanceTime(ms): ms must be a number >= 0");
    const target = this.#worker.now + ms;
    let fired = 0;
    while (this.#worker.fireNextTimer(target)) {
      if (++fired > 100000) throw new Error("advanceTime: more than 100000 timers fired; is an interval of 0 ms running?");
    }
    this.#worker.now = Math.max(this.#worker.now, target);
  }

  /**
   * The fake clock, in milliseconds (what `performance.now()` returns in the filter).
   *
   * @example
   * ```ts
   * host.advanceTime(5);
   * assert.is(host.now, 5);
   * ```
   */
  get now(): number {
    return this.#worker.now;
  }

  /**
   * Counters of the engine (`envoy_js.errors`, `envoy_js.cpu_limit`, `envoy_js.heap_limit`).
   *
   * @example
   * ```ts
   * assert.is(host.getCounters()["envoy_js.errors"], 1);
   * ```
   */
  getCounters(): Record<string, number> {
    return transcriptJson([], this.#worker.record).counters;
  }

  /**
   * Logs outside any stream: setup, worker-level timers, engine failures.
   *
   * @example
   * ```ts
   * assert.match(host.getWorkerLogs()[0] ?? "", /filter failed/);
   * ```
   */
  getWorkerLogs(): string[] {
    return [...this.#worker.record.workerLogs];
  }

  /**
   * Stops the engine's timers. The host cannot be used afterwards.
   *
   * @example
   * ```ts
   * host.close();
   * ```
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#engine.close();
  }

  #checkOpen(): void {
    if (this.#closed) throw new Error("this host was closed");
  }
}

/**
 * One stream on a {@link Host}: `callOn*` play Envoy's callbacks and return the filter's
 * status; `getCurrent*` read what the host has seen so far. The host forwards what the filter
 * lets through (the upstream request, the downstream response) exactly as a replay does.
 *
 * @example
 * ```ts
 * const s = host.newStream();
 * s.callOnRequestHeaders({ ":method": "POST", ":path": "/", ":authority": "h" }, false);
 * s.callOnRequestData("hello", true);
 * assert.is(s.getCurrentUpstreamRequest()?.body, "hello");
 * ```
 */
export class HostStream {
  readonly #host: Host;
  readonly #fake: FakeStream;
  #destroyed = false;
  #completed = false;
  readonly #started = [false, false];
  readonly #ended = [false, false];

  /** @internal use {@link Host.newStream} */
  constructor(host: Host, engine: Engine, worker: FakeWorker) {
    this.#host = host;
    this.#fake = new FakeStream(worker, newStreamRecord());
    this.#fake.open(engine);
  }

  /**
   * Request headers arrive (Envoy's decodeHeaders).
   *
   * @example
   * ```ts
   * const status = s.callOnRequestHeaders({ ":method": "GET", ":path": "/", ":authority": "h" }, true);
   * ```
   */
  callOnRequestHeaders(headers: HeadersInput, endStream = false): HeadersStatus {
    this.#check(0, "headers");
    this.#mark(0, endStream);
    return this.#fake.decodeHeaders(headerList(headers, "request headers"), endStream);
  }

  /**
   * A chunk of the request body arrives (decodeData).
   *
   * @example
   * ```ts
   * s.callOnRequestData('{"a":1}', true);
   * ```
   */
  callOnRequestData(data: string | Uint8Array, endStream = false): DataStatus {
    this.#check(0, "data");
    this.#mark(0, endStream);
    return this.#fake.decodeData(bytesOf(data), endStream);
  }

  /**
   * Request trailers arrive (decodeTrailers); they end the request.
   *
   * @example
   * ```ts
   * s.callOnRequestTrailers({ "x-checksum": "abc" });
   * ```
   */
  callOnRequestTrailers(trailers: HeadersInput): TrailersStatus {
    this.#check(0, "trailers");
    this.#mark(0, true);
    return this.#fake.decodeTrailers(headerList(trailers, "request trailers"));
  }

  /**
   * The upstream's response headers arrive (encodeHeaders).
   *
   * @example
   * ```ts
   * s.callOnResponseHeaders({ ":status": "200" }, true);
   * ```
   */
  callOnResponseHeaders(headers: HeadersInput, endStream = false): HeadersStatus {
    this.#check(1, "headers");
    this.#mark(1, endStream);
    return this.#fake.encodeHeaders(headerList(headers, "response headers"), endStream);
  }

  /**
   * A chunk of the response body arrives (encodeData).
   *
   * @example
   * ```ts
   * s.callOnResponseData("ok", true);
   * ```
   */
  callOnResponseData(data: string | Uint8Array, endStream = false): DataStatus {
    this.#check(1, "data");
    this.#mark(1, endStream);
    return this.#fake.encodeData(bytesOf(data), endStream);
  }

  /**
   * Response trailers arrive (encodeTrailers); they end the response.
   *
   * @example
   * ```ts
   * s.callOnResponseTrailers({ "grpc-status": "0" });
   * ```
   */
  callOnResponseTrailers(trailers: HeadersInput): TrailersStatus {
    this.#check(1, "trailers");
    this.#mark(1, true);
    return this.#fake.encodeTrailers(headerList(trailers, "response trailers"));
  }

  /**
   * Moves the worker's fake clock (same as {@link Host.advanceTime}).
   *
   * @example
   * ```ts
   * s.advanceTime(20);
   * ```
   */
  advanceTime(ms: number): void {
    this.#host.advanceTime(ms);
  }

  /**
   * The stream is complete (Envoy's onStreamComplete): runs `onDone`. Optional before
   * {@link HostStream.destroy}, which completes the stream itself when needed.
   *
   * @example
   * ```ts
   * s.complete();
   * ```
   */
  complete(): void {
    if (this.#destroyed) throw new Error("this stream was destroyed");
    this.#completed = true;
    this.#fake.complete();
  }

  /**
   * Envoy frees the stream. Before the response ended this is the client going away:
   * pending hooks are abandoned and `ctx.aborted` is true.
   *
   * @example
   * ```ts
   * s.callOnRequestHeaders({ ":method": "GET", ":path": "/", ":authority": "h" }, true);
   * s.destroy(); // the client went away while onRequest was pending
   * ```
   */
  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    this.#fake.destroy(this.#completed ? null : "destroyed by the test");
  }

  /**
   * What reached the upstream so far, or null when nothing did.
   *
   * @example
   * ```ts
   * assert.is(s.getCurrentUpstreamRequest()?.headers["x-user"], "bob");
   * ```
   */
  getCurrentUpstreamRequest(): SentMessageJson | null {
    return this.#json().upstreamRequest;
  }

  /**
   * The local reply the filter (or the runtime) sent, or null.
   *
   * @example
   * ```ts
   * assert.is(s.getCurrentLocalReply()?.details, "envoy_js_error");
   * ```
   */
  getCurrentLocalReply(): LocalReplyJson | null {
    return this.#json().localReply;
  }

  /**
   * What reached the client so far from the upstream's response, or null.
   *
   * @example
   * ```ts
   * assert.is(s.getCurrentDownstreamResponse()?.headers["x-filtered-by"], "envoy-js");
   * ```
   */
  getCurrentDownstreamResponse(): SentMessageJson | null {
    return this.#json().downstreamResponse;
  }

  /**
   * The stream's logs (`ctx.log.*` and `console.*`), as `"[level] message"`.
   *
   * @example
   * ```ts
   * assert.equal(s.getLogs(), ["[info] hello"]);
   * ```
   */
  getLogs(): string[] {
    return this.#json().logs;
  }

  /**
   * Errors that failed this stream (the message includes the JS stack).
   *
   * @example
   * ```ts
   * assert.match(s.getErrors()[0] ?? "", /^TypeError/);
   * ```
   */
  getErrors(): string[] {
    return this.#json().errors;
  }

  /**
   * What the host saw, in order: callback results, continues, local replies, resets.
   *
   * @example
   * ```ts
   * assert.ok(s.getEvents().includes("continue request"));
   * ```
   */
  getEvents(): string[] {
    return this.#json().events;
  }

  /**
   * This stream's transcript so far, as {@link runScenario} reports it.
   *
   * @example
   * ```ts
   * const t = s.transcript();
   * assert.is(t.resetByFilter, false);
   * ```
   */
  transcript(): StreamTranscript {
    return this.#json();
  }

  #json(): StreamTranscript {
    return streamJson(this.#fake.record);
  }

  // Throws on a sequence Envoy would never produce: no silent success.
  #check(dir: 0 | 1, what: "headers" | "data" | "trailers"): void {
    const side = dir === 0 ? "request" : "response";
    if (this.#destroyed) throw new Error(`cannot send ${side} ${what}: this stream was destroyed`);
    if (this.#completed) throw new Error(`cannot send ${side} ${what}: this stream is complete`);
    if (!this.#fake.live()) throw new Error(`cannot send ${side} ${what}: the stream already ended (local reply or reset)`);
    if (what === "headers" && this.#started[dir]) throw new Error(`${side} headers were already sent`);
    if (what !== "headers" && !this.#started[dir]) throw new Error(`cannot send ${side} ${what} before the ${side} headers`);
    if (what !== "headers" && this.#ended[dir]) throw new Error(`cannot send ${side} ${what}: the ${side} already ended`);
    if (dir === 1 && !this.#started[0]) throw new Error("cannot send a response before the request headers");
  }

  #mark(dir: 0 | 1, end: boolean): void {
    this.#started[dir] = true;
    if (end) this.#ended[dir] = true;
  }
}

function bytesOf(data: string | Uint8Array): Buffer {
  if (typeof data === "string") return encodeUtf8(data);
  if (data instanceof Uint8Array) return Buffer.from(data);
  throw new TypeError("body data must be a string or a Uint8Array");
}

/**
 * Loads the filter on a new worker engine of the stub and returns the step API. Throws
 * when the filter, config or settings cannot be loaded, with the engine's message.
 *
 * @example
 * ```ts
 * const host = createHost({ source: "export default { onRequest(req) { req.headers.set('x-a', '1'); } };" });
 * const s = host.newStream();
 * s.callOnRequestHeaders({ ":method": "GET", ":path": "/", ":authority": "h" }, true);
 * assert.is(s.getCurrentUpstreamRequest()?.headers["x-a"], "1");
 * ```
 */
export function createHost(filter: FilterSource, options: HostOptions = {}): Host {
  const engine = options.engine === undefined ? defaultEngine() : checkEngine(options.engine);
  if (engine === "native") {
    throw new Error(
      "the step API (createHost) runs on the stub only: the native addon replays whole scenarios. " +
        'Use runScenario()/request() for tests that should also run natively, or pass { engine: "stub" }.',
    );
  }
  const { engine: e, worker } = startWorker(loadFilter(filter), jsonOf(options.config), options.settings);
  return new Host(e, worker);
}

/**
 * Replays a scenario on the stub from a bundle already read: what `envoy-js replay --engine
 * stub` calls.
 *
 * @example
 * ```ts
 * const t = replayBundle({ source, filename: "filter.js" }, scenario);
 * ```
 */
export function replayBundle(bundle: { source: string; filename: string }, scenario: unknown): Transcript {
  return runScenario({ source: bundle.source, filename: bundle.filename }, scenario as Scenario, { engine: "stub" });
}
