// The public types of @envoy-js/sdk/testing: what a test gives (filters, scenarios, requests)
// and what it gets back (transcripts). Shapes of DESIGN.md section 7.

/**
 * A filter to run: the path (or `file:` URL) of a bundle built by `envoy-js build`, or the
 * source text of an ES module with a default export. A filter definition object cannot be
 * given: the engine runs the filter from its source, as Envoy does.
 *
 * @example
 * ```ts
 * const fromDisk: FilterSource = "dist/filter.js";
 * const inline: FilterSource = { source: "export default { onRequest() {} };", filename: "inline.js" };
 * ```
 */
export type FilterSource = string | URL | FilterText;

/**
 * A filter given as text.
 *
 * @example
 * ```ts
 * const f: FilterText = { source: readFileSync("dist/filter.js", "utf8"), filename: "filter.js" };
 * ```
 */
export interface FilterText {
  /**
   * The ES module's source text.
   *
   * @example
   * ```ts
   * const t: FilterText = { source: "export default {};" };
   * ```
   */
  source: string;
  /**
   * Name used in error locations and stacks (default `filter.js`).
   *
   * @example
   * ```ts
   * const t: FilterText = { source, filename: "auth.js" }; // errors read "auth.js:3:7: ..."
   * ```
   */
  filename?: string;
  /**
   * The bundle's source map (JSON text): errors and stacks then name the TypeScript source.
   *
   * @example
   * ```ts
   * const t: FilterText = { source, sourceMap: readFileSync("dist/filter.js.map", "utf8") };
   * ```
   */
  sourceMap?: string;
  /**
   * Bytecode from `envoy-js build --bytecode`: the engine runs it instead of `source`.
   *
   * @example
   * ```ts
   * const t: FilterText = { source, bytecode: readFileSync("dist/filter.qjsbc") };
   * ```
   */
  bytecode?: Uint8Array;
}

/**
 * Header maps as scenarios and transcripts write them: names lower-case, a header that
 * occurs more than once as an array of its values in order.
 *
 * @example
 * ```ts
 * const h: HeadersObject = { ":status": "200", "set-cookie": ["a=1", "b=2"] };
 * ```
 */
export type HeadersObject = Record<string, string | string[]>;

/**
 * Headers a test gives: values may be numbers; names in any case (the host lower-cases them).
 *
 * @example
 * ```ts
 * const h: HeadersInput = { ":status": 200, "Content-Type": "text/plain" };
 * ```
 */
export type HeadersInput = Record<string, string | number | Array<string | number>>;

/**
 * Body data a test gives: one string, or the chunks in the order they arrive.
 *
 * @example
 * ```ts
 * const b: BodyInput = ['{"item":', new TextEncoder().encode('"tea"}')];
 * ```
 */
export type BodyInput = string | Array<string | Uint8Array>;

/**
 * One message of a scenario: headers, body chunks, trailers.
 *
 * @example
 * ```ts
 * const m: MessageInit = { headers: { ":status": "200" }, body: ["ok"], trailers: { "grpc-status": "0" } };
 * ```
 */
export interface MessageInit {
  /**
   * The headers (pseudo-headers included).
   *
   * @example
   * ```ts
   * const m: MessageInit = { headers: { ":method": "GET", ":path": "/", ":authority": "h" } };
   * ```
   */
  headers?: HeadersInput;
  /**
   * The body: one string, or its chunks in order.
   *
   * @example
   * ```ts
   * const m: MessageInit = { headers, body: ["chunk 1", "chunk 2"] };
   * ```
   */
  body?: BodyInput;
  /**
   * Trailers; they end the message.
   *
   * @example
   * ```ts
   * const m: MessageInit = { headers, trailers: { "x-checksum": "abc" } };
   * ```
   */
  trailers?: HeadersInput;
}

/**
 * What `ctx.stream` shows for a stream. Absent fields take the host's defaults: `id` is the
 * stream's position plus one, `protocol` `HTTP/1.1`, `remoteAddress` `127.0.0.1:50000`,
 * `localAddress` `127.0.0.1:10000`, `routeName` empty.
 *
 * @example
 * ```ts
 * const info: StreamInfoInit = { id: "req-1", protocol: "HTTP/2", remoteAddress: "10.0.0.7:41000", routeName: "api" };
 * ```
 */
export interface StreamInfoInit {
  /**
   * `ctx.stream.id`.
   *
   * @example
   * ```ts
   * const info: StreamInfoInit = { id: "abc" };
   * ```
   */
  id?: string;
  /**
   * `ctx.stream.protocol`: `HTTP/1.1`, `HTTP/2` or `HTTP/3`.
   *
   * @example
   * ```ts
   * const info: StreamInfoInit = { protocol: "HTTP/2" };
   * ```
   */
  protocol?: string;
  /**
   * `ctx.stream.remoteAddress`, as `ip:port`.
   *
   * @example
   * ```ts
   * const info: StreamInfoInit = { remoteAddress: "192.0.2.1:5000" };
   * ```
   */
  remoteAddress?: string;
  /**
   * `ctx.stream.localAddress`, as `ip:port`.
   *
   * @example
   * ```ts
   * const info: StreamInfoInit = { localAddress: "0.0.0.0:8080" };
   * ```
   */
  localAddress?: string;
  /**
   * `ctx.stream.routeName`.
   *
   * @example
   * ```ts
   * const info: StreamInfoInit = { routeName: "admin" };
   * ```
   */
  routeName?: string;
}

/**
 * How a scripted cluster answers `ctx.fetch` callouts: on the fake clock, after `delayMs`.
 *
 * @example
 * ```ts
 * const authz: ClusterInit = { headers: { ":status": "200", "x-user": "bob" }, body: '{"role":"admin"}', delayMs: 5 };
 * ```
 */
export interface ClusterInit {
  /**
   * The response headers, `:status` included (default `:status 200`).
   *
   * @example
   * ```ts
   * const c: ClusterInit = { headers: { ":status": "403" } };
   * ```
   */
  headers?: HeadersInput;
  /**
   * The response body: one string, or chunks that are joined. Over `buffer_limit_bytes`
   * the fetch rejects with code `response_too_large`.
   *
   * @example
   * ```ts
   * const c: ClusterInit = { body: ['{"ok":', "true}"] };
   * ```
   */
  body?: BodyInput;
  /**
   * Milliseconds of fake time before the answer (default 0).
   *
   * @example
   * ```ts
   * const c: ClusterInit = { delayMs: 20 };
   * ```
   */
  delayMs?: number;
  /**
   * The callout is reset: the fetch rejects with code `reset`.
   *
   * @example
   * ```ts
   * const c: ClusterInit = { reset: true };
   * ```
   */
  reset?: boolean;
  /**
   * The cluster never answers: the fetch rejects with code `timeout` after its `timeoutMs`.
   *
   * @example
   * ```ts
   * const c: ClusterInit = { timeout: true };
   * ```
   */
  timeout?: boolean;
}

/**
 * The stream's route, as Envoy's per-route filter config gives it.
 *
 * @example
 * ```ts
 * const admin: RouteInit = { config: { limit: 1 } };
 * const health: RouteInit = { disabled: true };
 * ```
 */
export interface RouteInit {
  /**
   * Merged over the filter's config (plain objects deeply, anything else replaces).
   *
   * @example
   * ```ts
   * const r: RouteInit = { config: { auth: { realm: "admin" } } };
   * ```
   */
  config?: unknown;
  /**
   * The filter does not run for this route: every callback continues, `onDone` is skipped.
   *
   * @example
   * ```ts
   * const r: RouteInit = { disabled: true };
   * ```
   */
  disabled?: boolean;
}

/**
 * What the host knows about a stream before its first event: stream info, dynamic metadata
 * and filter state set by earlier filters, the clusters `ctx.fetch` can reach, the route.
 *
 * @example
 * ```ts
 * const setup: StreamSetup = {
 *   stream: { id: "s1" },
 *   metadata: { "envoy.filters.http.jwt_authn": { sub: "bob" } },
 *   filterState: { "upstream.tag": "blue" },
 *   clusters: { authz: { headers: { ":status": "200" } } },
 *   route: { config: { limit: 5 } },
 * };
 * ```
 */
export interface StreamSetup {
  /**
   * `ctx.stream`.
   *
   * @example
   * ```ts
   * const s: StreamSetup = { stream: { protocol: "HTTP/2" } };
   * ```
   */
  stream?: StreamInfoInit;
  /**
   * Dynamic metadata: namespace -> key -> JSON value.
   *
   * @example
   * ```ts
   * const s: StreamSetup = { metadata: { "envoy.lb": { canary: true } } };
   * ```
   */
  metadata?: Record<string, Record<string, unknown>>;
  /**
   * Filter state: key -> string value.
   *
   * @example
   * ```ts
   * const s: StreamSetup = { filterState: { "envoy.tenant": "acme" } };
   * ```
   */
  filterState?: Record<string, string>;
  /**
   * The clusters `ctx.fetch` can call, by name; any other name is an unknown cluster.
   *
   * @example
   * ```ts
   * const s: StreamSetup = { clusters: { authz: { timeout: true } } };
   * ```
   */
  clusters?: Record<string, ClusterInit>;
  /**
   * The route's per-filter config, or that the route disables the filter.
   *
   * @example
   * ```ts
   * const s: StreamSetup = { route: { disabled: true } };
   * ```
   */
  route?: RouteInit;
  /**
   * The route Envoy picks once the filter cleared the route cache
   * (`ctx.clearRouteCache()`, or a header write under
   * `rerouteOnHeaderChange`): what the changed headers match now. Without
   * it, the route stays `route`.
   *
   * @example
   * ```ts
   * const s: StreamSetup = { route: { config: { tier: "a" } }, routeAfterClear: { config: { tier: "b" } } };
   * ```
   */
  routeAfterClear?: RouteInit;
}

/**
 * One stream of a scenario.
 *
 * @example
 * ```ts
 * const s: StreamInit = { request: { headers: { ":method": "GET", ":path": "/", ":authority": "h" } }, reset: "none" };
 * ```
 */
export interface StreamInit extends StreamSetup {
  /**
   * What the client sends.
   *
   * @example
   * ```ts
   * const s: StreamInit = { request: { headers: { ":method": "POST", ":path": "/", ":authority": "h" }, body: "x" } };
   * ```
   */
  request: MessageInit;
  /**
   * What the upstream answers, once the request went through (default `:status 200`).
   *
   * @example
   * ```ts
   * const s: StreamInit = { request, upstream: { headers: { ":status": "503" } } };
   * ```
   */
  upstream?: MessageInit;
  /**
   * The client goes away after the request headers or the request body.
   *
   * @example
   * ```ts
   * const s: StreamInit = { request, reset: "afterRequestHeaders" };
   * ```
   */
  reset?: "none" | "afterRequestHeaders" | "afterRequestBody";
}

/**
 * The section 5 settings.
 *
 * @example
 * ```ts
 * const s: SettingsInit = { failure_mode: "open", buffer_limit_bytes: 65536 };
 * ```
 */
export interface SettingsInit {
  /**
   * `closed` (default: a failure is a 500 local reply) or `open` (log and continue).
   *
   * @example
   * ```ts
   * const s: SettingsInit = { failure_mode: "open" };
   * ```
   */
  failure_mode?: "closed" | "open";
  /**
   * CPU budget of one hook invocation, enforced as in Envoy.
   *
   * @example
   * ```ts
   * const s: SettingsInit = { max_cpu_ms_per_event: 20 };
   * ```
   */
  max_cpu_ms_per_event?: number;
  /**
   * Heap limit of a worker engine, enforced as in Envoy.
   *
   * @example
   * ```ts
   * const s: SettingsInit = { max_heap_bytes: 8 * 1024 * 1024 };
   * ```
   */
  max_heap_bytes?: number;
  /**
   * Most bytes a whole-body read or queued data may hold (over it: 413 / 500).
   *
   * @example
   * ```ts
   * const s: SettingsInit = { buffer_limit_bytes: 1024 };
   * ```
   */
  buffer_limit_bytes?: number;
  /**
   * Whether `eval()` and the Function constructors may compile strings (default `false`:
   * they throw an `EvalError`, as in Envoy).
   *
   * @example
   * ```ts
   * const s: SettingsInit = { allow_code_from_strings: true };
   * ```
   */
  allow_code_from_strings?: boolean;
}

/**
 * A replay scenario (DESIGN.md section 7).
 *
 * @example
 * ```ts
 * const sc: Scenario = {
 *   config: { header: "x-api-key" },
 *   streams: [{ request: { headers: { ":method": "GET", ":path": "/", ":authority": "h" } } }],
 * };
 * ```
 */
export interface Scenario {
  /**
   * The filter's config, `ctx.config`.
   *
   * @example
   * ```ts
   * const sc: Scenario = { config: { header: "x-api-key" }, streams: [] };
   * ```
   */
  config?: unknown;
  /**
   * The section 5 settings; absent keys take their defaults.
   *
   * @example
   * ```ts
   * const sc: Scenario = { settings: { failure_mode: "open" }, streams: [] };
   * ```
   */
  settings?: SettingsInit;
  /**
   * The streams, run one after the other on one worker engine.
   *
   * @example
   * ```ts
   * const sc: Scenario = { streams: [{ request: { headers: { ":method": "GET", ":path": "/", ":authority": "h" } } }] };
   * ```
   */
  streams: StreamInit[];
}

/**
 * A message as it left the filter (towards the upstream or the client).
 *
 * @example
 * ```ts
 * const m: SentMessageJson = { headers: { ":status": "200" }, body: "ok", trailers: null };
 * ```
 */
export interface SentMessageJson {
  /**
   * The headers as they were passed on.
   *
   * @example
   * ```ts
   * assert.is(t.upstreamRequest?.headers["x-user"], "bob");
   * ```
   */
  headers: HeadersObject;
  /**
   * The whole body, as UTF-8 text.
   *
   * @example
   * ```ts
   * assert.is(t.downstreamResponse?.body, "ok");
   * ```
   */
  body: string;
  /**
   * The trailers, or null when there were none.
   *
   * @example
   * ```ts
   * assert.equal(t.downstreamResponse?.trailers, { "grpc-status": "0" });
   * ```
   */
  trailers: HeadersObject | null;
}

/**
 * A local reply as the filter (or the runtime) sent it.
 *
 * @example
 * ```ts
 * const r: LocalReplyJson = { status: 403, body: "no", headers: {}, details: "envoy_js_respond" };
 * ```
 */
export interface LocalReplyJson {
  /**
   * The HTTP status.
   *
   * @example
   * ```ts
   * assert.is(t.localReply?.status, 401);
   * ```
   */
  status: number;
  /**
   * The body given to `ctx.respond`, as UTF-8 text.
   *
   * @example
   * ```ts
   * assert.is(t.localReply?.body, "missing x-api-key");
   * ```
   */
  body: string;
  /**
   * The headers given to `ctx.respond`.
   *
   * @example
   * ```ts
   * assert.is(t.localReply?.headers["retry-after"], "5");
   * ```
   */
  headers: HeadersObject;
  /**
   * Envoy's response-code details: `envoy_js_respond`, `envoy_js_error`, or the filter's own.
   *
   * @example
   * ```ts
   * assert.is(t.localReply?.details, "envoy_js_error");
   * ```
   */
  details: string;
}

/**
 * Dynamic metadata as a transcript shows it: namespace -> key -> JSON value.
 *
 * @example
 * ```ts
 * const md: MetadataJson = { "envoy-js": { decision: { allowed: true } } };
 * ```
 */
export type MetadataJson = Record<string, Record<string, unknown>>;

/**
 * A callout the filter made with `ctx.fetch`, as the cluster received it.
 *
 * @example
 * ```ts
 * const c: CalloutJson = { cluster: "authz", headers: { ":method": "GET", ":path": "/", ":authority": "authz" }, body: "" };
 * ```
 */
export interface CalloutJson {
  /**
   * The cluster's name.
   *
   * @example
   * ```ts
   * assert.is(t.callouts[0]?.cluster, "authz");
   * ```
   */
  cluster: string;
  /**
   * The request headers: `:method`, `:path`, `:authority`, then the filter's, then
   * `content-length` when there is a body.
   *
   * @example
   * ```ts
   * assert.is(t.callouts[0]?.headers[":method"], "POST");
   * ```
   */
  headers: HeadersObject;
  /**
   * The request body, as UTF-8 text.
   *
   * @example
   * ```ts
   * assert.is(t.callouts[0]?.body, "{}");
   * ```
   */
  body: string;
}

/**
 * What happened to one stream.
 *
 * @example
 * ```ts
 * const s: StreamTranscript = runScenario(filter, scenario).streams[0]!;
 * ```
 */
export interface StreamTranscript {
  /**
   * What reached the upstream, or null.
   *
   * @example
   * ```ts
   * assert.is(s.upstreamRequest, null); // the filter answered itself
   * ```
   */
  upstreamRequest: SentMessageJson | null;
  /**
   * The local reply, or null.
   *
   * @example
   * ```ts
   * assert.is(s.localReply?.status, 429);
   * ```
   */
  localReply: LocalReplyJson | null;
  /**
   * What reached the client from the upstream's response, or null.
   *
   * @example
   * ```ts
   * assert.is(s.downstreamResponse?.headers["x-filtered-by"], "envoy-js");
   * ```
   */
  downstreamResponse: SentMessageJson | null;
  /**
   * `ctx.log.*` and `console.*` of this stream, as `"[level] message"`.
   *
   * @example
   * ```ts
   * assert.equal(s.logs, ["[info] order from shop"]);
   * ```
   */
  logs: string[];
  /**
   * Errors that failed this stream: the message, then the JS stack.
   *
   * @example
   * ```ts
   * assert.match(s.errors[0] ?? "", /^TypeError: /);
   * ```
   */
  errors: string[];
  /**
   * What the host saw, in order: callback results, continues, local replies, resets.
   *
   * @example
   * ```ts
   * assert.is(s.events[0], "onRequestHeaders -> Continue");
   * ```
   */
  events: string[];
  /**
   * Whether the filter reset the stream (a failure after the response started).
   *
   * @example
   * ```ts
   * assert.is(s.resetByFilter, false);
   * ```
   */
  resetByFilter: boolean;
  /**
   * The stream's dynamic metadata at its end: what the scenario set plus what the filter
   * wrote with `ctx.metadata.set`.
   *
   * @example
   * ```ts
   * assert.equal(s.metadata["envoy-js"], { decision: "allow" });
   * ```
   */
  metadata: MetadataJson;
  /**
   * The stream's filter state at its end.
   *
   * @example
   * ```ts
   * assert.is(s.filterState["envoy-js.user"], "bob");
   * ```
   */
  filterState: Record<string, string>;
  /**
   * How many times the filter cleared the route cache (`ctx.clearRouteCache()`,
   * or a request-header write under `rerouteOnHeaderChange`).
   *
   * @example
   * ```ts
   * assert.is(s.routeCacheClears, 1);
   * ```
   */
  routeCacheClears: number;
  /**
   * The upstream host the filter asked the load balancer for
   * (`ctx.setUpstreamOverrideHost`), the last one wins; `null` when none.
   *
   * @example
   * ```ts
   * assert.equal(s.upstreamOverrideHost, { host: "10.0.0.7:8080", strict: true });
   * ```
   */
  upstreamOverrideHost: { host: string; strict: boolean } | null;
  /**
   * The filter's `ctx.fetch` callouts, in order (unknown clusters included).
   *
   * @example
   * ```ts
   * assert.equal(s.callouts.map((c) => c.cluster), ["authz"]);
   * ```
   */
  callouts: CalloutJson[];
}

/**
 * What a replay returns.
 *
 * @example
 * ```ts
 * const t: Transcript = runScenario("dist/filter.js", scenario);
 * ```
 */
export interface Transcript {
  /**
   * One transcript per stream of the scenario, in order.
   *
   * @example
   * ```ts
   * assert.is(t.streams.length, 2);
   * ```
   */
  streams: StreamTranscript[];
  /**
   * Counters of the engine (`envoy_js.errors`, `envoy_js.cpu_limit`, `envoy_js.heap_limit`).
   *
   * @example
   * ```ts
   * assert.is(t.counters["envoy_js.errors"], 1);
   * ```
   */
  counters: Record<string, number>;
  /**
   * The filter's declared metrics that were used: a counter's total, a gauge's last value,
   * a histogram's samples in order.
   *
   * @example
   * ```ts
   * assert.equal(t.metrics, { requests: 3, inflight: 0, latency: [12, 7.5] });
   * ```
   */
  metrics: Record<string, number | number[]>;
  /**
   * Logs outside any stream: setup, worker timers, failures, warnings.
   *
   * @example
   * ```ts
   * assert.equal(t.workerLogs, []);
   * ```
   */
  workerLogs: string[];
  /**
   * The background engine's logs, present once `Host.startBackground` ran it and it logged.
   *
   * @example
   * ```ts
   * assert.equal(t.backgroundLogs ?? [], []);
   * ```
   */
  backgroundLogs?: string[];
}

/**
 * What a request or response headers callback returned, named as Envoy names it (values as
 * in envoy/http/filter.h).
 *
 * @example
 * ```ts
 * const status: HeadersStatus = s.callOnRequestHeaders(headers, true);
 * ```
 */
export type HeadersStatus =
  | "Continue"
  | "StopIteration"
  | "ContinueAndDontEndStream"
  | "StopAllIterationAndBuffer"
  | "StopAllIterationAndWatermark";

/**
 * What a body data callback returned.
 *
 * @example
 * ```ts
 * const status: DataStatus = s.callOnRequestData("chunk", false);
 * ```
 */
export type DataStatus = "Continue" | "StopIterationAndBuffer" | "StopIterationAndWatermark" | "StopIterationNoBuffer";

/**
 * What a trailers callback returned.
 *
 * @example
 * ```ts
 * const status: TrailersStatus = s.callOnRequestTrailers({ "x-t": "1" });
 * ```
 */
export type TrailersStatus = "Continue" | "StopIteration";

/**
 * One stream of the step API as the host sees it: its transcript so far and where it stands.
 *
 * @example
 * ```ts
 * const state: StepStreamState = { ...stream.transcript(), requestSentUpstream: true, responseSentDownstream: false, live: true };
 * ```
 */
export interface StepStreamState extends StreamTranscript {
  /**
   * The whole request went past the filter to the upstream.
   *
   * @example
   * ```ts
   * assert.ok(state.requestSentUpstream);
   * ```
   */
  requestSentUpstream: boolean;
  /**
   * The whole response (or a local reply) went to the client.
   *
   * @example
   * ```ts
   * assert.ok(state.responseSentDownstream);
   * ```
   */
  responseSentDownstream: boolean;
  /**
   * Not replied to, not reset, not destroyed.
   *
   * @example
   * ```ts
   * assert.not.ok(state.live);
   * ```
   */
  live: boolean;
}
