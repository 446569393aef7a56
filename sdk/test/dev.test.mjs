// `envoy-js dev`: the dev server in front of a tiny local upstream, both on 127.0.0.1
// ephemeral ports, with filters in a scratch directory. Every wait is bounded.
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import http from "node:http";
import path from "node:path";

import { test } from "uvu";
import * as assert from "uvu/assert";

import { CLI, absentWasm, runCli, scratch } from "./helpers.mjs";

/** An upstream that echoes the request it got as JSON; `/slow` answers in two parts. */
async function startUpstream() {
  const server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      if (req.url === "/page") {
        res.writeHead(200, { "content-type": "text/html", server: "up/1" });
        res.write("<p>hello ");
        setTimeout(() => res.end("world</p>"), 10);
        return;
      }
      res.writeHead(200, { "content-type": "application/json", server: "up/1" });
      res.end(JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body }));
    });
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return { server, url: `http://127.0.0.1:${server.address().port}` };
}

/** A request with a deadline; resolves with status, headers, body and elapsed ms. */
function send(url, { method = "GET", headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const req = http.request(url, { method, headers, timeout: 5000 }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (c) => (text += c));
      res.on("end", () =>
        resolve({ status: res.statusCode, headers: res.headers, body: text, ms: performance.now() - started }),
      );
    });
    req.on("timeout", () => req.destroy(new Error(`no answer from ${url} within 5 s`)));
    req.on("error", reject);
    req.end(body);
  });
}

/** Polls `check` every 25 ms for up to `ms`. */
async function eventually(check, ms = 8000) {
  const deadline = performance.now() + ms;
  for (;;) {
    if (await check()) return;
    if (performance.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 25));
  }
}

const FILTER = `import { defineFilter } from "@envoy-js/sdk";

export default defineFilter<{ header: string }>({
  async onRequest(req, ctx) {
    const key = req.headers.get(ctx.config.header);
    if (key === null) return ctx.respond(401, { body: "missing key" });
    req.headers.delete(ctx.config.header);
    req.headers.set("x-user", key === "k1" ? "alice" : "someone");
    if (req.path === "/slow") await new Promise<void>((r) => setTimeout(() => r(), 60));
    if (req.path === "/boom") throw new Error("boom at " + req.path);
    if (req.path === "/authz") {
      const r = await ctx.fetch("authz", { path: "/check" });
      req.headers.set("x-authz", String(r.status) + ":" + (await r.text()));
    }
    if (req.method === "POST") req.body.replace((await req.body.text()).toUpperCase());
  },
  onResponse(res) {
    res.headers.set("x-filtered-by", "v1");
  },
});
`;

async function withDev(files, fn, extra = {}) {
  const { startDevServer } = await import("../cli/dev.mjs");
  const up = await startUpstream();
  const { dir, cleanup } = scratch(files);
  const lines = [];
  const dev = await startDevServer({
    entry: path.join(dir, "src", "filter.ts"),
    upstream: up.url,
    port: 0,
    configFile: path.join(dir, "config.json"),
    clustersFile: path.join(dir, "clusters.json"),
    log: (l) => lines.push(l),
    debounceMs: 50,
    ...extra,
  });
  try {
    await fn({ dev, dir, lines });
  } finally {
    await dev.close();
    await new Promise((r) => up.server.close(r));
    cleanup();
  }
}

const BASE = {
  "src/filter.ts": FILTER,
  "config.json": JSON.stringify({ header: "x-api-key" }),
  "clusters.json": JSON.stringify({ authz: { headers: { ":status": "200" }, body: "ok", delayMs: 20 } }),
};

test("dev: the filter runs in front of the upstream; one log line per request", async () => {
  await withDev(BASE, async ({ dev, lines }) => {
    assert.ok(dev.url.startsWith("http://127.0.0.1:"));
    const denied = await send(`${dev.url}/a`);
    assert.is(denied.status, 401);
    assert.is(denied.body, "missing key");
    // The engine's transcript has the reply as the filter built it, without what its own
    // onResponse did to it: the dev server sends that.
    assert.is(denied.headers["content-type"], "text/plain");

    const ok = await send(`${dev.url}/a?q=1`, { headers: { "x-api-key": "k1" } });
    assert.is(ok.status, 200);
    const seen = JSON.parse(ok.body);
    assert.is(seen.url, "/a?q=1");
    assert.is(seen.headers["x-user"], "alice");
    assert.is(seen.headers["x-api-key"], undefined);
    assert.is(ok.headers["x-filtered-by"], "v1");
    assert.is(ok.headers.server, "up/1");

    const posted = await send(`${dev.url}/p`, { method: "POST", headers: { "x-api-key": "k1" }, body: "hello" });
    assert.is(JSON.parse(posted.body).body, "HELLO");
    assert.is(JSON.parse(posted.body).headers["content-length"], "5");

    const page = await send(`${dev.url}/page`, { headers: { "x-api-key": "k1" } });
    assert.is(page.body, "<p>hello world</p>");

    assert.match(
      lines.find((l) => l.startsWith("GET /a 401")),
      /^GET \/a 401 local reply 401 \(envoy_js_respond\) \d+ ms$/,
    );
    assert.match(
      lines.find((l) => l.startsWith("GET /a?q=1")),
      /^GET \/a\?q=1 200 \+x-user -x-api-key, response \+x-filtered-by \d+ ms$/,
    );
    assert.match(
      lines.find((l) => l.startsWith("POST /p")),
      /request body rewritten/,
    );
  });
});

test("dev: timers follow real time, callouts are answered from --clusters", async () => {
  await withDev(BASE, async ({ dev }) => {
    const slow = await send(`${dev.url}/slow`, { headers: { "x-api-key": "k1" } });
    assert.is(slow.status, 200);
    assert.ok(slow.ms >= 55, `took ${slow.ms} ms`);
    const authz = await send(`${dev.url}/authz`, { headers: { "x-api-key": "k1" } });
    assert.is(JSON.parse(authz.body).headers["x-authz"], "200:ok");
  });
});

test("dev: a failing hook is a 500 whose error names the TypeScript file and line", async () => {
  await withDev(BASE, async ({ dev, dir, lines }) => {
    const r = await send(`${dev.url}/boom`, { headers: { "x-api-key": "k1" } });
    assert.is(r.status, 500);
    const error = lines.find((l) => l.includes("error: Error: boom at /boom"));
    assert.ok(error, lines.join("\n"));
    const at = lines.join("\n").match(/at onRequest \((\S+):10:\d+ \(filter\.js:\d+:\d+\)\)/);
    assert.ok(at, lines.join("\n"));
    // The path as shown from the current directory (outside it: absolute), not as seen from
    // the dev server's build directory.
    assert.is(path.resolve(at[1]), path.join(dir, "src", "filter.ts"));
  });
});

test("dev: saving the filter reloads it; a syntax error keeps the old build serving", async () => {
  await withDev(BASE, async ({ dev, dir, lines }) => {
    const file = path.join(dir, "src", "filter.ts");
    assert.is((await send(`${dev.url}/x`, { headers: { "x-api-key": "k" } })).headers["x-filtered-by"], "v1");

    writeFileSync(file, FILTER.replace('"v1"', '"v2"'));
    await eventually(() => lines.some((l) => l.startsWith("reloaded ")));
    assert.is((await send(`${dev.url}/x`, { headers: { "x-api-key": "k" } })).headers["x-filtered-by"], "v2");

    writeFileSync(file, FILTER.replace('"v1"', '"v3"').replace("onResponse(res) {", "onResponse(res) {{"));
    await eventually(() => lines.some((l) => l.startsWith("build failed")));
    const failure = lines.find((l) => l.startsWith("build failed"));
    assert.match(failure, /still serving the previous build/);
    assert.match(failure, /filter\.ts:\d+:\d+ - error TS\d+/);
    assert.is((await send(`${dev.url}/x`, { headers: { "x-api-key": "k" } })).headers["x-filtered-by"], "v2");

    writeFileSync(file, FILTER.replace('"v1"', '"v4"'));
    await eventually(() => lines.filter((l) => l.startsWith("reloaded ")).length >= 2);
    assert.is((await send(`${dev.url}/x`, { headers: { "x-api-key": "k" } })).headers["x-filtered-by"], "v4");
  });
});

test("dev: an unreachable upstream is a 503 that still passes through the filter", async () => {
  const { startDevServer } = await import("../cli/dev.mjs");
  const { dir, cleanup } = scratch(BASE);
  // A port that was free a moment ago: nothing listens there.
  const probe = http.createServer();
  await new Promise((r) => probe.listen(0, "127.0.0.1", r));
  const deadPort = probe.address().port;
  await new Promise((r) => probe.close(r));
  const lines = [];
  const dev = await startDevServer({
    entry: path.join(dir, "src", "filter.ts"),
    upstream: `http://127.0.0.1:${deadPort}`,
    port: 0,
    configFile: path.join(dir, "config.json"),
    watch: false,
    log: (l) => lines.push(l),
  });
  try {
    const r = await send(`${dev.url}/x`, { headers: { "x-api-key": "k" } });
    assert.is(r.status, 503);
    assert.match(r.body, /upstream connect error/);
    assert.is(r.headers["x-filtered-by"], "v1");
  } finally {
    await dev.close();
    cleanup();
  }
});

test("envoy-js dev: --help says it is a development tool; usage errors exit 2", () => {
  const help = runCli(["dev", "--help"]);
  assert.is(help.code, 0);
  assert.match(help.stdout, /A development tool, not a production proxy/);
  assert.match(runCli(["--help"]).stdout, /dev <filter\.ts> --upstream URL/);
  const noUpstream = runCli(["dev", "filter.ts"]);
  assert.is(noUpstream.code, 2);
  assert.match(noUpstream.stderr, /missing --upstream URL/);
  const badPort = runCli(["dev", "filter.ts", "--upstream", "http://127.0.0.1:1", "--port", "x"]);
  assert.is(badPort.code, 2);
});

test("envoy-js dev: says which proxy it uses; without an Envoy it is the Node proxy, and --proxy envoy prints how to get one", async () => {
  const noEnvoy = { ENVOY_BIN: undefined, ENVOY_VERSION: "0.0.0" };
  const { dir, cleanup } = scratch({ ...BASE, "bin/.keep": "" });
  try {
    const env = { ...noEnvoy, PATH: path.join(dir, "bin") };
    const forced = runCli(["dev", "src/filter.ts", "--upstream", "http://127.0.0.1:1", "--proxy", "envoy"], {
      cwd: dir,
      env,
    });
    assert.is(forced.code, 1);
    assert.match(forced.stderr, /no Envoy found\. Any of these works:/);
    assert.match(forced.stderr, /make envoy/);
    assert.is(
      runCli(["dev", "src/filter.ts", "--upstream", "http://127.0.0.1:1", "--proxy", "nginx"], { cwd: dir, env }).code,
      2,
    );
    // The Node proxy starts, says so and why, and stops on SIGINT.
    const childEnv = { ...process.env, PATH: env.PATH, ENVOY_VERSION: "0.0.0" };
    delete childEnv.ENVOY_BIN;
    delete childEnv.ENVOY_JS_WASM;
    const child = spawn(
      process.execPath,
      [CLI, "dev", "src/filter.ts", "--upstream", "http://127.0.0.1:1", "--port", "0", "--config", "config.json"],
      { cwd: dir, env: childEnv },
    );
    let err = "";
    child.stderr.on("data", (d) => (err += d));
    const exited = new Promise((r) => child.on("exit", (code) => r(code)));
    try {
      await eventually(() => / on http:\/\/127\.0\.0\.1:\d+ -> /.test(err), 15000);
      assert.match(err, /^envoy-js dev: using the Node proxy: no Envoy found/);
    } finally {
      child.kill("SIGINT");
      assert.is(await exited, 0);
    }
  } finally {
    cleanup();
  }
});

test("envoy-js dev: the Node proxy without the wasm engine exits 1 saying where it looked", () => {
  const { dir, cleanup } = scratch(BASE);
  try {
    const { file, env } = absentWasm(dir);
    const r = runCli(
      [
        "dev",
        "src/filter.ts",
        "--upstream",
        "http://127.0.0.1:1",
        "--port",
        "0",
        "--proxy",
        "node",
        "--config",
        "config.json",
      ],
      {
        cwd: dir,
        env,
      },
    );
    assert.is(r.code, 1);
    assert.ok(r.stderr.includes(`envoy-js dev: the wasm engine at ${file} cannot be loaded: not found`), r.stderr);
  } finally {
    cleanup();
  }
});

test.run();
