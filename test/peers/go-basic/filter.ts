// Port of envoy contrib/golang/filters/http/test/test_data/basic, the Go filter's test of its
// whole API, as its integration test (testBasic, testSendLocalReply, testPanicRecover,
// testDynamicMetadata) exercises it. The query string picks a mode: `async` (each hook goes on
// after an await, as the original's goroutines), `localreply=<phase>` (a 403 `forbidden from go
// in <phase>\r\n` with `test-phase`, `content-type: text/html` and two `x-two-values`),
// `panic=<phase>` (the hook throws: the stream fails), `badapi` (writing the request headers
// from the request body hook: a TypeError, the stream fails).
//
// Request: logs "log test" at every level; `x-set-metadata` sets dynamic metadata
// `filter.go`/`foo` = `bar`; filter state `go_state_test_key`, copied into
// `go-state-test-header-key`; header edits (`existed-header` and `newly-added-header` appended,
// `test-x-set-header-0` set from `x-test-header-0`, `x-test-header-1` removed, the route name and
// both addresses added); each body piece becomes `prepend_` + upper case + `_append`; trailers
// edited (`existed-trailer` appended, `x-test-trailer-0` set, `x-test-trailer-1` removed,
// `x-test-trailer-2` added). Response: the same header edits, then the stream's facts as
// headers (protocol, response code and details, upstream host and cluster, route, filter
// chain, attempt count, virtual cluster, status, request body length, scheme, method, path,
// host, the `foo` query parameter); the body in upper case.
//
// Differs: a header whose value would be empty is not set (see editHeaders), so
// `rsp-filter-chain-name` is absent for an unnamed filter chain; `test-log-level` is left out (envoy-js does not expose Envoy's log level); the
// databuffer modes (StopAndBuffer from a header or data callback, after which the Go filter is
// given the whole buffer again) are left out: `chunk.hold()` shows each new piece instead; a
// throw fails the stream under the failure policy instead of the Go filter's 500
// "error happened in filter".
import { defineFilter } from "@envoy-js/sdk";
import type { Context, Headers } from "@envoy-js/sdk";

interface Mode {
  query: Map<string, string>;
  async: boolean;
  localreply: string;
  panic: string;
  badapi: boolean;
  scheme: string;
  method: string;
  path: string;
  host: string;
  bodyLength: number;
  headers?: Headers;
}

const modes = new WeakMap<object, Mode>();

function parseQuery(path: string): Map<string, string> {
  const query = new Map<string, string>();
  const at = path.indexOf("?");
  if (at < 0) return query;
  for (const pair of path.slice(at + 1).split("&")) {
    if (pair === "") continue;
    const eq = pair.indexOf("=");
    const key = decodeURIComponent(eq < 0 ? pair : pair.slice(0, eq));
    if (!query.has(key)) query.set(key, eq < 0 ? "" : decodeURIComponent(pair.slice(eq + 1)));
  }
  return query;
}

const settle = (m: Mode) => (m.async ? Promise.resolve() : undefined);

function localReply(ctx: Context, phase: string) {
  return ctx.respond(403, {
    body: `forbidden from go in ${phase}\r\n`,
    headers: { "test-phase": phase, "content-type": "text/html", "x-two-values": ["foo", "bar"] },
    details: "test-from-go",
  });
}

function editHeaders(headers: Headers): string {
  const origin = headers.get("x-test-header-0") ?? "";
  headers.append("existed-header", "bar");
  headers.append("newly-added-header", "foo");
  headers.append("newly-added-header", "bar");
  // The original sets it even when empty. An empty value is left out here: through the
  // dynamic module, Envoy's ABI (1.38 to 1.40) removes a header that is set to "" (the native
  // filter and the scripted host keep it).
  if (origin !== "") headers.set("test-x-set-header-0", origin);
  headers.delete("x-test-header-1");
  return origin;
}

function badcode(phase: string): never {
  throw new RangeError(`index out of range in ${phase}`);
}

export default defineFilter({
  async onRequest(req, ctx) {
    const query = parseQuery(req.path);
    const m: Mode = {
      query,
      async: query.has("async"),
      localreply: query.get("localreply") ?? "",
      panic: query.get("panic") ?? "",
      badapi: query.has("badapi"),
      scheme: req.scheme,
      method: req.method,
      path: req.path,
      host: req.authority,
      bodyLength: 0,
      headers: req.headers,
    };
    modes.set(ctx, m);
    await settle(m);

    ctx.log.trace("log test");
    ctx.log.debug("log test");
    ctx.log.info("log test");
    ctx.log.warn("log test");
    ctx.log.error("log test");

    if (req.headers.has("x-set-metadata")) ctx.metadata.set("filter.go", "foo", "bar");
    ctx.filterState.set("go_state_test_key", "go_state_test_value");

    if (m.localreply.includes("decode-header")) return localReply(ctx, "decode-header");

    editHeaders(req.headers);
    req.headers.set("go-state-test-header-key", ctx.filterState.get("go_state_test_key") ?? "none");
    req.headers.set("req-route-name", ctx.stream.routeName);
    req.headers.set("req-downstream-local-address", ctx.stream.localAddress);
    req.headers.set("req-downstream-remote-address", ctx.stream.remoteAddress);
    if (m.panic === "decode-header") badcode("decode-header");
  },

  async onRequestData(chunk, ctx) {
    const m = modes.get(ctx);
    if (m === undefined) return;
    await settle(m);
    if (m.localreply.includes("decode-data")) return localReply(ctx, "decode-data");
    m.bodyLength += chunk.size;
    if (chunk.size !== 0) {
      chunk.replace(chunk.text().toUpperCase());
      chunk.append("_append");
      chunk.prepend("prepend_");
    }
    if (m.panic === "decode-data") badcode("decode-data");
    if (m.badapi) m.headers?.set("foo", "bar"); // the headers went on: a TypeError
  },

  async onRequestTrailers(trailers, ctx) {
    const m = modes.get(ctx);
    if (m === undefined) return;
    await settle(m);
    if (m.localreply.includes("decode-trailer")) return localReply(ctx, "decode-trailer");
    trailers.append("existed-trailer", "bar");
    trailers.set("x-test-trailer-0", "bar");
    trailers.delete("x-test-trailer-1");
    trailers.set("x-test-trailer-2", "bar");
    if (m.panic === "decode-trailer") badcode("decode-trailer");
  },

  async onResponse(res, ctx) {
    const m = modes.get(ctx);
    if (m === undefined) return;
    await settle(m);
    if (m.localreply.includes("encode-header")) return localReply(ctx, "encode-header");

    const facts: [string, string | number | null][] = [
      ["rsp-protocol", ctx.property("request.protocol")],
      ["rsp-response-code", ctx.property("response.code")],
      ["rsp-response-code-details", ctx.property("response.code_details")],
      ["rsp-upstream-host", ctx.property("upstream.address")],
      ["rsp-upstream-cluster", ctx.property("xds.cluster_name")],
    ];
    for (const [name, value] of facts) if (value !== null) res.headers.set(name, String(value));

    res.headers.append("rsp-status", String(res.status));
    editHeaders(res.headers);
    res.headers.set("test-req-body-length", String(m.bodyLength));
    res.headers.set("test-query-param-foo", m.query.get("foo") ?? "");
    res.headers.set("test-scheme", m.scheme);
    res.headers.set("test-method", m.method);
    res.headers.set("test-path", m.path);
    res.headers.set("test-host", m.host);
    res.headers.set("rsp-route-name", ctx.stream.routeName);
    const chain = ctx.property("xds.filter_chain_name"); // null for an unnamed filter chain
    if (chain !== null && chain !== "") res.headers.set("rsp-filter-chain-name", String(chain));
    res.headers.set("rsp-attempt-count", String(ctx.property("upstream.request_attempt_count") ?? 0));
    res.headers.set("rsp-virtual-cluster-name", String(ctx.property("xds.virtual_cluster_name") ?? "not found"));
    if (m.panic === "encode-header") badcode("encode-header");
  },

  async onResponseData(chunk, ctx) {
    const m = modes.get(ctx);
    if (m === undefined) return;
    await settle(m);
    chunk.replace(chunk.text().toUpperCase());
    if (m.panic === "encode-data") badcode("encode-data");
  },

  async onResponseTrailers(_trailers, ctx) {
    const m = modes.get(ctx);
    if (m === undefined) return;
    await settle(m);
    if (m.panic === "encode-trailer") badcode("encode-trailer");
  },
});
