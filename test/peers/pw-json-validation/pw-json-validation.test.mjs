import * as assert from "uvu/assert";

import { peerSuite, postJson, upstream } from "../lib.mjs";

peerSuite("pw-json-validation", (test, port) => {
  test("OnHTTPRequestHeaders: a non-JSON content type is refused, JSON goes on", () => {
    const [html, , , good] = port.replay().streams;
    assert.is(html.localReply.status, 403);
    assert.is(html.localReply.body, "content-type must be provided");
    assert.is(html.upstreamRequest, null);
    assert.is(good.localReply, null);
  });

  test("OnHTTPRequestBody: invalid JSON and a missing key pause with 403; a good payload passes whole", () => {
    const [, invalid, unknown, good] = port.replay().streams;
    for (const s of [invalid, unknown]) {
      assert.is(s.localReply.status, 403);
      assert.is(s.localReply.body, "invalid payload");
      assert.is(s.upstreamRequest, null);
    }
    assert.match(invalid.logs[0], /^\[error\] body is not a valid json: "invalid_payload"/);
    assert.match(unknown.logs[0], /^\[error\] required key \(my_key\) is missing/);
    assert.is(good.upstreamRequest.body, '{"my_key":"my_value"}');
    assert.is(good.downstreamResponse.body, "stored");
  });

  test("no required keys: any valid JSON passes; nested keys are paths", () => {
    const t = port.streams(
      [
        { ...postJson("/", [1, 2]), ...upstream(200) },
        { ...postJson("/", { a: { b: 1 } }), ...upstream(200) },
      ],
      { config: {} },
    );
    assert.is(t.streams[0].localReply, null);
    const nested = port.run(
      { ...postJson("/", { a: { b: 1 } }), ...upstream(200) },
      { config: { requiredKeys: ["a.b"] } },
    );
    assert.is(nested.localReply, null);
    const missing = port.run(postJson("/", { a: {} }), { config: { requiredKeys: ["a.b"] } });
    assert.is(missing.localReply.status, 403);
  });
});
