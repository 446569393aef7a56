/**
 * `@envoy-js/sdk/testing`: run a filter on the engine Envoy runs, in the spirit of
 * proxy-wasm's `proxytest`. The engine is envoy-js's C++ runtime with quickjs-ng and a
 * scripted model of Envoy's filter manager, compiled to WebAssembly and shipped in this
 * package: the filter meets real QuickJS semantics and the CPU and heap limits it meets in
 * Envoy, errors name the TypeScript source when the bundle has a source map, and no compiler
 * is needed. Nothing about the engine or Envoy is re-implemented in TypeScript here.
 *
 * Take the filter as a built bundle (`envoy-js build`) or as module source text.
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
import type { WasmEngine } from "@envoy-js/sdk/wasm";
import { loadWasmEngine } from "@envoy-js/sdk/wasm";

import { loadFilter } from "./filter-source.js";
import type {
  BodyInput,
  CalloutJson,
  DataStatus,
  FilterSource,
  HeadersInput,
  HeadersStatus,
  LocalReplyJson,
  MetadataJson,
  Scenario,
  SentMessageJson,
  SettingsInit,
  StepStreamState,
  StreamSetup,
  StreamTranscript,
  Transcript,
  TrailersStatus,
} from "./types.js";

export type * from "./types.js";

/**
 * The engines a filter can run on in a test: `"wasm"`. `"stub"` and `"native"` name engines
 * that were retired (a TypeScript re-implementation and a Node addon); they still work, run
 * on the wasm engine and print a deprecation notice once.
 *
 * @example
 * ```ts
 * const engine: EngineName = "wasm";
 * ```
 */
export type EngineName = "wasm" | "stub" | "native";

/**
 * Environment variable that picks the default engine for every call that does not name one.
 *
 * @example
 * ```sh
 * ENVOY_JS_ENGINE=wasm npm test
 * ```
 */
export const ENGINE_ENV = "ENVOY_JS_ENGINE";

/**
 * The engine used when a call does not name one: `$ENVOY_JS_ENGINE`, else `"wasm"`.
 *
 * @example
 * ```ts
 * assert.is(defaultEngine(), "wasm");
 * ```
 */
export function defaultEngine(env: NodeJS.ProcessEnv = process.env): EngineName {
  return checkEngine(env[ENGINE_ENV] ?? "wasm");
}

const retiredNoticeGiven = new Set<string>();

function checkEngine(name: string): EngineName {
  if (name === "wasm") return name;
  if (name === "stub" || name === "native") {
    if (!retiredNoticeGiven.has(name)) {
      retiredNoticeGiven.add(name);
      process.emitWarning(
        `engine "${name}" was retired: tests run on the wasm engine (the C++ runtime Envoy runs); name it "wasm"`,
        "DeprecationWarning",
      );
    }
    return name;
  }
  throw new TypeError(`unknown engine '${name}': the engine is "wasm"`);
}

let wasm: WasmEngine | undefined;
function engine(): WasmEngine {
  wasm ??= loadWasmEngine();
  return wasm;
}

/**
 * Options of {@link runScenario}.
 *
 * @example
 * ```ts
 * const options: RunOptions = { engine: "wasm" };
 * ```
 */
export interface RunOptions {
  /**
   * `"wasm"`; default {@link defaultEngine}.
   *
   * @example
   * ```ts
   * runScenario(filter, scenario, { engine: "wasm" });
   * ```
   */
  engine?: EngineName | undefined;
}

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
  checkEngine(options.engine ?? defaultEngine());
  return engine().replay(loadFilter(filter), scenario) as Transcript;
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
export interface RequestInit extends StreamSetup {
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
   * `"wasm"`; default {@link defaultEngine}.
   *
   * @example
   * ```ts
   * request(filter, { engine: "wasm" });
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
   * The filter's declared metrics that were used (see {@link Transcript.metrics}).
   *
   * @example
   * ```ts
   * assert.is(request(filter).metrics["requests"], 1);
   * ```
   */
  metrics: Record<string, number | number[]>;
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
  for (const key of SETUP_KEYS) if (init[key] !== undefined) Object.assign(stream, { [key]: init[key] });
  const scenario: Scenario = { streams: [stream] };
  if (init.config !== undefined) scenario.config = init.config;
  if (init.settings !== undefined) scenario.settings = init.settings;
  const t = runScenario(filter, scenario, { engine: init.engine });
  return { ...t.streams[0]!, metrics: t.metrics, counters: t.counters, workerLogs: t.workerLogs };
}

const SETUP_KEYS = ["stream", "metadata", "filterState", "clusters", "route"] as const;

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
   * `"wasm"`; default {@link defaultEngine}.
   *
   * @example
   * ```ts
   * createHost(filter, { engine: "wasm" });
   * ```
   */
  engine?: EngineName;
}

/** The wasm engine's index-based host (sdk/cli/wasm.mjs). */
interface IndexHost {
  newStream(setup?: unknown): number;
  // Envoy's callbacks return the filter's status as the host recorded it ("" if none).
  requestHeaders(i: number, headers: unknown, endStream: boolean): string;
  requestData(i: number, chunk: unknown, endStream: boolean): string;
  requestTrailers(i: number, trailers: unknown): string;
  responseHeaders(i: number, headers: unknown, endStream: boolean): string;
  responseData(i: number, chunk: unknown, endStream: boolean): string;
  responseTrailers(i: number, trailers: unknown): string;
  live(i: number): boolean;
  complete(i: number): void;
  destroy(i: number, why?: string): void;
  advanceTime(ms: number): void;
  now(): number;
  stream(i: number): StepStreamState;
  transcript(): Transcript;
  startBackground(setup: { clusters?: StreamSetup["clusters"] }): void;
  stopBackground(): void;
  sharedGet(key: string): string | null;
  close(): void;
}

function checkHeaders(h: HeadersInput, where: string): HeadersInput {
  if (typeof h !== "object" || h === null || Array.isArray(h))
    throw new TypeError(`${where} must be an object of name: value`);
  return h;
}

/**
 * A worker engine with the filter loaded, driven event by event (the step API), on either
 * engine. Create streams with {@link Host.newStream}; timers and cluster answers run on a
 * fake clock moved by {@link Host.advanceTime}.
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
  readonly #host: IndexHost;
  readonly #engine: EngineName;
  #closed = false;

  /** @internal use {@link createHost} */
  constructor(host: object, engine: EngineName) {
    this.#host = host as IndexHost;
    this.#engine = engine;
  }

  /**
   * Which engine runs the filter.
   *
   * @example
   * ```ts
   * assert.is(createHost(filter).engine, "wasm");
   * ```
   */
  get engine(): EngineName {
    return this.#engine;
  }

  /**
   * Starts a new stream on this worker, with what the host knows about it beforehand:
   * stream info, metadata, filter state, the clusters `ctx.fetch` can reach, the route.
   *
   * @example
   * ```ts
   * const s = host.newStream({ clusters: { authz: { headers: { ":status": "200" } } } });
   * s.callOnRequestHeaders({ ":method": "GET", ":path": "/a", ":authority": "h" }, true);
   * ```
   */
  newStream(setup: StreamSetup = {}): HostStream {
    this.#checkOpen();
    return new HostStream(this, this.#host, this.#host.newStream(setup));
  }

  /**
   * Moves the fake clock forward by `ms`, firing every timer and cluster answer that falls
   * due on the way, in order (interval timers included).
   *
   * @example
   * ```ts
   * host.advanceTime(100); // a filter awaiting `sleep(50)` has resumed now
   * ```
   */
  advanceTime(ms: number): void {
    this.#checkOpen();
    if (!(ms >= 0)) throw new RangeError("advanceTime(ms): ms must be a number >= 0");
    this.#host.advanceTime(ms);
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
    this.#checkOpen();
    return this.#host.now();
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
    this.#checkOpen();
    return this.#host.transcript().counters;
  }

  /**
   * The filter's declared metrics so far (see {@link Transcript.metrics}).
   *
   * @example
   * ```ts
   * assert.equal(host.getMetrics(), { requests: 2 });
   * ```
   */
  getMetrics(): Record<string, number | number[]> {
    this.#checkOpen();
    return this.#host.transcript().metrics;
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
    this.#checkOpen();
    return this.#host.transcript().workerLogs;
  }

  /**
   * Starts the filter's `background(config, bg)` as Envoy does once per filter config: in an
   * engine of its own, on this host's fake clock. Its timers fire on {@link Host.advanceTime}
   * whether or not a stream is live; `bg.fetch` is answered by `clusters` (the shape of a
   * stream's `clusters`); what it writes to `bg.shared` the streams read from `ctx.shared`.
   * Throws when the filter has no `background`, its module cannot load, or one runs already.
   * A throw inside `background` does not: it is logged ({@link Host.getBackgroundLogs}) and
   * counted (`envoy_js.errors`).
   *
   * @example
   * ```ts
   * const host = createHost(filter);
   * host.startBackground({ clusters: { idp: { headers: { ":status": "200" }, body: "{\"keys\":[]}" } } });
   * host.advanceTime(0); // the first refresh's answer arrives
   * assert.is(host.getShared("jwks"), "{\"keys\":[]}");
   * ```
   */
  startBackground(options: { clusters?: StreamSetup["clusters"] } = {}): void {
    this.#checkOpen();
    this.#host.startBackground({ clusters: options.clusters ?? {} });
  }

  /**
   * Destroys the background engine, as Envoy does when the filter config goes away (a
   * reload): its timers stop and its callouts' answers are dropped.
   *
   * @example
   * ```ts
   * host.stopBackground();
   * host.advanceTime(60_000); // nothing of it runs
   * ```
   */
  stopBackground(): void {
    this.#checkOpen();
    this.#host.stopBackground();
  }

  /**
   * The background engine's logs (`bg.log`, `console`, its errors), as `"[level] message"`.
   *
   * @example
   * ```ts
   * assert.match(host.getBackgroundLogs()[0] ?? "", /refresh failed/);
   * ```
   */
  getBackgroundLogs(): string[] {
    this.#checkOpen();
    return this.#host.transcript().backgroundLogs ?? [];
  }

  /**
   * The value under `key` in the filter's shared store (`ctx.shared`, `bg.shared`), or
   * `null`.
   *
   * @example
   * ```ts
   * assert.is(host.getShared("jwks"), null);
   * ```
   */
  getShared(key: string): string | null {
    this.#checkOpen();
    return this.#host.sharedGet(key);
  }

  /**
   * The whole transcript so far: every stream, counters, metrics, worker logs.
   *
   * @example
   * ```ts
   * assert.is(host.transcript().streams.length, 2);
   * ```
   */
  transcript(): Transcript {
    this.#checkOpen();
    return this.#host.transcript();
  }

  /**
   * Destroys the streams still alive and the engine (its timers stop). The host cannot be
   * used afterwards.
   *
   * @example
   * ```ts
   * host.close();
   * ```
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#host.close();
  }

  /** @internal */
  checkOpen(): void {
    this.#checkOpen();
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
  readonly #owner: Host;
  readonly #host: IndexHost;
  readonly #index: number;
  #destroyed = false;
  #completed = false;
  readonly #started = [false, false];
  readonly #ended = [false, false];

  /** @internal use {@link Host.newStream} */
  constructor(owner: Host, host: object, index: number) {
    this.#owner = owner;
    this.#host = host as IndexHost;
    this.#index = index;
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
    const h = checkHeaders(headers, "request headers");
    this.#mark(0, endStream);
    return this.#call("onRequestHeaders", () => this.#host.requestHeaders(this.#index, h, endStream)) as HeadersStatus;
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
    const bytes = bytesOf(data);
    this.#mark(0, endStream);
    return this.#call("onRequestData", () => this.#host.requestData(this.#index, bytes, endStream)) as DataStatus;
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
    const t = checkHeaders(trailers, "request trailers");
    this.#mark(0, true);
    return this.#call("onRequestTrailers", () => this.#host.requestTrailers(this.#index, t)) as TrailersStatus;
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
    const h = checkHeaders(headers, "response headers");
    this.#mark(1, endStream);
    return this.#call("onResponseHeaders", () =>
      this.#host.responseHeaders(this.#index, h, endStream),
    ) as HeadersStatus;
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
    const bytes = bytesOf(data);
    this.#mark(1, endStream);
    return this.#call("onResponseData", () => this.#host.responseData(this.#index, bytes, endStream)) as DataStatus;
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
    const t = checkHeaders(trailers, "response trailers");
    this.#mark(1, true);
    return this.#call("onResponseTrailers", () => this.#host.responseTrailers(this.#index, t)) as TrailersStatus;
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
    this.#owner.advanceTime(ms);
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
    this.#owner.checkOpen();
    if (this.#destroyed) throw new Error("this stream was destroyed");
    this.#completed = true;
    this.#host.complete(this.#index);
  }

  /**
   * Envoy frees the stream. Before the response ended this is the client going away:
   * pending hooks are abandoned, callouts cancelled, and `ctx.aborted` is true.
   *
   * @example
   * ```ts
   * s.callOnRequestHeaders({ ":method": "GET", ":path": "/", ":authority": "h" }, true);
   * s.destroy(); // the client went away while onRequest was pending
   * ```
   */
  destroy(): void {
    this.#owner.checkOpen();
    if (this.#destroyed) return;
    this.#destroyed = true;
    if (this.#completed) this.#host.destroy(this.#index);
    else this.#host.destroy(this.#index, "destroyed by the test");
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
   * The stream's dynamic metadata now.
   *
   * @example
   * ```ts
   * assert.equal(s.getCurrentMetadata()["envoy-js"], { user: "bob" });
   * ```
   */
  getCurrentMetadata(): MetadataJson {
    return this.#json().metadata;
  }

  /**
   * The stream's filter state now.
   *
   * @example
   * ```ts
   * assert.is(s.getCurrentFilterState()["envoy-js.tenant"], "acme");
   * ```
   */
  getCurrentFilterState(): Record<string, string> {
    return this.#json().filterState;
  }

  /**
   * The stream's `ctx.fetch` callouts so far, in order.
   *
   * @example
   * ```ts
   * assert.equal(s.getCallouts().map((c) => c.headers[":path"]), ["/check"]);
   * ```
   */
  getCallouts(): CalloutJson[] {
    return this.#json().callouts;
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
   * What the host saw, in order: callback results, continues, local replies, resets,
   * callouts, route cache clears.
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
    const { requestSentUpstream: _u, responseSentDownstream: _d, live: _l, ...t } = this.#json();
    return t;
  }

  #json(): StepStreamState {
    this.#owner.checkOpen();
    return this.#host.stream(this.#index);
  }

  // Runs one host callback and returns the filter's status, as the host recorded it.
  #call(callback: string, run: () => string): string {
    this.#owner.checkOpen();
    const status = run();
    if (!status) throw new Error(`the host recorded no status for ${callback}`);
    return status;
  }

  // Throws on a sequence Envoy would never produce: no silent success.
  #check(dir: 0 | 1, what: "headers" | "data" | "trailers"): void {
    const side = dir === 0 ? "request" : "response";
    if (this.#destroyed) throw new Error(`cannot send ${side} ${what}: this stream was destroyed`);
    if (this.#completed) throw new Error(`cannot send ${side} ${what}: this stream is complete`);
    this.#owner.checkOpen();
    if (!this.#host.live(this.#index))
      throw new Error(`cannot send ${side} ${what}: the stream already ended (local reply or reset)`);
    if (what === "headers" && this.#started[dir]) throw new Error(`${side} headers were already sent`);
    if (what !== "headers" && !this.#started[dir])
      throw new Error(`cannot send ${side} ${what} before the ${side} headers`);
    if (what !== "headers" && this.#ended[dir])
      throw new Error(`cannot send ${side} ${what}: the ${side} already ended`);
    if (dir === 1 && !this.#started[0]) throw new Error("cannot send a response before the request headers");
  }

  #mark(dir: 0 | 1, end: boolean): void {
    this.#started[dir] = true;
    if (end) this.#ended[dir] = true;
  }
}

function bytesOf(data: string | Uint8Array): string | Uint8Array {
  if (typeof data === "string" || data instanceof Uint8Array) return data;
  throw new TypeError("body data must be a string or a Uint8Array");
}

/**
 * Loads the filter on a new worker engine and returns the step API. Throws when the filter,
 * config or settings cannot be loaded, with the engine's message.
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
  checkEngine(options.engine ?? defaultEngine());
  const loaded = loadFilter(filter);
  const init = { config: options.config, settings: options.settings };
  return new Host(new (engine().ScriptedHost)(loaded, init), "wasm");
}

/**
 * Replays a scenario from a bundle already read: what `envoy-js replay --engine wasm` calls.
 *
 * @example
 * ```ts
 * const t = replayBundle({ source, filename: "filter.js" }, scenario);
 * ```
 */
export function replayBundle(
  bundle: { source: string; filename: string; sourceMap?: string; bytecode?: Uint8Array },
  scenario: unknown,
): Transcript {
  return engine().replay(bundle, scenario) as Transcript;
}

/**
 * The version of the quickjs-ng inside the wasm engine (the one `envoy-js build --bytecode`
 * tags bytecode with).
 *
 * @example
 * ```ts
 * assert.match(quickjsVersion(), /^\d+\.\d+\.\d+$/);
 * ```
 */
export function quickjsVersion(): string {
  return engine().quickjsVersion;
}
