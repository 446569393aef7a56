// ctx.setUpstreamOverrideHost inside a real Envoy: a cluster of two hosts, where the load
// balancer alone spreads requests over both, and the filter pins them to one.
import { test } from "uvu";
import * as assert from "uvu/assert";

import { closedPort, envoyWith, h1, jsListener, routeTo, startUpstream } from "./lib.mjs";

const FILTER = String.raw`
export default {
  onRequest(req, ctx) {
    const pin = req.headers.get("x-pin");
    if (pin) ctx.setUpstreamOverrideHost(pin, { strict: req.headers.has("x-strict") });
  },
};`;

let envoy, first, second, unused;

test.before(async () => {
  const answer = (name) => (req, res) => {
    res.writeHead(200, { "x-upstream": name });
    res.end(name);
  };
  first = await startUpstream({ handler: answer("first") });
  second = await startUpstream({ handler: answer("second") });
  unused = await closedPort();
  const endpoint = (port) => ({
    endpoint: { address: { socket_address: { address: "127.0.0.1", port_value: port } } },
  });
  envoy = await envoyWith({
    listeners: [jsListener("main", { inline: FILTER, routes: [routeTo("pair")] })],
    clusters: [
      {
        name: "pair",
        type: "STATIC",
        connect_timeout: "1s",
        lb_policy: "ROUND_ROBIN",
        load_assignment: {
          cluster_name: "pair",
          endpoints: [{ lb_endpoints: [endpoint(first.port), endpoint(second.port)] }],
        },
      },
    ],
  });
});

test.after(async () => {
  await envoy?.stop();
  await first?.close();
  await second?.close();
});

async function upstreamsOf(headers, n = 6) {
  const seen = [];
  for (let i = 0; i < n; i++) {
    const r = await h1(await envoy.port("main"), { path: "/x", headers });
    seen.push(r.status === 200 ? r.headers["x-upstream"] : r.status);
  }
  return seen;
}

test("without an override the load balancer uses both hosts", async () => {
  const seen = await upstreamsOf({});
  assert.ok(seen.includes("first") && seen.includes("second"), `round robin: ${seen}`);
});

test("an override pins every request to that host", async () => {
  assert.equal(await upstreamsOf({ "x-pin": `127.0.0.1:${second.port}` }), Array(6).fill("second"));
  assert.equal(await upstreamsOf({ "x-pin": `127.0.0.1:${first.port}`, "x-strict": "1" }), Array(6).fill("first"));
});

test("a host outside the cluster: ignored unless strict, then Envoy answers 503", async () => {
  const loose = await upstreamsOf({ "x-pin": `127.0.0.1:${unused}` }, 4);
  assert.ok(
    loose.every((u) => u === "first" || u === "second"),
    `falls back: ${loose}`,
  );
  const strict = await h1(await envoy.port("main"), {
    path: "/x",
    headers: { "x-pin": `127.0.0.1:${unused}`, "x-strict": "1" },
  });
  assert.is(strict.status, 503);
});

test("a name instead of an address fails the stream with the filter's error (500)", async () => {
  const r = await h1(await envoy.port("main"), { path: "/x", headers: { "x-pin": "backend.local:80" } });
  assert.is(r.status, 500);
});

test.run();
