import * as assert from "uvu/assert";

import { get, sampleSuite } from "../lib/harness.mjs";

// The filter's hash, to know which group a user id lands in.
function bucketOf(id) {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) {
    h ^= id.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % 100;
}

const groupOf = (s) => s.upstreamRequest.headers["x-route-to"];

sampleSuite("canary", (test, sample) => {
  test("scenario.json: forced, sticky cookie, user hash, per-route 100%", () => {
    const t = sample.replay();
    const [forced, sticky, user, beta] = t.streams;

    assert.is(groupOf(forced), "canary");
    assert.is(forced.downstreamResponse.headers["x-served-by"], "canary");
    assert.is(forced.downstreamResponse.headers["set-cookie"], undefined, "a forced group is not remembered");

    assert.is(groupOf(sticky), "stable");
    assert.is(sticky.downstreamResponse.headers["set-cookie"], undefined);

    const want = bucketOf("user-42") < 10 ? "canary" : "stable";
    assert.is(groupOf(user), want);
    assert.is(
      user.downstreamResponse.headers["set-cookie"],
      `canary=${want}; Max-Age=86400; Path=/; HttpOnly; Secure; SameSite=Lax`,
    );

    // user-7 hashes to 62: stable at the filter's 10%, canary under the route's 100%.
    assert.is(bucketOf("user-7"), 62);
    assert.is(groupOf(beta), "canary");
    for (const s of t.streams) {
      assert.is(s.routeCacheClears, 1);
      assert.equal(s.metadata["envoy_js.canary"], { group: groupOf(s) });
    }
    assert.equal(
      t.streams.flatMap((s) => s.errors),
      [],
    );
  });

  test("0% and 100%: everyone stable, everyone canary; a client's x-route-to is overwritten", () => {
    const streams = Array.from({ length: 20 }, (_, i) => get(`/p${i}`, { "x-route-to": "canary" }));
    const none = sample.streams(streams, { config: sample.config({ percent: 0 }) });
    assert.ok(none.streams.every((s) => groupOf(s) === "stable"));
    assert.is(none.metrics.stable, 20);
    const all = sample.streams(streams, { config: sample.config({ percent: 100 }) });
    assert.ok(all.streams.every((s) => groupOf(s) === "canary"));
  });

  test("random assignment follows percent and is remembered in a cookie", () => {
    const streams = Array.from({ length: 400 }, () => get("/"));
    const t = sample.streams(streams, { config: sample.config({ percent: 25 }) });
    const canary = t.streams.filter((s) => groupOf(s) === "canary").length;
    // 400 draws at 25%: the mean is 100, the standard deviation about 8.7.
    assert.ok(canary > 60 && canary < 140, `canary ${canary} of 400`);
    for (const s of t.streams) {
      assert.match(s.downstreamResponse.headers["set-cookie"], new RegExp(`^canary=${groupOf(s)}; Max-Age=86400;`));
    }
  });

  test("the same user id always lands in the same group; unknown cookie values are ignored", () => {
    const users = ["a", "b", "c", "d", "e", "f", "g", "h"];
    const config = sample.config({ percent: 50 });
    const first = sample.streams(
      users.map((u) => get("/", { "x-user-id": u })),
      { config },
    );
    const again = sample.streams(
      users.map((u) => get("/", { "x-user-id": u, cookie: "canary=bogus" })),
      { config },
    );
    assert.equal(
      first.streams.map(groupOf),
      users.map((u) => (bucketOf(u) < 50 ? "canary" : "stable")),
    );
    assert.equal(again.streams.map(groupOf), first.streams.map(groupOf));
  });
});
