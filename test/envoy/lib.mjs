// The real-Envoy suite's helpers: Node servers that play the upstream and the ctx.fetch
// clusters, HTTP/1.1 and HTTP/2 clients, and one Envoy per test file (sdk/cli/envoy.mjs starts
// it). Everything is on loopback with ports picked by the kernel; every wait is bounded.
import { createHash } from "node:crypto";
import http from "node:http";
import http2 from "node:http2";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";

import {
  ROUTER_FILTER,
  bootstrap,
  envoyJsHttpFilter,
  filterConfigJson,
  findEnvoy,
  httpListener,
  loopbackCluster,
  sleep,
  startEnvoy,
} from "../../sdk/cli/envoy.mjs";

export {
  ROUTER_FILTER,
  bootstrap,
  envoyJsHttpFilter,
  filterConfigJson,
  httpListener,
  loopbackCluster,
  sleep,
  startEnvoy,
};
export { envoyJsPerRoute } from "../../sdk/cli/envoy.mjs";

export const sha256 = (/** @type {Buffer|string} */ b) => createHash("sha256").update(b).digest("hex");

/** The Envoy this run tests (ENVOY_BIN / ENVOY_VERSION / the first pinned version). */
export function envoyUnderTest() {
  const e = findEnvoy();
  if (!e) throw new Error("no Envoy: run `make envoy` (make test does)");
  return e;
}

/** A scratch directory removed by the returned function. */
export function scratchDir() {
  const dir = mkdtempSync(path.join(os.tmpdir(), "envoy-js-e2e-"));
  return {
    dir,
    write: (name, text) => {
      const f = path.join(dir, name);
      writeFileSync(f, text);
      return f;
    },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/**
 * A recording upstream: every request it receives is kept (headers, body, trailers) and
 * answered by `handler(req, res, body)` after the whole request arrived (default: 200 "ok").
 * `http2: true` makes it an h2c server (for trailers).
 */
export async function startUpstream({ http2: useH2 = false, handler, streaming } = {}) {
  const received = [];
  const onRequest = (req, res) => {
    const entry = {
      method: req.method,
      url: req.url,
      headers: { ...req.headers },
      body: Buffer.alloc(0),
      trailers: null,
      aborted: false,
    };
    received.push(entry);
    if (streaming) return streaming(req, res, entry);
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("aborted", () => {
      entry.aborted = true;
    });
    req.on("end", () => {
      entry.body = Buffer.concat(chunks);
      const t = req.trailers && Object.keys(req.trailers).length ? { ...req.trailers } : null;
      entry.trailers = t;
      if (handler) return handler(req, res, entry);
      res.writeHead(200, { "content-type": "text/plain" });
      res.end("ok");
    });
  };
  const server = useH2 ? http2.createServer(onRequest) : http.createServer(onRequest);
  const sockets = new Set();
  server.on(useH2 ? "session" : "connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: server.address().port,
    received,
    last: () => received[received.length - 1],
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(() => r()));
    },
  };
}

/** A port nobody listens on (bound, then released). */
export async function closedPort() {
  const s = http.createServer();
  await new Promise((r) => s.listen(0, "127.0.0.1", r));
  const port = s.address().port;
  await new Promise((r) => s.close(r));
  return port;
}

/**
 * One HTTP/1.1 request. Resolves {status, headers, body (Buffer), text}; rejects on a socket
 * error. `body` may be a string, a Buffer or an array of chunks (sent as written).
 */
export function h1(port, { method = "GET", path: p = "/", headers = {}, body, timeoutMs = 10000, onRequest } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port, method, path: p, headers, agent: false }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => {
        clearTimeout(timer);
        const b = Buffer.concat(chunks);
        resolve({
          status: res.statusCode,
          headers: res.headers,
          body: b,
          text: b.toString("utf8"),
          trailers: res.trailers,
        });
      });
      res.on("error", reject);
    });
    const timer = setTimeout(() => {
      req.destroy(new Error(`no response within ${timeoutMs} ms`));
    }, timeoutMs);
    req.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    if (onRequest) onRequest(req);
    if (Array.isArray(body)) {
      for (const c of body) req.write(c);
      req.end();
    } else if (body !== undefined) req.end(body);
    else if (!onRequest) req.end();
  });
}

/**
 * One HTTP/2 request (prior knowledge) on a new session. Resolves {status, headers, body,
 * text, trailers}. `trailers` are sent after the body.
 */
export function h2(port, { method = "GET", path: p = "/", headers = {}, body, trailers, timeoutMs = 10000 } = {}) {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    const done = (fn, v) => {
      clearTimeout(timer);
      session.close();
      fn(v);
    };
    const timer = setTimeout(() => {
      session.destroy();
      reject(new Error(`no h2 response within ${timeoutMs} ms`));
    }, timeoutMs);
    session.on("error", (e) => done(reject, e));
    const hasBody = body !== undefined || trailers !== undefined;
    const stream = session.request(
      { ":method": method, ":path": p, ":authority": "envoy-js.test", ...headers },
      { endStream: !hasBody, waitForTrailers: trailers !== undefined },
    );
    if (trailers !== undefined) stream.on("wantTrailers", () => stream.sendTrailers(trailers));
    let status = 0;
    let resHeaders = {};
    let resTrailers = null;
    const chunks = [];
    stream.on("response", (h) => {
      status = h[":status"];
      resHeaders = h;
    });
    stream.on("trailers", (t) => {
      resTrailers = t;
    });
    stream.on("data", (c) => chunks.push(c));
    stream.on("end", () => {
      const b = Buffer.concat(chunks);
      done(resolve, { status, headers: resHeaders, body: b, text: b.toString("utf8"), trailers: resTrailers });
    });
    stream.on("error", (e) => done(reject, e));
    if (hasBody) {
      if (body !== undefined) stream.write(body);
      stream.end();
    }
  });
}

/**
 * Starts an Envoy for one test file. `filters` are named envoy-js configs: each becomes a
 * listener `name` whose chain is [...before, envoy-js, router]. Returns the Envoy handle plus
 * `port(name)`. With `ldsFile`, more listeners come from that file (`writeLdsFile`).
 */
export async function envoyWith({ listeners, clusters = [], concurrency = 1, extra, args = [], ldsFile } = {}) {
  // Access logs are flushed every 50 ms instead of Envoy's 10 s, so that tests can read them.
  const envoy = await startEnvoy({
    envoy: envoyUnderTest(),
    config: bootstrap({ listeners, clusters, extra, ldsFile }),
    concurrency,
    args: ["--file-flush-interval-msec", "50", ...args],
  });
  const ports = new Map();
  envoy.port = async (name) => {
    if (!ports.has(name)) ports.set(name, await envoy.listenerPort(name));
    return ports.get(name);
  };
  return envoy;
}

/** A listener running envoy-js on `source` (inline code) in front of `routes`. */
export function jsListener(
  name,
  { inline, source, config, settings, routes, before = [], accessLog, virtualHosts, hcm },
) {
  return httpListener({
    name,
    routes,
    virtualHosts,
    accessLog,
    hcm,
    httpFilters: [...before, envoyJsHttpFilter(filterConfigJson({ inline, source, config, settings })), ROUTER_FILTER],
  });
}

export const routeTo = (cluster, extra = {}) => ({
  match: { prefix: extra.prefix ?? "/" },
  route: { cluster, timeout: "10s", ...(extra.route ?? {}) },
  ...(extra.typed_per_filter_config ? { typed_per_filter_config: extra.typed_per_filter_config } : {}),
  ...(extra.name ? { name: extra.name } : {}),
});
