// @ts-check
/**
 * `envoy-js dev`: a local HTTP proxy that runs a filter on the wasm engine
 * (the C++ runtime and quickjs-ng Envoy runs, compiled to WebAssembly), for trying a filter with curl or a browser while writing it. It is
 * a development tool, not a production proxy: it listens on 127.0.0.1 only,
 * holds each request and response whole before passing it on, and carries
 * bodies as UTF-8 text.
 *
 * Each request becomes a stream of a step-by-step host (`new
 * engine.ScriptedHost(...)`, the wasm engine's scripted Envoy): request headers, data and
 * trailers are fed as they arrive, the host's clock follows real time, and
 * once the filter has let the whole request through, what it produced is sent
 * to `--upstream`; the upstream's response goes back through the filter, and
 * the client gets what comes out (or the filter's local reply). Callouts
 * (`ctx.fetch`) are answered from `--clusters` (the scenario `clusters`
 * shape). Saving the filter rebuilds it; new requests use the new build and
 * a build error keeps the previous one serving.
 *
 * @module
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";

import { buildFilter } from "./build.mjs";
import { BuildError, readJson } from "./errors.mjs";
import { mapTranscript, parseBundleSourceMap, withShownSources } from "./sourcemap.mjs";
import { loadWasmEngine } from "./wasm.mjs";
import { watchTree } from "./watch.mjs";

/** Headers that belong to one HTTP/1 connection, not to the message (Envoy drops them too). */
const HOP_BY_HOP = new Set(["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te"]);

/**
 * @typedef {object} DevOptions
 * @property {string} entry the filter's entry file (`src/filter.ts`)
 * @property {string} upstream where requests go after the filter, e.g. `http://127.0.0.1:8080`
 * @property {number} [port] port on 127.0.0.1 (0: any free port; default 8000)
 * @property {string} [configFile] JSON file with ctx.config
 * @property {string} [settingsFile] JSON file with the settings (failure_mode, limits)
 * @property {string} [clustersFile] JSON file answering ctx.fetch: { name: { headers, body, delayMs } }
 * @property {boolean} [watch] rebuild when files in the entry's directory change (default true)
 * @property {number} [debounceMs] wait this long after the last change before rebuilding (default 100)
 * @property {number} [timeoutMs] give up on a request after this long: 504 (default 30000)
 * @property {boolean} [typecheck] fail builds on type errors (default true)
 * @property {(line: string) => void} [log] where log lines go (default: stderr)
 */

/**
 * @typedef {object} DevServer
 * @property {number} port the port it listens on
 * @property {string} url `http://127.0.0.1:<port>`
 * @property {() => Promise<boolean>} reload rebuild now; true when the new build serves
 * @property {() => Promise<void>} close stop listening, watching and ticking
 */

/** @param {unknown} v @returns {string[]} */
const values = (v) => (v === undefined || v === null ? [] : Array.isArray(v) ? v.map(String) : [String(v)]);

/**
 * "+x-user -x-api-key ~:path": what changed between two header objects.
 *
 * @param {Record<string, unknown>} before
 * @param {Record<string, unknown>} after
 */
function headerDiff(before, after) {
  const out = [];
  for (const name of Object.keys(after)) {
    if (!(name in before)) out.push(`+${name}`);
    else if (values(before[name]).join("\n") !== values(after[name]).join("\n")) out.push(`~${name}`);
  }
  for (const name of Object.keys(before)) if (!(name in after)) out.push(`-${name}`);
  return out.join(" ");
}

/**
 * Node's incoming headers as the host wants them: lower-case names, repeated
 * headers as arrays, pseudo-headers first, connection headers dropped.
 *
 * @param {http.IncomingMessage} req
 */
function requestHeaders(req) {
  /** @type {Record<string, string | string[]>} */
  const h = {
    ":method": req.method ?? "GET",
    ":path": req.url ?? "/",
    ":authority": req.headers.host ?? "",
    ":scheme": "http",
  };
  for (const [name, v] of Object.entries(req.headersDistinct)) {
    if (name === "host" || HOP_BY_HOP.has(name) || v === undefined) continue;
    h[name] = v.length === 1 ? v[0] : v;
  }
  return h;
}

/**
 * @param {number} status
 * @param {NodeJS.Dict<string | string[]>} headers
 */
function responseHeaders(status, headers) {
  /** @type {Record<string, string | string[]>} */
  const h = { ":status": String(status) };
  for (const [name, v] of Object.entries(headers)) {
    if (HOP_BY_HOP.has(name) || v === undefined) continue;
    h[name] = Array.isArray(v) ? (v.length === 1 ? v[0] : v) : v;
  }
  return h;
}

/**
 * Non-pseudo headers, for node:http, without the length (recomputed from the body).
 *
 * @param {Record<string, string | string[]>} h
 */
function plainHeaders(h) {
  /** @type {Record<string, string | string[]>} */
  const out = {};
  for (const [name, v] of Object.entries(h)) {
    if (name.startsWith(":") || name === "content-length" || HOP_BY_HOP.has(name)) continue;
    out[name] = v;
  }
  return out;
}

/**
 * Starts the dev server. Resolves once it listens; a first build that fails
 * is reported and the server answers 503 until a save fixes it.
 *
 * @param {DevOptions} options
 * @returns {Promise<DevServer>}
 */
export async function startDevServer(options) {
  const log = options.log ?? ((line) => process.stderr.write(`${line}\n`));
  const entry = path.resolve(options.entry);
  const upstream = new URL(options.upstream);
  if (upstream.protocol !== "http:") throw new BuildError(`--upstream must be an http:// URL, not ${options.upstream}`);
  const timeoutMs = options.timeoutMs ?? 30_000;
  const engine = loadWasmEngine();
  const outDir = mkdtempSync(path.join(os.tmpdir(), "envoy-js-dev-"));
  const outFile = path.join(outDir, "filter.js");
  const rel = path.relative(process.cwd(), entry);
  const shownEntry = rel && !rel.startsWith("..") && !path.isAbsolute(rel) ? rel : entry;

  /** @type {Generation | null} */
  let current = null;
  /** @type {string} */
  let lastBuildError = "not built yet";
  let closed = false;
  let nextStreamId = 1;

  /**
   * One build of the filter and the host that runs it. A reload makes a new
   * one; the old one finishes its streams and is closed.
   */
  class Generation {
    /**
     * @param {any} host
     * @param {import("./sourcemap.mjs").BundleSourceMap | null} map
     * @param {Record<string, unknown>} clusters
     */
    constructor(host, map, clusters) {
      this.host = host;
      this.map = map;
      this.clusters = clusters;
      this.last = performance.now();
      /** @type {Set<DevStream>} */
      this.streams = new Set();
      this.retired = false;
      this.ticker = setInterval(() => this.tick(), 5);
      this.ticker.unref();
    }

    /** Moves the host clock to real time, firing timers and callout answers due. */
    advance() {
      const now = performance.now();
      const ms = now - this.last;
      this.last = now;
      if (ms > 0) this.host.advanceTime(ms);
    }

    tick() {
      // Idle: nothing waits on the clock but worker timers, which catch up at the next event.
      if (this.streams.size === 0) return;
      this.advance();
      for (const s of [...this.streams]) s.pump();
    }

    /** @param {DevStream} s */
    finished(s) {
      this.streams.delete(s);
      if (this.retired && this.streams.size === 0) this.close();
    }

    retire() {
      this.retired = true;
      if (this.streams.size === 0) this.close();
    }

    close() {
      clearInterval(this.ticker);
      this.host.close();
    }
  }

  /** One client request, from arrival to the last byte of the response. */
  class DevStream {
    /**
     * @param {Generation} gen
     * @param {http.IncomingMessage} req
     * @param {http.ServerResponse} res
     */
    constructor(gen, req, res) {
      this.gen = gen;
      this.req = req;
      this.res = res;
      this.started = performance.now();
      this.upstreamStarted = false;
      /** @type {Record<string, string | string[]> | null} */
      this.upstreamResponse = null;
      this.upstreamBody = "";
      this.requestBody = "";
      this.done = false;
      this.requestHeaders = requestHeaders(req);
      gen.advance();
      this.i = gen.host.newStream({
        stream: {
          id: String(nextStreamId++),
          protocol: `HTTP/${req.httpVersion}`,
          remoteAddress: `${req.socket.remoteAddress}:${req.socket.remotePort}`,
          localAddress: `${req.socket.localAddress}:${req.socket.localPort}`,
        },
        clusters: gen.clusters,
      });
      gen.streams.add(this);
      this.timer = setTimeout(() => this.fail(504, "the filter did not finish the stream in time"), timeoutMs);
      this.timer.unref();
      res.on("close", () => {
        if (!this.done) this.end("client went away", null);
      });
      this.feedRequest();
    }

    /** @returns {any} the stream's transcript so far, source-mapped */
    state() {
      return mapTranscript(this.gen.host.stream(this.i), this.gen.map);
    }

    feedRequest() {
      const { req } = this;
      const host = this.gen.host;
      const length = req.headers["content-length"];
      const hasBody = (length !== undefined && length !== "0") || req.headers["transfer-encoding"] !== undefined;
      host.requestHeaders(this.i, this.requestHeaders, !hasBody);
      this.pump();
      if (!hasBody) return;
      // Hold one chunk back, so that the last one can carry end of stream.
      /** @type {Buffer | null} */
      let held = null;
      req.on("data", (chunk) => {
        this.requestBody += chunk.toString("utf8");
        if (this.done) return;
        if (held) {
          this.gen.advance();
          host.requestData(this.i, held, false);
          this.pump();
        }
        held = chunk;
      });
      req.on("end", () => {
        if (this.done) return;
        this.gen.advance();
        const trailers = Object.keys(req.trailers).length > 0 ? req.trailers : null;
        host.requestData(this.i, held ?? Buffer.alloc(0), trailers === null);
        if (trailers && !this.done) host.requestTrailers(this.i, trailers);
        this.pump();
      });
    }

    /** Looks at where the stream stands and does the next thing. */
    pump() {
      if (this.done) return;
      const st = this.state();
      if (st.localReply) {
        const r = st.localReply;
        const headers = { ...r.headers };
        if (r.body && !headers["content-type"]) headers["content-type"] = "text/plain";
        this.reply(r.status, headers, r.body, `local reply ${r.status}${r.details ? ` (${r.details})` : ""}`, st);
        return;
      }
      if (st.resetByFilter) {
        this.res.destroy();
        this.end("reset by the filter", st);
        return;
      }
      if (st.requestSentUpstream && !this.upstreamStarted) {
        this.upstreamStarted = true;
        this.sendUpstream(st.upstreamRequest);
      }
      if (st.responseSentDownstream && st.downstreamResponse) {
        const d = st.downstreamResponse;
        this.reply(Number(d.headers[":status"]), plainHeaders(d.headers), d.body, null, st);
      }
    }

    /** @param {{ headers: Record<string, string | string[]>, body: string }} up */
    sendUpstream(up) {
      const h = up.headers;
      const body = Buffer.from(up.body ?? "", "utf8");
      /** @type {Record<string, string | string[]>} */
      const headers = { ...plainHeaders(h), host: String(h[":authority"] ?? upstream.host) };
      if (body.length > 0 || h["content-length"] !== undefined) headers["content-length"] = String(body.length);
      const base = upstream.pathname.replace(/\/$/, "");
      const out = http.request(
        {
          hostname: upstream.hostname,
          port: upstream.port || 80,
          method: String(h[":method"]),
          path: base + String(h[":path"]),
          headers,
        },
        (ures) => this.feedResponse(ures),
      );
      out.on("error", (err) => {
        if (this.done || this.upstreamResponse) return;
        // Envoy's router answers for an unreachable upstream, through the filter chain.
        const text = `upstream connect error: ${err.message}`;
        this.upstreamResponse = { ":status": "503", "content-type": "text/plain" };
        this.upstreamBody = text;
        this.gen.advance();
        this.gen.host.responseHeaders(this.i, this.upstreamResponse, false);
        if (!this.done) this.gen.host.responseData(this.i, text, true);
        this.pump();
      });
      out.end(body);
    }

    /** @param {http.IncomingMessage} ures */
    feedResponse(ures) {
      if (this.done) {
        ures.resume();
        return;
      }
      const host = this.gen.host;
      this.upstreamResponse = responseHeaders(ures.statusCode ?? 502, ures.headersDistinct);
      const noBody =
        this.requestHeaders[":method"] === "HEAD" ||
        ures.statusCode === 204 ||
        ures.statusCode === 304 ||
        ures.headers["content-length"] === "0";
      this.gen.advance();
      host.responseHeaders(this.i, this.upstreamResponse, noBody);
      this.pump();
      if (noBody) {
        ures.resume();
        return;
      }
      /** @type {Buffer | null} */
      let held = null;
      ures.on("data", (chunk) => {
        this.upstreamBody += chunk.toString("utf8");
        if (this.done) return;
        if (held) {
          this.gen.advance();
          host.responseData(this.i, held, false);
          this.pump();
        }
        held = chunk;
      });
      ures.on("end", () => {
        if (this.done) return;
        this.gen.advance();
        const trailers = Object.keys(ures.trailers).length > 0 ? ures.trailers : null;
        host.responseData(this.i, held ?? Buffer.alloc(0), trailers === null);
        if (trailers && !this.done) host.responseTrailers(this.i, trailers);
        this.pump();
      });
      ures.on("error", () => this.fail(502, "the upstream response broke off"));
    }

    /**
     * @param {number} status
     * @param {Record<string, unknown>} headers without pseudo-headers
     * @param {string} body
     * @param {string | null} what what the filter did, when it was a local reply
     * @param {any} st
     */
    reply(status, headers, body, what, st) {
      const bytes = Buffer.from(body ?? "", "utf8");
      const out = /** @type {Record<string, string | string[]>} */ ({});
      for (const [k, v] of Object.entries(headers)) {
        if (k.startsWith(":") || k === "content-length" || HOP_BY_HOP.has(k)) continue;
        out[k] = Array.isArray(v) ? v.map(String) : String(v);
      }
      out["content-length"] = String(bytes.length);
      this.res.writeHead(status, out);
      this.res.end(this.requestHeaders[":method"] === "HEAD" ? undefined : bytes);
      this.end(what, st, status);
    }

    /** @param {number} status @param {string} why */
    fail(status, why) {
      if (this.done) return;
      const st = this.state();
      if (!this.res.headersSent) {
        this.res.writeHead(status, { "content-type": "text/plain" });
        this.res.end(`envoy-js dev: ${why}\n`);
      } else {
        this.res.destroy();
      }
      this.end(why, st, status);
    }

    /**
     * Completes the stream on the host and writes its log line.
     *
     * @param {string | null} what
     * @param {any} st
     * @param {number} [status]
     */
    end(what, st, status) {
      if (this.done) return;
      this.done = true;
      clearTimeout(this.timer);
      const host = this.gen.host;
      const live = st ? st.live : true;
      if (!st?.responseSentDownstream && live) host.destroy(this.i, what ?? "client went away");
      else {
        host.complete(this.i);
        host.destroy(this.i);
      }
      const last = this.state();
      this.gen.finished(this);
      this.logLine(what, last, status);
    }

    /** @param {string | null} what @param {any} st @param {number} [status] */
    logLine(what, st, status) {
      const did = [];
      if (what) did.push(what);
      if (st?.upstreamRequest) {
        const diff = headerDiff(this.requestHeaders, st.upstreamRequest.headers);
        if (diff) did.push(diff);
        if (st.upstreamRequest.body !== this.requestBody) did.push("request body rewritten");
      }
      if (st?.downstreamResponse && this.upstreamResponse) {
        const diff = headerDiff(this.upstreamResponse, st.downstreamResponse.headers);
        if (diff) did.push(`response ${diff}`);
        if (st.downstreamResponse.body !== this.upstreamBody) did.push("response body rewritten");
      }
      const ms = Math.round(performance.now() - this.started);
      const code = status ?? (this.res.headersSent ? this.res.statusCode : "-");
      log(
        `${this.requestHeaders[":method"]} ${this.requestHeaders[":path"]} ${code} ${did.join(", ") || "passed through"} ${ms} ms`,
      );
      for (const line of st?.logs ?? []) log(`  ${line}`);
      for (const e of st?.errors ?? []) log(`  error: ${e.replaceAll("\n", "\n  ")}`);
    }
  }

  /** Builds the filter and swaps hosts; false (reported) when the build fails. */
  async function rebuild() {
    const started = performance.now();
    try {
      const config = options.configFile ? readJson(options.configFile, "config") : {};
      const settings = options.settingsFile ? readJson(options.settingsFile, "settings") : {};
      const clusters = options.clustersFile ? readJson(options.clustersFile, "clusters") : {};
      await buildFilter({ entry, outFile, typecheck: options.typecheck !== false, warn: (m) => log(`warning: ${m}`) });
      const source = readFileSync(outFile, "utf8");
      const sourceMap = readFileSync(`${outFile}.map`, "utf8");
      const map = parseBundleSourceMap(sourceMap, {
        bundleFilename: "filter.js",
        mapFile: `${outFile}.map`,
        warn: log,
      });
      let host;
      try {
        // The engine maps error locations itself: give it the sources as they are shown here.
        const shown = withShownSources(sourceMap, `${outFile}.map`);
        host = new engine.ScriptedHost({ source, filename: "filter.js", sourceMap: shown }, { config, settings });
      } catch (err) {
        const reason = err instanceof Error ? err.message : String(err);
        throw new BuildError(map ? map.rewrite(reason) : reason);
      }
      if (closed) {
        host.close();
        return false;
      }
      const previous = current;
      current = new Generation(host, map, clusters);
      previous?.retire();
      lastBuildError = "";
      const ms = Math.round(performance.now() - started);
      log(`${previous ? "reloaded" : "loaded"} ${shownEntry} (${ms} ms)`);
      return true;
    } catch (err) {
      if (!(err instanceof BuildError)) throw err;
      lastBuildError = err.message;
      const keeping = current ? "still serving the previous build" : "answering 503 until it builds";
      log(`build failed (${keeping}):\n  ${err.message.replaceAll("\n", "\n  ")}`);
      return false;
    }
  }

  // Rebuilds are serialised: a change during a build queues one more build.
  /** @type {Promise<boolean> | null} */
  let building = null;
  let again = false;
  /** @returns {Promise<boolean>} */
  function reload() {
    if (building) {
      again = true;
      return building.then(/** @returns {Promise<boolean>} */ () => reload());
    }
    building = rebuild().finally(() => {
      building = null;
    });
    return building.then(
      /** @returns {Promise<boolean> | boolean} */ (ok) => {
        if (again) {
          again = false;
          return reload();
        }
        return ok;
      },
    );
  }

  await reload();

  const server = http.createServer((req, res) => {
    if (!current) {
      res.writeHead(503, { "content-type": "text/plain" });
      res.end(`envoy-js dev: ${shownEntry} does not build:\n${lastBuildError}\n`);
      log(`${req.method} ${req.url} 503 no filter loaded 0 ms`);
      req.resume();
      return;
    }
    try {
      new DevStream(current, req, res);
    } catch (err) {
      res.writeHead(500, { "content-type": "text/plain" });
      res.end(`envoy-js dev: ${err instanceof Error ? err.message : String(err)}\n`);
    }
  });

  /** @type {{ close: () => void } | null} */
  let watcher = null;
  /** @type {NodeJS.Timeout | undefined} */
  let debounce;
  if (options.watch !== false) {
    // Not fs.watch's `recursive`: on Linux it loses files that editors replace by rename.
    watcher = watchTree(path.dirname(entry), () => {
      clearTimeout(debounce);
      debounce = setTimeout(() => void reload(), options.debounceMs ?? 100);
    });
  }

  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 8000, "127.0.0.1", () => resolve(undefined));
  });
  const address = /** @type {import("node:net").AddressInfo} */ (server.address());

  return {
    port: address.port,
    url: `http://127.0.0.1:${address.port}`,
    reload,
    async close() {
      closed = true;
      watcher?.close();
      clearTimeout(debounce);
      await building?.catch(() => false);
      server.closeAllConnections();
      await new Promise((resolve) => server.close(() => resolve(undefined)));
      current?.retire();
      current = null;
      rmSync(outDir, { recursive: true, force: true });
    },
  };
}
