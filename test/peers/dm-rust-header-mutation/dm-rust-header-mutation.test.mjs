import * as assert from "uvu/assert";

import { peerSuite } from "../lib.mjs";

peerSuite("dm-rust-header-mutation", (test, port) => {
  test("test_filter: X-Foo set and To-Remove removed on the request", () => {
    const [s] = port.replay().streams;
    assert.equal(s.errors, []);
    assert.is(s.upstreamRequest.headers["x-foo"], "bar");
    assert.is(s.upstreamRequest.headers["to-remove"], undefined);
    assert.is(s.upstreamRequest.headers.keep, "y");
  });

  test("test_filter: the response gets the addresses and the code, X-Bar set, To-Remove removed", () => {
    const [s] = port.replay().streams;
    const h = s.downstreamResponse.headers;
    // The scripted host's client and upstream host (the original's mock answers 1.1.1.1:12345
    // and 2.2.2.2:12345).
    assert.is(h["x-downstream-address"], "127.0.0.1:50000");
    assert.is(h["x-upstream-address"], "127.0.0.1:8080");
    assert.is(h["x-response-code"], "200");
    assert.is(h["x-bar"], "foo");
    assert.is(h["to-remove"], undefined);
    assert.is(h["x-upstream-own"], "1");
    assert.is(s.downstreamResponse.body, "hello");
  });

  test("the response code is the upstream's", () => {
    const [, s] = port.replay().streams;
    assert.is(s.downstreamResponse.headers["x-response-code"], "404");
  });

  test("the upstream address is the scenario's upstream host", () => {
    const s = port.run({
      ...port.scenario.streams[0],
      stream: { upstreamAddress: "2.2.2.2:12345", remoteAddress: "1.1.1.1:12345" },
    });
    assert.is(s.downstreamResponse.headers["x-upstream-address"], "2.2.2.2:12345");
    assert.is(s.downstreamResponse.headers["x-downstream-address"], "1.1.1.1:12345");
  });
});
