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

  test("every stream logs its id when it finished", () => {
    // The scripted host numbers streams from 1; Envoy's id is the request's x-request-id.
    port.replay().streams.forEach((s, i) => {
      assert.ok(messages(s.logs).includes(`${i + 1} finished`), s.logs);
    });
  });
});
