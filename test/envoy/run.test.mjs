// `envoy-js run` end to end: the CLI as a child process starts a real Envoy with the filter,
// serves through it, reloads on save (LDS from a file), keeps the previous build serving when a
// save does not build or Envoy refuses it, and stops Envoy on SIGINT. Every wait is bounded.
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { test } from "uvu";
import * as assert from "uvu/assert";

import { HOW_TO_GET_ENVOY } from "../../sdk/cli/envoy.mjs";
import { closedPort, envoyUnderTest, h1, scratchDir, startUpstream } from "./lib.mjs";

const CLI = fileURLToPath(new URL("../../sdk/cli/envoy-js.mjs", import.meta.url));

/** A filter that tags the request and the response with `version`, and logs each request. */
const filterSource = (version) => `import { defineFilter } from "@envoy-js/sdk";

export default defineFilter<{ tag: string }>({
  onRequest(req, ctx) {
    ctx.log.info(\`${version} saw \${req.path}\`);
    if (req.path === "/deny") return ctx.respond(403, { body: "denied by ${version}\\n" });
    req.headers.set("x-version", "${version}");
    req.headers.set("x-tag", ctx.config.tag);
  },
  onResponse(res) {
    res.headers.set("x-filtered-by", "${version}");
  },
});
`;

/** The CLI as a child process, its output collected; `waitFor` looks for a line in it. */
function startCli(args, { cwd, env = process.env } = {}) {
  const child = spawn(process.execPath, [CLI, ...args], { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
  const out = { stdout: "", stderr: "", exit: null };
  const waiters = new Set();
  const wake = () => {
    for (const w of waiters) w();
  };
  child.stdout.on("data", (d) => {
    out.stdout += d;
    wake();
  });
  child.stderr.on("data", (d) => {
    out.stderr += d;
    wake();
  });
  const exited = new Promise((resolve) =>
    child.on("exit", (code, signal) => {
      out.exit = signal ?? code;
      wake();
      resolve(out.exit);
    }),
  );
  /** Resolves with the match of `re` in stdout+stderr after `from` (see `mark()`), bounded in time. */
  async function waitFor(re, timeoutMs, from = { stdout: 0, stderr: 0 }) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = re.exec(out.stdout.slice(from.stdout)) ?? re.exec(out.stderr.slice(from.stderr));
      if (m) return m;
      if (out.exit !== null)
        throw new Error(`envoy-js run exited (${out.exit}) before ${re}:\n${out.stdout}\n${out.stderr}`);
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(`${re} not printed within ${timeoutMs} ms:\n${out.stdout}\n${out.stderr.slice(-3000)}`);
      await new Promise((r) => {
        const t = setTimeout(r, Math.min(left, 200));
        waiters.add(() => {
          clearTimeout(t);
          waiters.clear();
          r();
        });
      });
    }
  }
  const mark = () => ({ stdout: out.stdout.length, stderr: out.stderr.length });
  return { child, out, exited, waitFor, mark };
}

const alive = (pid) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** The exit status of a CLI process, or "timeout". */
async function exitWithin(p, ms) {
  let timer;
  const status = await Promise.race([
    p.exited,
    new Promise((r) => {
      timer = setTimeout(() => r("timeout"), ms);
    }),
  ]);
  clearTimeout(timer);
  return status;
}

let upstream, scratch, cli, port, envoyPid, filterFile, dev, devEnvoyPid;

test.before(async () => {
  envoyUnderTest(); // fails early, with the how-to, when `make envoy` has not run
  upstream = await startUpstream({
    handler(req, res, entry) {
      res.writeHead(200, { "content-type": "text/plain", server: "node-upstream" });
      res.end(`upstream saw ${entry.method} ${entry.url}`);
    },
  });
  scratch = mkdtempSync(path.join(os.tmpdir(), "envoy-js-run-test-"));
  mkdirSync(path.join(scratch, "src"));
  filterFile = path.join(scratch, "src", "filter.ts");
  writeFileSync(filterFile, filterSource("v1"));
  writeFileSync(path.join(scratch, "config.json"), JSON.stringify({ tag: "from-config" }));
  port = await closedPort();
});

test.after(async () => {
  if (cli && cli.out.exit === null) cli.child.kill("SIGKILL");
  if (dev && dev.out.exit === null) dev.child.kill("SIGKILL");
  for (const pid of [envoyPid, devEnvoyPid]) if (pid && alive(pid)) process.kill(pid, "SIGKILL");
  await upstream?.close();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

test("run: prints the URL and Envoy's version once ready, and the filter serves inside Envoy", async () => {
  cli = startCli(
    [
      "run",
      "src/filter.ts",
      "--upstream",
      `http://127.0.0.1:${upstream.port}`,
      "--port",
      String(port),
      "--config",
      "config.json",
    ],
    { cwd: scratch },
  );
  const [, url] = await cli.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+) -> /, 30000);
  assert.is(url, `http://127.0.0.1:${port}`);
  const [, version, pid] = await cli.waitFor(
    /Envoy (\d+\.\d+\.\d+) \(.*\), pid (\d+), admin http:\/\/127\.0\.0\.1:\d+/,
    1000,
  );
  assert.is(version, envoyUnderTest().version);
  envoyPid = Number(pid);
  assert.ok(alive(envoyPid));
  assert.match(cli.out.stdout, /loaded src\/filter\.ts \(\d+ ms\)/);

  const r = await h1(port, { path: "/hello" });
  assert.is(r.status, 200);
  assert.is(r.text, "upstream saw GET /hello");
  assert.is(r.headers["x-filtered-by"], "v1");
  assert.is(r.headers.server, "node-upstream"); // passed through, not replaced by "envoy"
  assert.is(upstream.last().headers["x-version"], "v1");
  assert.is(upstream.last().headers["x-tag"], "from-config");
  // The filter's log is in Envoy's log, on the terminal (stderr), named by the request id.
  await cli.waitFor(new RegExp(`envoy_js\\(envoy_js\\) stream ${r.headers["x-request-id"]}: v1 saw /hello`), 5000);

  const denied = await h1(port, { path: "/deny" });
  assert.is(denied.status, 403);
  assert.is(denied.text, "denied by v1\n");
});

test("run: saving the filter reloads it in the same Envoy", async () => {
  const from = cli.mark();
  writeFileSync(filterFile, filterSource("v2"));
  await cli.waitFor(/reloaded src\/filter\.ts \(\d+ ms\)/, 15000, from);
  const r = await h1(port, { path: "/after-reload" });
  assert.is(r.status, 200);
  assert.is(r.headers["x-filtered-by"], "v2");
  assert.is(upstream.last().headers["x-version"], "v2");
  assert.ok(alive(envoyPid), "the same Envoy process serves the new build");
  assert.ok(cli.out.stdout.includes(`pid ${envoyPid},`));
});

test("run: a save that does not build prints file:line:col and the previous build keeps serving", async () => {
  const from = cli.mark();
  // Line 7 loses its closing parenthesis.
  writeFileSync(
    filterFile,
    filterSource("v3").replace('req.headers.set("x-version", "v3");', 'req.headers.set("x-version", "v3";'),
  );
  const [message] = await cli.waitFor(
    /build failed \(still serving the previous build\):[\s\S]*?\n(?=\S|$)/,
    15000,
    from,
  );
  assert.match(message, /src\/filter\.ts:7:\d+ - error TS1005: '\)' expected\./);
  const r = await h1(port, { path: "/after-syntax-error" });
  assert.is(r.headers["x-filtered-by"], "v2");
});

test("run: a filter Envoy refuses is reported with its TypeScript location and the previous build keeps serving", async () => {
  const from = cli.mark();
  // Builds fine, but throws while Envoy loads it.
  writeFileSync(
    filterFile,
    `import { defineFilter } from "@envoy-js/sdk";\nconst ready: boolean = false;\nif (!ready) throw new Error("not ready");\nexport default defineFilter({});\n`,
  );
  const [message] = await cli.waitFor(
    /Envoy rejected the filter \(still serving the previous build\):\n.*\n.*/,
    15000,
    from,
  );
  assert.match(message, /Error: not ready/);
  assert.match(message, /src\/filter\.ts:3:\d+/);
  const r = await h1(port, { path: "/after-rejection" });
  assert.is(r.headers["x-filtered-by"], "v2");

  // A good save after that serves again.
  const again = cli.mark();
  writeFileSync(filterFile, filterSource("v4"));
  await cli.waitFor(/reloaded src\/filter\.ts/, 15000, again);
  assert.is((await h1(port, { path: "/v4" })).headers["x-filtered-by"], "v4");
});

test("run: SIGINT stops Envoy and exits 0", async () => {
  cli.child.kill("SIGINT");
  const status = await exitWithin(cli, 10000);
  assert.is(status, 0);
  assert.match(cli.out.stdout, /Envoy stopped/);
  assert.not.ok(alive(envoyPid), "Envoy is gone");
  const after = await h1(port, { path: "/", timeoutMs: 2000 }).then(
    (x) => `answered ${x.status}`,
    (e) => e.code ?? e.message,
  );
  assert.is(after, "ECONNREFUSED");
});

test("dev uses envoy-js run when an Envoy is found, and says so", async () => {
  const devPort = await closedPort();
  writeFileSync(filterFile, filterSource("v5"));
  dev = startCli(
    [
      "dev",
      "src/filter.ts",
      "--upstream",
      `http://127.0.0.1:${upstream.port}`,
      "--port",
      String(devPort),
      "--config",
      "config.json",
    ],
    { cwd: scratch },
  );
  await dev.waitFor(/listening on http:\/\/127\.0\.0\.1:\d+/, 30000);
  assert.match(dev.out.stderr, /^envoy-js dev: using a real Envoy \(envoy-js run; --proxy node for the Node proxy\)/);
  devEnvoyPid = Number(/, pid (\d+),/.exec(dev.out.stdout)[1]);
  const r = await h1(devPort, { path: "/through-dev" });
  assert.is(r.headers["x-filtered-by"], "v5");
  assert.match(r.headers["x-request-id"], /^[0-9a-f-]{36}$/); // Envoy's, not the Node proxy's
  dev.child.kill("SIGINT");
  assert.is(await exitWithin(dev, 10000), 0);
  assert.not.ok(alive(devEnvoyPid));
});

test("run without an Envoy prints how to get one and exits non-zero", () => {
  const { dir, write, remove } = scratchDir();
  try {
    write("filter.ts", filterSource("v1"));
    const emptyBin = path.join(dir, "bin");
    mkdirSync(emptyBin);
    const run = (env) => {
      const e = { ...process.env, PATH: emptyBin, ...env };
      for (const [k, v] of Object.entries(e)) if (v === undefined) delete e[k];
      return spawnSync(process.execPath, [CLI, "run", "filter.ts", "--upstream", "http://127.0.0.1:1"], {
        cwd: dir,
        env: e,
        encoding: "utf8",
        timeout: 20000,
      });
    };
    // No ENVOY_BIN, a version `make envoy` never installs, no envoy on PATH.
    const none = run({ ENVOY_BIN: undefined, ENVOY_VERSION: "0.0.0" });
    assert.is(none.status, 1, none.stderr);
    assert.ok(none.stderr.includes(HOW_TO_GET_ENVOY), none.stderr);
    assert.match(
      none.stderr,
      /build\/envoy\/0\.0\.0\/envoy \(make envoy, ENVOY_VERSION=0\.0\.0; pinned: .*\): no such file/,
    );
    assert.match(none.stderr, /PATH: no envoy/);
    // ENVOY_BIN wins over everything else: pointing nowhere, nothing else is tried.
    const nowhere = run({ ENVOY_BIN: path.join(dir, "no-such-envoy") });
    assert.is(nowhere.status, 1, nowhere.stderr);
    assert.ok(nowhere.stderr.includes(HOW_TO_GET_ENVOY), nowhere.stderr);
    assert.match(nowhere.stderr, /ENVOY_BIN=.*no-such-envoy: no such file/);
  } finally {
    remove();
  }
});

test("run refuses an upstream that is not http:// with a usage error", () => {
  const r = spawnSync(process.execPath, [CLI, "run", "filter.ts", "--upstream", "https://127.0.0.1:8443"], {
    encoding: "utf8",
    timeout: 20000,
  });
  assert.is(r.status, 2);
  assert.match(r.stderr, /only http:\/\/ upstreams are supported \(not https:\/\/\)/);
});

test.run();
