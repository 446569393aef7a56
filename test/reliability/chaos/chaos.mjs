// `make chaos-envoy`: a real Envoy with envoy-js under load and faults, with filter hot reload
// (ECDS from a watched directory) and hostile input over the wire. Every failure must be one
// the run caused; see README.md beside this file for what is driven and what is checked.
//
//   node test/reliability/chaos/chaos.mjs [--short] [--requests N] [--hold-streams N]
//        [--concurrency N] [--reload-every-ms MS (0: none)] [--out DIR] [--note TEXT]
//
// Writes DIR/envoy-results.json and DIR/ENVOY-RESULTS.md (default DIR: test/reliability for
// the long run, build/chaos for --short) and exits 1 when an assertion of the run fails.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http2 from "node:http2";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import {
  ROUTER_FILTER,
  bootstrap,
  envoyJsEcdsFilter,
  filterConfigJson,
  findEnvoy,
  httpListener,
  loopbackCluster,
  sleep,
  startEnvoy,
  writeEcdsFile,
} from "../../../sdk/cli/envoy.mjs";
import { brokenFilterSource, filterSource } from "./filter.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, "../../..");

// ---- options -------------------------------------------------------------------------------

function parseArgs(argv) {
  const short = argv.includes("--short");
  const opt = {
    short,
    requests: short ? 6000 : 1_000_000,
    holdStreams: short ? 1000 : 10_000,
    concurrency: short ? 64 : 256,
    reloadEveryMs: short ? 2500 : 4000,
    workers: 2,
    out: path.join(REPO, short ? "build/chaos" : "test/reliability"),
    note: "",
  };
  for (let i = 0; i < argv.length; i++) {
    const next = () => argv[++i];
    if (argv[i] === "--requests") opt.requests = Number(next());
    else if (argv[i] === "--hold-streams") opt.holdStreams = Number(next());
    else if (argv[i] === "--concurrency") opt.concurrency = Number(next());
    else if (argv[i] === "--out") opt.out = path.resolve(next());
    else if (argv[i] === "--note") opt.note = next();
    else if (argv[i] === "--reload-every-ms") opt.reloadEveryMs = Number(next()); // 0: no reloads
  }
  return opt;
}

// ---- the upstream: h2c, answering by request header ----------------------------------------

async function startUpstream() {
  const server = http2.createServer({ settings: { maxConcurrentStreams: 1 << 20 }, maxSessionMemory: 256 });
  const sessions = new Set();
  const bgHits = new Map(); // filter version -> background refreshes received (path /bg?v=N&n=M)
  server.on("session", (s) => {
    sessions.add(s);
    s.on("close", () => sessions.delete(s));
    s.on("error", () => {});
  });
  server.on("stream", (stream, headers) => {
    stream.on("error", () => {});
    const mode = headers["x-upstream"];
    const bg = /^\/bg\?v=(\d+)&/.exec(headers[":path"] ?? "");
    if (bg) bgHits.set(bg[1], (bgHits.get(bg[1]) ?? 0) + 1);
    const answer = () => {
      if (stream.destroyed || stream.closed) return;
      if (mode === "reset") return stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
      if (mode === "stream") {
        // A long response, for clients that go away in the middle of it.
        stream.respond({ ":status": 200, "content-type": "application/octet-stream" });
        let sent = 0;
        const chunk = Buffer.alloc(16 * 1024, 0x61);
        const tick = () => {
          if (stream.destroyed || stream.closed) return;
          if (sent++ >= 40) return stream.end();
          stream.write(chunk);
          setTimeout(tick, 10);
        };
        return tick();
      }
      const extra = headers["x-smuggle"] ? { "x-smuggle": "1" } : {};
      stream.respond({ ":status": 200, "content-type": "text/plain", ...extra });
      stream.end("ok");
    };
    stream.on("data", () => {});
    const whenRead = () => {
      if (mode === "slow") setTimeout(answer, 200 + Math.floor(Math.random() * 400));
      else answer();
    };
    if (stream.readableEnded) whenRead();
    else stream.on("end", whenRead);
  });
  server.on("error", () => {});
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: server.address().port,
    bgHits,
    close: async () => {
      for (const s of sessions) s.destroy();
      await new Promise((r) => server.close(() => r()));
    },
  };
}

// ---- ECDS: the filter's config in a watched directory ---------------------------------------

const SETTINGS = { max_heap_bytes: 64 * 1024 * 1024, max_cpu_ms_per_event: 50, buffer_limit_bytes: 1024 * 1024 };

function writeEcds(dir, version, filterFile) {
  writeEcdsFile(dir, filterConfigJson({ source: filterFile, settings: SETTINGS }), version);
}

function envoyConfig(ecdsDir, upstreamPort) {
  const listener = httpListener({
    name: "chaos",
    routes: [{ match: { prefix: "/" }, route: { cluster: "upstream", timeout: "30s" } }],
    httpFilters: [envoyJsEcdsFilter(ecdsDir), ROUTER_FILTER],
    hcm: {
      // Client-side h2 limits high enough for the held streams; headers capped at Envoy's default.
      http2_protocol_options: { max_concurrent_streams: 100000, initial_stream_window_size: 1 << 20 },
      common_http_protocol_options: { idle_timeout: "60s" },
    },
  });
  const cluster = loopbackCluster({ name: "upstream", port: upstreamPort, http2: true });
  const big = 1 << 30;
  cluster.circuit_breakers = {
    thresholds: [{ max_connections: big, max_pending_requests: big, max_requests: big, max_retries: 3 }],
  };
  // A config source needs a node id and cluster.
  return bootstrap({ listeners: [listener], clusters: [cluster], extra: { node: { id: "chaos", cluster: "chaos" } } });
}

// ---- Envoy's process: RSS, liveness ---------------------------------------------------------

function rssBytes(pid) {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

// Least-squares slope of y over x.
function slope(points) {
  const n = points.length;
  if (n < 2) return 0;
  const mx = points.reduce((a, p) => a + p[0], 0) / n;
  const my = points.reduce((a, p) => a + p[1], 0) / n;
  let num = 0;
  let den = 0;
  for (const [x, y] of points) {
    num += (x - mx) * (y - my);
    den += (x - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

function percentile(sorted, p) {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

// ---- an h2 client with a pool of sessions ---------------------------------------------------

class Client {
  constructor(port, sessions) {
    this.port = port;
    this.pool = [];
    this.next = 0;
    this.size = sessions;
  }
  session() {
    const i = this.next++ % this.size;
    let s = this.pool[i];
    if (!s || s.closed || s.destroyed) {
      s = http2.connect(`http://127.0.0.1:${this.port}`, {
        maxSessionMemory: 256,
        settings: { initialWindowSize: 1 << 20 },
      });
      s.on("error", () => {});
      s.on("goaway", () => {
        if (this.pool[i] === s) this.pool[i] = undefined;
      });
      this.pool[i] = s;
    }
    return s;
  }
  close() {
    for (const s of this.pool) s?.close();
  }
}

/**
 * One request. Resolves { status, version, bg, body, ms, error } and never rejects (`bg`: the
 * background refresh the filter's response named in `x-bg`).
 * abort: "request" (RST after part of the body) or "response" (RST after the first bytes).
 */
function request(client, { path: p = "/", headers = {}, body, abort, timeoutMs = 30000 }) {
  return new Promise((resolve) => {
    const start = performance.now();
    let status = 0;
    let version = "";
    let bg = "";
    const chunks = [];
    let settled = false;
    const done = (extra) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({
        status,
        version,
        bg,
        body: Buffer.concat(chunks).toString("utf8"),
        ms: performance.now() - start,
        ...extra,
      });
    };
    let stream;
    try {
      stream = client
        .session()
        .request(
          { ":method": body !== undefined || abort === "request" ? "POST" : "GET", ":path": p, ...headers },
          { endStream: body === undefined && abort !== "request" },
        );
    } catch (e) {
      return resolve({ status: 0, version: "", body: "", ms: 0, error: `request: ${e.code ?? e.message}` });
    }
    const timer = setTimeout(() => {
      stream.close(http2.constants.NGHTTP2_CANCEL);
      done({ error: "timeout" });
    }, timeoutMs);
    stream.on("response", (h) => {
      status = h[":status"];
      version = h["x-filter-version"] ?? "";
      bg = h["x-bg"] ?? "";
    });
    stream.on("data", (c) => {
      if (abort === "response") {
        stream.close(http2.constants.NGHTTP2_CANCEL);
        return done({ aborted: true });
      }
      chunks.push(c);
    });
    stream.on("end", () => done({}));
    stream.on("close", () => done({ error: status ? undefined : `closed: rst ${stream.rstCode}` }));
    stream.on("error", (e) => done({ error: e.code ?? e.message }));
    if (abort === "request") {
      stream.write(Buffer.alloc(1024, 0x62));
      setTimeout(() => {
        stream.close(http2.constants.NGHTTP2_CANCEL);
        done({ aborted: true });
      }, 5);
    } else if (body !== undefined) {
      stream.end(body);
    }
  });
}

// ---- the load ---------------------------------------------------------------------------------

// The mix of one request: [kind, share]. Everything not listed is healthy.
const MIX = [
  ["heap", 0.01],
  ["loop", 0.01],
  ["abort-request", 0.02],
  ["abort-response", 0.02],
  ["upstream-reset", 0.02],
  ["upstream-slow", 0.02],
];

function pickKind() {
  let r = Math.random();
  for (const [kind, share] of MIX) {
    if (r < share) return kind;
    r -= share;
  }
  return "healthy";
}

// What a kind sends, and whether an outcome is the one expected for it.
function plan(kind) {
  const hold = String(Math.floor(Math.random() * 5));
  switch (kind) {
    case "heap":
      return { req: { headers: { "x-chaos": "heap" } }, ok: (r) => r.status === 500 };
    case "loop":
      return { req: { headers: { "x-chaos": "loop" } }, ok: (r) => r.status === 500 };
    case "abort-request":
      return { req: { abort: "request" }, ok: (r) => r.aborted || r.status === 200 };
    case "abort-response":
      return {
        req: { headers: { "x-upstream": "stream" }, abort: "response" },
        ok: (r) => r.aborted || r.status === 200,
      };
    case "upstream-reset":
      return { req: { headers: { "x-upstream": "reset" } }, ok: (r) => r.status === 503 };
    case "upstream-slow":
      return {
        req: { headers: { "x-upstream": "slow", "x-hold-ms": hold } },
        ok: (r) => r.status === 200 && r.body === "ok",
      };
    default:
      return { req: { headers: { "x-hold-ms": hold } }, ok: (r) => r.status === 200 && r.body === "ok" };
  }
}

// ---- hostile input ----------------------------------------------------------------------------

// A raw HTTP/1.1 exchange: the bytes Envoy sent back (up to close or `ms`).
function rawH1(port, text, ms = 5000) {
  return new Promise((resolve) => {
    const sock = net.connect(port, "127.0.0.1");
    const chunks = [];
    const finish = () => {
      clearTimeout(timer);
      sock.destroy();
      resolve(Buffer.concat(chunks).toString("latin1"));
    };
    const timer = setTimeout(finish, ms);
    sock.on("data", (d) => {
      chunks.push(d);
      // One complete response is enough.
      const s = Buffer.concat(chunks).toString("latin1");
      const head = s.indexOf("\r\n\r\n");
      const cl = /\r\ncontent-length: (\d+)/i.exec(s);
      if (head >= 0 && cl && s.length >= head + 4 + Number(cl[1])) finish();
    });
    sock.on("error", finish);
    sock.on("close", finish);
    sock.write(text);
  });
}

async function hostileInputs(client, port) {
  const results = [];
  const check = async (name, fn) => {
    let handled = false;
    let detail = "";
    try {
      [handled, detail] = await fn();
    } catch (e) {
      detail = `threw: ${e.message}`;
    }
    const alive = await request(client, { headers: { "x-hold-ms": "0" } });
    const servedOn = alive.status === 200 && alive.body === "ok";
    results.push({ name, handled: handled && servedOn, detail: servedOn ? detail : `${detail}; not serving after it` });
  };

  await check("oversized headers (96 KiB value; Envoy's limit is 60 KiB): 431", async () => {
    const raw = await rawH1(port, `GET / HTTP/1.1\r\nhost: x\r\nx-big: ${"a".repeat(96 * 1024)}\r\n\r\n`);
    return [/^HTTP\/1\.1 431 /.test(raw), raw.split("\r\n")[0]];
  });
  await check("invalid UTF-8 given to text(): decoded with U+FFFD", async () => {
    const body = Buffer.from([0x61, 0xff, 0xfe, 0xc3, 0x28, 0x62]);
    const r = await request(client, { headers: { "x-chaos": "text" }, body });
    return [r.status === 200 && JSON.parse(r.body).replaced === true, `${r.status} ${r.body}`];
  });
  await check("invalid UTF-8 given to json(): parsed with U+FFFD or refused with a SyntaxError", async () => {
    const body = Buffer.concat([Buffer.from('{"a":"'), Buffer.from([0xff, 0xc3, 0x28]), Buffer.from('"}')]);
    const r = await request(client, { headers: { "x-chaos": "json" }, body });
    const good = (r.status === 200 && JSON.parse(r.body).replaced) || (r.status === 400 && /^SyntaxError/.test(r.body));
    return [good, `${r.status} ${r.body}`];
  });
  await check("JSON nested 100,000 deep given to json(): a catchable error, 400", async () => {
    const body = "[".repeat(100000) + "]".repeat(100000);
    const r = await request(client, { headers: { "x-chaos": "deep-json" }, body });
    return [r.status === 400 && /Error/.test(r.body), `${r.status} ${r.body}`];
  });
  await check("header values with CR, LF or NUL set from JS: each refused with a TypeError", async () => {
    const r = await request(client, { headers: { "x-chaos": "header-injection" } });
    return [r.status === 200 && r.body === "TypeError,TypeError,TypeError,TypeError", `${r.status} ${r.body}`];
  });
  await check(
    "a filter setting content-length (wrong: 5 for 2 bytes) and transfer-encoding: both refused with a TypeError; no response leaves Envoy with both, or with a length its body does not have",
    async () => {
      const raw = await rawH1(port, "GET / HTTP/1.1\r\nhost: x\r\nx-smuggle: 1\r\nconnection: close\r\n\r\n");
      const [headRaw, ...rest] = raw.split("\r\n\r\n");
      const head = headRaw.toLowerCase();
      const body = rest.join("\r\n\r\n");
      const both = /\r\ncontent-length:/.test(head) && /\r\ntransfer-encoding:/.test(head);
      const cl = /\r\ncontent-length: (\d+)/.exec(head);
      const lengthLies = cl !== null && Number(cl[1]) !== body.length;
      const result = /x-smuggle-result: ([^\r\n]*)/.exec(head)?.[1] ?? "-";
      const refused = result === "content-length=typeerror,transfer-encoding=typeerror";
      const ok = /^http\/1\.1 \d\d\d /.test(head) && !both && !lengthLies && refused;
      const framing = head
        .split("\r\n")
        .filter((l) => /^(content-length|transfer-encoding):/.test(l))
        .join(", ");
      return [
        ok,
        `${head.split("\r\n")[0]}; filter: ${result}; Envoy sent: ${framing || "neither"}, then ${body.length} body bytes`,
      ];
    },
  );
  await check("a 100 MB body against a whole-body read: 413", async () => {
    const r = await bigBody(port);
    return [
      r.status === 413,
      `${r.status} after ${Math.round(r.sentBytes / 1048576)} MiB sent${r.error ? `, ${r.error}` : ""}`,
    ];
  });
  await check("an h2 flood of 5000 reset streams on one connection: Envoy stays up", async () => {
    const r = await resetFlood(port, 5000);
    return [
      true,
      `${r.opened} streams opened and reset${r.stopped ? ` (then: ${r.stopped})` : ""}, GOAWAY ${r.goaway ? `received (${r.goaway})` : "not received"}`,
    ];
  });
  return results;
}

// 100 MB, sent in 1 MiB chunks under h2 flow control; stops once Envoy answers.
function bigBody(port) {
  return new Promise((resolve) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on("error", () => {});
    const stream = session.request({ ":method": "POST", ":path": "/", "x-chaos": "whole-body" });
    let status = 0;
    let sentBytes = 0;
    let finished = false;
    const finish = (error) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      session.destroy();
      resolve({ status, sentBytes, error });
    };
    const timer = setTimeout(() => finish("timeout"), 60000);
    stream.on("response", (h) => {
      status = h[":status"];
    });
    stream.on("data", () => {});
    stream.on("end", () => finish());
    stream.on("close", () => finish());
    stream.on("error", (e) => finish(status ? undefined : e.code));
    const chunk = Buffer.alloc(1 << 20, 0x7a);
    const pump = () => {
      while (!finished && status === 0 && sentBytes < 100 * 1024 * 1024) {
        sentBytes += chunk.length;
        const more = stream.write(chunk);
        if (sentBytes >= 100 * 1024 * 1024) return stream.end();
        if (!more) return stream.once("drain", pump);
      }
    };
    pump();
  });
}

function resetFlood(port, n) {
  return new Promise((resolve) => {
    const session = http2.connect(`http://127.0.0.1:${port}`, { maxSessionMemory: 256 });
    let goaway = "";
    let opened = 0;
    let stopped = "";
    session.on("error", (e) => {
      stopped ||= `session error ${e.code ?? e.message}`;
    });
    session.on("goaway", (code) => {
      goaway = `code ${code}`;
    });
    session.on("connect", async () => {
      for (let i = 0; i < n && !session.destroyed && !session.closed; i++) {
        try {
          const s = session.request({ ":method": "GET", ":path": "/", "x-hold-ms": "50" });
          s.on("error", () => {});
          opened++;
          s.close(http2.constants.NGHTTP2_CANCEL);
        } catch (e) {
          stopped = e.code ?? e.message;
          break;
        }
        if (i % 100 === 99) await sleep(1);
      }
      if (!stopped && (session.destroyed || session.closed)) stopped = "session closed";
      await sleep(200);
      session.destroy();
      resolve({ opened, goaway, stopped });
    });
  });
}

// ---- the run ----------------------------------------------------------------------------------

async function main() {
  const opt = parseArgs(process.argv.slice(2));
  const envoyBin = findEnvoy();
  if (!envoyBin) throw new Error("no Envoy: run `make envoy`");
  const work = mkdtempSync(path.join(os.tmpdir(), "envoy-js-chaos-"));
  const ecdsDir = path.join(work, "ecds");
  mkdirSync(ecdsDir);
  const upstream = await startUpstream();
  let version = 1;
  const filterFile = (v) => {
    const f = path.join(work, `filter-v${v}.js`);
    writeFileSync(f, filterSource(v));
    return f;
  };
  writeEcds(ecdsDir, version, filterFile(version));
  const envoy = await startEnvoy({
    envoy: envoyBin,
    config: envoyConfig(ecdsDir, upstream.port),
    concurrency: opt.workers,
    logLevel: "warn",
    componentLogLevel: "dynamic_modules:trace",
    maxLogChars: 4 << 20,
    args: ["--drain-time-s", "1"],
  });
  const pid = envoy.child.pid;
  // The module's line for each config whose background engine was destroyed, counted from the
  // output itself (envoy.log keeps only its last maxLogChars).
  let bgStopped = 0;
  let configsAlive = -1; // the module's last "envoy_js: filter configs alive: N" (debug level)
  {
    let carry = "";
    const onData = (d) => {
      const lines = (carry + d.toString("utf8")).split("\n");
      carry = lines.pop();
      for (const l of lines) {
        if (l.includes("background: stopped: the filter config is gone")) bgStopped++;
        const m = /envoy_js: filter configs alive: (\d+)/.exec(l);
        if (m) configsAlive = Number(m[1]);
      }
    };
    envoy.child.stdout?.on("data", onData);
    envoy.child.stderr?.on("data", onData);
  }
  // Interrupted: Envoy goes too.
  for (const sig of ["SIGINT", "SIGTERM"]) {
    process.once(sig, () => {
      envoy.child.kill("SIGKILL");
      process.exit(130);
    });
  }
  const port = await envoy.listenerPort("chaos");
  const client = new Client(port, 16);
  const log = (...a) => console.log(`[chaos ${new Date().toISOString().slice(11, 19)}]`, ...a);
  log(
    `Envoy ${envoyBin.version} pid ${pid} on port ${port}; ${opt.requests} requests, ${opt.holdStreams} held streams`,
  );

  // Engines alive, from the module's trace lines.
  // Worker engines alive in the process: the module's own gauge, set at each stream's start
  // (docs/configuration.md); -1 before any stream set it.
  const enginesAlive = async () =>
    (await envoy.stats("^dynamicmodulescustom\\.envoy_js\\.engines$")).get("dynamicmodulescustom.envoy_js.engines") ??
    -1;
  // How long the old engines of one reload take to go: from the reload until the module has
  // freed an engine of a dropped config and counts one engine per worker again.
  const drains = [];
  const watchDrain = async (from) => {
    const t0 = performance.now();
    while (performance.now() - t0 < 30000 && !stopReloads) {
      await sleep(50);
      const freed = envoy.log.lastIndexOf("engine of a dropped config freed") > from - envoy.logDropped;
      if (freed && (await enginesAlive()) === opt.workers) return drains.push(Math.round(performance.now() - t0));
    }
  };
  const ecdsStats = async () => {
    const s = await envoy.stats("^extension_config_discovery\\.");
    let reload = 0;
    let fail = 0;
    for (const [k, v] of s) {
      if (k.endsWith(".config_reload")) reload += v;
      if (k.endsWith(".config_fail")) fail += v;
    }
    return { reload, fail };
  };

  const counts = { sent: 0, ok: 0, failed_expected: 0, failed_unexplained: 0 };
  const byCause = {};
  const unexplained = [];
  const healthyMs = [];
  const versionsSeen = new Map();
  const bgSeen = new Set(); // the distinct background refreshes ("<version>:<n>") responses carried
  let bgNone = 0; // responses before any background refresh had landed
  const count = (bucket, cause) => {
    counts[bucket]++;
    byCause[cause] = (byCause[cause] ?? 0) + 1;
  };
  const reloads = {
    applied: 0,
    rejected: 0,
    brokenVersion: 0,
    servedDuringBroken: "",
    old_engines_left: -1,
    drain_ms: -1,
  };

  // 1. Held streams: many concurrent h2 streams, each suspended in the async onRequest.
  {
    const started = performance.now();
    const holds = [];
    for (let i = 0; i < opt.holdStreams; i++) {
      const ms = String(1500 + Math.floor(Math.random() * 1000));
      holds.push(request(client, { headers: { "x-hold-ms": ms }, timeoutMs: 60000 }));
      if (i % 500 === 499) await sleep(5);
    }
    const rs = await Promise.all(holds);
    for (const r of rs) {
      counts.sent++;
      if (r.status === 200 && r.body === "ok") count("ok", "held-stream ok");
      else {
        count("failed_unexplained", "held-stream");
        unexplained.push({ kind: "held", status: r.status, error: r.error });
      }
    }
    log(`held streams: ${rs.length} (${Math.round(performance.now() - started)} ms)`);
  }

  // 2. The load, with reloads every few seconds (one of them broken) and RSS samples.
  const rss = [];
  let done = 0;
  let stopReloads = false;
  // The broken version is the third reload; the load goes on until one good reload after it
  // has been tried too, however fast the machine serves the requests (a fast CI machine once
  // finished the short run's 6000 requests before the broken reload).
  const brokenAt = 3;
  const reloadsWanted = opt.reloadEveryMs > 0 ? brokenAt + 1 : 0;
  let reloadsTried = 0;
  const reloadLoop = (async () => {
    let n = 0;
    while (!stopReloads && opt.reloadEveryMs > 0) {
      await sleep(opt.reloadEveryMs);
      if (stopReloads) break;
      n++;
      const before = await ecdsStats();
      const next = version + 1;
      const broken = n === brokenAt;
      const file = path.join(work, `filter-v${next}.js`);
      writeFileSync(file, broken ? brokenFilterSource(next) : filterSource(next));
      writeEcds(ecdsDir, next, file);
      const deadline = Date.now() + 10000;
      let after = before;
      while (Date.now() < deadline) {
        await sleep(50);
        after = await ecdsStats();
        if (after.reload + after.fail > before.reload + before.fail) break;
      }
      if (after.fail > before.fail) {
        reloads.rejected++;
        reloads.brokenVersion = next;
        // The old version must keep serving.
        const r = await request(client, { headers: { "x-hold-ms": "0" } });
        reloads.servedDuringBroken = r.status === 200 ? r.version : `status ${r.status}`;
        log(`reload to v${next} (broken) rejected; still serving v${reloads.servedDuringBroken}`);
        version = next; // the next good version numbers on
      } else if (after.reload > before.reload) {
        reloads.applied++;
        version = next;
        watchDrain(envoy.logOffset());
        log(`reload to v${next} applied; engines alive ${await enginesAlive()}`);
      } else {
        log(`reload to v${next}: Envoy did not react within 10 s`);
      }
      reloadsTried = n;
    }
  })();

  const warmup = Math.floor(opt.requests * 0.2);
  const loadStarted = performance.now();
  let nextRss = 0;
  const worker = async () => {
    while (counts.sent - opt.holdStreams < opt.requests || reloadsTried < reloadsWanted) {
      counts.sent++;
      const kind = pickKind();
      const p = plan(kind);
      const r = await request(client, p.req);
      done++;
      if (p.ok(r)) {
        // An abort that came too late to stop the response is an ok request.
        if (kind === "healthy" || kind === "upstream-slow" || (kind.startsWith("abort") && !r.aborted))
          count("ok", kind);
        else count("failed_expected", kind);
        if (kind === "healthy") healthyMs.push(r.ms);
        if (r.version) versionsSeen.set(r.version, (versionsSeen.get(r.version) ?? 0) + 1);
        if (/^\d+:\d+$/.test(r.bg)) bgSeen.add(r.bg);
        else if (r.bg === "none") bgNone++;
      } else {
        count("failed_unexplained", kind);
        if (unexplained.length < 50)
          unexplained.push({ kind, status: r.status, error: r.error, body: r.body.slice(0, 200) });
      }
      if (done >= nextRss) {
        nextRss += Math.max(1000, Math.floor(opt.requests / 200));
        rss.push([done, rssBytes(pid)]);
        if (done % Math.max(10000, Math.floor(opt.requests / 20)) < 1000)
          log(`${done} requests, RSS ${Math.round(rssBytes(pid) / 1048576)} MiB`);
      }
    }
  };
  await Promise.all(Array.from({ length: opt.concurrency }, worker));
  const loadMs = performance.now() - loadStarted;
  stopReloads = true;
  await reloadLoop;
  log(`load done: ${done} requests in ${Math.round(loadMs / 1000)} s`);

  // 3. Old engines drain: a trickle of requests (engines of dropped configs are freed at the
  // next stream of their worker) until only one engine per worker is left.
  {
    const t0 = performance.now();
    while (performance.now() - t0 < 20000) {
      await Promise.all(Array.from({ length: 8 }, () => request(client, { headers: { "x-hold-ms": "0" } })));
      const alive = await enginesAlive();
      if (alive <= opt.workers && alive >= 0) break;
      await sleep(100);
    }
    const alive = await enginesAlive();
    reloads.old_engines_left = Math.max(0, alive - opt.workers);
    reloads.drain_ms = Math.round(performance.now() - t0);
    log(`engines alive ${alive} (${opt.workers} workers); drained in ${reloads.drain_ms} ms after the load`);
  }
  // The old configs are gone with their backgrounds (one "stopped" line each) and freed, program
  // and all, although Envoy destroyed them with callouts in flight: from here on only the last
  // version's background may call the upstream.
  {
    const t0 = performance.now();
    while (performance.now() - t0 < 20000 && (bgStopped < reloads.applied || configsAlive > 1)) {
      await request(client, { headers: { "x-hold-ms": "0" } });
      await sleep(100);
    }
  }
  const configsAliveAfterDrain = configsAlive;
  const bgHitsAfterDrain = new Map(upstream.bgHits);

  // 4. Hostile input, each with its asserted outcome; the proxy must serve after each.
  const hostile = await hostileInputs(client, port);
  for (const h of hostile) log(`hostile: ${h.handled ? "handled" : "NOT HANDLED"}: ${h.name}: ${h.detail}`);

  // 5. Envoy still alive? Its figures, then stop it.
  const crashed = envoy.exited ? 1 : 0;
  const final = await request(client, { headers: { "x-hold-ms": "0" } });
  // The backgrounds: what requests saw, and which versions went on calling the upstream after
  // the drain (the hostile inputs took several seconds: the last version's ~20 refreshes a second).
  const current = String(version);
  {
    // A window long enough to tell: the last version refreshes 20 more times (about 1 s).
    const from = bgHitsAfterDrain.get(current) ?? 0;
    const t0 = performance.now();
    while (performance.now() - t0 < 10000 && !envoy.exited && (upstream.bgHits.get(current) ?? 0) < from + 20)
      await sleep(50);
  }
  const bgHitsAtEnd = new Map(upstream.bgHits);
  const stoppedLines = bgStopped; // before Envoy stops (which destroys the last config too)
  const oldVersionsStillFetching = [...bgHitsAtEnd]
    .filter(([v, n]) => v !== current && n !== (bgHitsAfterDrain.get(v) ?? 0))
    .map(([v]) => v);
  const background = {
    refreshes_seen_by_requests: bgSeen.size,
    versions_seen_by_requests: new Set([...bgSeen].map((x) => x.split(":")[0])).size,
    responses_before_first_refresh: bgNone,
    upstream_refreshes_by_version: Object.fromEntries(bgHitsAtEnd),
    stopped_lines: stoppedLines,
    filter_configs_alive_after_drain: configsAliveAfterDrain,
    old_versions_fetching_after_drain: oldVersionsStillFetching,
    last_version_refreshes_after_drain: (bgHitsAtEnd.get(current) ?? 0) - (bgHitsAfterDrain.get(current) ?? 0),
  };
  log(
    `background: ${background.refreshes_seen_by_requests} refreshes seen by requests; ${stoppedLines} configs stopped for ${reloads.applied} reloads; old versions fetching after the drain: [${oldVersionsStillFetching}]`,
  );
  const counters = crashed ? new Map() : await envoy.stats("^dynamicmodulescustom\\.envoy_js\\.");
  client.close();
  const status = await envoy.stop();
  await upstream.close();
  const crashedOnStop = status !== 0 && status !== "SIGTERM" && status !== null ? 1 : 0;

  const afterWarmup = rss.filter(([n]) => n >= warmup);
  const growthPer10k = Math.round(slope(afterWarmup) * 10000);
  healthyMs.sort((a, b) => a - b);
  const results = {
    requests: counts,
    envoy_crashes: crashed + crashedOnStop,
    rss_growth_bytes_per_10k_requests: growthPer10k,
    reloads: { applied: reloads.applied, rejected: reloads.rejected, old_engines_left: reloads.old_engines_left },
    p99_ms_healthy: Math.round(percentile(healthyMs, 99) * 10) / 10,
    hostile_inputs: { tried: hostile.length, handled: hostile.filter((h) => h.handled).length },
    background: {
      refreshes_seen_by_requests: background.refreshes_seen_by_requests,
      configs_stopped: stoppedLines,
      filter_configs_alive_after_drain: configsAliveAfterDrain,
      old_versions_fetching_after_drain: oldVersionsStillFetching.length,
    },
  };
  const details = {
    envoy: envoyBin.version,
    workers: opt.workers,
    concurrency: opt.concurrency,
    held_streams: opt.holdStreams,
    load_seconds: Math.round(loadMs / 1000),
    by_cause: byCause,
    unexplained,
    p50_ms_healthy: Math.round(percentile(healthyMs, 50) * 10) / 10,
    rss_mib_start: Math.round((afterWarmup[0]?.[1] ?? 0) / 1048576),
    rss_mib_end: Math.round((afterWarmup[afterWarmup.length - 1]?.[1] ?? 0) / 1048576),
    rss_samples: afterWarmup.length,
    // RSS grows in steps (allocator arenas reaching a new high-water mark), so the slope over the
    // second half of the load tells a one-off step from a steady leak.
    rss_growth_second_half_bytes_per_10k_requests: Math.round(
      slope(rss.filter(([n]) => n >= opt.requests / 2)) * 10000,
    ),
    rss_kib_by_requests: rss.map(([n, b]) => [n, Math.round(b / 1024)]),
    drain_ms: reloads.drain_ms,
    reload_drain_ms: {
      measured: drains.length,
      median: [...drains].sort((a, b) => a - b)[Math.floor(drains.length / 2)] ?? -1,
      max: drains.length ? Math.max(...drains) : -1,
    },
    broken_version: reloads.brokenVersion,
    served_during_broken: reloads.servedDuringBroken,
    versions_seen: Object.fromEntries(versionsSeen),
    counters: Object.fromEntries(counters),
    final_request: final.status,
    hostile,
    background: { ...background, stopped_lines_after_shutdown: bgStopped },
    load_average: os.loadavg().map((x) => Math.round(x * 100) / 100),
    note: opt.note,
  };
  mkdirSync(opt.out, { recursive: true });
  writeFileSync(path.join(opt.out, "envoy-results.json"), `${JSON.stringify(results, null, 2)}\n`);
  writeFileSync(path.join(opt.out, "envoy-details.json"), `${JSON.stringify(details, null, 2)}\n`);
  writeFileSync(path.join(opt.out, "ENVOY-RESULTS.md"), report(opt, results, details));
  rmSync(work, { recursive: true, force: true });

  // The assertions of the run.
  const problems = [];
  if (counts.failed_unexplained !== 0) problems.push(`${counts.failed_unexplained} unexplained failures`);
  if (results.envoy_crashes !== 0) problems.push("Envoy crashed");
  for (const h of hostile) if (!h.handled) problems.push(`hostile input not handled: ${h.name} (${h.detail})`);
  if (reloads.rejected < 1) problems.push("the broken filter version was not rejected");
  if (!/^\d+$/.test(reloads.servedDuringBroken))
    problems.push(`old filter not serving during the broken reload: ${reloads.servedDuringBroken}`);
  if (reloads.applied < 1) problems.push("no reload was applied");
  if (final.status !== 200) problems.push(`Envoy not serving at the end (${final.status})`);
  // Background work: its refreshes reached the requests, every applied reload destroyed the old
  // config's background (one "stopped" line each), none of them called the upstream after it,
  // and the last version's went on.
  if (background.versions_seen_by_requests < Math.min(2, reloads.applied + 1))
    problems.push(`requests saw the background refreshes of ${background.versions_seen_by_requests} versions`);
  if (stoppedLines !== reloads.applied)
    problems.push(`${stoppedLines} background engines stopped for ${reloads.applied} applied reloads`);
  if (reloads.applied > 0 && configsAliveAfterDrain !== 1)
    problems.push(`${configsAliveAfterDrain} filter configs alive after the drain (1 in use)`);
  if (oldVersionsStillFetching.length)
    problems.push(`old configs' backgrounds still fetching: v${oldVersionsStillFetching.join(", v")}`);
  if (!crashed && background.last_version_refreshes_after_drain === 0)
    problems.push("the last version's background stopped refreshing");
  // A heap hog on a busy machine may run out of CPU time before it runs out of heap: the two
  // limits together, and the errors, must equal the deliberate failures.
  const c = (k) => counters.get(`dynamicmodulescustom.envoy_js.${k}`) ?? 0;
  const deliberate = (byCause.heap ?? 0) + (byCause.loop ?? 0);
  if (
    c("heap_limit") + c("cpu_limit") !== deliberate ||
    c("errors") !== deliberate ||
    c("cpu_limit") < (byCause.loop ?? 0)
  )
    problems.push(
      `engine counters errors ${c("errors")}, heap_limit ${c("heap_limit")}, cpu_limit ${c("cpu_limit")} do not match the ${byCause.heap} heap and ${byCause.loop} loop requests`,
    );
  console.log(JSON.stringify(results));
  if (problems.length) {
    console.error(`chaos-envoy FAILED:\n  ${problems.join("\n  ")}`);
    if (unexplained.length) console.error(JSON.stringify(unexplained.slice(0, 10), null, 1));
    if (crashed || crashedOnStop) console.error(envoy.logTail(60));
    process.exitCode = 1;
  } else {
    console.log("chaos-envoy passed");
  }
}

// The hand-written reading of the last long run (chaos/ANALYSIS.md), copied in verbatim.
function analysis() {
  const file = path.join(HERE, "ANALYSIS.md");
  return existsSync(file) ? `\n${readFileSync(file, "utf8").trim()}\n` : "";
}

function report(opt, r, d) {
  const causes = Object.entries(d.by_cause)
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `| ${k} | ${v} |`)
    .join("\n");
  const hostile = d.hostile
    .map((h) => `| ${h.name} | ${h.handled ? "yes" : "**no**"} | ${h.detail.replace(/\|/g, "/")} |`)
    .join("\n");
  return `# Reliability inside a real Envoy (\`make chaos-envoy\`)

Written by \`test/reliability/chaos/chaos.mjs\` (${opt.short ? "short version" : "long version"}); the
figures are in \`envoy-results.json\`, the details in \`envoy-details.json\`.
${d.note ? `\n**Note:** ${d.note}\n` : ""}
Envoy ${d.envoy}, ${d.workers} workers, libenvoy_js.so from this checkout; the client is
\`node:http2\` with ${d.concurrency} requests in flight over 16 h2 connections; load average at the
end ${d.load_average.join(" / ")} (2 shared cores).

## Figures

| | |
|---|---|
| requests sent | ${r.requests.sent} |
| ok | ${r.requests.ok} |
| failed, expected (caused by the run) | ${r.requests.failed_expected} |
| failed, unexplained | ${r.requests.failed_unexplained} |
| Envoy crashes | ${r.envoy_crashes} |
| Envoy RSS growth per 10k requests after warm-up | ${r.rss_growth_bytes_per_10k_requests} bytes (${d.rss_mib_start} MiB -> ${d.rss_mib_end} MiB over ${d.rss_samples} samples) |
| the same over the second half of the load | ${d.rss_growth_second_half_bytes_per_10k_requests} bytes |
| reloads applied / rejected | ${r.reloads.applied} / ${r.reloads.rejected} (v${d.broken_version} broken; v${d.served_during_broken} served meanwhile) |
| old engines left after the load | ${r.reloads.old_engines_left} (drained ${d.drain_ms} ms after the load ended) |
| drain of one reload's old engines (from the reload to one engine per worker) | median ${d.reload_drain_ms.median} ms, max ${d.reload_drain_ms.max} ms, over ${d.reload_drain_ms.measured} of ${r.reloads.applied} reloads |
| p99 / p50 of healthy requests | ${r.p99_ms_healthy} ms / ${d.p50_ms_healthy} ms |
| held streams (suspended in an async onRequest at once) | ${d.held_streams} |
| hostile inputs handled | ${r.hostile_inputs.handled} of ${r.hostile_inputs.tried} |
| background refreshes (\`bg.fetch\` every 50 ms, published through \`bg.shared\`) seen by requests | ${d.background.refreshes_seen_by_requests} of ${Object.values(d.background.upstream_refreshes_by_version).reduce((a, b) => a + b, 0)} sent, from ${d.background.versions_seen_by_requests} versions |
| background engines stopped (old configs destroyed) | ${d.background.stopped_lines} for ${r.reloads.applied} applied reloads; filter configs alive after the drain: ${d.background.filter_configs_alive_after_drain} (1 in use); old versions still fetching after the drain: ${d.background.old_versions_fetching_after_drain.length ? d.background.old_versions_fetching_after_drain.map((v) => `v${v}`).join(", ") : "none"} |

## Requests by cause

| cause | requests |
|---|---|
${causes}

Expected failures: \`heap\` (the filter allocates until \`max_heap_bytes\`: 500), \`loop\` (a
runaway loop, stopped by \`max_cpu_ms_per_event\`: 500), \`abort-request\` / \`abort-response\`
(the client resets the stream mid-body), \`upstream-reset\` (the upstream resets: Envoy's 503).
\`upstream-slow\` and \`healthy\` must be 200 "ok".

## Hostile input

| input | handled | outcome |
|---|---|---|
${hostile}
${analysis()}
## Filter versions that answered

${Object.entries(d.versions_seen)
  .map(([v, n]) => `v${v}: ${n}`)
  .join(", ")}
`;
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
