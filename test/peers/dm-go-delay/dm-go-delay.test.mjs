import * as assert from "uvu/assert";

import { get, peerSuite, upstream } from "../lib.mjs";

peerSuite("dm-go-delay", (test, port) => {
  test("a do-delay request is held 2 s, resumes with the scheduled header, and reports the lapse", () => {
    const [delayed, plain] = port.replay().streams;
    assert.is(delayed.upstreamRequest.headers["delay-filter-on-scheduled"], "yes");
    assert.match(delayed.downstreamResponse.headers["x-delay-filter-lapsed"], /^2\.\d+s$/);
    assert.is(plain.upstreamRequest.headers["delay-filter-on-scheduled"], undefined);
    assert.is(plain.downstreamResponse.headers["x-delay-filter-lapsed"], undefined);
  });

  test("the request does not reach the upstream before the delay has passed", () => {
    const host = port.host();
    const id = host.newStream({});
    host.requestHeaders(id, get("/headers", { "do-delay": "1" }).request.headers, true);
    host.advanceTime(1999);
    assert.is(host.stream(id).requestSentUpstream, false);
    host.advanceTime(1);
    assert.is(host.stream(id).requestSentUpstream, true);
    assert.is(host.stream(id).upstreamRequest.headers["delay-filter-on-scheduled"], "yes");
    host.close();
  });

  test("the delay comes from the config", () => {
    const s = port.run({ ...get("/headers", { "do-delay": "1" }), ...upstream(200) }, { config: { delayMs: 250 } });
    assert.is(s.downstreamResponse.headers["x-delay-filter-lapsed"], "0.250s");
  });
});
