import * as assert from "uvu/assert";

import { messages, peerSuite, send, upstream } from "../lib.mjs";

const req = (op, at, body = "[original body]") =>
  send("POST", "/anything", body, {
    "content-length": String(body.length),
    "buffer-operation": op,
    ...(at ? { "buffer-replace-at": at } : {}),
  });

peerSuite("pw-http-body", (test, port) => {
  test("request body: append, prepend, replace; the original is logged", () => {
    const [append, prepend, replace] = port.replay().streams;
    assert.is(append.upstreamRequest.body, "[original body][this is appended body]");
    assert.is(prepend.upstreamRequest.body, "[this is prepended body][original body]");
    assert.is(replace.upstreamRequest.body, "[this is replaced body]");
    for (const s of [append, prepend, replace])
      assert.ok(messages(s.logs).includes("original request body: [original body]"));
  });

  test("remove content length: the upstream request does not carry the client's", () => {
    const [append] = port.replay().streams;
    const cl = append.upstreamRequest.headers["content-length"];
    assert.ok(
      cl === undefined || cl === String("[original body][this is appended body]".length),
      `content-length ${cl}`,
    );
  });

  test("response body: append, prepend, replace with buffer-replace-at: response", () => {
    const t = port.streams(
      ["append", "prepend", "replace"].map((op) => ({
        ...req(op, "response", "hi"),
        ...upstream(200, { "content-length": "15" }, "[original body]"),
      })),
    );
    assert.equal(
      t.streams.map((s) => s.downstreamResponse.body),
      ["[original body][this is appended body]", "[this is prepended body][original body]", "[this is replaced body]"],
    );
    for (const s of t.streams) {
      assert.is(s.upstreamRequest.body, "hi", "the request body is left alone");
      assert.ok(messages(s.logs).includes("original response body: [original body]"));
    }
  });

  test("400 response without content-length", () => {
    const s = port.replay().streams[4];
    assert.is(s.localReply.status, 400);
    assert.is(s.localReply.body, "content must be provided");
    assert.is(s.upstreamRequest, null);
  });

  test("echo mode: the body arrives in frames and comes back whole as a 200", () => {
    const s = port.run(send("POST", "/echo", ["frame1...", "frame2...", "frame3..."]), { config: { mode: "echo" } });
    assert.is(s.localReply.status, 200);
    assert.is(s.localReply.body, "frame1...frame2...frame3...");
    assert.is(s.upstreamRequest, null);
  });
});
