// Runs the built filter (dist/filter.js) in-process on the wasm engine that @envoy-js/sdk
// ships: envoy-js's runtime and the QuickJS Envoy runs, with a scripted model of Envoy around
// it, so the filter meets the same engine, limits and errors as in Envoy.
import { test } from "uvu";
import * as assert from "uvu/assert";

import { request } from "@envoy-js/sdk/testing";

const filter = new URL("../dist/filter.js", import.meta.url);
const config = { header: "x-api-key", keys: { "k-123": "shop" } };

test("a known key goes upstream as x-client, without the key", () => {
  const r = request(filter, { path: "/products", headers: { "x-api-key": "k-123" }, config });
  assert.is(r.localReply, null);
  assert.is(r.upstreamRequest?.headers["x-client"], "shop");
  assert.not.ok("x-api-key" in (r.upstreamRequest?.headers ?? {}));
  assert.is(r.downstreamResponse?.headers["x-filtered-by"], "envoy-js");
  assert.equal(r.errors, []);
});

test("no key: 401, nothing reaches upstream", () => {
  const r = request(filter, { path: "/products", config });
  assert.is(r.localReply?.status, 401);
  assert.is(r.localReply?.body, "missing x-api-key\n");
  assert.is(r.upstreamRequest, null);
});

test("an unknown key: 403", () => {
  const r = request(filter, { headers: { "x-api-key": "guess" }, config });
  assert.is(r.localReply?.status, 403);
});

test.run();
