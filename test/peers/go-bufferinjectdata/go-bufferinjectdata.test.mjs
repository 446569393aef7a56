import * as assert from "uvu/assert";

import { peerSuite, send, upstream } from "../lib.mjs";

const WHOLE = "To be, or not to be, that is the question";

peerSuite("go-bufferinjectdata", (test, port) => {
  test("BufferInjectData_InBufferedDownstreamRequest: the held request is completed at its end", () => {
    const [s] = port.replay().streams;
    assert.equal(s.errors, []);
    assert.is(s.upstreamRequest.body, WHOLE);
  });

  test("BufferInjectData_InBufferedUpstreamResponse: the held response is completed at its end", () => {
    const [, s] = port.replay().streams;
    assert.equal(s.errors, []);
    assert.is(s.upstreamRequest.body, "hi", "the request is left alone");
    assert.is(s.downstreamResponse.body, WHOLE);
  });

  test("BufferInjectData_InNonBufferedDownstreamRequest: each piece goes on with its addition", () => {
    const s = port.run(send("POST", "/test?nonbufferingly_decode", ["To be, ", "that is "]));
    assert.equal(s.errors, []);
    assert.is(s.upstreamRequest.body, WHOLE);
  });

  test("BufferInjectData_InNonBufferedUpstreamResponse: each piece goes on with its addition", () => {
    const s = port.run({
      ...send("POST", "/test?nonbufferingly_encode", "hi"),
      ...upstream(200, {}, ["To be, ", "that is "]),
    });
    assert.equal(s.errors, []);
    assert.is(s.downstreamResponse.body, WHOLE);
  });

  test("other paths pass unchanged", () => {
    const s = port.run({ ...send("POST", "/test", ["To ", "be, "]), ...upstream(200, {}, ["To ", "be, "]) });
    assert.is(s.upstreamRequest.body, "To be, ");
    assert.is(s.downstreamResponse.body, "To be, ");
  });
});
