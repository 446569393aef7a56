import * as assert from "uvu/assert";

import { get, peerSuite, upstream } from "../lib.mjs";

const status = (s) => s.localReply?.status ?? Number(s.downstreamResponse.headers[":status"]);

peerSuite("dm-rust-random-auth", (test, port) => {
  test("a refused request gets 403 Access forbidden and never reaches the upstream", () => {
    const [denied, allowed] = port.replay().streams;
    assert.is(denied.localReply.status, 403);
    assert.is(denied.localReply.body, "Access forbidden");
    assert.is(denied.upstreamRequest, null);
    assert.is(allowed.localReply, null);
    assert.is(allowed.downstreamResponse.body, '{"uuid":"3"}');
  });

  test("left to chance, both outcomes occur (the original's test waits for a 200 and a 403)", () => {
    const streams = Array.from({ length: 64 }, () => ({ ...get("/uuid"), ...upstream(200, {}, "ok") }));
    const seen = new Set(port.streams(streams, { config: {} }).streams.map(status));
    assert.equal([...seen].sort(), [200, 403]);
  });
});
