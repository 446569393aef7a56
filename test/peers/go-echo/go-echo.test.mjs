import * as assert from "uvu/assert";

import { peerSuite } from "../lib.mjs";

peerSuite("go-echo", (test, port) => {
  test("Echo: the match path is answered with 403 and the echo body", () => {
    const [echo] = port.replay().streams;
    assert.is(echo.localReply.status, 403);
    assert.is(echo.localReply.body, "echo from go, path: /echo\r\n");
    assert.is(echo.upstreamRequest, null);
  });

  test("other paths go upstream without x-test-header-1 and with rsp-header-from-go", () => {
    const [, other] = port.replay().streams;
    assert.is(other.upstreamRequest.headers["x-test-header-1"], undefined);
    assert.is(other.upstreamRequest.headers["x-test-header-0"], "zero");
    assert.is(other.upstreamRequest.headers["rsp-header-from-go"], "foo-test");
    assert.is(other.downstreamResponse.headers["rsp-header-from-go"], "bar-test");
    assert.is(other.downstreamResponse.body, "from upstream");
  });
});
