// Port of proxy-wasm/proxy-wasm-go-sdk examples/http_auth_random: each request's headers are
// logged and sent (a GET of the same path) to the `httpbin` cluster; the FNV-1a 32-bit hash
// of the answer's body decides: even lets the request through ("access granted"), odd
// answers 403 "access forbidden" with `powered-by: proxy-wasm-go-sdk!!`.
import { defineFilter } from "@envoy-js/sdk";

interface Config {
  /** The cluster to ask (default httpbin, as the original). */
  cluster?: string;
}

function fnv1a32(bytes: Uint8Array): number {
  let hash = 0x811c9dc5;
  for (const b of bytes) hash = Math.imul(hash ^ b, 0x01000193) >>> 0;
  return hash;
}

export default defineFilter<Config>({
  async onRequest(req, ctx) {
    const cluster = ctx.config.cluster ?? "httpbin";
    const headers: Record<string, string[]> = {};
    for (const [name, value] of req.headers) {
      ctx.log.info(`request header: ${name}: ${value}`);
      if (name.startsWith(":")) continue;
      if (headers[name] === undefined) headers[name] = [];
      headers[name].push(value);
    }
    const call = ctx.fetch(cluster, {
      method: req.method,
      path: req.path,
      authority: req.authority,
      headers,
      timeoutMs: 50000,
    });
    ctx.log.info(`http call dispatched to ${cluster}`);
    const answer = await call;
    for (const [name, value] of answer.headers) ctx.log.info(`response header from ${cluster}: ${name}: ${value}`);
    if (fnv1a32(await answer.bytes()) % 2 === 0) {
      ctx.log.info("access granted");
      return;
    }
    ctx.log.info("access forbidden");
    return ctx.respond(403, { body: "access forbidden", headers: { "powered-by": "proxy-wasm-go-sdk!!" } });
  },
});
