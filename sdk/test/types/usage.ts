// Type tests for @envoy-js/sdk: every line without a directive must
// compile; every `// @ts-expect-error` line must not.
import {
  defineFilter,
  type Body,
  type Chunk,
  type Context,
  type DoneContext,
  type FetchError,
  type FetchErrorCode,
  type FetchResponse,
  type FilterDefinition,
  type Headers,
  type LocalReply,
  type Request,
  type Response,
} from "@envoy-js/sdk";

/** Compile-time equality of two types. */
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
function assertType<T extends true>(): T | void {}

// --- metrics with labels ----------------------------------------------------------
export const labelled = defineFilter({
  metrics: {
    requests: { kind: "counter", labels: ["method", "status"] },
    load: { kind: "gauge", labels: ["route"] },
    plain: { kind: "histogram" },
  },
  onRequest(req, ctx) {
    const ok = ctx.metrics.requests.labels({ method: req.method, status: 200 });
    ok.inc();
    assertType<Equal<typeof ok.value, number>>();
    ctx.metrics.load.labels({ route: "a" }).dec();
    ctx.metrics.plain.record(1);
    // @ts-expect-error: a label is missing
    ctx.metrics.requests.labels({ method: "GET" });
    // @ts-expect-error: no such label
    ctx.metrics.requests.labels({ method: "GET", status: "200", path: "/" });
    // @ts-expect-error: a labelled metric records through labels()
    ctx.metrics.requests.inc();
    // @ts-expect-error: a counter series cannot be set
    ok.set(1);
    // @ts-expect-error: no labels declared
    ctx.metrics.plain.labels({ route: "a" });
  },
});

// --- metric names inferred from `metrics` ------------------------------------
export const inferred = defineFilter({
  metrics: { rejected: "counter", inflight: "gauge", latencyMs: "histogram" },
  setup(config: { header: string; limit?: number }, worker) {
    assertType<Equal<typeof worker.index, number>>();
    return { seen: 0, started: performance.now() };
  },
  async onRequest(req, ctx) {
    assertType<Equal<typeof ctx.config.header, string>>();
    assertType<Equal<typeof ctx.worker.seen, number>>();
    ctx.worker.seen++;
    ctx.metrics.rejected.inc();
    ctx.metrics.rejected.inc(2);
    ctx.metrics.inflight.set(3);
    ctx.metrics.latencyMs.record(performance.now() - ctx.worker.started);
    // @ts-expect-error: no metric of that name is declared
    ctx.metrics.accepted.inc();
    // @ts-expect-error: a counter cannot be set
    ctx.metrics.rejected.set(1);
    // @ts-expect-error: a gauge has no record()
    ctx.metrics.inflight.record(1);
    // @ts-expect-error: config is read-only
    ctx.config.header = "x-other";
    // @ts-expect-error: header is a string
    const n: number = ctx.config.header;
    // @ts-expect-error: ctx.config cannot be replaced
    ctx.config = { header: "x" };
    // @ts-expect-error: the status is a number
    ctx.respond("401");
    // @ts-expect-error: the body is a string or bytes
    ctx.respond(400, { body: 42 });
    // @ts-expect-error: unknown option
    ctx.respond(400, { reason: "no" });

    if (!req.headers.has(ctx.config.header)) {
      return ctx.respond(401, {
        body: "missing " + ctx.config.header,
        headers: { "www-authenticate": "Key", "set-cookie": ["a=1", "b=2"] },
        details: "envoy_js_missing_key",
      });
    }
    const r: FetchResponse = await ctx.fetch("authz", {
      method: "POST",
      path: "/check",
      headers: { "content-type": "application/json" },
      body: new TextEncoder().encode(JSON.stringify({ path: req.path })),
      timeoutMs: 200,
    });
    // @ts-expect-error: fetch needs a path
    await ctx.fetch("authz", { method: "GET" });
    try {
      await ctx.fetch("audit", { path: "/log", authority: "audit.internal", headers: { "x-tag": ["a", "b"] } });
    } catch (e) {
      const err = e as FetchError;
      const code: FetchErrorCode = err.code;
      if (err.name === "FetchError" && code === "timeout") ctx.log.warn(err.message);
      // @ts-expect-error: not a FetchErrorCode
      const wrong: FetchErrorCode = "refused";
    }
    const name: string = ctx.metrics.rejected.name;
    // @ts-expect-error: a metric's name is read-only
    ctx.metrics.rejected.name = "other";
    // @ts-expect-error: the response's headers are read-only
    r.headers.set("x", "y");
    if (r.status !== 200) return ctx.respond(403);
    const who = await r.json<{ user: string }>();
    req.headers.set("x-user", who.user);
    if (ctx.aborted) return;
  },
  onDone(ctx) {
    ctx.metrics.rejected.inc();
    ctx.log.info("done", ctx.stream.id);
    // @ts-expect-error: nothing can be sent once the stream is done
    ctx.respond(500);
  },
});

// No `metrics` and no type arguments: no metric name type-checks.
defineFilter({
  onRequest(req, ctx) {
    // @ts-expect-error: nothing is declared
    ctx.metrics.anything.inc();
    assertType<Equal<typeof ctx.config, unknown>>();
  },
});

// All type arguments explicit: config, worker and metric names all checked.
defineFilter<{ header: string }, { cache: Map<string, string> }, { hits: "counter" }>({
  metrics: { hits: "counter" },
  setup(config) {
    return { cache: new Map() };
  },
  onRequest(req, ctx) {
    ctx.metrics.hits.inc();
    // @ts-expect-error: not declared
    ctx.metrics.misses.inc();
    ctx.worker.cache.set(req.path, ctx.config.header);
  },
});

defineFilter<{ header: string }, { cache: Map<string, string> }, { hits: "counter" }>({
  // @ts-expect-error: the declaration must match the type argument
  metrics: { hits: "gauge" },
});

defineFilter<unknown, { count: number }>({
  // @ts-expect-error: setup must return the declared worker type
  setup() {
    return { count: "0" };
  },
});

defineFilter({
  // @ts-expect-error: not a metric kind
  metrics: { hits: "meter" },
});

defineFilter({
  // @ts-expect-error: misspelt hook names are caught
  onRequets() {},
});

defineFilter({
  // @ts-expect-error: a hook returns nothing or a LocalReply
  onRequest() {
    return "continue";
  },
});

defineFilter({
  // @ts-expect-error: so does an async one
  async onResponse() {
    return 200;
  },
});

// --- every hook, with its argument types --------------------------------------
const everyHook: FilterDefinition<{ mode: "strict" | "lax" }> = {
  onRequest(req, ctx) {
    assertType<Equal<typeof req, Request>>();
    assertType<Equal<typeof ctx.config.mode, "strict" | "lax">>();
    const method: string = req.method;
    const parts: string[] = [req.path, req.authority, req.scheme];
    const body: Body = req.body;
    // @ts-expect-error: change the path through the :path pseudo-header
    req.path = "/other";
    void method, parts, body;
  },
  async onRequestData(chunk, ctx) {
    assertType<Equal<typeof chunk, Chunk>>();
    const size: number = chunk.size;
    const last: boolean = chunk.endOfStream;
    const text: string = chunk.text();
    const bytes: Uint8Array = chunk.bytes();
    chunk.replace(text.toUpperCase());
    chunk.append(bytes);
    chunk.prepend("[");
    chunk.clear();
    // @ts-expect-error: chunk data is a string or bytes
    chunk.append(42);
    // @ts-expect-error: chunk.text() is synchronous, not a promise
    const p: Promise<string> = chunk.text();
    void size, last, p;
  },
  onRequestTrailers(trailers, ctx) {
    assertType<Equal<typeof trailers, Headers>>();
    const all: string[] = trailers.getAll("x-t");
    const one: string | null = trailers.get("x-t");
    // @ts-expect-error: get() may return null
    const sure: string = trailers.get("x-t");
    for (const [name, value] of trailers) ctx.log.trace(name, value);
    for (const [name, value] of trailers.entries()) ctx.log.debug(name, value);
    trailers.append("x-t", "2");
    trailers.delete("x-t");
    void all, one, sure;
  },
  async onResponse(res, ctx) {
    assertType<Equal<typeof res, Response>>();
    const status: number = res.status;
    const text: string = await res.body.text();
    const data = await res.body.json<{ ok: boolean }>();
    const ok: boolean = data.ok;
    const bytes: Uint8Array = await res.body.bytes();
    res.body.replace(text + "!");
    // @ts-expect-error: the status is read-only
    res.status = 500;
    void status, ok, bytes;
    if (status >= 500) return ctx.respond(502, { details: "upstream_failed" });
  },
  onResponseData(chunk) {
    chunk.append("\n");
  },
  onResponseTrailers(trailers, ctx) {
    trailers.set("x-done", "1");
    ctx.clearRouteCache();
  },
  onDone(ctx) {
    assertType<Equal<typeof ctx, DoneContext<{ mode: "strict" | "lax" }>>>();
    const info: [string, string, string, string, string, number] = [
      ctx.stream.id,
      ctx.stream.protocol,
      ctx.stream.remoteAddress,
      ctx.stream.localAddress,
      ctx.stream.routeName,
      ctx.stream.workerIndex,
    ];
    ctx.metadata.set("envoy_js.auth", "user", { name: "bob", roles: ["admin"], level: 3, ok: true, none: null });
    const user = ctx.metadata.get("envoy_js.auth", "user");
    // @ts-expect-error: metadata values are JSON-like
    ctx.metadata.set("envoy_js.auth", "when", new Date());
    ctx.filterState.set("tenant", "acme");
    const tenant: string = ctx.filterState.get("tenant") ?? "default";
    // @ts-expect-error: filter state values are strings
    ctx.filterState.set("tenant", 1);
    // @ts-expect-error: the stream facts are read-only
    ctx.stream.routeName = "other";
    void info, user, tenant;
  },
};
export const everyHookFilter = defineFilter(everyHook);

// --- LocalReply is opaque -----------------------------------------------------
function reject(ctx: Context): LocalReply {
  return ctx.respond(403);
}
// @ts-expect-error: only ctx.respond makes a LocalReply
const fake: LocalReply = { status: 403 };
void reject, fake;

// --- logging ------------------------------------------------------------------
function logAll(ctx: Context) {
  ctx.log.trace("t", 1);
  ctx.log.debug("d", { a: 1 });
  ctx.log.info("i");
  ctx.log.warn("w");
  ctx.log.error("e", new Error("x"));
}
void logAll;

// --- background ---------------------------------------------------------------
export const refresher = defineFilter({
  background(config, bg) {
    const refresh = async () => {
      const r = await bg.fetch("idp", { path: "/keys", timeoutMs: 2000 });
      if (r.status === 200) bg.shared.set("jwks", await r.text());
      bg.log.info("refreshed", r.status);
    };
    void refresh();
    setInterval(refresh, 60_000);
    // @ts-expect-error: no stream in the background: bg has no respond
    bg.respond(200);
  },
  onRequest(req, ctx) {
    ctx.shared.get("jwks");
  },
});
