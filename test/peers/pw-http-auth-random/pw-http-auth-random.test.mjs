import * as assert from "uvu/assert";

import { messages, peerSuite } from "../lib.mjs";

peerSuite("pw-http-auth-random", (test, port) => {
  test("OnHttpRequestHeaders: one call to httpbin with the request's headers, logged", () => {
    const [s] = port.replay().streams;
    assert.is(s.callouts.length, 1);
    assert.is(s.callouts[0].cluster, "httpbin");
    assert.is(s.callouts[0].headers.key, "value");
    assert.is(s.callouts[0].headers[":path"], "/uuid");
    const logged = messages(s.logs);
    assert.ok(logged.includes("http call dispatched to httpbin"));
    assert.ok(logged.includes("request header: key: value"));
    assert.ok(logged.includes("response header from httpbin: content-type: application/json"));
  });

  test("OnHttpCallResponse: an even hash grants access, an odd one answers 403", () => {
    const [granted, forbidden] = port.replay().streams;
    assert.is(granted.localReply, null);
    assert.ok(messages(granted.logs).includes("access granted"));
    assert.is(granted.downstreamResponse.body, "upstream");

    assert.is(forbidden.upstreamRequest, null);
    assert.is(forbidden.localReply.status, 403);
    assert.is(forbidden.localReply.body, "access forbidden");
    assert.is(forbidden.localReply.headers["powered-by"], "proxy-wasm-go-sdk!!");
    assert.ok(messages(forbidden.logs).includes("access forbidden"));
  });
});
