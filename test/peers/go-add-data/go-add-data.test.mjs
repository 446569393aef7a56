import * as assert from "uvu/assert";

import { peerSuite } from "../lib.mjs";

peerSuite("go-add-data", (test, port) => {
  test("AddDataInDecodeHeaders: a body-less GET goes upstream as a POST with the body and its length", () => {
    const [s] = port.replay().streams;
    assert.equal(s.errors, []);
    assert.is(s.upstreamRequest.headers[":method"], "POST");
    assert.is(s.upstreamRequest.body, "foo");
    assert.is(s.upstreamRequest.headers["content-length"], "3");
    assert.is(s.downstreamResponse.body, "ok");
  });

  test("AddDataInEncodeHeaders: a body-less response reaches the client with the body and its length", () => {
    const [, s] = port.replay().streams;
    assert.equal(s.errors, []);
    assert.is(s.upstreamRequest.body, "");
    assert.is(s.downstreamResponse.body, "bar");
    assert.is(s.downstreamResponse.headers["content-length"], "3");
  });

  test("without the query parameters nothing changes", () => {
    const [, , s] = port.replay().streams;
    assert.is(s.upstreamRequest.headers[":method"], "GET");
    assert.is(s.upstreamRequest.body, "");
    assert.is(s.downstreamResponse.body, "");
  });
});
