import * as assert from "uvu/assert";

import { peerSuite } from "../lib.mjs";

peerSuite("go-routeconfig", (test, port) => {
  const [filterLevel, virtualHost, route] = [0, 1, 2];
  const response = (i) => port.replay().streams[i].downstreamResponse.headers;

  test("RouteConfig_Filter: the filter's config removes x-test-header-0 and sets foo", () => {
    const h = response(filterLevel);
    assert.is(h["x-test-header-0"], undefined);
    assert.is(h.foo, "test-value");
  });

  test("RouteConfig_VirtualHost: the virtual host's config keeps x-test-header-0 and sets bar", () => {
    const h = response(virtualHost);
    assert.is(h["x-test-header-0"], "foo");
    assert.is(h["x-test-header-1"], undefined);
    assert.is(h.bar, "test-value");
  });

  test("RouteConfig_Route: the route's config removes x-test-header-0 and sets baz", () => {
    const h = response(route);
    assert.is(h["x-test-header-0"], undefined);
    assert.is(h.baz, "test-value");
  });
});
