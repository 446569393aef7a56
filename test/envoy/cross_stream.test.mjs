// A hook of one stream that settles inside another stream's callback (review finding 6): the
// waiting streams' continuations run while stream B's onRequest runs (B resolves the promise
// they await). What they do to their own streams (header and buffered-body writes, a local
// reply, a resume) must reach the right stream, and Envoy must see nothing it refuses.
import { test } from "uvu";
import * as assert from "uvu/assert";

import { envoyWith, h1, jsListener, loopbackCluster, routeTo, sleep, startUpstream } from "./lib.mjs";

const FILTER = String.raw`
let release;
let gate = new Promise((r) => { release = r; });
export default {
  async onRequest(req, ctx) {
    const role = req.headers.get("x-role");
    if (role === "writer") {
      const body = await req.body.text();
      await gate;  // settles inside the releaser's onRequest
      req.headers.set("x-from-gate", "1");
      req.body.replace(body.toUpperCase());
    } else if (role === "replier") {
      await gate;
      return ctx.respond(403, { body: "gated\n", headers: { "x-from-gate": "1" } });
    } else if (role === "releaser") {
      release();
      gate = new Promise((r) => { release = r; });
    }
  },
};`;

let envoy, upstream;

test.before(async () => {
  upstream = await startUpstream({
    handler(req, res, entry) {
      res.writeHead(200, { "content-type": "text/plain" });
      res.end(`${entry.headers["x-from-gate"] ?? "-"} ${entry.body.toString()}`);
    },
  });
  envoy = await envoyWith({
    listeners: [jsListener("main", { inline: FILTER, routes: [routeTo("backend")] })],
    clusters: [loopbackCluster({ name: "backend", port: upstream.port })],
  });
});

test.after(async () => {
  await envoy?.stop();
  await upstream?.close();
});

test("streams released inside another stream's hook: header and body writes, a local reply and the resume reach their own streams", async () => {
  const port = await envoy.port("main");
  const logFrom = envoy.log.length;
  const writer = h1(port, { method: "POST", path: "/w", headers: { "x-role": "writer" }, body: "hello" });
  const replier = h1(port, { path: "/r", headers: { "x-role": "replier" } });
  await sleep(300); // both wait on the gate; the writer's body is in Envoy's buffer
  const releaser = await h1(port, { path: "/go", headers: { "x-role": "releaser" } });
  assert.is(releaser.status, 200);
  assert.is(releaser.text, "- ");
  const w = await writer;
  assert.is(w.status, 200);
  assert.is(w.text, "1 HELLO");
  const r = await replier;
  assert.is(r.status, 403);
  assert.is(r.text, "gated\n");
  assert.is(r.headers["x-from-gate"], "1");
  const log = envoy.log.slice(logFrom);
  assert.not.match(log, /envoy bug|Invalid request data|assert failure/i);
});

test.run();
