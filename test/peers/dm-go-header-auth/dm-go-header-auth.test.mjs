import * as assert from "uvu/assert";

import { get, peerSuite, upstream } from "../lib.mjs";

peerSuite("dm-go-header-auth", (test, port) => {
  test("no header: 401 from the request phase, nothing sent upstream", () => {
    const [missing] = port.replay().streams;
    assert.is(missing.upstreamRequest, null);
    assert.is(missing.localReply.status, 401);
    assert.is(missing.localReply.body, "Unauthorized by Go Module at on_request_headers\n");
    assert.is(missing.localReply.headers["content-type"], "text/plain");
    assert.is(missing.localReply.details, "unauthorized");
  });

  test("header says on_response_headers: the request goes upstream, the client gets the 401", () => {
    const [, late] = port.replay().streams;
    assert.ok(late.upstreamRequest, "the upstream was called");
    assert.is(late.localReply.status, 401);
    assert.is(late.localReply.body, "Unauthorized by Go Module at on_response_headers\n");
  });

  test("any other value passes", () => {
    const [, , ok] = port.replay().streams;
    assert.is(ok.localReply, null);
    assert.is(ok.downstreamResponse.headers[":status"], "200");
    assert.is(ok.downstreamResponse.body, '{"uuid":"2"}');
  });

  test("the header name comes from the config", () => {
    const s = port.run(
      { ...get("/uuid", { "go-module-auth-header": "x" }), ...upstream(200) },
      { config: { header: "x-other" } },
    );
    assert.is(s.localReply.status, 401);
  });
});
