import * as assert from "uvu/assert";

import { get, peerSuite, upstream } from "../lib.mjs";

peerSuite("tyk-goplugin-response", (test, port) => {
  test("the response gets both headers and the injected body", () => {
    const [s] = port.replay().streams;
    assert.is(s.downstreamResponse.headers[":status"], "200");
    assert.is(s.downstreamResponse.headers["x-response-added"], "resp-added");
    assert.is(s.downstreamResponse.headers["x-plugin-data"], "my-plugin-config");
    assert.is(s.downstreamResponse.body, '{"message":"response injected message"}');
    const cl = s.downstreamResponse.headers["content-length"];
    assert.ok(cl === undefined || cl === String(s.downstreamResponse.body.length), `content-length ${cl}`);
  });

  test("an upstream response without a body is given the injected body, with its length", () => {
    const [, s] = port.replay().streams;
    assert.equal(s.errors, []);
    assert.is(s.downstreamResponse.headers["x-response-added"], "resp-added");
    assert.is(s.downstreamResponse.body, '{"message":"response injected message"}');
    assert.is(s.downstreamResponse.headers["content-length"], String(s.downstreamResponse.body.length));
  });

  test("without config data, X-Plugin-Data says null", () => {
    const s = port.run({ ...get("/"), ...upstream(200, {}, "x") }, { config: {} });
    assert.is(s.downstreamResponse.headers["x-plugin-data"], "null");
  });
});
