/**
 * `@envoy-js/sdk`: the types of the envoy-js filter API and `defineFilter`.
 *
 * Everything here is a type except {@link defineFilter}, which is the identity
 * function: the engine reads the properties of the bundle's default export,
 * and the SDK only exists to give filter authors precise types while they
 * write them. Keep this file free of runtime code: it is bundled into every
 * filter.
 *
 * @example
 * ```ts
 * import { defineFilter } from "@envoy-js/sdk";
 *
 * export default defineFilter<{ header: string }>({
 *   onRequest(req, ctx) {
 *     if (!req.headers.has(ctx.config.header)) return ctx.respond(401);
 *   },
 * });
 * ```
 *
 * @packageDocumentation
 */

// ---------------------------------------------------------------------------
// Data shapes shared by several parts of the API
// ---------------------------------------------------------------------------

/**
 * Body data accepted wherever the API writes a body (chunk and body edits,
 * `ctx.respond`, `ctx.fetch`): a string (encoded as UTF-8) or raw bytes: an
 * `ArrayBuffer`, or a view of one (`Uint8Array` or any other typed array, a
 * `DataView`: the bytes it covers).
 *
 * @example
 * ```ts
 * const a: BodyData = "hello";
 * const b: BodyData = new TextEncoder().encode("hello");
 * const c: BodyData = b.buffer;
 * chunk.replace(a);
 * ```
 */
export type BodyData = string | ArrayBuffer | ArrayBufferView;

/**
 * Headers given as a plain object, the shape used by `ctx.respond`,
 * `ctx.fetch` and replay scenarios. A header that occurs more than once is
 * given as an array of its values, in order. Names are case-insensitive and
 * lower-cased by the host.
 *
 * @example
 * ```ts
 * const h: HeadersInit = { "content-type": "text/plain", "set-cookie": ["a=1", "b=2"] };
 * return ctx.respond(200, { headers: h });
 * ```
 */
export type HeadersInit = Readonly<Record<string, string | readonly string[]>>;

/**
 * A JSON-like value as stored in Envoy dynamic metadata (a protobuf `Struct`
 * value).
 *
 * @example
 * ```ts
 * const v: MetadataValue = { user: "bob", roles: ["admin"], level: 3 };
 * ctx.metadata.set("envoy.filters.http.envoy_js", "auth", v);
 * ```
 */
export type MetadataValue =
  | string
  | number
  | boolean
  | null
  | readonly MetadataValue[]
  | { readonly [key: string]: MetadataValue };

// ---------------------------------------------------------------------------
// Headers, bodies, chunks
// ---------------------------------------------------------------------------

/**
 * Read access to a header map. Names are case-insensitive.
 *
 * @example
 * ```ts
 * const r = await ctx.fetch("authz", { path: "/check" });
 * const user: string | null = r.headers.get("x-user");
 * ```
 */
export interface ReadonlyHeaders extends Iterable<[name: string, value: string]> {
  /**
   * The value of a header, its values joined by `", "` when it occurs more
   * than once, or `null` when it is absent. Pseudo-headers (`:path`,
   * `:status`, ...) are readable.
   *
   * @example
   * ```ts
   * const path = req.headers.get(":path");
   * const auth = req.headers.get("authorization") ?? "";
   * ```
   */
  get(name: string): string | null;

  /**
   * Every value of a header, in order; an empty array when it is absent.
   *
   * @example
   * ```ts
   * for (const cookie of res.headers.getAll("set-cookie")) ctx.log.debug(cookie);
   * ```
   */
  getAll(name: string): string[];

  /**
   * Whether the header is present.
   *
   * @example
   * ```ts
   * if (!req.headers.has("x-api-key")) return ctx.respond(401);
   * ```
   */
  has(name: string): boolean;

  /**
   * `[name, value]` pairs in map order, names lower-case. A header that
   * occurs more than once yields one pair per value.
   *
   * @example
   * ```ts
   * for (const [name, value] of req.headers.entries()) ctx.log.trace(name, value);
   * ```
   */
  entries(): IterableIterator<[name: string, value: string]>;

  /**
   * Same as {@link ReadonlyHeaders.entries}, so a header map can be used in
   * `for...of`.
   *
   * @example
   * ```ts
   * const copy = Object.fromEntries(req.headers);
   * ```
   */
  [Symbol.iterator](): IterableIterator<[name: string, value: string]>;
}

/**
 * A live view of one of Envoy's header maps (request or response headers,
 * or trailers), not a copy. It is writable only until its phase has been
 * continued: a later write throws a `TypeError` that says so.
 *
 * @example
 * ```ts
 * onRequest(req) {
 *   req.headers.set("x-filtered", "1");
 *   req.headers.delete("x-internal");
 * }
 * ```
 */
export interface Headers extends ReadonlyHeaders {
  /**
   * Replaces every value of a header with one value. Setting a
   * pseudo-header such as `:path` rewrites the request. Throws a
   * `TypeError` for a value with CR, LF or NUL, and for `content-length`
   * and `transfer-encoding` (the body's framing is Envoy's to state).
   *
   * @example
   * ```ts
   * req.headers.set(":path", "/v2" + req.path);
   * ```
   */
  set(name: string, value: string): void;

  /**
   * Adds one more value to a header, keeping the existing ones.
   *
   * @example
   * ```ts
   * res.headers.append("set-cookie", "seen=1");
   * ```
   */
  append(name: string, value: string): void;

  /**
   * Removes every value of a header; nothing happens when it is absent.
   *
   * @example
   * ```ts
   * req.headers.delete("authorization");
   * ```
   */
  delete(name: string): void;
}

/**
 * The whole body of a request or response. Reading it holds the message
 * until the end of the stream and buffers it up to the buffer limit (over
 * the limit: 413 on requests, 500 on responses). Data consumed this way is
 * not passed to the `on*Data` hooks.
 *
 * @example
 * ```ts
 * async onRequest(req, ctx) {
 *   const payload = await req.body.json<{ user?: string }>();
 *   if (!payload.user) return ctx.respond(400);
 * }
 * ```
 */
export interface Body {
  /**
   * The whole body decoded as UTF-8.
   *
   * @example
   * ```ts
   * const text = await req.body.text();
   * ```
   */
  text(): Promise<string>;

  /**
   * The whole body parsed as JSON. The type argument is not checked at run
   * time: validate what you rely on.
   *
   * @example
   * ```ts
   * const order = await req.body.json<{ id: number }>();
   * ```
   */
  json<T = unknown>(): Promise<T>;

  /**
   * The whole body as bytes (a copy).
   *
   * @example
   * ```ts
   * const bytes = await res.body.bytes();
   * ctx.log.debug("response size", bytes.length);
   * ```
   */
  bytes(): Promise<Uint8Array>;

  /**
   * Replaces the whole body. Only valid once the body has been buffered,
   * that is after one of the reads above has settled. A message that came
   * without a body can be given one (the read resolves `""`);
   * `content-length` follows the new body.
   *
   * @example
   * ```ts
   * const text = await res.body.text();
   * res.body.replace(text.toUpperCase());
   * ```
   */
  replace(data: BodyData): void;
}

/**
 * One piece of a streamed body, given to `onRequestData` and
 * `onResponseData`. Nothing is copied until `text()` or `bytes()` is called.
 * A filter that changes sizes of a body that may come in several pieces
 * deletes `content-length` first (in `onResponse`/`onRequest`): once it went
 * on unchanged with the first piece, a later size change throws.
 *
 * @example
 * ```ts
 * onResponse(res) {
 *   res.headers.delete("content-length");
 * },
 * onResponseData(chunk) {
 *   if (chunk.endOfStream) chunk.append("\n<!-- served by envoy-js -->");
 * }
 * ```
 */
export interface Chunk {
  /**
   * Size of the chunk in bytes.
   *
   * @example
   * ```ts
   * ctx.metrics.bytesIn.record(chunk.size);
   * ```
   */
  readonly size: number;

  /**
   * Whether this is the last chunk of the body (no trailers follow when
   * `true`).
   *
   * @example
   * ```ts
   * if (chunk.endOfStream) ctx.log.debug("body complete");
   * ```
   */
  readonly endOfStream: boolean;

  /**
   * The chunk decoded as UTF-8 (a copy, made now). A multi-byte character
   * split across two chunks decodes as replacement characters: read the
   * whole body instead when that matters.
   *
   * @example
   * ```ts
   * if (chunk.text().includes("password")) return ctx.respond(400);
   * ```
   */
  text(): string;

  /**
   * The chunk's bytes (a copy, made now).
   *
   * @example
   * ```ts
   * const first = chunk.bytes()[0];
   * ```
   */
  bytes(): Uint8Array;

  /**
   * Replaces the chunk's content. Throws a `TypeError` when that would
   * change the size of a body whose `content-length` already went on
   * unchanged (delete `content-length` in `onRequest`/`onResponse` first).
   *
   * @example
   * ```ts
   * chunk.replace(chunk.text().replaceAll("secret", "******"));
   * ```
   */
  replace(data: BodyData): void;

  /**
   * Adds data after the chunk's content.
   *
   * @example
   * ```ts
   * if (chunk.endOfStream) chunk.append("]");
   * ```
   */
  append(data: BodyData): void;

  /**
   * Adds data before the chunk's content.
   *
   * @example
   * ```ts
   * chunk.prepend("[");
   * ```
   */
  prepend(data: BodyData): void;

  /**
   * Empties the chunk: nothing of it is passed on.
   *
   * @example
   * ```ts
   * onResponseData(chunk) { chunk.clear(); }
   * ```
   */
  clear(): void;

  /**
   * Gives a message that ends without trailers a set of trailers to fill,
   * and returns them (called again, the same trailers). Only on the last
   * chunk (`endOfStream`) and before the hook's first `await`: Envoy adds
   * trailers only inside the data callback that ends the message. They go
   * after the body; the next filters and the peer see them. Throws a
   * `TypeError` elsewhere, and on the Envoy dynamic module, whose ABI has no
   * call for adding trailers (the native extension and the test engine can).
   *
   * @example
   * ```ts
   * onResponseData(chunk) {
   *   size += chunk.size;
   *   if (chunk.endOfStream) chunk.addTrailers().set("x-body-bytes", String(size));
   * }
   * ```
   */
  addTrailers(): Headers;

  /**
   * Keeps this chunk, and everything held before it, in Envoy's buffer
   * instead of passing it on, and shows the data hook the next chunk
   * (Envoy's `StopIterationAndBuffer`). Return its value from the data hook.
   * The held body goes on when a later data hook returns nothing (with that
   * hook's edits to its own chunk), or with the trailers. Throws a
   * `TypeError` on the last chunk (`endOfStream`), where nothing follows.
   * A held body counts against `buffer_limit_bytes` (over it: 413 for a
   * request, 500 for a response).
   *
   * @example
   * ```ts
   * onRequestData(chunk, ctx) {
   *   seen += chunk.text();
   *   if (!seen.includes("\n") && !chunk.endOfStream) return chunk.hold();
   *   // the first line is complete: the held chunks and this one go on
   * }
   * ```
   */
  hold(): BodyHold;
}

declare const bodyHoldBrand: unique symbol;

/**
 * An opaque value returned by `chunk.hold()`. Returning it from
 * `onRequestData` or `onResponseData` keeps the body so far in Envoy's
 * buffer and asks for the next chunk. Only the engine creates one.
 *
 * @example
 * ```ts
 * onResponseData(chunk): BodyHold | void {
 *   if (!chunk.endOfStream) return chunk.hold();
 * }
 * ```
 */
export interface BodyHold {
  /** Brand: makes the type opaque; not present at run time. */
  readonly [bodyHoldBrand]: "BodyHold";
}

// ---------------------------------------------------------------------------
// Request and response
// ---------------------------------------------------------------------------

/**
 * The request as seen by `onRequest`. `method`, `path`, `authority` and
 * `scheme` read the pseudo-headers; to change one, set the pseudo-header
 * (`req.headers.set(":path", ...)`).
 *
 * @example
 * ```ts
 * onRequest(req, ctx) {
 *   if (req.method === "DELETE" && req.path.startsWith("/admin")) return ctx.respond(403);
 * }
 * ```
 */
export interface Request {
  /**
   * The `:method` pseudo-header, e.g. `"GET"`.
   *
   * @example
   * ```ts
   * if (req.method !== "POST") return ctx.respond(405);
   * ```
   */
  readonly method: string;

  /**
   * The `:path` pseudo-header, query string included.
   *
   * @example
   * ```ts
   * const [pathname, query = ""] = req.path.split("?", 2);
   * ```
   */
  readonly path: string;

  /**
   * The `:authority` pseudo-header (the `host` header in HTTP/1).
   *
   * @example
   * ```ts
   * if (req.authority.endsWith(".internal")) return ctx.respond(404);
   * ```
   */
  readonly authority: string;

  /**
   * The `:scheme` pseudo-header, `"http"` or `"https"`.
   *
   * @example
   * ```ts
   * if (req.scheme !== "https") return ctx.respond(426);
   * ```
   */
  readonly scheme: string;

  /**
   * The request headers, a live view.
   *
   * @example
   * ```ts
   * req.headers.set("x-request-start", String(Date.now()));
   * ```
   */
  readonly headers: Headers;

  /**
   * The whole request body.
   *
   * @example
   * ```ts
   * const body = await req.body.text();
   * ```
   */
  readonly body: Body;

  /**
   * `true` when end of stream came with the request headers: the request
   * has no body and no trailers (a GET, usually).
   *
   * @example
   * ```ts
   * if (req.method === "POST" && req.endOfStream) return ctx.respond(411);
   * ```
   */
  readonly endOfStream: boolean;
}

/**
 * The response as seen by `onResponse`.
 *
 * @example
 * ```ts
 * onResponse(res) {
 *   if (res.status >= 500) res.headers.set("cache-control", "no-store");
 * }
 * ```
 */
export interface Response {
  /**
   * The `:status` pseudo-header as a number.
   *
   * @example
   * ```ts
   * if (res.status === 404) ctx.metrics.notFound.inc();
   * ```
   */
  readonly status: number;

  /**
   * The response headers, a live view.
   *
   * @example
   * ```ts
   * res.headers.set("x-filtered-by", "envoy-js");
   * ```
   */
  readonly headers: Headers;

  /**
   * The whole response body.
   *
   * @example
   * ```ts
   * const html = await res.body.text();
   * res.body.replace(html.replace("</body>", "<script src=/rum.js></script></body>"));
   * ```
   */
  readonly body: Body;

  /**
   * `true` when end of stream came with the response headers: the response
   * has no body and no trailers (a 204 or a 304, usually).
   *
   * @example
   * ```ts
   * if (!res.endOfStream) res.headers.set("x-has-body", "1");
   * ```
   */
  readonly endOfStream: boolean;
}

// ---------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------

/**
 * The kinds of metric a filter can declare.
 *
 * @example
 * ```ts
 * const kind: MetricKind = "histogram";
 * ```
 */
export type MetricKind = "counter" | "gauge" | "histogram";

/**
 * A metric with labels (Envoy: tags): its kind and the names of its labels.
 * Each combination of label values is its own series, reached with
 * `labels({...})`. Label names are letters, digits and `_` (not first), at
 * most 8 per metric; see docs/limits.md for the bound on series.
 *
 * @example
 * ```ts
 * const requests = { kind: "counter", labels: ["method", "status"] } as const satisfies LabelledMetricDeclaration;
 * ```
 */
export interface LabelledMetricDeclaration {
  /**
   * The metric's kind.
   *
   * @example
   * ```ts
   * const d: LabelledMetricDeclaration = { kind: "histogram", labels: ["route"] };
   * ```
   */
  readonly kind: MetricKind;
  /**
   * The label names, in the order Envoy tags the series with them.
   *
   * @example
   * ```ts
   * const d: LabelledMetricDeclaration = { kind: "counter", labels: ["method", "status"] };
   * ```
   */
  readonly labels?: readonly string[];
}

/**
 * The static `metrics` declaration of a filter: metric name -> kind, or
 * `{ kind, labels }` for a metric with labels. It is read once when Envoy
 * loads the filter's config, because Envoy can only create metrics then;
 * names (and label names) cannot be added later. Label values can.
 *
 * @example
 * ```ts
 * const metrics = {
 *   rejected: "counter",
 *   inflight: "gauge",
 *   latencyMs: "histogram",
 *   requests: { kind: "counter", labels: ["method", "status"] },
 * } as const satisfies MetricsDeclaration;
 * ```
 */
export type MetricsDeclaration = Readonly<Record<string, MetricKind | LabelledMetricDeclaration>>;

/**
 * A counter: a number that only goes up.
 *
 * @example
 * ```ts
 * ctx.metrics.rejected.inc();
 * ctx.metrics.bytes.inc(chunk.size);
 * ```
 */
export interface Counter {
  /**
   * The declared name.
   *
   * @example
   * ```ts
   * ctx.log.debug("counting", ctx.metrics.requests.name);
   * ```
   */
  readonly name: string;

  /**
   * Adds `n` (default 1). A negative `n`, `NaN` or an infinity is a
   * `RangeError`.
   *
   * @example
   * ```ts
   * ctx.metrics.requests.inc();
   * ```
   */
  inc(n?: number): void;

  /**
   * The counter's value for the whole Envoy process: what the engines of
   * every worker added (and the engines of other filter configs that
   * declare the same name), as Envoy counts it.
   *
   * @example
   * ```ts
   * if (ctx.metrics.rejected.value > 1000) ctx.log.warn("many rejections");
   * ```
   */
  readonly value: number;
}

/**
 * A gauge: a value that is set, or moved up and down. Each worker's engine
 * holds its own share; Envoy's gauge (and `value`) is the sum of the shares
 * of every live engine, never below 0.
 *
 * @example
 * ```ts
 * ctx.metrics.queueDepth.set(queue.length);
 * ```
 */
export interface Gauge {
  /**
   * The declared name.
   *
   * @example
   * ```ts
   * ctx.log.debug("setting", ctx.metrics.inflight.name);
   * ```
   */
  readonly name: string;

  /**
   * Sets this worker engine's share of the gauge (0 when `v` is absent;
   * `NaN` or an infinity is a `RangeError`).
   *
   * @example
   * ```ts
   * ctx.metrics.cacheSize.set(cache.size);
   * ```
   */
  set(v: number): void;

  /**
   * Adds `n` (default 1) to this engine's share (`NaN` or an infinite `n` is
   * a `RangeError`).
   *
   * @example
   * ```ts
   * ctx.metrics.inflight.inc();
   * ```
   */
  inc(n?: number): void;

  /**
   * Takes `n` (default 1) from this engine's share; the share may go below 0
   * (another worker's engine may have done the `inc`), the gauge never does.
   *
   * @example
   * ```ts
   * onDone(ctx) { ctx.metrics.inflight.dec(); }
   * ```
   */
  dec(n?: number): void;

  /**
   * The gauge's value for the whole Envoy process: the sum of the shares of
   * every worker's engine, as Envoy shows it.
   *
   * @example
   * ```ts
   * if (ctx.metrics.inflight.value > 100) return ctx.respond(503);
   * ```
   */
  readonly value: number;
}

/**
 * A histogram: a distribution of recorded values.
 *
 * @example
 * ```ts
 * ctx.metrics.latencyMs.record(performance.now() - start);
 * ```
 */
export interface Histogram {
  /**
   * The declared name.
   *
   * @example
   * ```ts
   * ctx.log.debug("recording", ctx.metrics.latencyMs.name);
   * ```
   */
  readonly name: string;

  /**
   * Records one value (`NaN` or an infinity is a `RangeError`).
   *
   * @example
   * ```ts
   * ctx.metrics.bodySize.record(chunk.size);
   * ```
   */
  record(v: number): void;
}

/**
 * A metric declared with labels: it records nothing itself; `labels({...})`
 * gives the handle of one series (one combination of label values), which
 * records and reads like a metric without labels. Recording on the metric
 * itself is a `TypeError`.
 *
 * @example
 * ```ts
 * // metrics: { requests: { kind: "counter", labels: ["method", "status"] } }
 * ctx.metrics.requests.labels({ method: req.method, status: "200" }).inc();
 * ```
 */
export interface LabelledMetric<T, L extends string = string> {
  /**
   * The declared name.
   *
   * @example
   * ```ts
   * ctx.log.debug("counting", ctx.metrics.requests.name);
   * ```
   */
  readonly name: string;

  /**
   * The series of one combination of label values: every declared label,
   * and no other, with a string (or number) value of 1 to 128 bytes. A
   * missing or unknown label is a `TypeError` naming the metric and its
   * labels; a metric has at most 100 distinct combinations in the process
   * (a `RangeError` beyond). Keep a series handle to reuse it.
   *
   * @example
   * ```ts
   * const ok = ctx.metrics.requests.labels({ method: "GET", status: "200" });
   * ok.inc();
   * ctx.log.info("GET 200 so far", ok.value);
   * ```
   */
  labels(values: Readonly<Record<L, string | number>>): T;
}

/**
 * The handle type of one metric kind, without labels.
 *
 * @example
 * ```ts
 * type C = KindFor<"counter">; // Counter
 * ```
 */
export type KindFor<K extends MetricKind> = K extends "counter"
  ? Counter
  : K extends "gauge"
    ? Gauge
    : K extends "histogram"
      ? Histogram
      : never;

/**
 * The handle type of one metric declaration: a kind, or `{ kind, labels }`.
 *
 * @example
 * ```ts
 * type C = MetricFor<"counter">; // Counter
 * type R = MetricFor<{ kind: "counter"; labels: readonly ["method"] }>; // LabelledMetric<Counter, "method">
 * ```
 */
export type MetricFor<D extends MetricKind | LabelledMetricDeclaration> = D extends MetricKind
  ? KindFor<D>
  : D extends { readonly kind: infer K extends MetricKind; readonly labels: readonly (infer L extends string)[] }
    ? LabelledMetric<KindFor<K>, L>
    : D extends { readonly kind: infer K extends MetricKind }
      ? KindFor<K>
      : never;

/**
 * `ctx.metrics`: one handle per declared metric name, of the declared kind.
 * When the filter's metric names are not known to the type checker (an
 * explicit `Config` type argument without a `Metrics` one), every name is
 * accepted and offers every method; at run time an undeclared name is
 * `undefined`, so using it throws a `TypeError`.
 *
 * @example
 * ```ts
 * type M = Metrics<{ rejected: "counter" }>; // { readonly rejected: Counter }
 * ```
 */
export type Metrics<M extends MetricsDeclaration> = string extends keyof M
  ? { readonly [name: string]: Counter & Gauge & Histogram & LabelledMetric<Counter & Gauge & Histogram> }
  : { readonly [K in keyof M]: MetricFor<M[K]> };

// ---------------------------------------------------------------------------
// Local replies and fetch
// ---------------------------------------------------------------------------

declare const localReplyBrand: unique symbol;

/**
 * An opaque value returned by `ctx.respond(...)`. Returning it from a hook
 * sends the local reply instead of continuing the stream. Only the engine
 * creates one.
 *
 * @example
 * ```ts
 * onRequest(req, ctx): LocalReply | void {
 *   if (req.method === "TRACE") return ctx.respond(405);
 * }
 * ```
 */
export interface LocalReply {
  /** Brand: makes the type opaque; not present at run time. */
  readonly [localReplyBrand]: "LocalReply";
}

/**
 * Options of `ctx.respond`.
 *
 * @example
 * ```ts
 * const init: LocalReplyInit = {
 *   body: JSON.stringify({ error: "forbidden" }),
 *   headers: { "content-type": "application/json" },
 *   details: "policy_denied",
 * };
 * return ctx.respond(403, init);
 * ```
 */
export interface LocalReplyInit {
  /**
   * Response body. Empty when absent.
   *
   * @example
   * ```ts
   * return ctx.respond(401, { body: "missing x-api-key" });
   * ```
   */
  body?: BodyData | undefined;

  /**
   * Extra response headers.
   *
   * @example
   * ```ts
   * return ctx.respond(429, { headers: { "retry-after": "1" } });
   * ```
   */
  headers?: HeadersInit | undefined;

  /**
   * Response code details, shown in Envoy's access log
   * (`%RESPONSE_CODE_DETAILS%`). Use lower-case words joined by `_`.
   *
   * @example
   * ```ts
   * return ctx.respond(403, { details: "envoy_js_denied" });
   * ```
   */
  details?: string | undefined;
}

/**
 * The request that `ctx.fetch` sends to an Envoy cluster.
 *
 * @example
 * ```ts
 * const init: FetchInit = { method: "POST", path: "/check", body: "{}", timeoutMs: 200 };
 * const r = await ctx.fetch("authz", init);
 * ```
 */
export interface FetchInit {
  /**
   * HTTP method; `"GET"` when absent.
   *
   * @example
   * ```ts
   * await ctx.fetch("audit", { method: "PUT", path: "/log", body: line });
   * ```
   */
  method?: string | undefined;

  /**
   * Request path, query string included.
   *
   * @example
   * ```ts
   * await ctx.fetch("users", { path: "/users/" + encodeURIComponent(id) });
   * ```
   */
  path: string;

  /**
   * The `:authority` (host) of the request; the cluster's name when absent.
   *
   * @example
   * ```ts
   * await ctx.fetch("authz", { path: "/check", authority: "authz.internal" });
   * ```
   */
  authority?: string | undefined;

  /**
   * Request headers.
   *
   * @example
   * ```ts
   * await ctx.fetch("authz", { path: "/check", headers: { authorization: token } });
   * ```
   */
  headers?: HeadersInit | undefined;

  /**
   * Request body.
   *
   * @example
   * ```ts
   * await ctx.fetch("authz", { method: "POST", path: "/check", body: JSON.stringify({ token }) });
   * ```
   */
  body?: BodyData | undefined;

  /**
   * Timeout in milliseconds, from 1 to 300000 (default 5000); when it expires the promise
   * rejects with a {@link FetchError} of code `timeout`.
   *
   * @example
   * ```ts
   * await ctx.fetch("authz", { path: "/check", timeoutMs: 250 });
   * ```
   */
  timeoutMs?: number | undefined;
}

/**
 * The response to `ctx.fetch`, fully received.
 *
 * @example
 * ```ts
 * const r = await ctx.fetch("authz", { path: "/check" });
 * if (r.status !== 200) return ctx.respond(403);
 * const who = await r.json<{ user: string }>();
 * ```
 */
export interface FetchResponse {
  /**
   * HTTP status code.
   *
   * @example
   * ```ts
   * if (r.status >= 500) ctx.metrics.authzErrors.inc();
   * ```
   */
  readonly status: number;

  /**
   * Response headers (read-only).
   *
   * @example
   * ```ts
   * const user = r.headers.get("x-user");
   * ```
   */
  readonly headers: ReadonlyHeaders;

  /**
   * The body decoded as UTF-8.
   *
   * @example
   * ```ts
   * ctx.log.debug(await r.text());
   * ```
   */
  text(): Promise<string>;

  /**
   * The body parsed as JSON (the type argument is not checked at run time).
   *
   * @example
   * ```ts
   * const { allowed } = await r.json<{ allowed: boolean }>();
   * ```
   */
  json<T = unknown>(): Promise<T>;

  /**
   * The body as bytes.
   *
   * @example
   * ```ts
   * const raw = await r.bytes();
   * ```
   */
  bytes(): Promise<Uint8Array>;
}

/**
 * Why a `ctx.fetch` callout failed:
 *
 * - `unknown_cluster`: Envoy has no cluster of that name;
 * - `cannot_create`: Envoy could not start the callout;
 * - `reset`: the callout was reset before a response;
 * - `timeout`: no response within `timeoutMs`;
 * - `response_too_large`: the response body is over `buffer_limit_bytes`.
 *
 * @example
 * ```ts
 * const retry = (code: FetchErrorCode) => code === "reset" || code === "timeout";
 * ```
 */
export type FetchErrorCode = "unknown_cluster" | "cannot_create" | "reset" | "timeout" | "response_too_large";

/**
 * The error `ctx.fetch` rejects with when a callout fails. A non-2xx answer is
 * not an error: it resolves with its status.
 *
 * @example
 * ```ts
 * try {
 *   await ctx.fetch("authz", { path: "/check", timeoutMs: 200 });
 * } catch (e) {
 *   const err = e as FetchError;
 *   if (err.name === "FetchError") return ctx.respond(503, { body: err.code });
 *   throw e;
 * }
 * ```
 */
export interface FetchError extends Error {
  /**
   * Always `"FetchError"`.
   *
   * @example
   * ```ts
   * if ((e as FetchError).name === "FetchError") ctx.metrics.authzFailures.inc();
   * ```
   */
  readonly name: "FetchError";

  /**
   * Why the callout failed.
   *
   * @example
   * ```ts
   * if ((e as FetchError).code === "timeout") ctx.log.warn("authz is slow");
   * ```
   */
  readonly code: FetchErrorCode;
}

// ---------------------------------------------------------------------------
// Context
// ---------------------------------------------------------------------------

/**
 * `ctx.log`: writes to Envoy's log at the given level. Arguments are
 * formatted like `console.log` does.
 *
 * @example
 * ```ts
 * ctx.log.info("rejected", req.path);
 * ```
 */
export interface Logger {
  /**
   * Logs at `trace` level.
   *
   * @example
   * ```ts
   * ctx.log.trace("chunk", chunk.size);
   * ```
   */
  trace(...data: unknown[]): void;

  /**
   * Logs at `debug` level.
   *
   * @example
   * ```ts
   * ctx.log.debug("config", ctx.config);
   * ```
   */
  debug(...data: unknown[]): void;

  /**
   * Logs at `info` level.
   *
   * @example
   * ```ts
   * ctx.log.info("user", user);
   * ```
   */
  info(...data: unknown[]): void;

  /**
   * Logs at `warn` level.
   *
   * @example
   * ```ts
   * ctx.log.warn("authz slow", ms);
   * ```
   */
  warn(...data: unknown[]): void;

  /**
   * Logs at `error` level.
   *
   * @example
   * ```ts
   * ctx.log.error("bad payload", err);
   * ```
   */
  error(...data: unknown[]): void;
}

/**
 * `ctx.metadata`: the stream's dynamic metadata, readable by later filters
 * and by the access log.
 *
 * @example
 * ```ts
 * ctx.metadata.set("envoy_js.auth", "user", "bob");
 * const user = ctx.metadata.get("envoy_js.auth", "user");
 * ```
 */
export interface DynamicMetadata {
  /**
   * The value under `key` in namespace `ns`, or `undefined` when absent.
   *
   * @example
   * ```ts
   * const tier = ctx.metadata.get("envoy.lb", "tier");
   * ```
   */
  get(ns: string, key: string): MetadataValue | undefined;

  /**
   * Sets the value under `key` in namespace `ns`.
   *
   * @example
   * ```ts
   * ctx.metadata.set("envoy_js.auth", "roles", ["admin", "ops"]);
   * ```
   */
  set(ns: string, key: string, value: MetadataValue): void;
}

/**
 * `ctx.filterState`: the stream's filter state, as strings.
 *
 * @example
 * ```ts
 * ctx.filterState.set("envoy_js.tenant", tenant);
 * ```
 */
export interface FilterState {
  /**
   * The value stored under `key`, or `undefined` when absent.
   *
   * @example
   * ```ts
   * const tenant = ctx.filterState.get("envoy_js.tenant") ?? "default";
   * ```
   */
  get(key: string): string | undefined;

  /**
   * Stores a value under `key`.
   *
   * @example
   * ```ts
   * ctx.filterState.set("envoy_js.tenant", "acme");
   * ```
   */
  set(key: string, value: string): void;
}

/**
 * An entry of the shared store: its value and its version.
 *
 * @example
 * ```ts
 * const e: SharedEntry | null = ctx.shared.get("jwks");
 * if (e) ctx.log.debug("jwks version", e.version);
 * ```
 */
export interface SharedEntry {
  /**
   * The stored string.
   *
   * @example
   * ```ts
   * const keys = JSON.parse(ctx.shared.get("jwks")?.value ?? "[]");
   * ```
   */
  readonly value: string;

  /**
   * The version of this value: a new, larger number on every write of the
   * namespace. Give it back to `set` or `delete` to write only if nobody
   * wrote meanwhile.
   *
   * @example
   * ```ts
   * const e = ctx.shared.get("hits");
   * ctx.shared.set("hits", String(Number(e?.value ?? 0) + 1), e?.version ?? 0);
   * ```
   */
  readonly version: number;
}

/**
 * What `set` and `delete` of the shared store answer.
 *
 * @example
 * ```ts
 * const r: SharedWriteResult = ctx.shared.set("leader", "w1", 0);
 * ```
 */
export interface SharedWriteResult {
  /**
   * `false` when an expected version was given and the entry has another
   * one: nothing was written.
   *
   * @example
   * ```ts
   * if (!ctx.shared.set("k", "v", seen.version).ok) ctx.log.debug("lost the race");
   * ```
   */
  readonly ok: boolean;

  /**
   * On success the new version (0 after a delete); on a mismatch the
   * entry's current version (0 when it is absent).
   *
   * @example
   * ```ts
   * const { version } = ctx.shared.set("k", "v");
   * ```
   */
  readonly version: number;
}

/**
 * `ctx.shared` and `worker.shared`: a key-value store shared by the engines
 * of every Envoy worker in the process (proxy-wasm's shared data). Keys and
 * values are strings; each write gives the entry a new version, and a write
 * can be made conditional on the version read (compare-and-swap). One
 * namespace per filter bundle file: the filter configs that load the same
 * bundle share it. Bounded (docs/limits.md): over a limit, `set` throws a
 * `RangeError` that says which.
 *
 * @example
 * ```ts
 * for (;;) {
 *   const e = ctx.shared.get("count");
 *   const next = String(Number(e?.value ?? 0) + 1);
 *   if (ctx.shared.set("count", next, e?.version ?? 0).ok) break;
 * }
 * ```
 */
export interface SharedData {
  /**
   * The entry under `key`, or `null`.
   *
   * @example
   * ```ts
   * const token = ctx.shared.get("token")?.value;
   * ```
   */
  get(key: string): SharedEntry | null;

  /**
   * Stores `value` under `key`. With `expectedVersion`, only if the entry
   * still has that version (`0`: only if the key is absent); otherwise
   * nothing is written and the result has `ok: false`.
   *
   * @example
   * ```ts
   * ctx.shared.set("config", JSON.stringify(config));
   * ```
   */
  set(key: string, value: string, expectedVersion?: number): SharedWriteResult;

  /**
   * Removes `key` (under the same rule for `expectedVersion`). Removing a
   * key that is absent succeeds.
   *
   * @example
   * ```ts
   * ctx.shared.delete("lock", mine.version);
   * ```
   */
  delete(key: string, expectedVersion?: number): SharedWriteResult;
}

/**
 * The names `ctx.property(name)` knows: Envoy's attribute names.
 *
 * @example
 * ```ts
 * const name: PropertyName = "upstream.address";
 * ```
 */
export type PropertyName =
  | "request.id"
  | "request.protocol"
  | "source.address"
  | "source.port"
  | "destination.address"
  | "destination.port"
  | "connection.id"
  | "connection.requested_server_name"
  | "upstream.address"
  | "upstream.port"
  | "upstream.request_attempt_count"
  | "xds.cluster_name"
  | "xds.route_name"
  | "xds.virtual_host_name"
  | "xds.virtual_cluster_name"
  | "xds.filter_chain_name"
  | "response.code"
  | "response.code_details"
  | "response.flags";

/**
 * `ctx.stream`: facts about the stream and the connection it came on.
 *
 * @example
 * ```ts
 * ctx.log.info(ctx.stream.id, ctx.stream.protocol, ctx.stream.remoteAddress);
 * ```
 */
export interface StreamInfo {
  /**
   * The stream's request id: in Envoy the `x-request-id` it uses for the stream (a UUID
   * that Envoy makes when the client sends none or is not trusted), or, when Envoy has none,
   * a number the host makes up; the scripted host of the wasm engine numbers streams
   * `"1"`, `"2"`, ... unless the scenario's `stream.id` says otherwise.
   *
   * @example
   * ```ts
   * req.headers.set("x-envoy-js-stream", ctx.stream.id);
   * ```
   */
  readonly id: string;

  /**
   * Downstream protocol: `"HTTP/1.0"`, `"HTTP/1.1"`, `"HTTP/2"` or `"HTTP/3"`.
   *
   * @example
   * ```ts
   * if (ctx.stream.protocol === "HTTP/1.0") return ctx.respond(505);
   * ```
   */
  readonly protocol: string;

  /**
   * Downstream remote address, `ip:port`.
   *
   * @example
   * ```ts
   * const ip = ctx.stream.remoteAddress.replace(/:\d+$/, "");
   * ```
   */
  readonly remoteAddress: string;

  /**
   * Downstream local address (the listener side), `ip:port`.
   *
   * @example
   * ```ts
   * ctx.log.debug("via", ctx.stream.localAddress);
   * ```
   */
  readonly localAddress: string;

  /**
   * Name of the selected route; empty when the route has no name or there is
   * no route.
   *
   * @example
   * ```ts
   * if (ctx.stream.routeName === "admin") ctx.metrics.admin.inc();
   * ```
   */
  readonly routeName: string;

  /**
   * Index of the Envoy worker thread running this stream.
   *
   * @example
   * ```ts
   * ctx.log.trace("worker", ctx.stream.workerIndex);
   * ```
   */
  readonly workerIndex: number;
}

/**
 * How a hook sees the config: read-only, and `unknown` (not `{}`) when no
 * config type was given.
 *
 * @example
 * ```ts
 * type A = ConfigView<{ header: string }>; // { readonly header: string }
 * type B = ConfigView<unknown>;            // unknown
 * ```
 */
export type ConfigView<Config> = 0 extends 1 & Config
  ? Config // any stays any
  : unknown extends Config
    ? unknown
    : Readonly<Config>;

/**
 * The second argument of every hook.
 *
 * @typeParam Config - the filter's config (JSON from the Envoy config).
 * @typeParam Worker - what `setup` returned.
 * @typeParam M - the filter's `metrics` declaration.
 *
 * @example
 * ```ts
 * function reject(ctx: Context<{ header: string }>) {
 *   return ctx.respond(401, { body: "missing " + ctx.config.header });
 * }
 * ```
 */
export interface Context<Config = unknown, Worker = unknown, M extends MetricsDeclaration = MetricsDeclaration> {
  /**
   * The filter's config: the JSON from the Envoy config, with the per-route
   * override merged in. Read-only.
   *
   * @example
   * ```ts
   * if (!req.headers.has(ctx.config.header)) return ctx.respond(401);
   * ```
   */
  readonly config: ConfigView<Config>;

  /**
   * What `setup` returned on this worker (one value per worker, shared by
   * all its streams; `undefined` when there is no `setup`).
   *
   * @example
   * ```ts
   * ctx.worker.seen++;
   * ```
   */
  readonly worker: Worker;

  /**
   * The metrics declared in the filter's `metrics` property, by name.
   *
   * @example
   * ```ts
   * ctx.metrics.rejected.inc();
   * ```
   */
  readonly metrics: Metrics<M>;

  /**
   * Builds a local reply. Return it from the hook to answer the client
   * directly instead of continuing the stream.
   *
   * @example
   * ```ts
   * return ctx.respond(401, { body: "missing key", headers: { "www-authenticate": "Key" } });
   * ```
   */
  respond(status: number, init?: LocalReplyInit): LocalReply;

  /**
   * Sends an HTTP request to an Envoy cluster and resolves with the whole
   * response, whatever its status. Rejects with a {@link FetchError} when the
   * callout fails (see {@link FetchErrorCode}), with a `TypeError` when `init`
   * is invalid, and with an error named `StreamGone` when the stream went away.
   *
   * @example
   * ```ts
   * const r = await ctx.fetch("authz", { method: "POST", path: "/check", body: await req.body.text() });
   * if (r.status !== 200) return ctx.respond(403);
   * ```
   */
  fetch(cluster: string, init: FetchInit): Promise<FetchResponse>;

  /**
   * Envoy's log, per level.
   *
   * @example
   * ```ts
   * ctx.log.warn("slow upstream", ms);
   * ```
   */
  readonly log: Logger;

  /**
   * The stream's dynamic metadata.
   *
   * @example
   * ```ts
   * ctx.metadata.set("envoy_js.auth", "user", user);
   * ```
   */
  readonly metadata: DynamicMetadata;

  /**
   * The stream's filter state.
   *
   * @example
   * ```ts
   * ctx.filterState.set("envoy_js.tenant", tenant);
   * ```
   */
  readonly filterState: FilterState;

  /**
   * Facts about the stream.
   *
   * @example
   * ```ts
   * ctx.log.info("stream", ctx.stream.id);
   * ```
   */
  readonly stream: StreamInfo;

  /**
   * One fact Envoy keeps about the stream, read now (it can change as the
   * stream goes on): a string or a number, or `null` when Envoy does not
   * have it, or not yet (the upstream host before one answered, the
   * response code before a response). An unknown name is a `TypeError`.
   * See docs/api.md for each name and each host.
   *
   * @example
   * ```ts
   * onResponse(res, ctx) {
   *   res.headers.set("x-upstream", String(ctx.property("upstream.address")));
   * }
   * ```
   */
  property(name: PropertyName): string | number | null;

  /**
   * The selected route's metadata (the route's `metadata.filter_metadata`
   * in the Envoy config) under `key` in namespace `ns`, or `undefined`.
   * Read-only. Through the dynamic module only strings, numbers and
   * booleans can be read (Envoy's ABI); a list or an object is `undefined`
   * there.
   *
   * @example
   * ```ts
   * const tier = ctx.routeMetadata("envoy_js.limits", "tier") ?? "free";
   * ```
   */
  routeMetadata(ns: string, key: string): MetadataValue | undefined;

  /**
   * The key-value store shared by every worker of the process.
   *
   * @example
   * ```ts
   * const flags = JSON.parse(ctx.shared.get("flags")?.value ?? "{}");
   * ```
   */
  readonly shared: SharedData;

  /**
   * Tells Envoy to pick the route again, after a change to headers the
   * route matches on. The next `ctx.config` read follows the route picked
   * then (its per-route config; the filter's own config when the new route
   * has none or disables the filter, which keeps running on this stream).
   * See also `rerouteOnHeaderChange`.
   *
   * @example
   * ```ts
   * req.headers.set(":path", "/v2" + req.path);
   * ctx.clearRouteCache();
   * ```
   */
  clearRouteCache(): void;

  /**
   * Asks Envoy's load balancer to send this request to one host of the
   * route's cluster: an IP address with an optional port (`"10.0.0.7:8080"`,
   * `"[::1]:8080"`), as in the cluster's endpoints (Envoy's
   * `setUpstreamOverrideHost`, the Go filter's `SetUpstreamOverrideHost`).
   * When that host is not in the cluster (or not usable), the load balancer
   * picks as usual, unless `strict` is set: then Envoy answers 503. Call it
   * before the request headers go on (in `onRequest`); a `TypeError`
   * afterwards, and for anything but an IP address. The last call wins.
   *
   * @example
   * ```ts
   * const pinned = ctx.worker.sessions.get(req.headers.get("x-session") ?? "");
   * if (pinned) ctx.setUpstreamOverrideHost(pinned, { strict: true });
   * ```
   */
  setUpstreamOverrideHost(host: string, options?: { strict?: boolean }): void;

  /**
   * `true` once the stream is gone (the client went away or Envoy reset
   * it). From then on host calls do nothing or throw `StreamGone`; check
   * this after an `await` before doing more work.
   *
   * @example
   * ```ts
   * const r = await ctx.fetch("authz", { path: "/check" });
   * if (ctx.aborted) return;
   * ```
   */
  readonly aborted: boolean;
}

/**
 * The context of `onDone`: the stream is complete, so nothing can be sent
 * or fetched any more. Metrics, logs, metadata and stream facts remain.
 *
 * @example
 * ```ts
 * onDone(ctx) {
 *   ctx.metrics.streams.inc();
 * }
 * ```
 */
export type DoneContext<Config = unknown, Worker = unknown, M extends MetricsDeclaration = MetricsDeclaration> = Omit<
  Context<Config, Worker, M>,
  "respond" | "fetch" | "clearRouteCache" | "setUpstreamOverrideHost"
>;

// ---------------------------------------------------------------------------
// Filter definition
// ---------------------------------------------------------------------------

/**
 * What a hook may return: nothing (continue the stream) or a local reply,
 * either directly or through a promise. A throw or a rejection goes to the
 * filter's failure policy.
 *
 * @example
 * ```ts
 * const hook = (req: Request, ctx: Context): HookResult =>
 *   req.method === "TRACE" ? ctx.respond(405) : undefined;
 * ```
 */
export type HookResult = void | LocalReply | Promise<void | LocalReply>;

/**
 * What a data hook (`onRequestData`, `onResponseData`) may return: what
 * any hook may, or `chunk.hold()` to keep the body so far buffered and see
 * the next chunk.
 *
 * @example
 * ```ts
 * const hook = (chunk: Chunk): DataHookResult =>
 *   chunk.endOfStream ? undefined : chunk.hold();
 * ```
 */
export type DataHookResult = void | LocalReply | BodyHold | Promise<void | LocalReply | BodyHold>;

/**
 * Facts about the worker engine, given to `setup`.
 *
 * @example
 * ```ts
 * setup(config, worker) {
 *   return { shard: worker.index % 4 };
 * }
 * ```
 */
export interface WorkerInfo {
  /**
   * Index of the Envoy worker thread this engine runs on.
   *
   * @example
   * ```ts
   * setup(config, worker) { console.log("worker", worker.index); }
   * ```
   */
  readonly index: number;

  /**
   * The key-value store shared by every worker of the process (the same as
   * `ctx.shared`), for `setup` and the timers it starts.
   *
   * @example
   * ```ts
   * setup(config, worker) {
   *   setInterval(() => worker.shared.set("beat", String(Date.now())), 10_000);
   * }
   * ```
   */
  readonly shared: SharedData;
}

/**
 * A filter: the default export of a filter's entry file. Every property is
 * optional.
 *
 * @typeParam Config - the filter's config (JSON from the Envoy config).
 * @typeParam Worker - what `setup` returns.
 * @typeParam M - the `metrics` declaration.
 *
 * @example
 * ```ts
 * const filter: FilterDefinition<{ header: string }> = {
 *   onRequest(req, ctx) {
 *     if (!req.headers.has(ctx.config.header)) return ctx.respond(401);
 *   },
 * };
 * export default filter;
 * ```
 */
export interface FilterDefinition<
  Config = unknown,
  Worker = unknown,
  M extends MetricsDeclaration = MetricsDeclaration,
> {
  /**
   * The metrics the filter uses, name -> kind. Read once at config load:
   * Envoy can only create metrics then, so this must be a plain literal.
   *
   * @example
   * ```ts
   * metrics: { rejected: "counter", inflight: "gauge", latencyMs: "histogram" },
   * ```
   */
  readonly metrics?: M;

  /**
   * When `true`, every change the filter makes to the request headers
   * (`set`, `append`, `delete`) clears Envoy's route cache, as Envoy's Wasm
   * filter does: the route, and `ctx.config` with its per-route config,
   * follow the changed headers without a `ctx.clearRouteCache()` call. Off by
   * default: a cleared cache costs Envoy a route match, and most header
   * changes do not concern routing.
   *
   * @example
   * ```ts
   * export default defineFilter({
   *   rerouteOnHeaderChange: true,
   *   onRequest(req) { req.headers.set("x-canary", "1"); }, // a route matching x-canary now wins
   * });
   * ```
   */
  readonly rerouteOnHeaderChange?: boolean;

  /**
   * Runs once per worker engine, before its first stream. What it returns is
   * `ctx.worker` for every stream of that worker: a place for caches and
   * counters that need no locking (each worker has its own).
   *
   * @example
   * ```ts
   * setup(config, worker) {
   *   return { cache: new Map<string, string>() };
   * },
   * ```
   */
  setup?(config: Config, worker: WorkerInfo): Worker;

  /**
   * Work outside any request: runs ONCE PER FILTER CONFIG, in an engine of its
   * own with no stream (in Envoy on the main thread, not on the workers),
   * after the config is accepted; it stops when the config goes away (a
   * reload). Its timers fire with no request in flight and `bg.fetch` calls
   * clusters; results reach the workers through `bg.shared` (their
   * `ctx.shared`). The same `max_heap_bytes` and CPU deadline per callback
   * as the workers apply; a throw, a rejection nothing handles or a runaway
   * callback is logged and counted in `envoy_js.errors`, and later timers go
   * on. Module-level state is not shared with the workers' engines.
   *
   * @example
   * ```ts
   * export default defineFilter({
   *   background(config, bg) {
   *     const refresh = async () => {
   *       const r = await bg.fetch("idp", { path: "/keys", timeoutMs: 2000 });
   *       if (r.status === 200) bg.shared.set("jwks", await r.text());
   *     };
   *     refresh();
   *     setInterval(refresh, 60_000);
   *   },
   *   onRequest(req, ctx) {
   *     const jwks = ctx.shared.get("jwks"); // null until the first refresh landed
   *   },
   * });
   * ```
   */
  background?(config: Config, bg: Background): void | Promise<void>;

  /**
   * Request headers arrived. A pending promise holds the request (its body
   * is buffered meanwhile).
   *
   * Every hook but `onDone` that is declared with exactly one parameter
   * (`onRequest(req) {}`, `length === 1`) is called without `ctx`: the engine
   * does not build it. Rest parameters (`(...args)`) and two parameters get it.
   *
   * @example
   * ```ts
   * async onRequest(req, ctx) {
   *   const r = await ctx.fetch("authz", { path: "/check", headers: { authorization: req.headers.get("authorization") ?? "" } });
   *   if (r.status !== 200) return ctx.respond(403);
   * },
   * ```
   */
  onRequest?(req: Request, ctx: Context<Config, Worker, M>): HookResult;

  /**
   * A piece of the request body arrived (not called for data read through
   * `req.body`).
   *
   * @example
   * ```ts
   * onRequestData(chunk, ctx) {
   *   ctx.metrics.bytesIn.inc(chunk.size);
   * },
   * ```
   */
  onRequestData?(chunk: Chunk, ctx: Context<Config, Worker, M>): DataHookResult;

  /**
   * Request trailers arrived.
   *
   * @example
   * ```ts
   * onRequestTrailers(trailers, ctx) {
   *   if (trailers.get("grpc-status") !== "0") ctx.log.warn("grpc error");
   * },
   * ```
   */
  onRequestTrailers?(trailers: Headers, ctx: Context<Config, Worker, M>): HookResult;

  /**
   * Response headers arrived. Also runs for local replies, the filter's own
   * `ctx.respond(...)` from the request phase included (as Envoy runs a
   * local reply through every encoder filter).
   *
   * @example
   * ```ts
   * onResponse(res) {
   *   res.headers.set("x-filtered-by", "envoy-js");
   * },
   * ```
   */
  onResponse?(res: Response, ctx: Context<Config, Worker, M>): HookResult;

  /**
   * A piece of the response body arrived (not called for data read through
   * `res.body`).
   *
   * @example
   * ```ts
   * onResponseData(chunk) {
   *   chunk.replace(chunk.text().replaceAll("http://", "https://"));
   * },
   * ```
   */
  onResponseData?(chunk: Chunk, ctx: Context<Config, Worker, M>): DataHookResult;

  /**
   * Response trailers arrived.
   *
   * @example
   * ```ts
   * onResponseTrailers(trailers) {
   *   trailers.set("x-checksum", "ok");
   * },
   * ```
   */
  onResponseTrailers?(trailers: Headers, ctx: Context<Config, Worker, M>): HookResult;

  /**
   * The stream is complete (or was reset). Read-only: nothing can be sent.
   *
   * @example
   * ```ts
   * onDone(ctx) {
   *   ctx.metrics.latencyMs.record(performance.now() - ctx.worker.started);
   * },
   * ```
   */
  onDone?(ctx: DoneContext<Config, Worker, M>): void | Promise<void>;
}

/**
 * What `background(config, bg)` gets: the means of a filter config's background engine, which
 * runs with no stream (in Envoy on the main thread, once per filter config). Its results reach
 * the workers' streams through `shared`, the same store as their `ctx.shared`. Timers are the
 * global `setTimeout`/`setInterval`, which fire there whether or not a request is in flight.
 *
 * @example
 * ```ts
 * background(config, bg) {
 *   const refresh = async () => {
 *     const r = await bg.fetch("idp", { path: "/keys", timeoutMs: 2000 });
 *     if (r.status === 200) bg.shared.set("jwks", await r.text());
 *     else bg.log.warn("jwks refresh: status", r.status);
 *   };
 *   refresh();
 *   setInterval(refresh, 60_000);
 * },
 * ```
 */
export interface Background {
  /**
   * An HTTP callout to an Envoy cluster, as `ctx.fetch` (same init, response, errors and
   * limits), without a stream.
   *
   * @example
   * ```ts
   * const r = await bg.fetch("idp", { path: "/keys", timeoutMs: 2000 });
   * ```
   */
  fetch(cluster: string, init: FetchInit): Promise<FetchResponse>;

  /**
   * The process-wide store of this filter: what the workers read as `ctx.shared`.
   *
   * @example
   * ```ts
   * bg.shared.set("jwks", text);
   * ```
   */
  readonly shared: SharedData;

  /**
   * Envoy's log, per level (lines name the filter, not a stream).
   *
   * @example
   * ```ts
   * bg.log.info("keys refreshed");
   * ```
   */
  readonly log: Logger;
}

/**
 * Declares a filter with full types and returns it unchanged: export the
 * result as the entry file's default export.
 *
 * Type arguments are optional. Without any, the worker type is inferred
 * from `setup` and the metric names from `metrics`, so `ctx.metrics.x` only
 * type-checks for declared names; the config type is then taken from
 * `setup`'s `config` parameter annotation, or is `unknown`. With an explicit
 * `Config` (and no `M`), TypeScript infers nothing else: `ctx.worker` is
 * `unknown` unless `Worker` is given too, and metric names are not checked
 * unless `M` is given too.
 *
 * @typeParam Config - the filter's config (JSON from the Envoy config).
 * @typeParam Worker - what `setup` returns.
 * @typeParam M - the `metrics` declaration.
 *
 * @example
 * ```ts
 * import { defineFilter } from "@envoy-js/sdk";
 *
 * export default defineFilter<{ header: string }>({
 *   metrics: { rejected: "counter" },
 *   async onRequest(req, ctx) {
 *     if (!req.headers.has(ctx.config.header)) {
 *       ctx.metrics.rejected.inc();
 *       return ctx.respond(401, { body: "missing " + ctx.config.header });
 *     }
 *   },
 *   onResponse(res) {
 *     res.headers.set("x-filtered-by", "envoy-js");
 *   },
 * });
 * ```
 *
 * @example Metric names checked, config typed through `setup`:
 * ```ts
 * export default defineFilter({
 *   metrics: { rejected: "counter" },
 *   setup(config: { header: string }) {
 *     return { seen: 0 };
 *   },
 *   onRequest(req, ctx) {
 *     ctx.worker.seen++;
 *     ctx.metrics.rejected.inc(); // ctx.metrics.other would not compile
 *   },
 * });
 * ```
 */
export function defineFilter<
  Config = unknown,
  Worker = unknown,
  // No names declared and no config type given: nothing to look up, so any
  // `ctx.metrics.x` is an error. With an explicit Config, TypeScript cannot
  // infer M from `metrics` any more, so fall back to accepting any name.
  // biome-ignore lint/complexity/noBannedTypes: `{}` is the metrics map with no names in it
  const M extends MetricsDeclaration = unknown extends Config ? {} : MetricsDeclaration,
>(def: FilterDefinition<Config, Worker, M>): FilterDefinition<Config, Worker, M> {
  return def;
}
