import * as assert from "uvu/assert";

import { get, peerSuite } from "../lib.mjs";

peerSuite("tyk-goplugin-chain", (test, port) => {
  test("Run Go-plugin auth failed: 403 auth failed, X-Auth-Result failed", () => {
    const [failed] = port.replay().streams;
    assert.is(failed.localReply.status, 403);
    assert.ok(failed.localReply.body.includes("auth failed"));
    assert.is(failed.localReply.headers["x-auth-result"], "failed");
    assert.is(failed.upstreamRequest, null);
    assert.equal(failed.metadata, {});
  });

  test("Run Go-plugin all middle-wares: every plugin's header and the post message", () => {
    const [, ok] = port.replay().streams;
    assert.is(ok.localReply.status, 200);
    const h = ok.localReply.headers;
    assert.is(h["x-initial-uri"], "/goplugin/plugin_hit");
    assert.is(h["x-auth-result"], "OK");
    assert.is(h["x-session-alias"], "abc-session");
    assert.is(h["x-plugin-data"], "my-plugin-config");
    assert.ok(ok.localReply.body.includes('"message":"post message"'));
    assert.equal(ok.metadata["envoy_js.tyk"], { session_alias: "abc-session", session_org: "default" });
  });

  test("without config data, X-Plugin-Data says null", () => {
    const s = port.run(get("/goplugin/x", { authorization: "abc" }), { config: {} });
    assert.is(s.localReply.headers["x-plugin-data"], "null");
  });
});
