import * as assert from "uvu/assert";

import { get, peerSuite, send, upstream } from "../lib.mjs";

const SERIES = 'route_latency_ms{version="v1.0.0",route_name="catch_all"}';
const onRoute = (stream, routeName = "catch_all") => ({ ...stream, stream: { routeName } });

peerSuite("dm-rust-metrics", (test, port) => {
  test("http_metrics: each request on route catch_all records one latency in the series version=v1.0.0, route_name=catch_all", () => {
    const t = port.replay();
    for (const s of t.streams) assert.equal(s.errors, []);
    assert.equal(Object.keys(t.metrics), [SERIES]);
    const samples = t.metrics[SERIES];
    assert.is(samples.length, 2, "one for the response with a body, one for the 204 that ends with its headers");
    for (const ms of samples) assert.ok(Number.isInteger(ms) && ms >= 0, `whole milliseconds: ${ms}`);
  });

  test("request trailers record it (as the original does), even when the response then ends with trailers", () => {
    const withTrailers = (up) =>
      onRoute({ request: { ...send("POST", "/post", "data").request, trailers: { "x-t": "1" } }, upstream: up });
    const t = port.streams([
      withTrailers({ headers: { ":status": "200" }, body: "ok", trailers: { "grpc-status": "0" } }),
      withTrailers({ headers: { ":status": "200" }, body: "ok" }),
    ]);
    for (const s of t.streams) assert.equal(s.errors, []);
    assert.is(t.metrics[SERIES].length, 2, "once per stream: the second one's response end does not record again");
  });

  test("a response that ends with trailers is not recorded (the original has no response-trailers callback)", () => {
    const t = port.streams([
      onRoute({
        ...get("/"),
        upstream: { headers: { ":status": "200" }, body: "ok", trailers: { "grpc-status": "0" } },
      }),
    ]);
    assert.equal(t.streams[0].errors, []);
    assert.equal(t.metrics, {});
  });

  test("the route and the version come from the stream and the config; an unnamed route is `-`", () => {
    const t = port.streams(
      [onRoute({ ...get("/"), ...upstream(200, {}, "ok") }, "api"), { ...get("/"), ...upstream(204) }],
      { config: { version: "v2" } },
    );
    assert.equal(Object.keys(t.metrics).sort(), [
      'route_latency_ms{version="v2",route_name="-"}',
      'route_latency_ms{version="v2",route_name="api"}',
    ]);
  });

  test("a config without a string version is refused at start-up, with the reason", () => {
    assert.throws(
      () => port.run({ ...get("/"), ...upstream(200) }, { config: {} }),
      /setup\(\) threw: TypeError: invalid configuration: expected \{"version": "<string>"\}/,
    );
  });
});
