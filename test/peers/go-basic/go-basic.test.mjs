import * as assert from "uvu/assert";

import { messages, peerSuite, send, upstream } from "../lib.mjs";

const values = (v) => [].concat(v ?? []);

peerSuite("go-basic", (test, port) => {
  test("testBasic, request: header edits, filter state, the route and both addresses; the body edited", () => {
    const [s] = port.replay().streams;
    assert.equal(s.errors, []);
    const h = s.upstreamRequest.headers;
    assert.is(h["go-state-test-header-key"], "go_state_test_value");
    assert.is(h["x-test-header-0"], "foo");
    assert.is(h["test-x-set-header-0"], "foo");
    assert.is(h["x-test-header-1"], undefined);
    assert.match(h["req-downstream-local-address"], /^127\.0\.0\.1:/);
    assert.match(h["req-downstream-remote-address"], /^127\.0\.0\.1:/);
    assert.equal(values(h["existed-header"]), ["foo", "bar"]);
    assert.equal(values(h["newly-added-header"]), ["foo", "bar"]);
    assert.is(h["req-route-name"], "test-route-name");
    assert.is(s.upstreamRequest.body, "prepend_HELLOWORLD_append");
  });

  test("testBasic, response: header edits, the stream's facts, the body in upper case", () => {
    const [s] = port.replay().streams;
    const h = s.downstreamResponse.headers;
    assert.is(h["x-test-header-0"], "foo");
    assert.is(h["test-x-set-header-0"], "foo");
    assert.is(h["x-test-header-1"], undefined);
    assert.equal(values(h["existed-header"]), ["foo", "bar"]);
    assert.equal(values(h["newly-added-header"]), ["foo", "bar"]);
    assert.is(h["test-req-body-length"], "10");
    assert.is(h["rsp-route-name"], "test-route-name");
    assert.is(h["rsp-protocol"], "HTTP/1.1");
    assert.is(h["rsp-filter-chain-name"], undefined, "the scenario's filter chain has no name");
    assert.is(h["rsp-response-code"], "200");
    assert.is(h["rsp-response-code-details"], "via_upstream");
    assert.match(h["rsp-upstream-host"], /^127\.0\.0\.1:/);
    assert.is(h["rsp-upstream-cluster"], "upstream"); // the original's cluster_0
    assert.is(h["rsp-attempt-count"], "1");
    assert.is(h["rsp-virtual-cluster-name"], "not found"); // the scenario names no virtual cluster
    assert.is(h["rsp-status"], "200");
    assert.is(h["test-protocol"], undefined);
    assert.is(h["test-scheme"], "http");
    assert.is(h["test-method"], "POST");
    assert.is(h["test-path"], "/test?foo=bar");
    assert.is(h["test-host"], "test.com");
    assert.is(h["test-query-param-foo"], "bar");
    assert.is(s.downstreamResponse.body, "GOODBYE");
    assert.equal(
      messages(s.logs).filter((m) => m === "log test").length,
      5,
      "logged at trace, debug, info, warn, error",
    );
  });

  test("testBasic, request trailers: appended, set, removed, added", () => {
    const s = port.run({
      ...send("POST", "/test", "helloworld"),
      request: {
        ...send("POST", "/test", "helloworld").request,
        trailers: { "x-test-trailer-0": "foo", "existed-trailer": "foo", "x-test-trailer-1": "foo" },
      },
      ...upstream(200, {}, "goodbye"),
    });
    assert.equal(s.errors, []);
    const t = s.upstreamRequest.trailers;
    assert.equal(values(t["existed-trailer"]), ["foo", "bar"]);
    assert.is(t["x-test-trailer-0"], "bar");
    assert.is(t["x-test-trailer-1"], undefined);
    assert.is(t["x-test-trailer-2"], "bar");
  });

  test("testDynamicMetadata, async: x-set-metadata sets filter.go/foo; every hook after an await", () => {
    const [, s] = port.replay().streams;
    assert.equal(s.errors, []);
    assert.is(s.downstreamResponse.headers[":status"], "200");
    assert.is(s.upstreamRequest.body, "prepend_HELLOWORLD_append");
    assert.is(s.downstreamResponse.body, "GOODBYE");
    assert.is(s.downstreamResponse.headers["test-query-param-foo"], "baz");
    const t = port.streams([port.scenario.streams[1]]);
    assert.equal(t.metadata?.["filter.go"] ?? t.streams[0].metadata?.["filter.go"], { foo: "bar" });
  });

  test("the filter chain's name, when it has one", () => {
    const s = port.run({ ...port.scenario.streams[0], stream: { routeName: "r", filterChainName: "chain-0" } });
    assert.is(s.downstreamResponse.headers["rsp-filter-chain-name"], "chain-0");
  });

  test("testSendLocalReply: 403 in decode-header, decode-data and encode-header", () => {
    const [, , header, data, encode] = port.replay().streams;
    for (const [s, phase] of [
      [header, "decode-header"],
      [data, "decode-data"],
      [encode, "encode-header"],
    ]) {
      assert.is(s.localReply.status, 403, phase);
      assert.is(s.localReply.body.toUpperCase(), `FORBIDDEN FROM GO IN ${phase.toUpperCase()}\r\n`);
      assert.is(s.localReply.headers["test-phase"], phase);
      assert.is(s.localReply.headers["content-type"], "text/html");
      assert.equal(s.localReply.headers["x-two-values"], ["foo", "bar"]);
      assert.is(s.localReply.details, "test-from-go");
    }
    assert.is(header.upstreamRequest, null);
    // With content-length and a data hook the headers wait for the body's first data: the
    // reply from that hook comes before anything went upstream, as in Envoy.
    assert.is(data.upstreamRequest, null, "nothing went upstream");
  });

  test("testPanicRecover: a throw in any phase fails the stream with a 500", () => {
    for (const phase of ["decode-header", "decode-data", "encode-header"]) {
      const s = port.run({ ...send("POST", `/test?panic=${phase}`, "hello"), ...upstream(200, {}, "bye") });
      assert.ok(
        s.errors.some((e) => e.includes(`index out of range in ${phase}`)),
        `${phase}: ${s.errors}`,
      );
      assert.is(s.localReply?.status, 500, phase);
    }
  });

  test("badapi: writing the request headers from the body hook is refused and fails the stream", () => {
    const s = port.run({ ...send("POST", "/test?badapi=1", "hello"), ...upstream(200, {}, "bye") });
    assert.ok(
      s.errors.some((e) => e.startsWith("TypeError")),
      s.errors,
    );
  });
});
