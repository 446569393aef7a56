import * as assert from "uvu/assert";

import { messages, peerSuite } from "../lib.mjs";

peerSuite("pw-properties", (test, port) => {
  test("a route that names the auth header: a request carrying it goes on", () => {
    const [s] = port.replay().streams;
    assert.equal(s.errors, []);
    assert.is(s.localReply, null);
    assert.is(s.downstreamResponse.body, "welcome");
    assert.ok(messages(s.logs).includes('auth header is "cookie"'));
  });

  test("the same route without the header: 401 with an empty body, not sent upstream", () => {
    const [, s] = port.replay().streams;
    assert.is(s.localReply.status, 401);
    assert.is(s.localReply.body, "");
    assert.is(s.upstreamRequest, null);
  });

  test("a route without the metadata: logged, the request goes on", () => {
    const [, , s] = port.replay().streams;
    assert.is(s.localReply, null);
    assert.is(s.downstreamResponse.body, "open");
    assert.ok(messages(s.logs).includes("no auth header for route"));
  });

  test("every stream logs that it finished", () => {
    for (const s of port.replay().streams)
      assert.ok(
        messages(s.logs).some((m) => /^\d+ finished$/.test(m)),
        s.logs,
      );
  });
});
