import * as assert from "uvu/assert";

import { get, postJson, sampleSuite, send, upstream } from "../lib/harness.mjs";

sampleSuite("json-validate", (test, sample) => {
  test("scenario.json: valid payment masked both ways; 422, 400, 415; response redaction", () => {
    const t = sample.replay();
    const [ok, invalid, broken, plain, read] = t.streams;

    const sent = JSON.parse(ok.upstreamRequest.body);
    assert.equal(sent, { amount: 1250, currency: "EUR", card: { number: "****1111", cvc: "[redacted]" } });
    assert.is(ok.upstreamRequest.headers["content-length"], String(ok.upstreamRequest.body.length));
    assert.equal(JSON.parse(ok.downstreamResponse.body), { id: "pay_1", card: { number: "****1111", brand: "visa" } });

    assert.is(invalid.localReply.status, 422);
    assert.is(invalid.localReply.headers["content-type"], "application/json");
    assert.equal(JSON.parse(invalid.localReply.body).problems, [
      "amount: must be integer, is number",
      "card: required",
      "tip: not allowed",
    ]);
    assert.is(invalid.upstreamRequest, null);

    assert.is(broken.localReply.status, 400);
    assert.is(broken.localReply.details, "json_invalid");
    assert.is(plain.localReply.status, 415);

    assert.equal(JSON.parse(read.downstreamResponse.body), { email: "a@example.com", profile: { ssn: "****1120" } });
    assert.equal(t.metrics, { redacted: 4, rejected: 3 });
    assert.equal(
      t.streams.flatMap((s) => s.errors),
      [],
    );
  });

  test("masking reaches arrays and any depth, case-insensitively; short values are fully masked", () => {
    const s = sample.run(
      postJson("/users", { email: "x@y.z", password: "hunter2", devices: [{ PassWord: "p", n: 1 }] }),
    );
    assert.equal(JSON.parse(s.upstreamRequest.body), {
      email: "x@y.z",
      password: "[redacted]",
      devices: [{ PassWord: "[redacted]", n: 1 }],
    });
  });

  test("nothing to mask: the body goes through byte for byte", () => {
    const body = '{ "email" : "x@y.z" }';
    const s = sample.run(send("POST", "/users", body, { "content-type": "application/json" }));
    assert.is(s.upstreamRequest.body, body);
  });

  test("a body over buffer_limit_bytes: 413 before the upstream sees anything", () => {
    const big = JSON.stringify({ email: "x".repeat(2000) });
    const s = sample.run(postJson("/users", { email: "x".repeat(2000) }), {
      settings: { ...sample.scenario.settings, buffer_limit_bytes: 1024 },
    });
    assert.ok(big.length > 1024);
    assert.is(s.localReply.status, 413);
    assert.is(s.upstreamRequest, null);
  });

  test("GET without a body and non-JSON responses pass untouched", () => {
    const s = sample.run({
      ...get("/users/9"),
      ...upstream(200, { "content-type": "text/html" }, "<p>password: 1</p>"),
    });
    assert.is(s.localReply, null);
    assert.is(s.downstreamResponse.body, "<p>password: 1</p>");
  });

  test("compressed JSON responses are left alone", () => {
    const s = sample.run({
      ...get("/users/9"),
      ...upstream(200, { "content-type": "application/json", "content-encoding": "gzip" }, "\u001f\u008b..."),
    });
    assert.is(s.downstreamResponse.body, "\u001f\u008b...");
  });
});
