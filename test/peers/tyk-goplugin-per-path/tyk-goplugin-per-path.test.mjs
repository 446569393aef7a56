import * as assert from "uvu/assert";

import { get, peerSuite, upstream } from "../lib.mjs";

peerSuite("tyk-goplugin-per-path", (test, port) => {
  test("Run Go-plugins on each path", () => {
    const [foo, bar, resp, disabled] = port.replay().streams;
    assert.is(foo.downstreamResponse.headers["x-foo"], "foo");
    assert.is(foo.downstreamResponse.headers["x-bar"], undefined);
    assert.is(bar.downstreamResponse.headers["x-bar"], "bar");
    assert.is(resp.localReply.status, 200);
    assert.is(resp.localReply.headers["content-type"], "application/json");
    assert.is(resp.localReply.body, '{"current_time":"now"}');
    assert.is(resp.upstreamRequest, null);
    assert.is(disabled.localReply, null);
    assert.is(disabled.downstreamResponse.headers["content-type"], "text/plain");
    assert.is(disabled.downstreamResponse.body, "upstream");
  });

  test("a binding is for its method only, and outside the listen path nothing runs", () => {
    const t = port.streams([
      {
        ...get("/goplugin/resp"),
        request: { headers: { ...get("/goplugin/resp").request.headers, ":method": "POST" } },
        ...upstream(200),
      },
      { ...get("/other/foo"), ...upstream(200) },
    ]);
    assert.is(t.streams[0].localReply, null);
    assert.is(t.streams[1].downstreamResponse.headers["x-foo"], undefined);
  });
});
