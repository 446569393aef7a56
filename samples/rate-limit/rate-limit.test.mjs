import * as assert from "uvu/assert";

import { sampleSuite } from "../lib/harness.mjs";

/** One request through a step-by-step host; returns that stream's transcript. */
function request(host, headers = {}, setup = {}) {
  const i = host.newStream(setup);
  host.requestHeaders(i, { ":method": "GET", ":path": "/search", ":authority": "api.example.com", ...headers }, true);
  if (host.stream(i).requestSentUpstream) host.responseHeaders(i, { ":status": "200" }, true);
  host.complete(i);
  host.destroy(i);
  return host.stream(i);
}

const status = (s) => s.localReply?.status ?? Number(s.downstreamResponse.headers[":status"]);

sampleSuite("rate-limit", (test, sample) => {
  test("scenario.json: a burst of 3 per key, the 4th is 429, other keys unaffected", () => {
    const t = sample.replay();
    assert.equal(t.streams.map(status), [200, 200, 200, 429, 200]);
    assert.equal(
      t.streams.slice(0, 3).map((s) => s.downstreamResponse.headers["x-ratelimit-remaining"]),
      ["2", "1", "0"],
    );
    const limited = t.streams[3].localReply;
    assert.is(limited.headers["retry-after"], "1");
    assert.is(limited.details, "rate_limited");
    assert.is(t.streams[3].upstreamRequest, null);
    assert.equal(t.metrics, { allowed: 4, limited: 1, buckets: 2 });
  });

  test("tokens come back at ratePerSecond on the host clock", () => {
    const host = sample.host();
    try {
      for (let i = 0; i < 3; i++) assert.is(status(request(host, { "x-api-key": "k" })), 200);
      assert.is(status(request(host, { "x-api-key": "k" })), 429);
      host.advanceTime(400); // 0.8 token
      assert.is(status(request(host, { "x-api-key": "k" })), 429);
      host.advanceTime(100); // 1 token
      const s = request(host, { "x-api-key": "k" });
      assert.is(status(s), 200);
      assert.is(s.downstreamResponse.headers["x-ratelimit-remaining"], "0");
      host.advanceTime(10_000); // never more than the burst
      for (let i = 0; i < 3; i++) assert.is(status(request(host, { "x-api-key": "k" })), 200);
      assert.is(status(request(host, { "x-api-key": "k" })), 429);
    } finally {
      host.close();
    }
  });

  test("without a key, clients are told apart by address (port ignored)", () => {
    const host = sample.host({ config: sample.config({ burst: 1 }) });
    try {
      const from = (addr) => ({ stream: { remoteAddress: addr } });
      assert.is(status(request(host, {}, from("10.0.0.1:4000"))), 200);
      assert.is(status(request(host, {}, from("10.0.0.1:4001"))), 429);
      assert.is(status(request(host, {}, from("10.0.0.2:4000"))), 200);
    } finally {
      host.close();
    }
  });

  test("the sweep timer from setup drops idle buckets; the cap evicts the oldest", () => {
    const host = sample.host({ config: sample.config({ maxBuckets: 2 }) });
    try {
      request(host, { "x-api-key": "a" });
      request(host, { "x-api-key": "b" });
      request(host, { "x-api-key": "c" }); // evicts a
      assert.is(host.transcript().metrics.buckets, 2);
      // a starts again with a full bucket (it was evicted, not remembered as spent).
      for (let i = 0; i < 3; i++) assert.is(status(request(host, { "x-api-key": "a" })), 200);
      host.advanceTime(5_000); // every bucket refills and the sweeps drop them
      request(host, { "x-api-key": "d" });
      assert.is(host.transcript().metrics.buckets, 1);
    } finally {
      host.close();
    }
  });
});
