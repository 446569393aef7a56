import * as assert from "uvu/assert";

import { messages, peerSuite } from "../lib.mjs";

peerSuite("dm-go-passthrough", (test, port) => {
  test("headers and bodies pass unchanged; the response is marked", () => {
    const t = port.replay();
    const [plain, withBody] = t.streams;
    assert.equal(
      t.streams.flatMap((s) => s.errors),
      [],
    );
    assert.is(plain.upstreamRequest.headers.foo, "bar");
    assert.is(plain.downstreamResponse.headers["x-passthrough-response-header"], "true");
    assert.is(plain.downstreamResponse.body, '{"headers":{}}');
    assert.is(withBody.upstreamRequest.body, "pass me through", "the request body is put back as it came");
    assert.is(withBody.downstreamResponse.headers[":status"], "201");
    assert.is(withBody.downstreamResponse.body, "created it", "the response body is put back as it came");
    assert.is(withBody.downstreamResponse.headers["x-passthrough-response-header"], "true");
  });

  test("logs the foo header, every header, the addresses and the protocol", () => {
    const [plain, withBody] = port.replay().streams;
    const logged = messages(plain.logs);
    assert.ok(logged.includes("RequestHeaders, foo: bar"));
    assert.ok(logged.includes("RequestHeaders, header: :path: /headers"));
    assert.ok(logged.includes("RequestHeaders, header: foo: bar"));
    assert.ok(logged.includes("RequestHeaders, source address: 127.0.0.1:50000"));
    assert.ok(logged.includes("RequestHeaders, destination address: 127.0.0.1:10000"));
    assert.ok(logged.includes("RequestHeaders, request protocol: HTTP/1.1"));
    assert.ok(logged.includes("ResponseHeaders, status: 200"));
    assert.ok(logged.includes("ResponseHeaders, header: x-passthrough-response-header: true"));
    assert.ok(messages(withBody.logs).includes("RequestBody, body: pass me through"));
    assert.ok(messages(withBody.logs).includes("ResponseBody, body: created it"));
  });
});
