import * as assert from "uvu/assert";

import { messages, peerSuite } from "../lib.mjs";

peerSuite("pw-multiple-dispatches", (test, port) => {
  test("ten calls from the response phase; the response resumes after the last one", () => {
    const [s] = port.replay().streams;
    assert.is(s.callouts.length, 10);
    assert.ok(s.callouts.every((c) => c.cluster === "httpbin" && c.headers[":path"] === "/"));
    assert.is(s.downstreamResponse.headers["total-dispatched"], "10");
    assert.is(s.downstreamResponse.headers.key, "value");
    assert.is(s.downstreamResponse.body, "upstream body");
    const logged = messages(s.logs);
    assert.ok(logged.includes("pending dispatched requests: 9"));
    assert.ok(logged.includes("pending dispatched requests: 1"));
    assert.ok(logged.includes("response resumed after processed 10 dispatched request"));
  });

  test("the response is held while calls are pending", () => {
    const host = port.host();
    const i = host.newStream({ clusters: { httpbin: { headers: { ":status": "200" }, delayMs: 30 } } });
    host.requestHeaders(i, { ":method": "GET", ":path": "/", ":authority": "example.com" }, true);
    host.responseHeaders(i, { ":status": "200" }, true);
    assert.is(host.stream(i).downstreamResponse, null);
    host.advanceTime(30);
    assert.is(host.stream(i).downstreamResponse.headers["total-dispatched"], "10");
    host.close();
  });
});
