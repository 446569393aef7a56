import * as assert from "uvu/assert";

import { get, postJson, sampleSuite } from "../lib/harness.mjs";

const allow = { authz: { headers: { ":status": "200", "x-user": "bob" } } };

sampleSuite("ext-authz", (test, sample) => {
  test("scenario.json: allowed with identity, 401 and 403 passed through, timeout fails closed", () => {
    const t = sample.replay();
    const [ok, expired, forbidden, timeout] = t.streams;

    const up = ok.upstreamRequest.headers;
    assert.is(up["x-user"], "alice", "the service's identity replaces the client's");
    assert.is(up["x-tenant"], "acme");
    assert.is(ok.downstreamResponse.body, "invoice 12");
    // What the service was asked.
    assert.is(ok.callouts.length, 1);
    const call = ok.callouts[0];
    assert.is(call.cluster, "authz");
    assert.is(call.headers[":method"], "POST");
    assert.is(call.headers[":path"], "/check");
    assert.equal(JSON.parse(call.body), {
      method: "GET",
      path: "/invoices/12",
      authority: "api.example.com",
      headers: { authorization: "Bearer good" },
    });

    assert.is(expired.localReply.status, 401);
    assert.is(expired.localReply.body, '{"error":"token expired"}');
    assert.is(expired.localReply.headers["www-authenticate"], 'Bearer error="invalid_token"');
    assert.is(expired.localReply.headers["content-type"], "application/json");
    assert.is(expired.localReply.details, "ext_authz_denied");

    assert.is(forbidden.localReply.status, 403);
    assert.is(forbidden.localReply.body, "not your invoice");

    assert.is(timeout.localReply.status, 503);
    assert.is(timeout.localReply.details, "ext_authz_timeout");
    assert.match(timeout.logs[0], /^\[warn\] authorization service timeout: /);

    assert.is(t.metrics.allowed, 1);
    assert.is(t.metrics.denied, 2);
    assert.is(t.metrics.unavailable, 1);
    assert.is(t.metrics.checkMs.length, 4);
    assert.is(t.metrics.checkMs[0], 15, "the check took the service's 15 ms on the host clock");
    assert.is(t.metrics.checkMs[3], 200, "the timeout fired at timeoutMs");
    assert.equal(
      t.streams.flatMap((s) => s.errors),
      [],
    );
  });

  test("the request body waits for the decision, then reaches the upstream intact", () => {
    const s = sample.run({
      ...postJson("/invoices", { amount: 12 }),
      clusters: { authz: { ...allow.authz, delayMs: 50 } },
    });
    assert.is(s.upstreamRequest.body, '{"amount":12}');
    assert.is(s.upstreamRequest.headers["x-user"], "bob");
  });

  test("reset, 5xx and an unknown cluster: 503 closed, or through with failOpen", () => {
    const cases = [
      [{ authz: { reset: true } }, "ext_authz_reset"],
      [{ authz: { headers: { ":status": "502" } } }, "ext_authz_error"],
      [{}, "ext_authz_unknown_cluster"],
    ];
    const closed = sample.streams(cases.map(([clusters]) => get("/x", {}, { clusters })));
    cases.forEach(([, details], i) => {
      assert.is(closed.streams[i].localReply?.status, 503, details);
      assert.is(closed.streams[i].localReply.details, details);
    });
    const open = sample.streams(
      cases.map(([clusters]) => get("/x", {}, { clusters })),
      { config: sample.config({ failOpen: true }) },
    );
    for (const s of open.streams) {
      assert.is(s.localReply, null);
      assert.ok(s.upstreamRequest);
      assert.is(s.upstreamRequest.headers["x-user"], undefined);
    }
  });

  test("the client leaving while the check is pending: no reply, no error, callout cancelled", () => {
    const s = sample.run({
      ...get("/slow"),
      clusters: { authz: { ...allow.authz, delayMs: 100 } },
      reset: "afterRequestHeaders",
    });
    assert.is(s.localReply, null);
    assert.is(s.upstreamRequest, null);
    assert.equal(s.errors, []);
    assert.ok(
      s.events.some((e) => /callout \d+ cancelled/.test(e)),
      s.events.join("\n"),
    );
  });
});
