import * as assert from "uvu/assert";

import { messages, peerSuite, send } from "../lib.mjs";

peerSuite("pw-http-body-chunk", (test, port) => {
  test("the pattern in the second chunk: 403 naming the chunk, nothing went upstream", () => {
    const found = port.run(send("POST", "/", ["first piece, ", "has the pattern, ", "third piece"]));
    assert.equal(found.errors, []);
    assert.is(found.localReply.status, 403);
    assert.is(found.localReply.body, "pattern found in chunk: 2");
    assert.is(found.localReply.headers["powered-by"], "proxy-wasm-go-sdk");
    assert.is(found.upstreamRequest.body, "", "the headers went upstream, the held first chunk never did");
    assert.ok(messages(found.logs).includes("pattern found in chunk: 2"));
  });

  test("no pattern: every chunk is held, then the whole body goes upstream in order", () => {
    const [clean] = port.replay().streams;
    assert.equal(clean.errors, []);
    assert.is(clean.localReply, null);
    assert.is(clean.upstreamRequest.body, "first piece, second piece, third piece");
    assert.is(clean.downstreamResponse.body, "ok");
    const logged = messages(clean.logs);
    assert.ok(logged.includes("pattern not found"));
    assert.equal(
      logged.filter((m) => m.startsWith("request body chunk")),
      [
        "request body chunk: size 13, read before 0, endOfStream false",
        "request body chunk: size 14, read before 13, endOfStream false",
        "request body chunk: size 11, read before 27, endOfStream true",
      ],
    );
  });

  test("a body of one chunk with the pattern: 403 in chunk 1", () => {
    const s = port.replay().streams[1];
    assert.is(s.localReply.status, 403);
    assert.is(s.localReply.body, "pattern found in chunk: 1");
    // The request has content-length: its headers waited for the first chunk, so nothing went upstream.
    assert.is(s.upstreamRequest, null);
  });

  test("a pattern split across two chunks is not found, as in the original", () => {
    const s = port.run(send("POST", "/", ["a patt", "ern here"]));
    assert.is(s.localReply, null);
    assert.is(s.upstreamRequest.body, "a pattern here");
  });
});
