// The scripted host driven step by step (what the dev server and the SDK's native engine use).
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

import { test } from "uvu";
import * as assert from "uvu/assert";
import { wasm } from "../lib/wasm.mjs";

const source = `
  export default {
    async onRequest(req, ctx) {
      await new Promise((r) => setTimeout(r, 100));
      req.headers.set("x-waited", String(performance.now()));
    },
    onResponseData(c) { c.replace(c.text().toUpperCase()); },
  };`;

test("a stream advances only when the caller feeds events and time", () => {
  const host = new wasm.ScriptedHost({ source, filename: "f.js" }, { config: {} });
  const s = host.newStream({ stream: { id: "s1" } });
  host.requestHeaders(s, { ":method": "GET", ":path": "/", ":authority": "h" }, true);
  let st = host.stream(s);
  assert.is(st.upstreamRequest, null);
  assert.not.ok(st.requestSentUpstream);
  host.advanceTime(99);
  assert.is(host.stream(s).upstreamRequest, null);
  host.advanceTime(1);
  st = host.stream(s);
  assert.ok(st.requestSentUpstream);
  assert.equal(st.upstreamRequest.headers["x-waited"], "100");
  host.responseHeaders(s, { ":status": "200" }, false);
  host.responseData(s, "hello", false);
  host.responseData(s, Buffer.from(" world"), true);
  st = host.stream(s);
  assert.ok(st.responseSentDownstream);
  assert.equal(st.downstreamResponse.body, "HELLO WORLD");
  host.complete(s);
  host.destroy(s);
  assert.not.ok(host.stream(s).live);
  assert.equal(host.transcript().streams.length, 1);
  host.close();
  assert.throws(() => host.now(), /closed/);
});

test("two streams can be in flight at once on one engine", () => {
  const host = new wasm.ScriptedHost({ source, filename: "f.js" });
  const a = host.newStream();
  const b = host.newStream();
  host.requestHeaders(a, { ":method": "GET", ":path": "/a" }, true);
  host.advanceTime(50);
  host.requestHeaders(b, { ":method": "GET", ":path": "/b" }, true);
  host.advanceTime(50);
  assert.ok(host.stream(a).requestSentUpstream);
  assert.not.ok(host.stream(b).requestSentUpstream);
  host.advanceTime(50);
  assert.equal(host.stream(b).upstreamRequest.headers["x-waited"], "150");
  host.destroy(a, "client went away");
  assert.ok(host.stream(a).events.includes("client went away"));
  host.close();
});

test("advanceTime refuses to fire timers forever (a 0 ms interval) instead of hanging", () => {
  // In a child process with a time limit: before the fix this call never returned.
  const script = `
    import { wasm } from ${JSON.stringify(fileURLToPath(new URL("../lib/wasm.mjs", import.meta.url)))};
    const host = new wasm.ScriptedHost({ source: "let n = 0; export default { setup() { setInterval(() => n++, 0); setTimeout(() => console.log('never'), 5); return {}; } };", filename: "f.js" });
    try { host.advanceTime(1); console.log("returned"); } catch (e) { console.log(e.message + " " + host.now()); }
    host.close();`;
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8", timeout: 20000 });
  assert.is(r.signal, null, "advanceTime hung");
  assert.is(r.stdout.trim(), "advanceTime: more than 100000 timers fired; is an interval of 0 ms running? 0");
});

test("loading errors surface from the constructor", () => {
  assert.throws(
    () => new wasm.ScriptedHost({ source: "export default {", filename: "bad.js" }),
    /^bad\.js:1:\d+: SyntaxError/,
  );
});

// Envoy takes a local reply, a reset or a continue for a stream only in that stream's own turn
// (host.h); the scripted host aborts on any other call, so each step below would trap.
const relay = `
  let release;
  const gate = new Promise((r) => { release = r; });
  export default {
    async onRequest(req, ctx) {
      if (req.headers.get(":path") === "/waiter") {
        const verdict = await gate;
        if (verdict === "deny") return ctx.respond(403, { body: "denied by a later stream" });
        return;
      }
      release(req.headers.get("x-verdict"));
    },
  };`;

for (const verdict of ["deny", "allow"]) {
  test(`a hook settled by another stream's callback acts in its own stream's turn (${verdict})`, () => {
    const host = new wasm.ScriptedHost({ source: relay, filename: "f.js" });
    const waiter = host.newStream();
    const other = host.newStream();
    host.requestHeaders(waiter, { ":method": "GET", ":path": "/waiter" }, true);
    assert.not.ok(host.stream(waiter).requestSentUpstream);
    host.requestHeaders(other, { ":method": "GET", ":path": "/other", "x-verdict": verdict }, true);
    assert.ok(host.stream(other).requestSentUpstream);
    const st = host.stream(waiter);
    if (verdict === "deny") {
      assert.equal(st.localReply.status, 403);
      assert.equal(st.localReply.body, "denied by a later stream");
      assert.equal(st.errors, []);
      assert.not.ok(st.requestSentUpstream);
    } else {
      assert.ok(st.requestSentUpstream);
      assert.ok(st.events.includes("continue request (posted)"));
    }
    host.close();
  });
}
test.run();
