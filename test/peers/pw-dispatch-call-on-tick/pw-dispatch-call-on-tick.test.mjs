// The original's tests (main_test.go): after the plugin starts the tick period is 100 ms; each
// tick dispatches one call, and each answer logs "called <n> for contextID=<id>". Here the
// ticks come from advancing the fake clock of the wasm engine's background engine, with no
// stream at all, and the answers come from a scripted `web_service`.
import { test } from "uvu";
import * as assert from "uvu/assert";

import { createHost } from "@envoy-js/sdk/testing";

import { buildSample } from "../../../samples/lib/harness.mjs";
import { PEERS_DIR, messages } from "../lib.mjs";

const WEB_SERVICE = { web_service: { headers: { ":status": "200", "x-from": "web" }, body: "hi" } };

let bundle;
test.before(async () => {
  ({ bundle } = await buildSample("pw-dispatch-call-on-tick", PEERS_DIR));
});

test("the plugin starts with a 100 ms tick", () => {
  const host = createHost(bundle);
  host.startBackground({ clusters: WEB_SERVICE });
  assert.equal(messages(host.getBackgroundLogs()), ["set tick period milliseconds: 100"]);
  host.close();
});

test("each tick dispatches one call, and each answer logs its count and headers, with no stream", () => {
  const host = createHost(bundle);
  host.startBackground({ clusters: WEB_SERVICE });
  for (let i = 1; i < 10; i++) {
    host.advanceTime(100); // one tick; the scripted answer comes at once
    const logs = messages(host.getBackgroundLogs());
    assert.ok(logs.includes(`called ${i} for contextID=1`), logs.join("\n"));
    assert.not.ok(logs.includes(`called ${i + 1} for contextID=1`));
  }
  const logs = messages(host.getBackgroundLogs());
  assert.ok(logs.includes("response header for the dispatched call: x-from: web"));
  assert.equal(host.transcript().streams, []);
  host.close();
});

test("a call that cannot be made is logged and the ticks go on", () => {
  const host = createHost(bundle);
  host.startBackground({ clusters: {} });
  host.advanceTime(250);
  const failed = messages(host.getBackgroundLogs()).filter((l) => l.startsWith("dispatch httpcall failed"));
  assert.equal(failed, [
    "dispatch httpcall failed: fetch(): no cluster named 'web_service'",
    "dispatch httpcall failed: fetch(): no cluster named 'web_service'",
  ]);
  host.close();
});

test("requests pass through untouched", () => {
  const host = createHost(bundle);
  const s = host.newStream();
  s.callOnRequestHeaders({ ":method": "GET", ":path": "/x", ":authority": "h" }, true);
  assert.is(s.getCurrentUpstreamRequest()?.headers[":path"], "/x");
  host.close();
});

test.run();
