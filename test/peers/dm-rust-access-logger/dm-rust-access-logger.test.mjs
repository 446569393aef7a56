import * as assert from "uvu/assert";

import { get, messages, peerSuite } from "../lib.mjs";

peerSuite("dm-rust-access-logger", (test, port) => {
  test("one JSON line per stream, with the request and the response headers", () => {
    const [s] = port.replay().streams;
    const lines = messages(s.logs).filter((l) => l.startsWith("access_log "));
    assert.is(lines.length, 1);
    const entry = JSON.parse(lines[0].slice("access_log ".length));
    assert.ok(entry.request_headers.includes(":path: /uuid"));
    assert.ok(entry.request_headers.includes("user-agent: peer-test"));
    assert.ok(entry.response_headers.includes(":status: 200"));
    assert.ok(entry.response_headers.includes("content-type: application/json"));
  });

  test("a stream that ends without a response still logs its request headers", () => {
    const s = port.run({ ...get("/uuid"), reset: "afterRequestHeaders" });
    const line = messages(s.logs).find((l) => l.startsWith("access_log "));
    assert.ok(line, "a line was logged");
    const entry = JSON.parse(line.slice("access_log ".length));
    assert.ok(entry.request_headers.includes(":path: /uuid"));
    assert.equal(entry.response_headers, []);
  });
});
