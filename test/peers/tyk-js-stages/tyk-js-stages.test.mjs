import * as assert from "uvu/assert";

import { get, messages, peerSuite, send, upstream } from "../lib.mjs";

peerSuite("tyk-js-stages", (test, port) => {
  test("TestJSVMStagesRequest: the upstream sees Pre and Post headers and parameters", () => {
    const [plain, withQuery] = port.replay().streams;
    const h = plain.upstreamRequest.headers;
    assert.is(h.pre, "foobar");
    assert.is(h.post, "foobar");
    assert.is(h[":path"], "/test?pre=foobar&post=foobar");
    assert.is(withQuery.upstreamRequest.headers[":path"], "/test?b=1&c=2&pre=foobar&post=foobar");
    assert.equal(messages(plain.logs), [
      "Running sample  PRE PROCESSOR JSVM middleware",
      "Running sample  POST PROCESSOR JSVM middleware",
    ]);
  });

  test("sample_pre.js: User-Agent, test_param added, delete_me removed, body replaced", () => {
    const s = port.run(
      { ...send("POST", "/get?delete_me=1&keep=a+b", "old body", { "user-agent": "curl" }), ...upstream(200) },
      { config: { samplePre: true } },
    );
    const h = s.upstreamRequest.headers;
    assert.is(h["user-agent"], "Tyk-Custom-JSVM-Middleware");
    assert.is(h[":path"], "/get?keep=a+b&pre=foobar&test_param=My+Teapot&post=foobar");
    assert.is(s.upstreamRequest.body, "New Request body");
  });

  test("sample_pre.js on a GET without a body: the body override gives it one, with its length", () => {
    const s = port.replay().streams[2];
    assert.equal(s.errors, []);
    assert.is(s.upstreamRequest.headers["user-agent"], "Tyk-Custom-JSVM-Middleware");
    assert.is(s.upstreamRequest.headers[":path"], "/sample/get?keep=a&pre=foobar&test_param=My+Teapot&post=foobar");
    assert.is(s.upstreamRequest.body, "New Request body");
    assert.is(s.upstreamRequest.headers["content-length"], String("New Request body".length));
  });

  test("the client's parameters keep their order; the added ones go last", () => {
    const s = port.run({ ...get("/get?b=1&c=2&a=3"), ...upstream(200) });
    assert.is(s.upstreamRequest.headers[":path"], "/get?b=1&c=2&a=3&pre=foobar&post=foobar");
  });
});
