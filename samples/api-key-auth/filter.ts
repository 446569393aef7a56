// API-key authentication: 401 when the key is missing or unknown, 403 when the key is valid
// but lacks the scope a route needs. The key never reaches the upstream; the client's name
// does (x-client header and dynamic metadata, for the access log and later filters).
import { defineFilter } from "@envoy-js/sdk";

interface Client {
  name: string;
  scopes: string[];
}

interface Config {
  /** Header that carries the key (default x-api-key). `authorization: ApiKey <key>` also works. */
  header?: string;
  /** key -> client. In production, load keys from a secret, not from the filter config. */
  keys: Record<string, Client>;
  /** Scopes by path prefix; the longest matching prefix wins. No match: any valid key. */
  scopes?: Record<string, string>;
  /** Path prefixes that need no key (health checks). */
  public?: string[];
}

interface Worker {
  keys: Map<string, Client>;
  // Longest prefix first.
  scopes: [prefix: string, scope: string][];
}

function keyFrom(headers: { get(name: string): string | null }, header: string): string | null {
  const direct = headers.get(header);
  if (direct !== null) return direct.trim();
  const auth = headers.get("authorization");
  const m = auth === null ? null : /^ApiKey\s+(\S+)\s*$/i.exec(auth);
  return m ? m[1] : null;
}

export default defineFilter({
  metrics: { allowed: "counter", unauthenticated: "counter", forbidden: "counter" },

  // Once per worker: index the keys and sort the scope prefixes.
  setup(config: Config): Worker {
    return {
      keys: new Map(Object.entries(config.keys ?? {})),
      scopes: Object.entries(config.scopes ?? {}).sort((a, b) => b[0].length - a[0].length),
    };
  },

  onRequest(req, ctx) {
    const header = ctx.config.header ?? "x-api-key";
    const pathname = req.path.split("?", 1)[0];
    if ((ctx.config.public ?? []).some((p) => pathname.startsWith(p))) return;

    const key = keyFrom(req.headers, header);
    // Whatever happens next, the credential goes no further.
    req.headers.delete(header);
    if (req.headers.get("authorization")?.toLowerCase().startsWith("apikey ")) req.headers.delete("authorization");

    const challenge = { "www-authenticate": `ApiKey header="${header}"` };
    if (key === null || key === "") {
      ctx.metrics.unauthenticated.inc();
      return ctx.respond(401, { body: `missing ${header}\n`, headers: challenge, details: "api_key_missing" });
    }
    const client = ctx.worker.keys.get(key);
    if (client === undefined) {
      ctx.metrics.unauthenticated.inc();
      return ctx.respond(401, { body: "invalid api key\n", headers: challenge, details: "api_key_invalid" });
    }
    const needed = ctx.worker.scopes.find(([prefix]) => pathname.startsWith(prefix))?.[1];
    if (needed !== undefined && !client.scopes.includes(needed)) {
      ctx.metrics.forbidden.inc();
      ctx.log.info(`client ${client.name} lacks scope ${needed} for ${pathname}`);
      return ctx.respond(403, { body: `scope ${needed} required\n`, details: "api_key_scope" });
    }

    ctx.metrics.allowed.inc();
    req.headers.set("x-client", client.name);
    ctx.metadata.set("envoy_js.auth", "client", client.name);
  },
});
