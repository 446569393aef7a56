// Canary / A-B routing: each request is assigned to "canary" or "stable" and tagged with a
// header that the route table matches on (x-route-to), then ctx.clearRouteCache() makes Envoy
// pick the route again. The assignment comes from, in order: a forcing header (for testers),
// the sticky cookie of an earlier visit, a stable hash of a user id header, or chance. A new
// assignment is remembered in a cookie. Cookies are parsed and written with the `cookie`
// package from npm, bundled into the filter.
import { parseCookie, stringifySetCookie } from "cookie";
import { defineFilter } from "@envoy-js/sdk";

interface Config {
  /** Share of traffic for the canary, 0 to 100. Per-route config can change it. */
  percent: number;
  /** Header the route table matches on (default x-route-to). */
  routeHeader?: string;
  /** Forcing header: "canary" or "stable" (default x-canary). */
  forceHeader?: string;
  /** Sticky cookie name (default canary); its value is the group. */
  cookie?: string;
  /** Cookie lifetime in seconds (default one day). */
  cookieMaxAge?: number;
  /** Header with a stable user id to hash, so a user always lands in the same group. */
  userHeader?: string;
}

type Group = "canary" | "stable";
type Source = "forced" | "cookie" | "user" | "random";

const assigned = new WeakMap<object, { group: Group; remember: boolean }>();

/** FNV-1a over the UTF-16 code units, mapped to 0..99. */
function bucketOf(id: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) {
    h ^= id.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % 100;
}

function randomPercent(): number {
  const b = new Uint32Array(1);
  crypto.getRandomValues(b);
  return b[0] % 100;
}

const asGroup = (v: string | null | undefined): Group | undefined => (v === "canary" || v === "stable" ? v : undefined);

export default defineFilter<Config, unknown, { canary: "counter"; stable: "counter" }>({
  metrics: { canary: "counter", stable: "counter" },

  onRequest(req, ctx) {
    const c = ctx.config;
    const cookieName = c.cookie ?? "canary";
    const cookies = parseCookie(req.headers.get("cookie") ?? "");

    let group: Group;
    let source: Source;
    const forced = asGroup(req.headers.get(c.forceHeader ?? "x-canary"));
    const sticky = asGroup(cookies[cookieName]);
    const user = c.userHeader ? req.headers.get(c.userHeader) : null;
    if (forced) [group, source] = [forced, "forced"];
    else if (sticky) [group, source] = [sticky, "cookie"];
    else if (user) [group, source] = [bucketOf(user) < c.percent ? "canary" : "stable", "user"];
    else [group, source] = [randomPercent() < c.percent ? "canary" : "stable", "random"];

    // Whatever the client sent in the routing header is replaced: routes trust only us.
    req.headers.set(c.routeHeader ?? "x-route-to", group);
    ctx.clearRouteCache();
    ctx.metrics[group].inc();
    ctx.metadata.set("envoy_js.canary", "group", group);
    assigned.set(ctx, { group, remember: source === "random" || source === "user" });
    ctx.log.debug(`${req.path} -> ${group} (${source})`);
  },

  onResponse(res, ctx) {
    const a = assigned.get(ctx);
    if (!a) return;
    res.headers.set("x-served-by", a.group);
    if (!a.remember) return;
    res.headers.append(
      "set-cookie",
      stringifySetCookie(ctx.config.cookie ?? "canary", a.group, {
        path: "/",
        maxAge: ctx.config.cookieMaxAge ?? 86400,
        httpOnly: true,
        secure: true,
        sameSite: "lax",
      }),
    );
  },
});
