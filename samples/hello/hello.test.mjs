import * as assert from "uvu/assert";

import { sampleSuite } from "../lib/harness.mjs";

sampleSuite("hello", (test, sample) => {
  test("scenario.json (the make demo run): key checks, credential stripped, order masked, 422", () => {
    const t = sample.replay();
    const [products, missing, unknown, order, incomplete] = t.streams;
    assert.is(products.upstreamRequest.headers["x-client"], "shop-frontend");
    assert.is(products.upstreamRequest.headers["x-api-key"], undefined);
    assert.is(products.downstreamResponse.headers["x-filtered-by"], "envoy-js");
    assert.is(products.downstreamResponse.headers.server, undefined);
    assert.is(missing.localReply.status, 401);
    assert.is(unknown.localReply.status, 403);
    assert.equal(JSON.parse(order.upstreamRequest.body), { item: "tea", quantity: 2, card: "****1111" });
    assert.equal(order.logs, ["[info] order from shop-frontend: 2 x tea"]);
    assert.is(incomplete.localReply.status, 422);
    assert.equal(
      t.streams.flatMap((s) => s.errors),
      [],
    );
  });
});
