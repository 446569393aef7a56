// ctx.property(name) and req/res.endOfStream on the wasm engine: the scripted Envoy gives what
// a real Envoy 1.40 gives in each phase (test/envoy/stream_properties.test.mjs checks Envoy).
import { test } from "uvu";
import * as assert from "uvu/assert";
import { get, one, post } from "../lib/wasm.mjs";

const FILTER = `
const NAMES = ["request.id", "request.protocol", "source.address", "source.port", "destination.address",
  "destination.port", "connection.id", "connection.requested_server_name", "upstream.address", "upstream.port",
  "upstream.request_attempt_count", "xds.cluster_name", "xds.route_name", "xds.virtual_host_name",
  "xds.virtual_cluster_name", "xds.filter_chain_name", "response.code", "response.code_details", "response.flags"];
const all = (ctx) => Object.fromEntries(NAMES.map((n) => [n, ctx.property(n)]));
export default {
  onRequest(req, ctx) {
    ctx.log.info("request", JSON.stringify({ ...all(ctx), endOfStream: req.endOfStream }));
    if (req.path === "/local") return ctx.respond(418, { details: "teapot_by_filter" });
  },
  onResponse(res, ctx) {
    ctx.log.info("response", JSON.stringify({ ...all(ctx), endOfStream: res.endOfStream }));
  },
  onDone(ctx) { ctx.log.info("done", ctx.property("response.code"), ctx.property("response.code_details")); },
};`;

const phases = (t) => {
  const out = {};
  for (const l of t.logs) {
    const [, phase, rest] = /^\[info\] (\w+) (.*)$/.exec(l);
    out[phase] = phase === "done" ? rest : JSON.parse(rest);
  }
  return out;
};

test("request hooks: connection facts and the route's cluster; no upstream host, no response yet", () => {
  const t = one(FILTER, {
    ...get("/a"),
    stream: {
      id: "req-1",
      protocol: "HTTP/2",
      remoteAddress: "10.0.0.7:4242",
      localAddress: "10.0.0.1:8443",
      routeName: "to_up",
      virtualHostName: "vhost_props",
      filterChainName: "chain_props",
      requestedServerName: "api.example.com",
      connectionId: 9,
    },
  });
  assert.equal(t.errors, []);
  const { request: q } = phases(t);
  assert.equal(q, {
    "request.id": "req-1",
    "request.protocol": "HTTP/2",
    "source.address": "10.0.0.7:4242",
    "source.port": 4242,
    "destination.address": "10.0.0.1:8443",
    "destination.port": 8443,
    "connection.id": 9,
    "connection.requested_server_name": "api.example.com",
    "upstream.address": null,
    "upstream.port": null,
    "upstream.request_attempt_count": 0,
    "xds.cluster_name": "upstream",
    "xds.route_name": "to_up",
    "xds.virtual_host_name": "vhost_props",
    "xds.virtual_cluster_name": null,
    "xds.filter_chain_name": "chain_props",
    "response.code": null,
    "response.code_details": null,
    "response.flags": 0,
    endOfStream: true,
  });
});

test("response hooks: the upstream host as ip:port, one attempt, via_upstream; onDone still reads", () => {
  const t = one(FILTER, {
    ...post("/b", ["x"]),
    upstream: { headers: { ":status": "201" }, body: ["ok"] },
    stream: { clusterName: "up", upstreamAddress: "127.0.0.1:9001" },
  });
  const { request: q, response: s, done } = phases(t);
  assert.is(q.endOfStream, false);
  assert.is(q["upstream.request_attempt_count"], 0);
  assert.is(s["upstream.address"], "127.0.0.1:9001");
  assert.is(s["upstream.port"], 9001);
  assert.is(s["upstream.request_attempt_count"], 1);
  assert.is(s["xds.cluster_name"], "up");
  assert.is(s["response.code"], 201);
  assert.is(s["response.code_details"], "via_upstream");
  assert.is(s.endOfStream, false);
  assert.is(done, "201 via_upstream");
});

test("a response that ends with its headers: endOfStream on the response", () => {
  const t = one(FILTER, { ...get("/empty"), upstream: { headers: { ":status": "204" } } });
  const { response: s } = phases(t);
  assert.is(s.endOfStream, true);
  assert.is(s["response.code"], 204);
});

test("the filter's own local reply: its status and details, no upstream, no attempt", () => {
  const t = one(FILTER, get("/local"));
  assert.is(t.localReply.status, 418);
  assert.is(phases(t).done, "418 teapot_by_filter");
});

test("a direct_response route: no cluster, details direct_response", () => {
  const t = one(FILTER, { ...get("/direct"), directResponse: { headers: { ":status": "202" }, body: ["d"] } });
  const { request: q, response: s } = phases(t);
  assert.is(q["xds.cluster_name"], null);
  assert.is(s["response.code"], 202);
  assert.is(s["response.code_details"], "direct_response");
  assert.is(s["upstream.address"], null);
  assert.is(s.endOfStream, false);
});

test("an unknown name is a TypeError that lists the known ones; a non-string name too", () => {
  const src = `export default { onRequest(req, ctx) {
    for (const n of ["no.such", 5]) {
      try { ctx.property(n); } catch (e) { ctx.log.info(e.name, e.message); }
    }
  } };`;
  const t = one(src, get("/"));
  assert.is(t.logs.length, 2);
  assert.match(
    t.logs[0],
    /^\[info\] TypeError property\(\): unknown property "no.such"; known: request.id, request.protocol, /,
  );
  assert.ok(t.logs[0].endsWith(", response.code, response.code_details, response.flags"), t.logs[0]);
  assert.is(t.logs[1], "[info] TypeError property(name): name must be a string");
});

test("routeMetadata reads the selected route's metadata, a new copy each call", () => {
  const src = `export default { onRequest(req, ctx) {
    const a = ctx.routeMetadata("envoy_js.test", "limits");
    a.rps = 0;
    ctx.log.info(JSON.stringify([ctx.routeMetadata("envoy_js.test", "tier"), ctx.routeMetadata("envoy_js.test", "limits"),
      ctx.routeMetadata("envoy_js.test", "absent"), ctx.routeMetadata("other", "tier")]));
    try { ctx.routeMetadata("envoy_js.test"); } catch (e) { ctx.log.info(e.name, e.message); }
  } };`;
  const t = one(src, {
    ...get("/"),
    routeMetadata: { "envoy_js.test": { tier: "gold", limits: { rps: 10, burst: [1, 2] } } },
  });
  assert.equal(t.errors, []);
  assert.equal(t.logs, [
    '[info] ["gold",{"rps":10,"burst":[1,2]},null,null]',
    "[info] TypeError routeMetadata(ns, key): key must be a string",
  ]);
});

test("inside the filter's own local reply, onResponse reads the reply's code and details", () => {
  const t = one(
    `export default {
      onRequest(req, ctx) { return ctx.respond(401, { body: "no", details: "auth_missing" }); },
      onResponse(res, ctx) { ctx.log.info(ctx.property("response.code"), ctx.property("response.code_details")); },
    };`,
    get("/"),
  );
  assert.equal(t.logs, ["[info] 401 auth_missing"]);
  assert.equal(t.localReply.status, 401);
});

test.run();
