import * as assert from "uvu/assert";

import { get, sampleSuite, upstream } from "../lib/harness.mjs";

// The reference: the same replacement on the whole body at once.
function wholeBody(text, replace) {
  const pairs = Object.entries(replace);
  let out = "";
  let i = 0;
  while (i < text.length) {
    const hit = pairs.filter(([from]) => text.startsWith(from, i)).sort((a, b) => b[0].length - a[0].length)[0];
    if (hit) {
      out += hit[1];
      i += hit[0].length;
    } else {
      out += text[i++];
    }
  }
  return out;
}

const json = { "content-type": "application/json" };

sampleSuite("stream-rewrite", (test, sample) => {
  test("scenario.json: matches split across chunks are rewritten; images pass untouched", () => {
    const t = sample.replay();
    const [doc, image] = t.streams;
    assert.is(
      doc.downstreamResponse.body,
      '{"self":"https://api.example.com/orders/7","docs":"https://docs.example.com/orders"}',
    );
    // Chunk sizes changed after the headers left, so the length is unknown: no content-length.
    assert.is(doc.downstreamResponse.headers["content-length"], undefined);
    assert.is(image.downstreamResponse.body, "http://not text");
    assert.is(t.metrics.rewritten, 1);
    assert.is(t.metrics.replacements, 2);
    assert.equal(
      t.streams.flatMap((s) => s.errors),
      [],
    );
  });

  test("every split point of a body gives the whole-body result", () => {
    const replace = sample.scenario.config.replace;
    const text = "see http://orders.internal:8080/1 and http://x, http:/ http://orders.internal:80 end";
    const want = wholeBody(text, replace);
    const streams = [];
    for (let a = 1; a < text.length; a += 2) {
      const b = Math.min(text.length - 1, a + 7);
      streams.push({ ...get("/"), ...upstream(200, json, [text.slice(0, a), text.slice(a, b), text.slice(b)]) });
    }
    const t = sample.streams(streams);
    t.streams.forEach((s, i) => {
      assert.is(s.downstreamResponse.body, want, `split ${i}`);
    });
  });

  test("a UTF-8 character split between chunks survives", () => {
    const bytes = Buffer.from("café → http://x ☕ ok", "utf8");
    const chunks = [];
    for (let i = 0; i < bytes.length; i += 3) chunks.push(bytes.subarray(i, i + 3));
    const s = sample.run({ ...get("/"), ...upstream(200, { "content-type": "text/plain; charset=utf-8" }, chunks) });
    assert.is(s.downstreamResponse.body, "café → https://x ☕ ok");
  });

  test("held-back bytes stay below the longest pattern", () => {
    const s = sample.run({ ...get("/"), ...upstream(200, json, ["a".repeat(100), "b".repeat(100), "c"]) });
    assert.is(s.downstreamResponse.body, "a".repeat(100) + "b".repeat(100) + "c");
    const longest = Math.max(...Object.keys(sample.scenario.config.replace).map((k) => k.length));
    for (const held of s.metrics.heldBytes) assert.ok(held < longest, `held ${held}`);
  });

  test("compressed and non-text responses are not touched", () => {
    const t = sample.streams([
      { ...get("/"), ...upstream(200, { ...json, "content-encoding": "br" }, ["http://a"]) },
      { ...get("/"), ...upstream(200, { "content-type": "application/octet-stream" }, ["http://a"]) },
    ]);
    for (const s of t.streams) assert.is(s.downstreamResponse.body, "http://a");
  });
});
