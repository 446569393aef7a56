// The narrow host interface between the stub's runtime (runtime.ts) and the Envoy-like host
// that plays Envoy's part (scripted-host.ts). It mirrors runtime/host.h of the native engine
// one to one, so that the two state machines can be read side by side.
//
// Lifetime: the host owns a StreamHost until it calls Stream.onDestroy(); after that the
// runtime never calls it again. HeaderMap / BodyBuffer objects are borrowed: the runtime asks
// for them again every time it needs them.

/** Return codes, named as Envoy names them (values as in envoy/http/filter.h). */
export type HeadersStatus =
  | "Continue"
  | "StopIteration"
  | "ContinueAndDontEndStream"
  | "StopAllIterationAndBuffer"
  | "StopAllIterationAndWatermark";
export type DataStatus = "Continue" | "StopIterationAndBuffer" | "StopIterationAndWatermark" | "StopIterationNoBuffer";
export type TrailersStatus = "Continue" | "StopIteration";

/** 0 = request (decoding), 1 = response (encoding). */
export type Direction = 0 | 1;
export const REQUEST: Direction = 0;
export const RESPONSE: Direction = 1;

/** Which header map: request headers, request trailers, response headers, response trailers. */
export type HeaderMapKind = 0 | 1 | 2 | 3;
export const REQUEST_HEADERS: HeaderMapKind = 0;
export const REQUEST_TRAILERS: HeaderMapKind = 1;
export const RESPONSE_HEADERS: HeaderMapKind = 2;
export const RESPONSE_TRAILERS: HeaderMapKind = 3;

export const headersKind = (d: Direction): HeaderMapKind => (d === REQUEST ? REQUEST_HEADERS : RESPONSE_HEADERS);
export const trailersKind = (d: Direction): HeaderMapKind => (d === REQUEST ? REQUEST_TRAILERS : RESPONSE_TRAILERS);
export const directionOf = (k: HeaderMapKind): Direction => (k === REQUEST_HEADERS || k === REQUEST_TRAILERS ? REQUEST : RESPONSE);
export const isTrailers = (k: HeaderMapKind): boolean => k === REQUEST_TRAILERS || k === RESPONSE_TRAILERS;

export type LogLevel = 0 | 1 | 2 | 3 | 4;
export const LOG_LEVEL_NAMES = ["trace", "debug", "info", "warn", "error"] as const;

/** A live header map owned by the host. Names given to it are already lower-case. */
export interface HeaderMap {
  /** Every value of `name`, in order. */
  values(name: string): string[];
  /** Every entry, in order. */
  entries(): Array<[string, string]>;
  readonly size: number;
  /** Replaces every value of `name` with one value. */
  set(name: string, value: string): void;
  append(name: string, value: string): void;
  remove(name: string): void;
}

/**
 * Body bytes owned by the host: the data of the current data callback, or what the host
 * buffered for this filter while it was stopped.
 */
export interface BodyBuffer {
  readonly length: number;
  /** A copy of the bytes. */
  bytes(): Buffer;
  replace(data: Uint8Array): void;
  append(data: Uint8Array): void;
  prepend(data: Uint8Array): void;
}

export interface LocalReply {
  status: number;
  body: Buffer;
  headers: Array<[string, string]>;
  details: string;
}

/** What `ctx.stream` shows. */
export interface StreamInfo {
  id: string;
  /** "HTTP/1.1", "HTTP/2", "HTTP/3" */
  protocol: string;
  /** "ip:port" */
  remoteAddress: string;
  localAddress: string;
  routeName: string;
}

export type MetricKind = "counter" | "gauge" | "histogram";

/** The per-route configuration of the stream's route (Envoy: typed_per_filter_config). */
export interface RouteOverride {
  /** Skip the filter for this route. */
  disabled: boolean;
  /** Merged over the filter's config; empty when the route has none. */
  configJson: string;
}

/** An HTTP callout (`ctx.fetch`) to an upstream cluster. */
export interface CalloutRequest {
  cluster: string;
  /** With :method, :path, :authority first. */
  headers: Array<[string, string]>;
  body: Buffer;
  timeoutMs: number;
}

export type CalloutStart = "started" | "unknown_cluster" | "cannot_create";

export interface CalloutResponse {
  result: "success" | "reset" | "timeout" | "response_too_large";
  /** With :status. */
  headers: Array<[string, string]>;
  body: Buffer;
}

/** One HTTP stream as the host sees it (runtime/host.h StreamHost). */
export interface StreamHost {
  /** null when that map does not exist (yet), e.g. trailers that never came. */
  headerMap(kind: HeaderMapKind): HeaderMap | null;
  /** The data of the data callback now running for `dir`; null outside one. */
  currentData(dir: Direction): BodyBuffer | null;
  /** What the host holds for this filter in `dir`; never null. */
  bufferedData(dir: Direction): BodyBuffer;
  /** Resume a direction that a callback stopped; at most once per stop. */
  continueStream(dir: Direction): void;
  sendLocalReply(reply: LocalReply): void;
  /** Used when a response has already started and cannot be replaced by a local reply. */
  resetStream(): void;
  log(level: LogLevel, message: string): void;
  /** The filter failed this stream; the runtime has already logged and counted it. */
  recordError(message: string): void;

  streamInfo(): StreamInfo;
  /** Dynamic metadata; values are JSON texts. */
  getMetadata(ns: string, key: string): string | undefined;
  setMetadata(ns: string, key: string, json: string): void;
  /** Filter state: string values readable by other filters and access logs. */
  getFilterState(key: string): string | undefined;
  setFilterState(key: string, value: string): void;
  clearRouteCache(): void;
  /** Asked once, when the request headers arrive. */
  routeOverride(): RouteOverride;
  /**
   * Starts callout `id` (unique per engine). Unless it fails at once, the host later calls
   * Stream.onCalloutDone(id, ...) exactly once, or never after cancelCallout.
   */
  startCallout(id: number, request: CalloutRequest): CalloutStart;
  cancelCallout(id: number): void;
}

/** Process-facing services of one worker engine (runtime/host.h EngineHost). */
export interface EngineHost {
  log(level: LogLevel, message: string): void;
  /** Monotonic milliseconds of the host's (fake) clock. */
  nowMs(): number;
  incrementCounter(name: string, delta: number): void;
  /**
   * A metric declared in the filter's static `metrics` (index into the declarations):
   * counters add `value`, gauges are set to it, histograms record it.
   */
  recordMetric(index: number, kind: MetricKind, value: number): void;
  /** One-shot timer: after delayMs the host calls Engine.fireTimer(id). */
  startTimer(id: number, delayMs: number): void;
  cancelTimer(id: number): void;
}
