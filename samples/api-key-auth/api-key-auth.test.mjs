import * as assert from "uvu/assert";

import { get, sampleSuite } from "../lib/harness.mjs";

sampleSuite("api-key-auth", (test, sample) => {
  test("scenario.json: allowed, 401 missing, 401 invalid, 403 scope, allowed via Authorization, public", () => {
    const t = sample.replay();
    const [ok, missing, invalid, scope, admin, health] = t.streams;

    assert.is(ok.localReply, null);
    assert.is(ok.upstreamRequest.headers["x-client"], "shop-frontend");
    assert.is(ok.upstreamRequest.headers["x-api-key"], undefined, "the key never reaches the upstream");
    assert.equal(ok.metadata["envoy_js.auth"], { client: "shop-frontend" });
    assert.is(ok.downstreamResponse.body, '{"id":7}');

    for (const [s, details] of [
      [missing, "api_key_missing"],
      [invalid, "api_key_invalid"],
    ]) {
      assert.is(s.localReply.status, 401);
      assert.is(s.localReply.details, details);
      assert.is(s.localReply.headers["www-authenticate"], 'ApiKey header="x-api-key"');
      assert.is(s.upstreamRequest, null);
    }
    assert.is(missing.localReply.body, "missing x-api-key\n");

    assert.is(scope.localReply.status, 403);
    assert.is(scope.localReply.body, "scope admin required\n");
    assert.equal(scope.logs, ["[info] client shop-frontend lacks scope admin for /admin/users/3"]);

    assert.is(admin.upstreamRequest.headers["x-client"], "back-office");
    assert.is(admin.upstreamRequest.headers.authorization, undefined);

    assert.is(health.localReply, null);
    assert.is(health.upstreamRequest.headers["x-client"], undefined);

    assert.equal(t.metrics, { allowed: 2, unauthenticated: 2, forbidden: 1 });
    assert.equal(
      t.streams.flatMap((s) => s.errors),
      [],
    );
  });

  test("a forged x-client header is replaced, not trusted", () => {
    const s = sample.run(get("/orders", { "x-api-key": "k-live-7f3a", "x-client": "back-office" }));
    assert.is(s.upstreamRequest.headers["x-client"], "shop-frontend");
  });

  test("the longest scope prefix wins; unscoped paths take any valid key", () => {
    const config = sample.config({ scopes: { "/a": "x", "/a/b": "y" } });
    const keys = { k: { name: "c", scopes: ["y"] } };
    const t = sample.streams(
      [get("/a/b/c", { "x-api-key": "k" }), get("/a/c", { "x-api-key": "k" }), get("/z", { "x-api-key": "k" })],
      { config: { ...config, keys } },
    );
    assert.is(t.streams[0].localReply, null);
    assert.is(t.streams[1].localReply.status, 403);
    assert.is(t.streams[2].localReply, null);
  });

  test("a custom header name, and an empty key counts as missing", () => {
    const config = sample.config({ header: "x-token" });
    const t = sample.streams([get("/orders", { "x-token": "k-live-7f3a" }), get("/orders", { "x-token": "" })], {
      config,
    });
    assert.is(t.streams[0].upstreamRequest.headers["x-token"], undefined);
    assert.is(t.streams[1].localReply.details, "api_key_missing");
    assert.is(t.streams[1].localReply.headers["www-authenticate"], 'ApiKey header="x-token"');
  });
});
