// ctx.property(name), req/res.endOfStream, in a real Envoy: which facts Envoy's stream info has
// in the request and in the response hooks, in which format. The scripted host of the wasm
// engine is checked against the same expectations (test/runtime/stream_properties.test.mjs).
import { test } from "uvu";
import * as assert from "uvu/assert";

import { envoyUnderTest, envoyWith, h1, h2, jsListener, loopbackCluster, startUpstream } from "./lib.mjs";

// What the dynamic-module ABI offers grew with Envoy: 1.38 has no attempt count, response code
// details, response flags, virtual host or filter chain attribute; 1.39 adds the first three
// (its virtual host attribute answers the virtual cluster's name: the module gives null);
// 1.40 has them all.
const [major, minor] = envoyUnderTest().version.split(".").map(Number);
const since = (m) => major > 1 || minor >= m;
const v39 = (value) => (since(39) ? value : null);
const v40 = (value) => (since(40) ? value : null);

const NAMES = [
  "request.protocol",
  "source.address",
  "source.port",
  "destination.address",
  "destination.port",
  "connection.id",
  "connection.requested_server_name",
  "upstream.address",
  "upstream.port",
  "upstream.request_attempt_count",
  "xds.cluster_name",
  "xds.route_name",
  "xds.virtual_host_name",
  "xds.virtual_cluster_name",
  "xds.filter_chain_name",
  "response.code",
  "response.code_details",
  "response.flags",
];

const FILTER = String.raw`
const NAMES = ${JSON.stringify(NAMES)};
const all = (ctx) => Object.fromEntries(NAMES.map((n) => [n, ctx.property(n)]));
export default {
  onRequest(req, ctx) {
    const md = ["tier", "weight", "canary", "list", "absent"].map((k) => ctx.routeMetadata("envoy_js.test", k));
    ctx.filterState.set("envoy_js.props.request", JSON.stringify({ ...all(ctx), endOfStream: req.endOfStream, md }));
    if (req.path === "/local") return ctx.respond(418, { details: "teapot_by_filter" });
  },
  onResponse(res, ctx) {
    res.headers.set("x-props-request", ctx.filterState.get("envoy_js.props.request") ?? "{}");
    res.headers.set("x-props-response", JSON.stringify({ ...all(ctx), endOfStream: res.endOfStream }));
    let unknown = "";
    try { ctx.property("no.such"); } catch (e) { unknown = e.name + ": " + e.message; }
    res.headers.set("x-unknown", unknown.slice(0, 80));
  },
};`;

let envoy, upstream;

test.before(async () => {
  upstream = await startUpstream({
    handler: (req, res) => {
      if (req.url === "/empty") {
        res.writeHead(204);
        res.end();
        return;
      }
      res.writeHead(200);
      res.end("ok");
    },
  });
  const listener = jsListener("props", {
    inline: FILTER,
    virtualHosts: [
      {
        name: "vhost_props",
        domains: ["*"],
        virtual_clusters: [{ name: "vc_posts", headers: [{ name: ":method", string_match: { exact: "POST" } }] }],
        routes: [
          { name: "nowhere", match: { prefix: "/nowhere" }, route: { cluster: "no_such_cluster" } },
          {
            name: "direct",
            match: { prefix: "/direct" },
            direct_response: { status: 202, body: { inline_string: "d" } },
          },
          {
            name: "to_up",
            match: { prefix: "/" },
            route: { cluster: "up" },
            metadata: { filter_metadata: { "envoy_js.test": { tier: "gold", weight: 3, canary: true, list: [1] } } },
          },
        ],
      },
    ],
  });
  listener.filter_chains[0].name = "chain_props";
  // A route to a cluster that does not exist: Envoy answers 503 itself (cluster_not_found).
  listener.filter_chains[0].filters[0].typed_config.route_config.validate_clusters = false;
  envoy = await envoyWith({ listeners: [listener], clusters: [loopbackCluster({ name: "up", port: upstream.port })] });
});

test.after(async () => {
  await envoy?.stop();
  await upstream?.close();
});

const props = (r) => ({
  request: JSON.parse(r.headers["x-props-request"]),
  response: JSON.parse(r.headers["x-props-response"]),
});

test("request hooks: connection facts and the route's cluster; no upstream host, no response yet", async () => {
  const port = await envoy.port("props");
  const r = await h1(port, { path: "/a" });
  assert.is(r.status, 200);
  const { request: q } = props(r);
  assert.is(q["request.protocol"], "HTTP/1.1");
  assert.match(q["source.address"], /^127\.0\.0\.1:\d+$/);
  assert.is(q["source.port"], Number(q["source.address"].split(":")[1]));
  assert.is(q["destination.address"], "127.0.0.1:" + port);
  assert.is(q["destination.port"], port);
  assert.type(q["connection.id"], "number");
  assert.is(q["connection.requested_server_name"], null);
  assert.is(q["upstream.address"], null);
  assert.is(q["upstream.port"], null);
  assert.is(q["upstream.request_attempt_count"], v39(0));
  assert.is(q["xds.cluster_name"], "up");
  assert.is(q["xds.route_name"], "to_up");
  assert.is(q["xds.virtual_host_name"], v40("vhost_props"));
  assert.is(q["xds.filter_chain_name"], v40("chain_props"));
  // The dynamic-module ABI has no attribute for it (the native filter reads it).
  assert.is(q["xds.virtual_cluster_name"], null);
  assert.is(q["response.code"], null);
  assert.is(q["response.code_details"], null);
  assert.is(q["response.flags"], v39(0));
  assert.is(q.endOfStream, true);
  // The route's metadata: strings, numbers and booleans; the ABI reads no lists (undefined,
  // which JSON shows as null).
  assert.equal(q.md, ["gold", 3, true, null, null]);
});

test("response hooks: the upstream host as ip:port, one attempt, via_upstream", async () => {
  const port = await envoy.port("props");
  const r = await h1(port, { path: "/b", method: "POST", body: "x" });
  const { request: q, response: s } = props(r);
  assert.is(q.endOfStream, false);
  assert.is(s["upstream.address"], "127.0.0.1:" + upstream.port);
  assert.is(s["upstream.port"], upstream.port);
  assert.is(s["upstream.request_attempt_count"], v39(1));
  assert.is(s["response.code"], 200);
  assert.is(s["response.code_details"], v39("via_upstream"));
  // A POST matches the virtual cluster: 1.39 would name it as the virtual host.
  assert.is(s["xds.virtual_host_name"], v40("vhost_props"));
  assert.is(s["xds.cluster_name"], "up");
  assert.is(s.endOfStream, false);
  assert.match(r.headers["x-unknown"], /^TypeError: property\(\): unknown property "no.such"/);
});

test("a 204 from upstream ends with its headers; HTTP/2 shows as HTTP/2", async () => {
  const port = await envoy.port("props");
  const r = await h2(port, { path: "/empty" });
  const { request: q, response: s } = props(r);
  assert.is(q["request.protocol"], "HTTP/2");
  assert.is(s.endOfStream, true);
  assert.is(s["response.code"], 204);
});

test("Envoy's own local reply (unknown cluster): its status and details, no upstream", async () => {
  const port = await envoy.port("props");
  const r = await h1(port, { path: "/nowhere" });
  assert.is(r.status, 503);
  const { request: q, response: s } = props(r);
  assert.is(q["xds.cluster_name"], null);
  assert.is(s["response.code"], 503);
  assert.is(s["response.code_details"], v39("cluster_not_found"));
  assert.is(s["response.flags"], v39(16777216)); // NoClusterFound
  assert.is(s["upstream.address"], null);
  assert.is(s["upstream.request_attempt_count"], v39(0));
});

test("a direct_response route: no cluster, details direct_response", async () => {
  const port = await envoy.port("props");
  const r = await h1(port, { path: "/direct" });
  assert.is(r.status, 202);
  const { request: q, response: s } = props(r);
  assert.is(q["xds.cluster_name"], null);
  assert.is(s["response.code"], 202);
  assert.is(s["response.code_details"], v39("direct_response"));
});

test.run();
