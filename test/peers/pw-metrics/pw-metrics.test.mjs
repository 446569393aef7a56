import * as assert from "uvu/assert";

import { get, messages, peerSuite, upstream } from "../lib.mjs";

const series = (value) => `custom_header_value_counts{value="${value}",reporter="wasmgosdk"}`;
const withHeader = (value) => ({ ...get("/", { "my-custom-header": value }), ...upstream(200, {}, "example body\n") });

peerSuite("pw-metrics", (test, port) => {
  test("TestMetric: three requests with my-custom-header: foo count 3 in foo's series", () => {
    const t = port.streams([withHeader("foo"), withHeader("foo"), withHeader("foo")]);
    for (const s of t.streams) assert.equal(s.errors, []);
    assert.equal(t.metrics, { [series("foo")]: 3 });
  });

  test("Test_metrics (e2e): foo 3 times and bar 5 times are two series, 3 and 5; no header counts nothing", () => {
    const t = port.replay();
    for (const s of t.streams) {
      assert.equal(s.errors, []);
      assert.is(s.downstreamResponse.body, "example body\n");
    }
    assert.equal(t.metrics, { [series("foo")]: 3, [series("bar")]: 5 });
  });

  test("an empty header value is not counted and does not fail the request", () => {
    const s = port.run(withHeader(""));
    assert.equal(s.errors, []);
    assert.is(s.downstreamResponse.headers[":status"], "200");
    assert.equal(s.metrics, {});
    assert.match(messages(s.logs).join("\n"), /my-custom-header not counted: .*label `value` must be 1 to 128 bytes/);
  });

  test("beyond 100 distinct values a new value is not counted; the values already counted go on", () => {
    const streams = [];
    for (let i = 0; i < 101; i++) streams.push(withHeader(`v${i}`));
    streams.push(withHeader("v0"));
    const t = port.streams(streams);
    for (const s of t.streams) assert.equal(s.errors, []);
    assert.is(Object.keys(t.metrics).length, 100);
    assert.is(t.metrics[series("v100")], undefined);
    assert.is(t.metrics[series("v0")], 2);
    assert.match(messages(t.streams[100].logs).join("\n"), /not counted: .*more than 100 label-value combinations/);
  });
});
