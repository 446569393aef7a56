import * as assert from "uvu/assert";

import { get, messages, peerSuite } from "../lib.mjs";

peerSuite("pw-shared-data", (test, port) => {
  test("each request adds one to the shared value and logs it; requests go on", () => {
    const t = port.replay();
    assert.equal(
      t.streams.map((s) => messages(s.logs).filter((m) => m.startsWith("shared value"))),
      [["shared value: 1"], ["shared value: 2"], ["shared value: 3"]],
    );
    for (const s of t.streams) {
      assert.equal(s.errors, []);
      assert.ok(s.upstreamRequest !== null, "the request goes upstream");
    }
    assert.equal(
      t.streams.map((s) => s.downstreamResponse.body),
      ["one", "two", "three"],
    );
  });

  test("the count is kept between streams of one run, not per stream", () => {
    const t = port.streams([get("/a"), get("/b"), get("/c"), get("/d"), get("/e")]);
    const last = messages(t.streams[4].logs).find((m) => m.startsWith("shared value"));
    assert.is(last, "shared value: 5");
  });
});
