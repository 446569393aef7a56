// Streams that end badly, inside a real Envoy: the client goes away while a hook is pending,
// the upstream resets before or during its response. onDone runs once for every stream, while
// Envoy's access log can still see what it set.
import http2 from "node:http2";
import { test } from "uvu";
import * as assert from "uvu/assert";

import { envoyWith, h1, jsListener, loopbackCluster, routeTo, sleep, startUpstream } from "./lib.mjs";

const FILTER = String.raw`
const wait = (ms) => new Promise((r) => setTimeout(r, ms));
export default {
  async onRequest(req, ctx) {
    ctx.metadata.set("envoy_js.test", "path", req.path);
    // The stream's timers die with it: this hook never resumes after the client left.
    if (req.path === "/hold") await wait(400);
  },
  onResponse(res, ctx) { res.headers.set("x-js-status", String(res.status)); },
  onDone(ctx) {
    ctx.metadata.set("envoy_js.test", "done", ctx.aborted ? "aborted" : "complete");
    ctx.log.info("done " + ctx.metadata.get("envoy_js.test", "path") + " aborted=" + ctx.aborted);
  },
};`;

let envoy, upstream;

test.before(async () => {
  upstream = await startUpstream({
    streaming(req, res, entry) {
      if (req.url === "/upstream-reset") return req.socket.destroy();
      if (req.url === "/upstream-reset-mid-body") {
        res.writeHead(200, { "content-length": "100000" });
        res.write(Buffer.alloc(1000, 98));
        setTimeout(() => req.socket.destroy(), 50);
        return;
      }
      req.resume();
      req.on("end", () => {
        res.writeHead(200);
        res.end("ok");
      });
    },
  });
  const accessLog = [
    {
      name: "envoy.access_loggers.stdout",
      typed_config: {
        "@type": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
        log_format: {
          text_format_source: {
            inline_string: "ACCESS %REQ(:PATH)% %RESPONSE_CODE% done=%DYNAMIC_METADATA(envoy_js.test:done)%\n",
          },
        },
      },
    },
  ];
  envoy = await envoyWith({
    listeners: [jsListener("main", { inline: FILTER, routes: [routeTo("backend")], accessLog })],
    clusters: [loopbackCluster({ name: "backend", port: upstream.port })],
  });
});

test.after(async () => {
  await envoy?.stop();
  await upstream?.close();
});

test("a client that goes away while onRequest is pending: onDone sees ctx.aborted, the access log sees onDone's metadata", async () => {
  const port = await envoy.port("main");
  const before = upstream.received.length;
  const session = http2.connect(`http://127.0.0.1:${port}`);
  const stream = session.request({ ":method": "GET", ":path": "/hold" });
  stream.on("error", () => {});
  await sleep(100);
  stream.close(http2.constants.NGHTTP2_CANCEL);
  await envoy.waitForLog(/done \/hold aborted=true/);
  const [line] = await envoy.waitForLog(/^ACCESS \/hold .*$/m);
  assert.is(line, "ACCESS /hold 0 done=aborted");
  session.close();
  assert.is(upstream.received.length, before);
});

test("an upstream reset before its response: Envoy's 503 passes our response hook; onDone says complete", async () => {
  const r = await h1(await envoy.port("main"), { path: "/upstream-reset" });
  assert.is(r.status, 503);
  assert.is(r.headers["x-js-status"], "503");
  await envoy.waitForLog(/done \/upstream-reset aborted=false/);
  const [line] = await envoy.waitForLog(/^ACCESS \/upstream-reset .*$/m);
  assert.is(line, "ACCESS /upstream-reset 503 done=complete");
});

test("an upstream reset in the middle of its body: the client sees the stream fail; onDone says aborted", async () => {
  const port = await envoy.port("main");
  const outcome = await h1(port, { path: "/upstream-reset-mid-body" }).then(
    (r) => `completed ${r.body.length}`,
    (e) => `failed ${e.code ?? e.message}`,
  );
  assert.match(outcome, /^failed|^completed (?!100000)/);
  await envoy.waitForLog(/done \/upstream-reset-mid-body aborted=true/);
});

test("Envoy and the engine serve on after the resets", async () => {
  const r = await h1(await envoy.port("main"), { path: "/after" });
  assert.is(r.status, 200);
  assert.is(r.text, "ok");
  await envoy.waitForLog(/done \/after aborted=false/);
});

test.run();
