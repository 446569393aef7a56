import * as assert from "uvu/assert";

import { get, messages, peerSuite, upstream } from "../lib.mjs";

peerSuite("pw-http-headers", (test, port) => {
  test("OnHttpRequestHeaders: test: best is set and every request header is logged", () => {
    const [s] = port.replay().streams;
    assert.is(s.upstreamRequest.headers.test, "best");
    const logged = messages(s.logs);
    assert.ok(logged.includes("request header --> key1: value1"));
    assert.ok(logged.includes("request header --> key2: value2"));
    assert.ok(logged.includes("request header --> test: best"));
    assert.ok(logged.includes("1 finished"));
  });

  test("OnHttpResponseHeaders: the constant and the configured header are added and logged", () => {
    const [s] = port.replay().streams;
    const h = s.downstreamResponse.headers;
    assert.is(h.key1, "value1");
    assert.is(h.key2, "value2");
    assert.is(h["x-wasm-header"], "x-value");
    assert.is(h["x-proxy-wasm-go-sdk-example"], "http_headers");
    const logged = messages(s.logs);
    assert.ok(logged.includes("response header <-- key2: value2"));
    assert.ok(logged.includes("response header <-- x-wasm-header: x-value"));
    assert.ok(logged.includes("response header <-- x-proxy-wasm-go-sdk-example: http_headers"));
  });

  test("without a config only the constant header is added", () => {
    const s = port.run({ ...get("/"), ...upstream(200) }, { config: {} });
    assert.is(s.downstreamResponse.headers["x-proxy-wasm-go-sdk-example"], "http_headers");
    assert.is(s.downstreamResponse.headers["x-wasm-header"], undefined);
  });

  test("a config with a header but no value is refused at start-up, with the reason", () => {
    assert.throws(
      () => port.run({ ...get("/"), ...upstream(200) }, { config: { header: "x-a" } }),
      /setup\(\) threw: TypeError: invalid configuration format/,
    );
  });
});
