import * as assert from "uvu/assert";

import { messages, peerSuite } from "../lib.mjs";

peerSuite("tyk-js-auth", (test, port) => {
  test("TestJSVM_Auth: missing header 401, wrong token 401, right token 200", () => {
    const [missing, wrong, ok] = port.replay().streams;
    assert.is(missing.localReply.status, 401);
    assert.ok(missing.localReply.body.includes("Header missing (JS middleware)"));
    assert.is(wrong.localReply.status, 401);
    assert.ok(wrong.localReply.body.includes("Not authorized (JS middleware)"));
    for (const s of [missing, wrong]) assert.is(s.upstreamRequest, null);
    assert.is(ok.localReply, null);
    assert.is(ok.downstreamResponse.headers[":status"], "200");
    assert.ok(messages(ok.logs).includes("auth is ok"));
    assert.equal(ok.metadata["envoy_js.tyk"], { allowance: 100, rate: 100, per: 1 });
  });

  test("the error is Tyk's JSON error body", () => {
    const [missing] = port.replay().streams;
    assert.equal(JSON.parse(missing.localReply.body), { error: "Header missing (JS middleware)" });
    assert.is(missing.localReply.headers["content-type"], "application/json");
  });
});
