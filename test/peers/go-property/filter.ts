// Port of envoy contrib/golang/filters/http/test/test_data/property: checks, in each phase,
// the properties Envoy gives about the stream against what they must be, logs every mismatch
// at error level (`<name> expect <want> got <got>`) and fails the stream at the response body
// when anything did not match, as the original panics there.
//
// Checked in the request phase: the protocol, the client and listener addresses (against
// `ctx.stream`), the route name (`config.routeName`), no response code yet, and that an
// unknown or malformed name is refused. In the response phase: the route and cluster names,
// the response code (the status) and its details (`via_upstream`), the upstream host and the
// number of tries (1). The request's path, query, host, scheme, method, referer and user agent,
// which the original reads as properties, come from the request itself here.
//
// Differs: envoy-js has no `request.time`, `request.duration`, `request.size` /
// `total_size`, `response.size` / `total_size`, `connection.mtls` or `xds.cluster_metadata`
// properties, and no access-log hook (`OnLog`): those checks are left out. An unknown name is
// a TypeError instead of "value not found".
import { defineFilter } from "@envoy-js/sdk";
import type { Context, PropertyName } from "@envoy-js/sdk";

interface Config {
  routeName: string;
  cluster: string;
}

const failed = new WeakSet<object>();

function expect(ctx: Context<Config>, name: PropertyName, want: string | number | null): void {
  const got = ctx.property(name);
  if (got === want) return;
  ctx.log.error(`${name} expect ${String(want)} got ${String(got)}`);
  failed.add(ctx);
}

function refused(ctx: Context<Config>, name: string): void {
  try {
    ctx.property(name as PropertyName);
  } catch (e) {
    if (e instanceof TypeError) return;
    throw e;
  }
  ctx.log.error(`${JSON.stringify(name)} expect a TypeError`);
  failed.add(ctx);
}

export default defineFilter<Config>({
  onRequest(req, ctx) {
    const [urlPath, query = ""] = req.path.split("?", 2);
    ctx.log.info(`request ${req.method} ${req.scheme}://${req.authority}${urlPath} query ${query}`);
    ctx.log.info(`referer ${req.headers.get("referer")}, user agent ${req.headers.get("user-agent")}`);

    expect(ctx, "request.protocol", "HTTP/1.1");
    expect(ctx, "source.address", ctx.stream.remoteAddress);
    expect(ctx, "destination.address", ctx.stream.localAddress);
    expect(ctx, "xds.route_name", ctx.config.routeName); // known in the request phase
    expect(ctx, "response.code", null); // no response yet
    expect(ctx, "upstream.address", null); // no upstream host yet
    if (typeof ctx.property("request.id") !== "string") expect(ctx, "request.id", "a string");
    for (const name of ["request.user_agent", "", ".", ".total_size", "request", "request."]) refused(ctx, name);
  },

  onResponse(res, ctx) {
    expect(ctx, "xds.route_name", ctx.config.routeName);
    expect(ctx, "xds.cluster_name", ctx.config.cluster);
    expect(ctx, "response.code", res.status);
    expect(ctx, "response.code_details", "via_upstream");
    expect(ctx, "upstream.request_attempt_count", 1);
    if (typeof ctx.property("upstream.address") !== "string") expect(ctx, "upstream.address", "an address");
  },

  onResponseData(_chunk, ctx) {
    expect(ctx, "response.code", 200);
    if (failed.has(ctx)) throw new Error("Check the error log for the failed cases");
  },
});
