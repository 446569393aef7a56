// Bodies inside a real Envoy: whole-body reads under and over the buffer limit, and streaming
// data hooks on bodies far larger than Envoy's buffers (backpressure, no byte lost).
import { randomBytes } from "node:crypto";
import { test } from "uvu";
import * as assert from "uvu/assert";

import { envoyWith, h1, h2, jsListener, loopbackCluster, routeTo, sha256, startUpstream } from "./lib.mjs";

const WHOLE_BODY = String.raw`
export default {
  async onRequest(req, ctx) {
    if (req.headers.get("x-read") !== "request") return;
    const wait = Number(req.headers.get("x-wait") ?? 0);
    if (wait) await new Promise((r) => setTimeout(r, wait));
    const text = await req.body.text();
    req.headers.set("x-request-length", String(text.length));
    req.body.replace(text.toUpperCase());
  },
  async onResponse(res, ctx) {
    if (res.headers.get("x-read") !== "response") return;
    const bytes = await res.body.bytes();
    res.headers.set("x-response-length", String(bytes.length));
  },
};`;

// chunk.hold() until the end: the whole body waits in Envoy's buffer (StopIterationAndBuffer)
// and goes on, unchanged, when the last chunk's hook returns nothing.
const HOLD = String.raw`
let held = 0;
export default {
  onRequestData(chunk) {
    held += chunk.size;
    if (!chunk.endOfStream) return chunk.hold();
    chunk.append("|" + held);
    held = 0;
  },
};`;

// Every request chunk waits a little in an async hook and is passed on unchanged; response
// chunks are counted synchronously. A wrong byte or a lost chunk changes the checksum.
const STREAMING = String.raw`
const wait = (ms) => new Promise((r) => setTimeout(r, ms));
let requestChunks = 0;
export default {
  async onRequestData(chunk, ctx) {
    requestChunks++;
    if (requestChunks % 8 === 0) await wait(1);
    if (chunk.endOfStream) ctx.log.info("request chunks seen: " + requestChunks);
  },
  onResponseData(chunk, ctx) {
    if (chunk.endOfStream) ctx.log.info("response end: " + chunk.size);
  },
};`;

// The first request chunk passes at once; every later one is rewritten after an await, when
// it waits in Envoy's buffer and the first one has already gone past this filter.
const REWRITE_LATER = String.raw`
let first = new WeakSet();
export default {
  async onRequestData(chunk, ctx) {
    if (!first.has(ctx)) {
      first.add(ctx);
      ctx.log.info("first chunk: " + chunk.size);
      return;
    }
    await new Promise((r) => setTimeout(r, 5));
    chunk.replace(chunk.text().toUpperCase());
  },
};`;

// A body for a message that came without one, from the whole-body API.
const ADD_BODY = String.raw`
export default {
  async onRequest(req) {
    const add = req.headers.get("x-add-body");
    if (!add) return;
    await req.body.text();
    req.body.replace(add);
  },
  async onResponse(res) {
    if (!res.headers.get("x-add-response-body")) return;
    await res.body.text();
    res.body.replace("added to the response");
  },
};`;

// Data hooks that only read, except for a response chunk that asks to grow.
const READ_ONLY = String.raw`
export default {
  onRequestData(chunk, ctx) {
    if (chunk.size > 0) ctx.log.info("request data read: " + chunk.size);
  },
  onResponseData(chunk) {
    if (chunk.text().startsWith("grow")) chunk.append("!!");
  },
};`;

// chunk.addTrailers() on the last request chunk; a refusal becomes the answer.
const ADD_TRAILERS = String.raw`
export default {
  onRequestData(chunk, ctx) {
    if (!chunk.endOfStream) return;
    try {
      chunk.addTrailers().set("x-body-done", "1");
    } catch (e) {
      return ctx.respond(501, { body: e.constructor.name + ": " + e.message });
    }
  },
};`;

const LIMIT = 64 * 1024;
const BIG = 6 * 1024 * 1024;
let envoy, upstream;

test.before(async () => {
  upstream = await startUpstream({
    handler(req, res, entry) {
      if (req.headers["x-reply"] !== undefined) {
        // A response with an exact content-length (empty: Envoy gets it as headers only).
        const b = Buffer.from(req.headers["x-reply"]);
        const h = { "content-length": String(b.length) };
        if (req.headers["x-add-response-body"]) h["x-add-response-body"] = "1";
        res.writeHead(200, h);
        res.end(b);
        return;
      }
      const size = Number(req.headers["x-response-size"] ?? 0);
      const body = size ? bigBody(size) : Buffer.from(`len=${entry.body.length} sha=${sha256(entry.body)}`);
      res.writeHead(200, {
        "content-type": "application/octet-stream",
        "x-read": req.headers["x-read"] ?? "",
        "x-sha": sha256(body),
      });
      res.end(body);
    },
  });
  envoy = await envoyWith({
    listeners: [
      jsListener("whole", {
        inline: WHOLE_BODY,
        settings: { buffer_limit_bytes: LIMIT },
        routes: [routeTo("backend")],
      }),
      jsListener("rewrite", { inline: REWRITE_LATER, routes: [routeTo("backend")] }),
      jsListener("add_body", { inline: ADD_BODY, routes: [routeTo("backend")] }),
      jsListener("read_only", { inline: READ_ONLY, routes: [routeTo("backend")] }),
      jsListener("trailers", { inline: ADD_TRAILERS, routes: [routeTo("backend")] }),
      {
        ...jsListener("hold", {
          inline: HOLD,
          settings: { buffer_limit_bytes: 256 * 1024 },
          routes: [routeTo("backend")],
        }),
        per_connection_buffer_limit_bytes: 32768,
      },
      {
        ...jsListener("streaming", { inline: STREAMING, routes: [routeTo("backend")] }),
        // Small connection buffers: a 6 MiB body has to flow through watermarks.
        per_connection_buffer_limit_bytes: 32768,
      },
    ],
    clusters: [
      { ...loopbackCluster({ name: "backend", port: upstream.port }), per_connection_buffer_limit_bytes: 32768 },
    ],
  });
});

test.after(async () => {
  await envoy?.stop();
  await upstream?.close();
});

const bigBodies = new Map();
function bigBody(size) {
  if (!bigBodies.has(size)) bigBodies.set(size, randomBytes(size));
  return bigBodies.get(size);
}

test("whole request body under the limit is read, replaced and forwarded (h1 chunks)", async () => {
  const r = await h1(await envoy.port("whole"), {
    method: "POST",
    path: "/up",
    headers: { "x-read": "request" },
    body: ["hello ", "world"],
  });
  assert.is(r.status, 200);
  const seen = upstream.last();
  assert.is(seen.headers["x-request-length"], "11");
  assert.is(seen.body.toString(), "HELLO WORLD");
  assert.is(seen.headers["content-length"] ?? String(seen.body.length), "11");
});

// The module ABI of Envoy 1.38 to 1.40 cannot add trailers to a message that has none: the
// filter gets a TypeError that says so (the native extension and the test engine can add them).
test("chunk.addTrailers() on the dynamic module: a TypeError naming the host and the reason", async () => {
  // (Whether the upstream saw the request's headers first depends on timing: without a
  // content-length they go on before the data hook runs.)
  const r = await h2(await envoy.port("trailers"), { method: "POST", path: "/t", body: "abc" });
  assert.is(r.status, 501);
  assert.match(r.text, /^TypeError: chunk\.addTrailers\(\): the Envoy dynamic module cannot add trailers/);
  assert.match(r.text, /ABI of Envoy 1\.38 to 1\.40 has no call for it/);
  const ok = await h2(await envoy.port("trailers"), { method: "GET", path: "/after" });
  assert.is(ok.status, 200);
});

test("whole request body over buffer_limit_bytes: 413, the upstream sees nothing", async () => {
  const before = upstream.received.length;
  const r = await h2(await envoy.port("whole"), {
    method: "POST",
    path: "/too-big",
    headers: { "x-read": "request" },
    body: Buffer.alloc(LIMIT * 2, 97),
  });
  assert.is(r.status, 413);
  assert.is(upstream.received.length, before);
});

// Review finding 7: a body over buffer_limit_bytes gets 413, not backpressure. When the body
// arrives while onRequest still awaits something else, Envoy holds it under flow control
// (StopIterationAndWatermark); a body read that starts afterwards checks what is already held
// (runtime/body_read.cc streamStartBodyRead): without that, small bodies got 200 and large h1
// bodies waited for ever (the connection read-disabled above the watermark).
for (const [name, send, size] of [
  ["h2, 2x the limit", h2, LIMIT * 2],
  ["h2, 40x", h2, LIMIT * 40],
  ["h1, 2x", h1, LIMIT * 2],
  ["h1, 40x", h1, LIMIT * 40],
]) {
  test(`whole request body over buffer_limit_bytes, read after an earlier await: 413 (${name})`, async () => {
    const before = upstream.received.length;
    const r = await send(await envoy.port("whole"), {
      method: "POST",
      path: "/late-too-big",
      headers: { "x-read": "request", "x-wait": "300" },
      body: Buffer.alloc(size, 97),
      timeoutMs: 5000,
    });
    assert.is(r.status, 413);
    assert.is(upstream.received.length, before);
  });
}

test("chunk.hold() keeps a 200 KiB request in Envoy's buffer (past a 32 KiB connection buffer) and passes it on whole (h1)", async () => {
  const body = bigBody(200 * 1024);
  const r = await h1(await envoy.port("hold"), { method: "POST", path: "/hold", body });
  assert.is(r.status, 200);
  const seen = upstream.last().body;
  const suffix = "|" + body.length;
  assert.is(seen.length, body.length + suffix.length);
  assert.is(sha256(seen.subarray(0, body.length)), sha256(body));
  assert.is(seen.subarray(body.length).toString(), suffix);
});

test("chunk.hold() past buffer_limit_bytes: 413, nothing of the body goes upstream (h2)", async () => {
  const before = upstream.received.length;
  const r = await h2(await envoy.port("hold"), { method: "POST", path: "/hold-too-much", body: bigBody(400 * 1024) });
  assert.is(r.status, 413);
  const after = upstream.received.slice(before).filter((e) => e.url === "/hold-too-much");
  assert.ok(
    after.every((e) => e.body.length === 0 || e.aborted),
    "the upstream saw no held bytes",
  );
});

test("whole response body under the limit is read", async () => {
  const r = await h1(await envoy.port("whole"), {
    path: "/down",
    headers: { "x-read": "response", "x-response-size": String(LIMIT / 2) },
  });
  assert.is(r.status, 200);
  assert.is(r.headers["x-response-length"], String(LIMIT / 2));
  assert.is(sha256(r.body), r.headers["x-sha"]);
});

test("whole response body over buffer_limit_bytes: 500", async () => {
  const r = await h1(await envoy.port("whole"), {
    path: "/down-big",
    headers: { "x-read": "response", "x-response-size": String(LIMIT * 4) },
  });
  assert.is(r.status, 500);
});

// Review finding 2, as far as a release Envoy shows it: the rewrite goes through the ABI's
// drain_body/append_body on the Buffered body, i.e. Envoy's modifyDecodingBuffer after data
// went past this filter. A debug Envoy ASSERTs there (test/abi_host records it); a release
// Envoy, as PyPI's, gives the right bytes.
test("a chunk rewritten after an await, behind a chunk that already went on: the upstream gets both, rewritten once", async () => {
  const from = envoy.logOffset();
  const r = await h1(await envoy.port("rewrite"), {
    method: "POST",
    path: "/rewrite",
    headers: { "transfer-encoding": "chunked" },
    onRequest: (req) => {
      req.write("first-part.");
      setTimeout(() => {
        req.write("second-part.");
        setTimeout(() => req.end("third-part."), 50);
      }, 100);
    },
  });
  assert.is(r.status, 200);
  const [line] = await envoy.waitForLog(/first chunk: (\d+)/, 5000, from);
  const firstSize = Number(/first chunk: (\d+)/.exec(line)[1]);
  const sent = "first-part.second-part.third-part.";
  const got = upstream.last().body.toString();
  assert.is(got, sent.slice(0, firstSize) + sent.slice(firstSize).toUpperCase());
  assert.ok(firstSize > 0 && firstSize < sent.length, String(firstSize));
});

for (const [name, send] of [
  ["h1", h1],
  ["h2", h2],
]) {
  test(`a request that came without a body is given one; the upstream gets it with its content-length (${name})`, async () => {
    const r = await send(await envoy.port("add_body"), { path: "/add", headers: { "x-add-body": "given body" } });
    assert.is(r.status, 200);
    const seen = upstream.last();
    assert.is(seen.body.toString(), "given body");
    assert.is(seen.headers["content-length"], "10");
    assert.is(seen.headers["transfer-encoding"], undefined);
  });

  test(`a response that came without a body is given one; the client gets it with its content-length (${name})`, async () => {
    const r = await send(await envoy.port("add_body"), {
      path: "/add-response",
      headers: { "x-reply": "", "x-add-response-body": "1" },
    });
    assert.is(r.status, 200);
    assert.is(r.text, "added to the response");
    assert.is(r.headers["content-length"], "21");
    assert.is(r.headers["transfer-encoding"], undefined);
  });
}

test("data hooks that only read keep content-length both ways; nothing goes chunked (h1)", async () => {
  const from = envoy.logOffset();
  const r = await h1(await envoy.port("read_only"), {
    method: "POST",
    path: "/read-only",
    headers: { "x-reply": "hello back", "content-length": "11" },
    body: "hello world",
  });
  assert.is(r.status, 200);
  assert.is(r.text, "hello back");
  assert.is(r.headers["content-length"], "10");
  assert.is(r.headers["transfer-encoding"], undefined);
  const seen = upstream.last();
  assert.is(seen.body.toString(), "hello world");
  assert.is(seen.headers["content-length"], "11");
  assert.is(seen.headers["transfer-encoding"], undefined);
  await envoy.waitForLog(/request data read: 11/, 5000, from);
});

test("a data hook that changes the size of a body in one piece: content-length follows it (h1)", async () => {
  const r = await h1(await envoy.port("read_only"), { path: "/grow", headers: { "x-reply": "grow me" } });
  assert.is(r.status, 200);
  assert.is(r.text, "grow me!!");
  assert.is(r.headers["content-length"], "9");
});

test("a 6 MiB request streams through async data hooks with backpressure; no byte lost (h1)", async () => {
  const body = bigBody(BIG);
  const chunks = [];
  for (let i = 0; i < body.length; i += 256 * 1024) chunks.push(body.subarray(i, i + 256 * 1024));
  const r = await h1(await envoy.port("streaming"), {
    method: "POST",
    path: "/stream",
    body: chunks,
    timeoutMs: 30000,
  });
  assert.is(r.status, 200);
  assert.is(r.text, `len=${BIG} sha=${sha256(body)}`);
  await envoy.waitForLog(/request chunks seen: \d+/);
});

test("a 6 MiB request and a 6 MiB response stream over h2; no byte lost", async () => {
  const body = bigBody(BIG);
  const r = await h2(await envoy.port("streaming"), {
    method: "POST",
    path: "/stream2",
    headers: { "x-response-size": String(BIG) },
    body,
    timeoutMs: 30000,
  });
  assert.is(r.status, 200);
  assert.is(r.body.length, BIG);
  assert.is(sha256(r.body), r.headers["x-sha"]);
  assert.is(upstream.last().body.length, BIG);
  assert.is(sha256(upstream.last().body), sha256(body));
});

test.run();
