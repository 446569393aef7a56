#!/usr/bin/env node
// `make demo`, in two parts:
//  1. The sample TypeScript filter (samples/hello) inside a real Envoy: `envoy-js run` builds it
//     and starts Envoy with the dynamic module, a Node server plays the upstream, and the
//     scenario's requests are sent over real HTTP; for each one, what was sent, what reached the
//     upstream and what came back.
//  2. The same scenario replayed on the wasm engine (`envoy-js replay`): the same runtime and
//     QuickJS, with a scripted model of Envoy, as filter tests run it.
// Needs `make envoy` (Envoy) and `make module` (libenvoy_js.so) for part 1; without an Envoy,
// part 1 says how to get one, part 2 still runs and the demo exits 1.
import { execFileSync, spawn } from "node:child_process";
import { mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import http from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { HOW_TO_GET_ENVOY, envoySearchReport, findEnvoy } from "../sdk/cli/envoy.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const cli = path.join(root, "sdk", "cli", "envoy-js.mjs");
const entry = process.argv[2] ?? "samples/hello/filter.ts";
const scenarioPath = process.argv[3] ?? "samples/hello/scenario.json";
const out = path.join("build", "demo", "filter.js");
const scenario = JSON.parse(readFileSync(path.join(root, scenarioPath), "utf8"));

const asList = (h) => Object.entries(h ?? {}).flatMap(([k, v]) => (Array.isArray(v) ? v.map((x) => [k, x]) : [[k, v]]));
function headerDiff(before, after) {
  const b = new Map(asList(before).map(([k, v]) => [k.toLowerCase(), v]));
  const a = new Map(asList(after));
  const changes = [];
  for (const [k, v] of a) if (b.get(k) !== v) changes.push(`+${k}: ${v}`);
  for (const k of b.keys()) if (!a.has(k)) changes.push(`-${k}`);
  return changes.length ? changes.join("  ") : "(headers unchanged)";
}
const bodyOf = (b) => (Array.isArray(b) ? b.join("") : (b ?? ""));
const short = (s) => (s.length > 70 ? s.slice(0, 67) + "..." : s);

// ---------------------------------------------------------------------------------------------
// Part 1: a real Envoy.

/** Headers Envoy adds or rewrites on every request or response: left out of the diffs. */
const ENVOY_REQUEST_HEADERS = new Set([
  "host",
  "x-forwarded-proto",
  "x-request-id",
  "x-envoy-expected-rq-timeout-ms",
  "content-length",
  "transfer-encoding",
  "connection",
]);
const ENVOY_RESPONSE_HEADERS = new Set([
  "date",
  "x-envoy-upstream-service-time",
  "x-request-id",
  "content-length",
  "transfer-encoding",
  "connection",
  "keep-alive",
]);
const without = (h, skip) => Object.fromEntries(Object.entries(h).filter(([k]) => !k.startsWith(":") && !skip.has(k)));

/** The upstream: answers request `current` with that stream's `upstream` from the scenario. */
async function startScenarioUpstream() {
  const received = new Map();
  let current = 0;
  const server = http.createServer((req, res) => {
    const i = current;
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      received.set(i, { headers: req.headers, body: Buffer.concat(chunks).toString("utf8") });
      const up = scenario.streams[i].upstream ?? { headers: { ":status": "200" } };
      res.writeHead(Number(up.headers?.[":status"] ?? 200), without(up.headers ?? {}, new Set()));
      res.end(bodyOf(up.body));
    });
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: server.address().port,
    received,
    setCurrent: (i) => (current = i),
    close: () => new Promise((r) => server.close(r)),
  };
}

/** One request of the scenario over HTTP/1.1; the body goes in its chunks (chunked encoding). */
function send(port, request) {
  const headers = {};
  for (const [k, v] of Object.entries(request.headers)) {
    if (k === ":authority") headers.host = v;
    else if (!k.startsWith(":") && k !== "content-length") headers[k] = v;
  }
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: "127.0.0.1",
        port,
        method: request.headers[":method"],
        path: request.headers[":path"],
        headers,
        agent: false,
      },
      (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () =>
          resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }),
        );
      },
    );
    req.setTimeout(10000, () => req.destroy(new Error("no answer within 10 s")));
    req.on("error", reject);
    for (const c of Array.isArray(request.body) ? request.body : request.body ? [request.body] : []) req.write(c);
    req.end();
  });
}

/** Starts `envoy-js run` and resolves with its URL; its output is collected. */
function startRun(args) {
  const child = spawn(process.execPath, [cli, ...args], { cwd: root, stdio: ["ignore", "pipe", "pipe"] });
  const run = {
    child,
    stdout: "",
    stderr: "",
    exited: new Promise((r) => child.on("exit", (code, signal) => r(signal ?? code))),
  };
  child.stdout.on("data", (d) => {
    run.stdout += d;
    // envoy-js's own lines (Envoy, loaded, listening) are shown as they come.
    process.stdout.write(String(d).replace(/^(?=.)/gm, "  "));
  });
  child.stderr.on("data", (d) => (run.stderr += d));
  run.ready = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("envoy-js run was not ready within 60 s")), 60000);
    const check = () => {
      const m = /listening on (http:\/\/\S+)/.exec(run.stdout);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    };
    child.stdout.on("data", check);
    run.exited.then((status) => {
      clearTimeout(timer);
      reject(new Error(`envoy-js run exited (${status}) before it was ready`));
    });
  });
  return run;
}

async function realEnvoy() {
  console.log(`== 1. ${entry} inside a real Envoy (envoy-js run), answering real HTTP requests\n`);
  if (!findEnvoy()) {
    console.log(
      `${HOW_TO_GET_ENVOY}\nLooked at:\n${envoySearchReport()
        .map((l) => `  - ${l}`)
        .join("\n")}\n`,
    );
    return false;
  }
  mkdirSync(path.join(root, "build", "demo"), { recursive: true });
  const configFile = path.join("build", "demo", "config.json");
  const settingsFile = path.join("build", "demo", "settings.json");
  writeFileSync(path.join(root, configFile), JSON.stringify(scenario.config ?? {}, null, 2));
  writeFileSync(path.join(root, settingsFile), JSON.stringify(scenario.settings ?? {}, null, 2));
  const upstream = await startScenarioUpstream();
  const args = [
    "run",
    entry,
    "--upstream",
    `http://127.0.0.1:${upstream.port}`,
    "--port",
    "0",
    "--config",
    configFile,
    "--settings",
    settingsFile,
  ];
  console.log(`$ envoy-js ${args.join(" ")}`);
  const run = startRun(args);
  try {
    const url = await run.ready;
    const port = Number(new URL(url).port);
    console.log(
      `\n${scenario.streams.length} requests to ${url}; the upstream answers as the scenario says. Headers Envoy itself`,
    );
    console.log(`adds (x-request-id, x-forwarded-proto, date, x-envoy-*) are left out.\n`);
    const results = [];
    for (const [i, stream] of scenario.streams.entries()) {
      upstream.setCurrent(i);
      results.push(await send(port, stream.request));
    }
    // The filter's log lines name the stream by its request id, which Envoy returns.
    await new Promise((r) => setTimeout(r, 300));
    results.forEach((r, i) => {
      const rq = scenario.streams[i].request;
      const sent = without(rq.headers, new Set(["content-length"]));
      const shown = Object.entries(sent)
        .map(([k, v]) => `${k}: ${v}`)
        .join("  ");
      console.log(`#${i + 1} ${rq.headers[":method"]} ${rq.headers[":path"]}${shown ? `  ${shown}` : ""}`);
      if (rq.body !== undefined) console.log(`                  body: ${short(bodyOf(rq.body))}`);
      const got = upstream.received.get(i);
      if (got) {
        console.log(`   upstream got   ${headerDiff(sent, without(got.headers, ENVOY_REQUEST_HEADERS))}`);
        if (got.body !== bodyOf(rq.body)) console.log(`                  body rewritten: ${short(got.body)}`);
      }
      const up = scenario.streams[i].upstream ?? { headers: { ":status": "200" } };
      const headers = without(r.headers, ENVOY_RESPONSE_HEADERS);
      const what = got
        ? headerDiff(without(up.headers ?? {}, new Set()), headers)
        : `(local reply)  ${Object.entries(headers)
            .map(([k, v]) => `${k}: ${v}`)
            .join("  ")}`;
      console.log(`   client got     ${r.status}  ${what}`);
      if (r.body) console.log(`                  body: ${short(r.body.replaceAll("\n", "\\n"))}`);
      const id = r.headers["x-request-id"];
      for (const m of run.stderr.matchAll(new RegExp(`envoy_js\\(\\w+\\) stream ${id}: (.*)`, "g")))
        console.log(`   filter log     ${m[1]}`);
    });
    return true;
  } catch (err) {
    console.log(
      `\n${err.message}\nenvoy-js run's output:\n${run.stdout}${run.stderr.split("\n").slice(-30).join("\n")}`,
    );
    return false;
  } finally {
    console.log("\n(Ctrl-C)");
    run.child.kill("SIGINT");
    const status = await run.exited;
    console.log(status === 0 ? "" : `envoy-js run exited: ${status}\n`);
    await upstream.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Part 2: the replay on the wasm engine.

function replay() {
  const run = (args) =>
    execFileSync(process.execPath, [cli, ...args], {
      cwd: root,
      encoding: "utf8",
      stdio: ["ignore", "pipe", "inherit"],
    });
  console.log(
    `== 2. The same requests replayed on the wasm engine (the runtime and QuickJS in WebAssembly, no Envoy)\n`,
  );
  console.log(`$ envoy-js build ${entry} -o ${out} --bytecode`);
  process.stdout.write(run(["build", entry, "-o", out, "--bytecode"]));
  console.log(`\n$ envoy-js replay ${out} ${scenarioPath} --engine wasm\n`);
  const transcript = JSON.parse(run(["replay", out, scenarioPath, "--engine", "wasm"]));

  transcript.streams.forEach((t, i) => {
    const rq = scenario.streams[i].request;
    const up = scenario.streams[i].upstream ?? { headers: { ":status": "200" } };
    console.log(`#${i + 1} ${rq.headers[":method"]} ${rq.headers[":path"]}`);
    if (t.upstreamRequest) {
      console.log(`   upstream got   ${headerDiff(rq.headers, t.upstreamRequest.headers)}`);
      const sent = bodyOf(rq.body);
      if (sent || t.upstreamRequest.body) {
        console.log(
          `                  body ${t.upstreamRequest.body === sent ? "unchanged" : "rewritten"}: ${short(t.upstreamRequest.body)}`,
        );
      }
    }
    if (t.localReply) {
      const r = t.localReply;
      console.log(`   local reply    ${r.status} ${JSON.stringify(r.body)} (details: ${r.details})`);
    } else if (t.downstreamResponse) {
      const d = t.downstreamResponse;
      console.log(`   client got     ${d.headers[":status"]}  ${headerDiff(up.headers, d.headers)}`);
      if (d.body) console.log(`                  body: ${short(d.body)}`);
    }
    for (const l of t.logs) console.log(`   log            ${l}`);
    for (const e of t.errors) console.log(`   error          ${e.split("\n")[0]}`);
  });
  const counters = Object.entries(transcript.counters)
    .map(([k, v]) => `${k}=${v}`)
    .join(" ");
  console.log(
    `\n${transcript.streams.length} requests replayed on QuickJS ${statSync(path.join(root, out)).size} B bundle${counters ? "; " + counters : ""}`,
  );
}

const envoyOk = await realEnvoy();
replay();
if (!envoyOk) {
  console.log("\nPart 1 (the real Envoy) did not run: see above.");
  process.exitCode = 1;
}
