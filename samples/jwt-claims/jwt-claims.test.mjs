import * as assert from "uvu/assert";

import { get, sampleSuite } from "../lib/harness.mjs";

const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
const token = (payload) => `${b64({ alg: "RS256", typ: "JWT" })}.${b64(payload)}.c2ln`;
const withToken = (payload, headers = {}) => get("/orders", { authorization: `Bearer ${token(payload)}`, ...headers });
const now = () => Math.floor(Date.now() / 1000);

sampleSuite("jwt-claims", (test, sample) => {
  test("scenario.json: claims to headers; expired, missing sub, malformed and absent tokens are 401", () => {
    const t = sample.replay();
    const [ok, expired, noSub, malformed, absent] = t.streams;

    const up = ok.upstreamRequest.headers;
    assert.is(up["x-user"], "alice", "the client's x-user is replaced");
    assert.is(up["x-tenant"], "acme");
    assert.is(up["x-scopes"], "orders:read orders:write");
    assert.ok(up.authorization.startsWith("Bearer "), "the token itself goes on (the upstream may verify it too)");
    assert.equal(ok.metadata["envoy_js.jwt"], { sub: "alice" });

    const reasons = [expired, noSub, malformed, absent].map((s) => [s.localReply.status, s.localReply.details]);
    assert.equal(reasons, [
      [401, "jwt_token_expired"],
      [401, "jwt_missing_claim_sub"],
      [401, "jwt_malformed_token"],
      [401, "jwt_missing_token"],
    ]);
    assert.is(
      expired.localReply.headers["www-authenticate"],
      'Bearer error="invalid_token", error_description="token expired"',
    );
    assert.equal(t.metrics, { accepted: 1, rejected: 4 });
    assert.equal(
      t.streams.flatMap((s) => s.errors),
      [],
    );
  });

  test("exp and nbf honour the clock skew", () => {
    const t = sample.streams([
      withToken({ sub: "a", exp: now() - 10 }), // within 30 s of skew
      withToken({ sub: "a", exp: now() - 120 }),
      withToken({ sub: "a", nbf: now() + 10 }),
      withToken({ sub: "a", nbf: now() + 120 }),
    ]);
    assert.equal(
      t.streams.map((s) => s.localReply?.details ?? "ok"),
      ["ok", "jwt_token_expired", "ok", "jwt_token_not_yet_valid"],
    );
  });

  test("a payload that is not JSON, or not base64url, is malformed (jwt-decode's InvalidTokenError)", () => {
    const notJson = `${b64({ alg: "none" })}.${Buffer.from("not json").toString("base64url")}.`;
    const t = sample.streams([
      get("/", { authorization: `Bearer ${notJson}` }),
      get("/", { authorization: "Basic dXNlcjpwdw==" }),
    ]);
    for (const s of t.streams) assert.is(s.localReply.details, "jwt_malformed_token");
  });

  test("UTF-8 claims decode; non-string claims are written as text or skipped", () => {
    const config = sample.config({ claims: { sub: "x-user", admin: "x-admin", level: "x-level", meta: "x-meta" } });
    const s = sample.run(withToken({ sub: "émile", admin: true, level: 3, meta: { a: 1 } }), { config });
    const up = s.upstreamRequest.headers;
    assert.is(up["x-user"], "émile");
    assert.is(up["x-admin"], "true");
    assert.is(up["x-level"], "3");
    assert.is(up["x-meta"], undefined);
  });

  test("requireToken false: anonymous requests pass, without forged claim headers", () => {
    const s = sample.run(get("/", { "x-user": "root", "x-tenant": "evil" }), {
      config: sample.config({ requireToken: false }),
    });
    assert.is(s.localReply, null);
    assert.is(s.upstreamRequest.headers["x-user"], undefined);
    assert.is(s.upstreamRequest.headers["x-tenant"], undefined);
  });
});
