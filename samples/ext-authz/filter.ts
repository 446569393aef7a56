// External authorization through ctx.fetch: every request is described to an authorization
// service (an Envoy cluster) and held until it answers. 200 lets the request through with
// the identity headers the service returned; 401/403 are passed back to the client as they
// came; anything else, a timeout or a reset fails closed with 503 (or open, if configured).
import { defineFilter, type FetchResponse } from "@envoy-js/sdk";

interface Config {
  /** The authorization service's cluster. */
  cluster: string;
  /** Path of its check endpoint (default /check). */
  path?: string;
  timeoutMs?: number;
  /** Request headers sent along to the service (default: authorization, cookie). */
  forwardHeaders?: string[];
  /** Response headers of the service copied onto the request when allowed (default x-user). */
  identityHeaders?: string[];
  /** Let requests through when the service cannot be reached (default false). */
  failOpen?: boolean;
}

export default defineFilter<
  Config,
  unknown,
  {
    allowed: "counter";
    denied: "counter";
    unavailable: "counter";
    checkMs: "histogram";
  }
>({
  metrics: { allowed: "counter", denied: "counter", unavailable: "counter", checkMs: "histogram" },

  async onRequest(req, ctx) {
    const identity = ctx.config.identityHeaders ?? ["x-user"];
    // Identity headers come from the service only, never from the client.
    for (const name of identity) req.headers.delete(name);

    const headers: Record<string, string> = {};
    for (const name of ctx.config.forwardHeaders ?? ["authorization", "cookie"]) {
      const v = req.headers.get(name);
      if (v !== null) headers[name] = v;
    }
    const check = { method: req.method, path: req.path, authority: req.authority, headers };

    const started = performance.now();
    let answer: FetchResponse;
    try {
      answer = await ctx.fetch(ctx.config.cluster, {
        method: "POST",
        path: ctx.config.path ?? "/check",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(check),
        timeoutMs: ctx.config.timeoutMs ?? 200,
      });
    } catch (err) {
      if (ctx.aborted) return; // the client left while we waited
      ctx.metrics.unavailable.inc();
      // The engine rejects with an Error named "FetchError" whose `code` says why:
      // timeout, reset, unknown_cluster, cannot_create, response_too_large.
      const code = (err as { code?: unknown }).code;
      const why = typeof code === "string" ? code : "error";
      ctx.log.warn(`authorization service ${why}: ${err instanceof Error ? err.message : String(err)}`);
      if (ctx.config.failOpen) return;
      return ctx.respond(503, { body: "authorization unavailable\n", details: `ext_authz_${why}` });
    } finally {
      ctx.metrics.checkMs.record(performance.now() - started);
    }
    if (ctx.aborted) return;

    if (answer.status === 200) {
      ctx.metrics.allowed.inc();
      for (const name of identity) {
        const v = answer.headers.get(name);
        if (v !== null) req.headers.set(name, v);
      }
      return;
    }
    if (answer.status === 401 || answer.status === 403) {
      ctx.metrics.denied.inc();
      const type = answer.headers.get("content-type");
      const challenge = answer.headers.get("www-authenticate");
      return ctx.respond(answer.status, {
        body: await answer.text(),
        headers: { ...(type ? { "content-type": type } : {}), ...(challenge ? { "www-authenticate": challenge } : {}) },
        details: "ext_authz_denied",
      });
    }
    ctx.metrics.unavailable.inc();
    ctx.log.warn(`authorization service answered ${answer.status}`);
    if (ctx.config.failOpen) return;
    return ctx.respond(503, { body: "authorization unavailable\n", details: "ext_authz_error" });
  },
});
