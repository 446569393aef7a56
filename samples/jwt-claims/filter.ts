// JWT claims to headers, with the `jwt-decode` package from npm bundled into the filter.
// It runs AFTER Envoy's jwt_authn filter, which verifies the signature: this filter does not
// (decoding is not verifying) and so must never be the only check. What it adds: expiry
// and not-before with a clock skew, required claims, and chosen claims copied to request
// headers for the upstream, after removing any such header the client sent.
import { InvalidTokenError, jwtDecode, type JwtPayload } from "jwt-decode";
import { defineFilter } from "@envoy-js/sdk";

interface Config {
  /** Claim -> request header, e.g. { "sub": "x-user" }. Arrays are joined with a space. */
  claims: Record<string, string>;
  /** Claims that must be present (default ["sub"]). */
  required?: string[];
  /** Allowed clock difference for exp and nbf, in seconds (default 30). */
  clockSkewSec?: number;
  /** Reject requests without a bearer token (default true). */
  requireToken?: boolean;
}

type Claims = JwtPayload & Record<string, unknown>;

function bearer(auth: string | null): string | null {
  const m = auth === null ? null : /^Bearer\s+([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*)\s*$/i.exec(auth);
  return m ? m[1] : null;
}

function asHeaderValue(v: unknown): string | null {
  if (typeof v === "string") return v;
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  if (Array.isArray(v) && v.every((x) => typeof x === "string")) return v.join(" ");
  return null;
}

export default defineFilter<Config, unknown, { accepted: "counter"; rejected: "counter" }>({
  metrics: { accepted: "counter", rejected: "counter" },

  onRequest(req, ctx) {
    // Claim headers are ours to set; a client must not be able to send them.
    for (const header of Object.values(ctx.config.claims)) req.headers.delete(header);

    const auth = req.headers.get("authorization");
    const token = bearer(auth);
    const reject = (why: string) => {
      ctx.metrics.rejected.inc();
      return ctx.respond(401, {
        body: why + "\n",
        headers: { "www-authenticate": `Bearer error="invalid_token", error_description="${why}"` },
        details: "jwt_" + why.replaceAll(" ", "_"),
      });
    };
    if (token === null) {
      if (auth === null && ctx.config.requireToken === false) return;
      return reject(auth === null ? "missing token" : "malformed token");
    }

    let claims: Claims;
    try {
      claims = jwtDecode<Claims>(token);
    } catch (err) {
      if (err instanceof InvalidTokenError) return reject("malformed token");
      throw err;
    }

    const now = Date.now() / 1000;
    const skew = ctx.config.clockSkewSec ?? 30;
    if (typeof claims.exp === "number" && now > claims.exp + skew) return reject("token expired");
    if (typeof claims.nbf === "number" && now < claims.nbf - skew) return reject("token not yet valid");
    const missing = (ctx.config.required ?? ["sub"]).filter((c) => claims[c] === undefined);
    if (missing.length > 0) return reject("missing claim " + missing.join(","));

    for (const [claim, header] of Object.entries(ctx.config.claims)) {
      const value = asHeaderValue(claims[claim]);
      if (value !== null) req.headers.set(header, value);
    }
    ctx.metadata.set("envoy_js.jwt", "sub", typeof claims.sub === "string" ? claims.sub : null);
    ctx.metrics.accepted.inc();
  },
});
