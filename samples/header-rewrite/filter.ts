// Header normalisation and rewrite: a canonical :path (no "//", "/./" or "/../"), an
// x-request-id on every request, internal and spoofable headers removed before the upstream
// sees them, renamed and added headers, and response headers that hide the upstream's
// software and add security defaults.
import { defineFilter, type Headers } from "@envoy-js/sdk";

interface HeaderRules {
  /** Set (replace) these headers. */
  set?: Record<string, string>;
  /** Set these only when absent. */
  setDefault?: Record<string, string>;
  /** Remove these; a trailing "*" removes every header with that prefix. */
  remove?: string[];
  /** Rename: old name -> new name (values kept, in order). */
  rename?: Record<string, string>;
}

interface Config {
  request?: HeaderRules;
  response?: HeaderRules;
  /** Canonicalise :path (default true). */
  normalizePath?: boolean;
  /** Header that carries the request id (default x-request-id); added when absent. */
  requestIdHeader?: string;
}

/**
 * "/a//b/./c/../d?x=1" -> "/a/b/d?x=1". Segments never climb above the root, and the query
 * string is left exactly as it was. Percent-encoded dots are not decoded: Envoy's
 * `normalize_path` does that part; this is the cheap canonical form for routing.
 */
function normalizePath(path: string): string {
  const q = path.indexOf("?");
  const pathname = q === -1 ? path : path.slice(0, q);
  const query = q === -1 ? "" : path.slice(q);
  const out: string[] = [];
  for (const segment of pathname.split("/")) {
    if (segment === "" || segment === ".") continue;
    if (segment === "..") out.pop();
    else out.push(segment);
  }
  const trailing = pathname.length > 1 && pathname.endsWith("/") && out.length > 0 ? "/" : "";
  return "/" + out.join("/") + trailing + query;
}

function applyRules(headers: Headers, rules: HeaderRules | undefined): string[] {
  const changed: string[] = [];
  if (!rules) return changed;
  for (const pattern of rules.remove ?? []) {
    const names = pattern.endsWith("*")
      ? [...new Set(Array.from(headers, ([name]) => name))].filter((n) => n.startsWith(pattern.slice(0, -1)))
      : headers.has(pattern)
        ? [pattern]
        : [];
    for (const name of names) {
      headers.delete(name);
      changed.push("-" + name);
    }
  }
  for (const [from, to] of Object.entries(rules.rename ?? {})) {
    const values = headers.getAll(from);
    if (values.length === 0) continue;
    headers.delete(from);
    headers.delete(to);
    for (const v of values) headers.append(to, v);
    changed.push(`${from}->${to}`);
  }
  for (const [name, value] of Object.entries(rules.set ?? {})) {
    headers.set(name, value);
    changed.push("+" + name);
  }
  for (const [name, value] of Object.entries(rules.setDefault ?? {})) {
    if (headers.has(name)) continue;
    headers.set(name, value);
    changed.push("+" + name);
  }
  return changed;
}

export default defineFilter<Config, unknown, { pathsRewritten: "counter" }>({
  metrics: { pathsRewritten: "counter" },

  onRequest(req, ctx) {
    const idHeader = ctx.config.requestIdHeader ?? "x-request-id";
    if (!req.headers.has(idHeader)) req.headers.set(idHeader, crypto.randomUUID());

    const changed = applyRules(req.headers, ctx.config.request);

    if (ctx.config.normalizePath !== false) {
      const canonical = normalizePath(req.path);
      if (canonical !== req.path) {
        req.headers.set(":path", canonical);
        ctx.metrics.pathsRewritten.inc();
        changed.push(":path");
      }
    }
    // Route matching may depend on what changed (the path, a header): let Envoy pick again.
    if (changed.length > 0) {
      ctx.clearRouteCache();
      ctx.log.debug("request rewritten:", changed.join(" "));
    }
  },

  onResponse(res, ctx) {
    applyRules(res.headers, ctx.config.response);
  },
});
