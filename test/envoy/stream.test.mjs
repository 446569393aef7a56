// Hooks, local replies, routes without an upstream, trailers and resets, inside a real Envoy.
import { test } from "uvu";
import * as assert from "uvu/assert";

import { envoyWith, h1, h2, jsListener, loopbackCluster, startUpstream, sleep } from "./lib.mjs";

const FILTER = String.raw`
const wait = (ms) => new Promise((r) => setTimeout(r, ms));
export default {
  async onRequest(req, ctx) {
    const mode = req.headers.get("x-mode") ?? "sync";
    if (mode === "async") await wait(5);
    if (req.path.startsWith("/deny")) return ctx.respond(403, { body: "denied by js\n", headers: { "x-why": "path", "x-deny": req.path } });
    req.headers.set("x-js-request", mode);
  },
  async onResponse(res, ctx) {
    if (res.headers.get("x-mode-response") === "async" || res.status === 201) await wait(5);
    if (res.headers.get("x-respond-on-response") === "1") return ctx.respond(502, { body: "replaced by js\n" });
    // The response hooks of our own local reply: a second reply or a throw leave it as it is.
    if (res.headers.get("x-deny") === "/deny-again") return ctx.respond(500);
    if (res.headers.get("x-deny") === "/deny-throw") throw new Error("boom in onResponse");
    res.headers.set("x-js-response", String(res.status));
  },
  onRequestTrailers(trailers) { trailers.set("x-js-trailer", trailers.get("x-client-trailer") ?? "none"); },
  onResponseTrailers(trailers) { trailers.set("x-js-response-trailer", "added"); },
};`;

const LUA_DENY = {
  name: "envoy.filters.http.lua",
  typed_config: {
    "@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua",
    default_source_code: {
      inline_string: `function envoy_on_request(h)
  if h:headers():get(":path") == "/lua-deny" then h:respond({[":status"] = "403", ["x-by"] = "lua"}, "denied by lua") end
end`,
    },
  },
};

let envoy, upstream, h2upstream;

test.before(async () => {
  upstream = await startUpstream({
    handler(req, res, entry) {
      const h = { "content-type": "text/plain" };
      if (req.headers["x-want-respond-on-response"]) h["x-respond-on-response"] = "1";
      if (req.headers["x-want-async-response"]) h["x-mode-response"] = "async";
      res.writeHead(200, h);
      res.end(`upstream saw ${entry.method} ${entry.url}`);
    },
  });
  h2upstream = await startUpstream({
    http2: true,
    handler(req, res, entry) {
      res.writeHead(200, { "content-type": "text/plain" });
      res.addTrailers({ "x-upstream-trailer": "u1" });
      res.end(`h2 upstream body=${entry.body.length}`);
    },
  });
  const routes = [
    { match: { prefix: "/direct-async" }, direct_response: { status: 201, body: { inline_string: "direct async\n" } } },
    { match: { prefix: "/direct" }, direct_response: { status: 200, body: { inline_string: "direct\n" } } },
    { match: { prefix: "/h2" }, route: { cluster: "h2backend", timeout: "10s" } },
    { match: { prefix: "/" }, route: { cluster: "backend", timeout: "10s" } },
  ];
  envoy = await envoyWith({
    listeners: [
      jsListener("main", { inline: FILTER, routes }),
      jsListener("after_lua", { inline: FILTER, routes, before: [LUA_DENY] }),
      jsListener("strict", { inline: FILTER, virtualHosts: [{ name: "only", domains: ["only.test"], routes }] }),
    ],
    clusters: [
      loopbackCluster({ name: "backend", port: upstream.port }),
      loopbackCluster({ name: "h2backend", port: h2upstream.port, http2: true }),
    ],
  });
});

test.after(async () => {
  await envoy?.stop();
  await upstream?.close();
  await h2upstream?.close();
});

for (const mode of ["sync", "async"]) {
  test(`${mode} request and response hooks edit headers both ways (h1)`, async () => {
    const r = await h1(await envoy.port("main"), { path: "/a", headers: { "x-mode": mode } });
    assert.is(r.status, 200);
    assert.is(r.text, "upstream saw GET /a");
    assert.is(upstream.last().headers["x-js-request"], mode);
    assert.is(r.headers["x-js-response"], "200");
  });

  test(`${mode} local reply from the request phase; the upstream never sees it (h2)`, async () => {
    const before = upstream.received.length;
    const r = await h2(await envoy.port("main"), { path: "/deny", headers: { "x-mode": mode } });
    assert.is(r.status, 403);
    assert.is(r.text, "denied by js\n");
    assert.is(r.headers["x-why"], "path");
    // Envoy runs our own local reply through our response hook too.
    assert.is(r.headers["x-js-response"], "403");
    assert.is(upstream.received.length, before);
  });

  test(`${mode} own local reply whose response hook responds again or throws: the client gets the first reply (h1)`, async () => {
    for (const path of ["/deny-again", "/deny-throw"]) {
      const r = await h1(await envoy.port("main"), { path, headers: { "x-mode": mode } });
      assert.is(r.status, 403, path);
      assert.is(r.text, "denied by js\n", path);
      assert.is(r.headers["content-length"], "13", path);
    }
  });

  // Envoy answers a direct_response route and an unmatched route with a local reply from inside
  // our continue; the response must still come (it hung when the continue was async).
  test(`${mode} hook in front of a direct_response route`, async () => {
    const r = await h1(await envoy.port("main"), { path: "/direct", headers: { "x-mode": mode } });
    assert.is(r.status, 200);
    assert.is(r.text, "direct\n");
    assert.is(r.headers["x-js-response"], "200");
  });

  // The same with an async response hook: its continue must not be dropped as one that
  // Envoy thinks is still in progress (the request's continue had not returned yet).
  test(`${mode} request hook, async response hook, direct_response route`, async () => {
    const r = await h2(await envoy.port("main"), { path: "/direct-async", headers: { "x-mode": mode } });
    assert.is(r.status, 201);
    assert.is(r.text, "direct async\n");
    assert.is(r.headers["x-js-response"], "201");
  });

  test(`${mode} hook in front of an unmatched route (404)`, async () => {
    const r = await h1(await envoy.port("strict"), {
      path: "/nowhere",
      headers: { "x-mode": mode, host: "other.test" },
    });
    assert.is(r.status, 404);
    assert.is(r.headers["x-js-response"], "404");
  });
}

test("local reply from the response phase replaces the upstream's response", async () => {
  const r = await h1(await envoy.port("main"), { path: "/r", headers: { "x-want-respond-on-response": "1" } });
  assert.is(r.status, 502);
  assert.is(r.text, "replaced by js\n");
});

test("async response hook holds the response until it settles", async () => {
  const r = await h2(await envoy.port("main"), { path: "/slow-response", headers: { "x-want-async-response": "1" } });
  assert.is(r.status, 200);
  assert.is(r.headers["x-js-response"], "200");
  assert.is(r.text, "upstream saw GET /slow-response");
});

// An earlier filter (Lua) replies: our response hooks run for a stream whose request hooks
// never ran. The other filter's 403 must reach the client untouched by a failure of ours.
test("an earlier filter's local reply passes through our response hook", async () => {
  const r = await h1(await envoy.port("after_lua"), { path: "/lua-deny" });
  assert.is(r.status, 403);
  assert.is(r.text, "denied by lua");
  assert.is(r.headers["x-by"], "lua");
  assert.is(r.headers["x-js-response"], "403");
});

test("trailers over h2 both ways, edited by the trailer hooks", async () => {
  const r = await h2(await envoy.port("main"), {
    method: "POST",
    path: "/h2/t",
    body: "abc",
    trailers: { "x-client-trailer": "c1" },
  });
  assert.is(r.status, 200);
  assert.is(r.text, "h2 upstream body=3");
  const seen = h2upstream.last();
  assert.is(seen.trailers["x-client-trailer"], "c1");
  assert.is(seen.trailers["x-js-trailer"], "c1");
  assert.is(r.trailers["x-upstream-trailer"], "u1");
  assert.is(r.trailers["x-js-response-trailer"], "added");
});

test("Envoy serves on after all of the above", async () => {
  const r = await h1(await envoy.port("main"), { path: "/again" });
  assert.is(r.status, 200);
  await sleep(1);
});

test.run();
