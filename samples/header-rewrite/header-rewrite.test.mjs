import * as assert from "uvu/assert";

import { get, sampleSuite, upstream } from "../lib/harness.mjs";

sampleSuite("header-rewrite", (test, sample) => {
  test("scenario.json: path canonicalised, internal headers gone, user renamed, response cleaned", () => {
    const t = sample.replay();
    const [first, second] = t.streams;
    const up = first.upstreamRequest.headers;
    assert.is(up[":path"], "/api/v1/orders?page=2");
    assert.is(up["x-internal-debug"], undefined);
    assert.is(up["x-internal-trace"], undefined);
    assert.is(up["x-forwarded-user"], undefined);
    assert.is(up["x-user"], "alice");
    assert.is(up["x-gateway"], "envoy-js");
    assert.match(up["x-request-id"], /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.is(first.routeCacheClears, 1);
    const down = first.downstreamResponse.headers;
    assert.is(down.server, undefined);
    assert.is(down["x-powered-by"], undefined);
    assert.is(down["x-content-type-options"], "nosniff");
    assert.is(first.downstreamResponse.body, "[]");
    // A given request id is kept; a security header the upstream set is not overridden.
    assert.is(second.upstreamRequest.headers["x-request-id"], "given-id");
    assert.is(second.downstreamResponse.headers["strict-transport-security"], "max-age=60");
    assert.is(t.metrics.pathsRewritten, 1);
    assert.equal(
      t.streams.flatMap((s) => s.errors),
      [],
    );
  });

  test("path canonical forms", () => {
    const cases = {
      "/": "/",
      "//": "/",
      "/a/b/": "/a/b/",
      "/a/./b": "/a/b",
      "/../../etc/passwd": "/etc/passwd",
      "/a/b/../../..": "/",
      "/a//b?x=//y/../z": "/a/b?x=//y/../z",
      "/%2e%2e/a": "/%2e%2e/a",
    };
    const t = sample.streams(Object.keys(cases).map((p) => get(p)));
    Object.values(cases).forEach((want, i) => {
      assert.is(t.streams[i].upstreamRequest.headers[":path"], want);
    });
  });

  test("nothing changed: no route cache clear beyond the request id", () => {
    const s = sample.run(get("/plain", { "x-request-id": "r1" }), { config: {} });
    assert.is(s.routeCacheClears, 0);
    assert.is(s.upstreamRequest.headers[":path"], "/plain");
  });

  test("rename keeps every value in order; prefix removal leaves other headers", () => {
    const s = sample.run({
      ...get("/", { "x-forwarded-user": ["a", "b"], "x-internal": "keep-me", "x-internal-a": "1" }),
      ...upstream(200),
    });
    const up = s.upstreamRequest.headers;
    assert.equal(up["x-user"], ["a", "b"]);
    assert.is(up["x-internal"], "keep-me");
    assert.is(up["x-internal-a"], undefined);
  });

  test("a local reply from elsewhere still gets the response rules (the filter sees it too)", () => {
    const s = sample.run({ ...get("/x"), ...upstream(503, { server: "envoy" }, "down") });
    assert.is(s.downstreamResponse.headers[":status"], "503");
    assert.is(s.downstreamResponse.headers.server, undefined);
    assert.is(s.downstreamResponse.headers["x-content-type-options"], "nosniff");
  });
});
