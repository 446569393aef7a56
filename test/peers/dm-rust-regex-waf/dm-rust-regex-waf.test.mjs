import * as assert from "uvu/assert";

import { peerSuite, send, upstream } from "../lib.mjs";

peerSuite("dm-rust-regex-waf", (test, port) => {
  test("integration cases: a harmless body passes, curl and wget are refused", () => {
    const [ok, curl, wget] = port.replay().streams;
    assert.is(ok.localReply, null);
    assert.is(ok.upstreamRequest.body.length, 200, "the body goes upstream unchanged");
    for (const s of [curl, wget]) {
      assert.is(s.localReply.status, 403);
      assert.is(s.localReply.body, "Access forbidden");
      assert.is(s.upstreamRequest, null);
    }
  });

  test("unit case: 'Hello [Ww].+' matches a body split over chunks, not 'Good Morning!'", () => {
    const config = { pattern: "Hello [Ww].+" };
    const t = port.streams(
      [
        send("POST", "/", ["Hello ", "World!"]),
        { ...send("POST", "/", ["Good ", "Morning!"]), ...upstream(200, {}, "fine") },
      ],
      { config },
    );
    assert.is(t.streams[0].localReply.status, 403);
    assert.is(t.streams[1].localReply, null);
    assert.is(t.streams[1].upstreamRequest.body, "Good Morning!");
  });

  test("the pattern must match the whole body", () => {
    const s = port.run(
      { ...send("POST", "/", "say Hello World"), ...upstream(200) },
      { config: { pattern: "Hello [Ww].+" } },
    );
    assert.is(s.localReply, null);
  });
});
