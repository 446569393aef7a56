// `envoy-js replay`, run as a child process (and replay() of cli/replay.mjs in-process), on the
// real engines: the wasm engine shipped in the SDK (sdk/wasm/envoy-js.wasm, `make wasm`) always;
// the dynamic module on the ABI host stub too when `make module` has built it.
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";

import { test } from "uvu";
import * as assert from "uvu/assert";

import { abiHostPath } from "../cli/module.mjs";
import { replay } from "../cli/replay.mjs";
import { loadWasmEngine } from "../cli/wasm.mjs";
import { DEFAULT_ENGINES, absentWasm, runCli, scratch } from "./helpers.mjs";

const GET = { ":method": "GET", ":path": "/a", ":authority": "h" };

const SCENARIO = {
  config: { header: "x-api-key" },
  streams: [
    { request: { headers: GET }, upstream: { headers: { ":status": "200" }, body: ["ok"] } },
    { request: { headers: { ...GET, "x-api-key": "k" } }, upstream: { headers: { ":status": "200" }, body: ["ok"] } },
  ],
};

// Refuses a request without the configured header; tags the others. Line 4 throws on /boom.
const FILTER = `export default {
  onRequest(req, ctx) {
    ctx.log.info("header " + ctx.config.header);
    if (req.path === "/boom") throw new Error("boom");
    if (!req.headers.has(ctx.config.header)) return ctx.respond(401, { body: "missing" });
    req.headers.set("x-checked", "source");
  },
};
`;

// A map of FILTER onto ../src/filter.ts: bundle lines 1 to 3 are source lines 1 to 3, line 4
// is source line 8, column 5; the rest is not mapped.
const FILTER_MAP = JSON.stringify({
  version: 3,
  file: "filter.js",
  sources: ["../src/filter.ts"],
  names: [],
  mappings: "AAAA;AACA;AACA;AAKI",
});

const FILES = {
  "app/src/filter.ts": "// what app/dist/filter.js was built from\n",
  "app/dist/filter.js": FILTER,
  "app/dist/filter.js.map": FILTER_MAP,
  "scenario.json": JSON.stringify(SCENARIO),
  "boom.json": JSON.stringify({ streams: [{ request: { headers: { ...GET, ":path": "/boom" } } }] }),
  "broken.json": '{ "streams": [ { "request": ',
  "list.json": "[]",
  "bad-settings.json": JSON.stringify({ settings: { failure_mode: "maybe" }, streams: [] }),
};

const env = DEFAULT_ENGINES;
const BUNDLE = "app/dist/filter.js";

test("an unknown engine exits 2 and lists the valid ones", () => {
  const { dir, cleanup } = scratch(FILES);
  try {
    const r = runCli(["replay", BUNDLE, "scenario.json", "--engine", "v8"], { cwd: dir, env });
    assert.is(r.code, 2);
    assert.match(r.stderr, /unknown engine 'v8': valid engines are wasm, module, envoy/);
    assert.is(r.stdout, "");
  } finally {
    cleanup();
  }
});

test("the wasm engine is the default: it runs the filter and prints the transcript", () => {
  const { dir, cleanup } = scratch(FILES);
  try {
    const r = runCli(["replay", BUNDLE, "scenario.json"], { cwd: dir, env });
    assert.is(r.code, 0, r.stderr);
    assert.is(r.stderr, "");
    assert.is(r.stdout, `${JSON.stringify(JSON.parse(r.stdout), null, 2)}\n`, "pretty-printed");
    const t = JSON.parse(r.stdout);
    // The keys of DESIGN.md section 7, first and in that order.
    assert.equal(Object.keys(t).slice(0, 1), ["streams"]);
    assert.equal(Object.keys(t.streams[0]).slice(0, 5), [
      "upstreamRequest",
      "localReply",
      "downstreamResponse",
      "logs",
      "errors",
    ]);
    const [denied, allowed] = t.streams;
    assert.equal(denied.localReply, {
      status: 401,
      body: "missing",
      headers: { "content-type": "text/plain" },
      details: "envoy_js_respond",
    });
    assert.is(denied.upstreamRequest, null);
    assert.is(allowed.localReply, null);
    assert.is(allowed.upstreamRequest.headers["x-checked"], "source");
    assert.is(allowed.downstreamResponse.body, "ok");
    assert.equal(allowed.logs, ["[info] header x-api-key"], "the scenario's config reached the filter");

    const named = runCli(["replay", BUNDLE, "scenario.json", "--engine", "wasm"], { cwd: dir, env });
    assert.is(named.code, 0, named.stderr);
    assert.is(named.stdout, r.stdout);
  } finally {
    cleanup();
  }
});

test("--engine stub and --engine native are retired: a notice on stderr, then the wasm engine runs", () => {
  const { dir, cleanup } = scratch(FILES);
  try {
    const wasm = runCli(["replay", BUNDLE, "scenario.json", "--engine", "wasm"], { cwd: dir, env });
    assert.is(wasm.code, 0, wasm.stderr);
    for (const retired of ["stub", "native"]) {
      const r = runCli(["replay", BUNDLE, "scenario.json", "--engine", retired], { cwd: dir, env });
      assert.is(r.code, 0, r.stderr);
      assert.match(r.stderr, new RegExp(`--engine ${retired} is retired: running on --engine wasm`));
      assert.is(r.stderr.trim().split("\n").length, 1, "one notice, nothing else");
      assert.is(r.stdout, wasm.stdout);
    }
  } finally {
    cleanup();
  }
});

/**
 * Runs `fn` with the wasm engine's replay() recording what it is given (the real engine still
 * runs: replay.mjs loads the same engine object through loadWasmEngine()).
 */
async function spyOnEngine(fn) {
  const engine = loadWasmEngine();
  const real = engine.replay;
  const calls = [];
  engine.replay = (bundle, scenario) => {
    calls.push({ bundle, scenario });
    return real(bundle, scenario);
  };
  try {
    return { result: await fn(), calls };
  } finally {
    engine.replay = real;
  }
}

test("replay() gives the engine the bundle, its map (sources as shown here), the bytecode and the scenario", async () => {
  const { dir, cleanup } = scratch({ ...FILES, "plain.js": "export default {};\n" });
  try {
    const bundleFile = path.join(dir, BUNDLE);
    const scenarioFile = path.join(dir, "scenario.json");
    const { result, calls } = await spyOnEngine(() => replay({ bundleFile, scenarioFile }));
    assert.is(calls.length, 1);
    const { bundle, scenario } = calls[0];
    assert.equal(Object.keys(bundle).sort(), ["filename", "source", "sourceMap"]);
    assert.is(bundle.source, FILTER);
    assert.is(bundle.filename, "filter.js");
    const map = JSON.parse(bundle.sourceMap);
    // Outside the current directory a source is shown by its absolute path.
    assert.equal(map.sources, [path.join(dir, "app/src/filter.ts")]);
    assert.is(map.mappings, JSON.parse(FILTER_MAP).mappings);
    assert.equal(scenario, SCENARIO);
    assert.is(result.streams[1].upstreamRequest.headers["x-checked"], "source", "the real engine ran");

    const bytecode = loadWasmEngine().compileBytecode("export default {};", "plain.js");
    writeFileSync(path.join(dir, "plain.qjsbc"), bytecode);
    const plain = await spyOnEngine(() =>
      replay({ bundleFile: path.join(dir, "plain.js"), scenarioFile, bytecodeFile: path.join(dir, "plain.qjsbc") }),
    );
    assert.equal(
      Object.keys(plain.calls[0].bundle).sort(),
      ["bytecode", "filename", "source"],
      "no map file, no sourceMap",
    );
    assert.ok(Buffer.from(plain.calls[0].bundle.bytecode).equals(bytecode));
    assert.is(plain.calls[0].bundle.filename, "plain.js");
  } finally {
    cleanup();
  }
});

test("errors name the TypeScript source by its path from the current directory; without a map, the bundle", () => {
  const { dir, cleanup } = scratch(FILES);
  try {
    const r = runCli(["replay", BUNDLE, "boom.json"], { cwd: dir, env });
    assert.is(r.code, 0, "a stream the filter failed is still exit 0");
    const t = JSON.parse(r.stdout);
    const [s] = t.streams;
    assert.is(s.localReply.status, 500);
    assert.is(s.localReply.details, "envoy_js_error");
    // The map's sources are relative to app/dist: from here the source is app/src/filter.ts.
    assert.match(s.errors[0], /^Error: boom\n\s+at onRequest \(app\/src\/filter\.ts:8:5 \(filter\.js:4:\d+\)\)$/);
    assert.ok(existsSync(path.join(dir, "app/src/filter.ts")));
    assert.match(
      t.workerLogs[0],
      /filter failed: Error: boom\n\s+at onRequest \(app\/src\/filter\.ts:8:5 \(filter\.js:4:\d+\)\)$/,
    );

    // Without the map the engine names the bundle.
    rmSync(path.join(dir, "app/dist/filter.js.map"));
    const plain = runCli(["replay", BUNDLE, "boom.json"], { cwd: dir, env });
    assert.is(plain.code, 0, plain.stderr);
    assert.match(JSON.parse(plain.stdout).streams[0].errors[0], /^Error: boom\n\s+at onRequest \(filter\.js:4:\d+\)$/);
  } finally {
    cleanup();
  }
});

test("--bytecode runs the bytecode instead of the bundle's source", () => {
  const { dir, cleanup } = scratch(FILES);
  try {
    // Bytecode of another filter than the bundle beside it: the transcript says which ran.
    const other = FILTER.replace('"x-checked", "source"', '"x-checked", "bytecode"');
    writeFileSync(path.join(dir, "app/dist/filter.qjsbc"), loadWasmEngine({}).compileBytecode(other, "filter.js"));
    // Retired names take it too: they run the wasm engine (the stub never took bytecode).
    for (const engine of ["wasm", "native", "stub"]) {
      const r = runCli(["replay", BUNDLE, "scenario.json", "--engine", engine, "--bytecode", "app/dist/filter.qjsbc"], {
        cwd: dir,
        env,
      });
      assert.is(r.code, 0, r.stderr);
      const [denied, allowed] = JSON.parse(r.stdout).streams;
      assert.is(denied.localReply.status, 401);
      assert.is(allowed.upstreamRequest.headers["x-checked"], "bytecode", engine);
    }

    writeFileSync(path.join(dir, "junk.qjsbc"), "BYTES");
    const junk = runCli(["replay", BUNDLE, "scenario.json", "--bytecode", "junk.qjsbc"], { cwd: dir, env });
    assert.is(junk.code, 1);
    assert.match(junk.stderr, /replay of app\/dist\/filter\.js failed: filter\.js: not an envoy-js bytecode file/);
    assert.is(junk.stdout, "");

    const absent = runCli(["replay", BUNDLE, "scenario.json", "--bytecode", "nope.qjsbc"], { cwd: dir, env });
    assert.is(absent.code, 1);
    assert.match(absent.stderr, /cannot read bytecode nope\.qjsbc: not found/);
  } finally {
    cleanup();
  }
});

test("a filter the engine cannot load exits 1 with the engine's message", () => {
  const { dir, cleanup } = scratch({
    ...FILES,
    "dist/bad.js": "export default { onRequets() {} };\n",
    "broken.js": "export default {\n  onRequest() { return 1 +* 2; }\n};\n",
  });
  try {
    for (const engine of ["wasm", "stub"]) {
      const r = runCli(["replay", "dist/bad.js", "scenario.json", "--engine", engine], { cwd: dir, env });
      assert.is(r.code, 1);
      assert.match(r.stderr, /replay of dist\/bad\.js failed: bad\.js: unknown hook `onRequets`/);
      assert.is(r.stdout, "");
    }
    const broken = runCli(["replay", "broken.js", "scenario.json"], { cwd: dir, env });
    assert.is(broken.code, 1);
    assert.match(broken.stderr, /replay of broken\.js failed: broken\.js:2:\d+: SyntaxError/);
  } finally {
    cleanup();
  }
});

test("an invalid scenario exits 1 with the reason", () => {
  const { dir, cleanup } = scratch(FILES);
  try {
    const broken = runCli(["replay", BUNDLE, "broken.json"], { cwd: dir, env });
    assert.is(broken.code, 1);
    assert.match(broken.stderr, /scenario broken\.json is not valid JSON/);
    assert.is(broken.stdout, "");

    const list = runCli(["replay", BUNDLE, "list.json"], { cwd: dir, env });
    assert.is(list.code, 1);
    assert.match(list.stderr, /must be a JSON object/);

    const absent = runCli(["replay", BUNDLE, "nope.json"], { cwd: dir, env });
    assert.is(absent.code, 1);
    assert.match(absent.stderr, /cannot read scenario nope\.json: not found/);

    // The engine checks the settings.
    const settings = runCli(["replay", BUNDLE, "bad-settings.json"], { cwd: dir, env });
    assert.is(settings.code, 1);
    assert.match(settings.stderr, /replay of app\/dist\/filter\.js failed: failure_mode must be "closed" or "open"/);
    assert.is(settings.stdout, "");
  } finally {
    cleanup();
  }
});

test("a missing bundle exits 1", () => {
  const { dir, cleanup } = scratch(FILES);
  try {
    const r = runCli(["replay", "dist/other.js", "scenario.json"], { cwd: dir, env });
    assert.is(r.code, 1);
    assert.match(r.stderr, /cannot read bundle dist\/other\.js: not found/);
  } finally {
    cleanup();
  }
});

test("without the wasm engine, exits 1 saying where it looked", () => {
  const { dir, cleanup } = scratch({ ...FILES, "not.wasm": "not a wasm module" });
  try {
    const { file, env: missing } = absentWasm(dir);
    for (const engine of ["wasm", "native"]) {
      const r = runCli(["replay", BUNDLE, "scenario.json", "--engine", engine], { cwd: dir, env: missing });
      assert.is(r.code, 1);
      assert.ok(
        r.stderr.includes(`the wasm engine at ${file} cannot be loaded: not found (ENVOY_JS_WASM points there)`),
        r.stderr,
      );
      assert.is(r.stdout, "");
    }
    const notWasm = runCli(["replay", BUNDLE, "scenario.json"], {
      cwd: dir,
      env: { ENVOY_JS_WASM: path.join(dir, "not.wasm") },
    });
    assert.is(notWasm.code, 1);
    assert.match(notWasm.stderr, /the wasm engine at .*not\.wasm cannot be loaded: CompileError/);
  } finally {
    cleanup();
  }
});

test("without the ABI host stub, --engine module exits 1 saying to run make module", () => {
  const { dir, cleanup } = scratch(FILES);
  try {
    const r = runCli(["replay", BUNDLE, "scenario.json", "--engine", "module"], {
      cwd: dir,
      env: { ENVOY_JS_ABI_HOST: path.join(dir, "absent_abi_host") },
    });
    assert.is(r.code, 1);
    assert.match(r.stderr, /ABI host stub is not built at .*absent_abi_host.*make module/);
    assert.is(r.stdout, "");
  } finally {
    cleanup();
  }
});

const TS_FILTER = `import { defineFilter } from "@envoy-js/sdk";
export default defineFilter<{ header: string }>({
  async onRequest(req, ctx) {
    await new Promise<void>((r) => setTimeout(() => r(), 5));
    if (!req.headers.has(ctx.config.header)) return ctx.respond(401, { body: "missing" });
    req.headers.set("x-checked", "1");
  },
});
`;

const TS_SCENARIO = JSON.stringify({
  config: { header: "x-api-key" },
  streams: [
    { request: { headers: { ":method": "GET", ":path": "/", ":authority": "h" } } },
    { request: { headers: { ":method": "GET", ":path": "/", ":authority": "h", "x-api-key": "k" } } },
  ],
});

test("build --bytecode, then replay the bundle from source and from bytecode: the same transcript", () => {
  const { dir, cleanup } = scratch({ "filter.ts": TS_FILTER, "scenario.json": TS_SCENARIO });
  try {
    const built = runCli(["build", "filter.ts", "--bytecode"], { cwd: dir, env });
    assert.is(built.code, 0, built.stderr);
    const tag = readFileSync(path.join(dir, "dist/filter.qjsbc")).subarray(0, 64).toString("latin1");
    assert.ok(tag.includes(loadWasmEngine({}).quickjsVersion), "tagged with the engine's quickjs-ng version");
    const source = runCli(["replay", "dist/filter.js", "scenario.json"], { cwd: dir, env });
    assert.is(source.code, 0, source.stderr);
    const [denied, allowed] = JSON.parse(source.stdout).streams;
    assert.is(denied.localReply.status, 401);
    assert.is(denied.localReply.body, "missing");
    assert.is(denied.upstreamRequest, null);
    assert.is(allowed.upstreamRequest.headers["x-checked"], "1");
    const bytecode = runCli(["replay", "dist/filter.js", "scenario.json", "--bytecode", "dist/filter.qjsbc"], {
      cwd: dir,
      env,
    });
    assert.is(bytecode.code, 0, bytecode.stderr);
    assert.is(bytecode.stdout, source.stdout);
  } finally {
    cleanup();
  }
});

// The dynamic module through the ABI host stub, once `make module` has built them.
const realAbiHost = abiHostPath({});
if (existsSync(realAbiHost)) {
  test("module engine: the same transcript as the wasm engine, from source and from bytecode", () => {
    const { dir, cleanup } = scratch({
      "filter.ts": TS_FILTER,
      "scenario.json": TS_SCENARIO,
      "broken.js": "export default {\n  onRequest() { return 1 +* 2; }\n};\n",
    });
    try {
      const built = runCli(["build", "filter.ts", "--bytecode"], { cwd: dir, env });
      assert.is(built.code, 0, built.stderr);
      const wasm = runCli(["replay", "dist/filter.js", "scenario.json"], { cwd: dir, env });
      assert.is(wasm.code, 0, wasm.stderr);
      for (const extra of [[], ["--bytecode", "dist/filter.qjsbc"]]) {
        const r = runCli(["replay", "dist/filter.js", "scenario.json", "--engine", "module", ...extra], {
          cwd: dir,
          env,
        });
        assert.is(r.code, 0, r.stderr);
        assert.equal(JSON.parse(r.stdout), JSON.parse(wasm.stdout));
        const [denied, allowed] = JSON.parse(r.stdout).streams;
        assert.is(denied.localReply.status, 401);
        assert.is(allowed.upstreamRequest.headers["x-checked"], "1");
      }
      for (const engine of ["module", "wasm"]) {
        const broken = runCli(["replay", "broken.js", "scenario.json", "--engine", engine], { cwd: dir, env });
        assert.is(broken.code, 1, engine);
        assert.match(broken.stderr, /replay of broken\.js failed: broken\.js:2:\d+: SyntaxError/, engine);
      }
    } finally {
      cleanup();
    }
  });
} else {
  console.log(`  (module engine test not run: ${realAbiHost} is not built; run make module)`);
}

test.run();
