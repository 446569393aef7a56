import * as assert from "uvu/assert";

import { peerSuite } from "../lib.mjs";

const errorsLogged = (s) => s.logs.filter((l) => l.startsWith("[error]"));

peerSuite("go-property", (test, port) => {
  test("testProperty: every property is as expected; the upstream's response reaches the client", () => {
    const [s] = port.replay().streams;
    assert.equal(errorsLogged(s), []);
    assert.equal(s.errors, []);
    assert.is(s.upstreamRequest.body, "helloworld");
    assert.is(s.downstreamResponse.headers[":status"], "200");
    assert.is(s.downstreamResponse.body, "goodbye");
  });

  test("a wrong expectation is logged with what Envoy gave, and the stream fails at the response body", () => {
    const s = port.run(port.scenario.streams[0], { config: { routeName: "other-route", cluster: "upstream" } });
    assert.equal(errorsLogged(s), [
      "[error] xds.route_name expect other-route got test-route-name",
      "[error] xds.route_name expect other-route got test-route-name",
    ]);
    assert.ok(
      s.errors.some((e) => e.includes("Check the error log for the failed cases")),
      s.errors,
    );
    assert.is.not(s.downstreamResponse?.body, "goodbye");
  });

  test("the response code and the cluster follow the upstream and the route", () => {
    const s = port.run(
      { ...port.scenario.streams[0], stream: { routeName: "test-route-name", clusterName: "cluster_0" } },
      { config: { routeName: "test-route-name", cluster: "cluster_0" } },
    );
    assert.equal(errorsLogged(s), []);
  });
});
