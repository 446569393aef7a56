import * as assert from "uvu/assert";

import { get, messages, peerSuite, upstream } from "../lib.mjs";

peerSuite("pw-http-routing", (test, port) => {
  test("canary: an even dice appends -canary to :authority; the header write clears the route cache", () => {
    const [canary] = port.replay().streams;
    assert.is(canary.upstreamRequest.headers[":authority"], "my-host.com-canary");
    assert.is(canary.routeCacheClears, 1);
    assert.ok(messages(canary.logs).includes("value: 2"));
  });

  test("non-canary: an odd dice leaves the request alone", () => {
    const [, primary] = port.replay().streams;
    assert.is(primary.upstreamRequest.headers[":authority"], "my-host.com");
    assert.is(primary.routeCacheClears, 0);
  });

  test("left to the dice, both routes occur", () => {
    const streams = Array.from({ length: 64 }, () => ({ ...get("/"), ...upstream(200) }));
    const seen = new Set(
      port.streams(streams, { config: {} }).streams.map((s) => s.upstreamRequest.headers[":authority"]),
    );
    assert.equal([...seen].sort(), ["api.example.com", "api.example.com-canary"]);
  });
});
