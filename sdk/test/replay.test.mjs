// `envoy-js replay`, run as a child process. The native engine is stood in
// for by test/fixtures/fake-addon.cjs (the CLI's side of the contract); the
// real addon is exercised too when it has been built (`make native`).
import { existsSync, writeFileSync } from "node:fs";
import path from "node:path";

import { test } from "uvu";
import * as assert from "uvu/assert";

import { abiHostPath } from "../cli/module.mjs";
import { nativeAddonPath } from "../cli/native.mjs";
import { FAKE_ADDON, runCli, scratch } from "./helpers.mjs";

const SCENARIO = {
  config: { header: "x-api-key" },
  streams: [
    {
      request: { headers: { ":method": "GET", ":path": "/a", ":authority": "h" } },
      upstream: { headers: { ":status": "200" }, body: ["ok"] },
    },
  ],
};

const FILES = {
  "dist/filter.js": "export default { onRequest() {} };\n",
  "dist/filter.js.map": JSON.stringify({ version: 3, file: "filter.js", sources: ["../src/filter.ts"], mappings: "" }),
  "dist/filter.qjsbc": "BYTES",
  "scenario.json": JSON.stringify(SCENARIO),
  "broken.json": '{ "streams": [ { "request": ',
  "list.json": "[]",
};

const fake = { ENVOY_JS_NATIVE_ADDON: FAKE_ADDON };

test("an unknown engine exits 2 and lists the valid ones", () => {
  const { dir, cleanup } = scratch(FILES);
  try {
    const r = runCli(["replay", "dist/filter.js", "scenario.json", "--engine", "v8"], { cwd: dir, env: fake });
    assert.is(r.code, 2);
    assert.match(r.stderr, /unknown engine 'v8': valid engines are native, stub, module/);
    assert.is(r.stdout, "");
  } finally {
    cleanup();
  }
});

test("--engine stub runs the pure TypeScript host stub and prints the transcript", () => {
  const { dir, cleanup } = scratch({
    ...FILES,
    "dist/filter.js": 'export default { onRequest(req, ctx) { if (!req.headers.has(ctx.config.header)) return ctx.respond(401, { body: "missing" }); } };\n',
  });
  try {
    // The fake addon must not be touched: the stub needs no native code.
    const r = runCli(["replay", "dist/filter.js", "scenario.json", "--engine", "stub"], {
      cwd: dir,
      env: { ENVOY_JS_NATIVE_ADDON: path.join(dir, "absent.node") },
    });
    assert.is(r.code, 0, r.stderr);
    assert.is(r.stdout, `${JSON.stringify(JSON.parse(r.stdout), null, 2)}\n`, "pretty-printed");
    const t = JSON.parse(r.stdout);
    // The native addon's keys, in its order.
    assert.equal(Object.keys(t), ["streams", "counters", "metrics", "workerLogs"]);
    assert.equal(Object.keys(t.streams[0]), [
      "upstreamRequest", "localReply", "downstreamResponse", "logs", "errors", "events", "resetByFilter",
      "metadata", "filterState", "routeCacheClears", "callouts",
    ]);
    assert.equal(t.streams[0].localReply, { status: 401, body: "missing", headers: { "content-type": "text/plain" }, details: "envoy_js_respond" });
    assert.is(t.streams[0].upstreamRequest, null);
  } finally {
    cleanup();
  }
});

test("--engine stub: a filter that cannot load exits 1 with the engine's message; --bytecode is not for the stub", () => {
  const { dir, cleanup } = scratch({ ...FILES, "dist/bad.js": "export default { onRequets() {} };\n" });
  try {
    const r = runCli(["replay", "dist/bad.js", "scenario.json", "--engine", "stub"], { cwd: dir });
    assert.is(r.code, 1);
    assert.match(r.stderr, /replay of dist\/bad\.js failed: bad\.js: unknown hook `onRequets`/);
    const bc = runCli(["replay", "dist/filter.js", "scenario.json", "--engine", "stub", "--bytecode", "dist/filter.qjsbc"], { cwd: dir });
    assert.is(bc.code, 2);
    assert.match(bc.stderr, /--bytecode needs --engine native/);
  } finally {
    cleanup();
  }
});

test("without the ABI host stub, --engine module exits 1 saying to run make module", () => {
  const { dir, cleanup } = scratch(FILES);
  try {
    const r = runCli(["replay", "dist/filter.js", "scenario.json", "--engine", "module"], {
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

test("an invalid scenario exits 1 with the reason", () => {
  const { dir, cleanup } = scratch(FILES);
  try {
    const broken = runCli(["replay", "dist/filter.js", "broken.json"], { cwd: dir, env: fake });
    assert.is(broken.code, 1);
    assert.match(broken.stderr, /scenario broken\.json is not valid JSON/);
    assert.is(broken.stdout, "");

    const list = runCli(["replay", "dist/filter.js", "list.json"], { cwd: dir, env: fake });
    assert.is(list.code, 1);
    assert.match(list.stderr, /must be a JSON object/);

    const absent = runCli(["replay", "dist/filter.js", "nope.json"], { cwd: dir, env: fake });
    assert.is(absent.code, 1);
    assert.match(absent.stderr, /cannot read scenario nope\.json: not found/);
  } finally {
    cleanup();
  }
});

test("a missing bundle exits 1", () => {
  const { dir, cleanup } = scratch(FILES);
  try {
    const r = runCli(["replay", "dist/other.js", "scenario.json"], { cwd: dir, env: fake });
    assert.is(r.code, 1);
    assert.match(r.stderr, /cannot read bundle dist\/other\.js: not found/);
  } finally {
    cleanup();
  }
});

test("without the native addon, exits 1 saying to run make native", () => {
  const { dir, cleanup } = scratch(FILES);
  try {
    const r = runCli(["replay", "dist/filter.js", "scenario.json"], {
      cwd: dir,
      env: { ENVOY_JS_NATIVE_ADDON: path.join(dir, "absent.node") },
    });
    assert.is(r.code, 1);
    assert.match(r.stderr, /native addon not found at .*absent\.node.*make native/);
  } finally {
    cleanup();
  }
});

test("passes bundle, map and scenario to the addon and prints its transcript", () => {
  const { dir, cleanup } = scratch(FILES);
  try {
    const r = runCli(["replay", "dist/filter.js", "scenario.json"], { cwd: dir, env: fake });
    assert.is(r.code, 0, r.stderr);
    const transcript = JSON.parse(r.stdout);
    assert.is(r.stdout, `${JSON.stringify(transcript, null, 2)}\n`, "pretty-printed");
    assert.is(transcript.streams.length, 1);
    assert.equal(transcript.received, {
      keys: ["filename", "source", "sourceMap"],
      filename: "filter.js",
      sourceIsString: true,
      sourceLength: FILES["dist/filter.js"].length,
      sourceMapSources: ["../src/filter.ts"],
      bytecode: null,
      config: { header: "x-api-key" },
    });
  } finally {
    cleanup();
  }
});

test("--bytecode passes the bytecode; no map file means no sourceMap key", () => {
  const { dir, cleanup } = scratch(FILES);
  try {
    writeFileSync(path.join(dir, "plain.js"), "export default {};\n");
    const r = runCli(["replay", "plain.js", "scenario.json", "--bytecode", "dist/filter.qjsbc"], {
      cwd: dir,
      env: fake,
    });
    assert.is(r.code, 0, r.stderr);
    const { received } = JSON.parse(r.stdout);
    assert.equal(received.keys, ["bytecode", "filename", "source"]);
    assert.is(received.bytecode, "BYTES");
    assert.is(received.filename, "plain.js");
  } finally {
    cleanup();
  }
});

test("when the addon cannot load the filter, exits 1 with its message", () => {
  const { dir, cleanup } = scratch({
    ...FILES,
    "throws.json": JSON.stringify({ streams: [], fakeThrow: "SyntaxError: filter.js:3:7 unexpected token" }),
  });
  try {
    const r = runCli(["replay", "dist/filter.js", "throws.json"], { cwd: dir, env: fake });
    assert.is(r.code, 1);
    assert.match(r.stderr, /replay of dist\/filter\.js failed: SyntaxError: filter\.js:3:7 unexpected token/);
    assert.is(r.stdout, "");
  } finally {
    cleanup();
  }
});

// The real engine, once `make native` has built it.
const realAddon = nativeAddonPath({});
if (existsSync(realAddon)) {
  test("native engine: build --bytecode, then replay a stream through QuickJS", () => {
    const { dir, cleanup } = scratch({
      "filter.ts": `import { defineFilter } from "@envoy-js/sdk";
export default defineFilter<{ header: string }>({
  onRequest(req, ctx) {
    if (!req.headers.has(ctx.config.header)) return ctx.respond(401, { body: "missing" });
  },
});
`,
      "scenario.json": JSON.stringify({
        config: { header: "x-api-key" },
        streams: [{ request: { headers: { ":method": "GET", ":path": "/", ":authority": "h" } } }],
      }),
    });
    try {
      const env = { ENVOY_JS_NATIVE_ADDON: undefined };
      const built = runCli(["build", "filter.ts", "--bytecode"], { cwd: dir, env });
      assert.is(built.code, 0, built.stderr);
      const stub = runCli(["replay", "dist/filter.js", "scenario.json", "--engine", "stub"], { cwd: dir, env });
      assert.is(stub.code, 0, stub.stderr);
      for (const extra of [[], ["--bytecode", "dist/filter.qjsbc"]]) {
        const r = runCli(["replay", "dist/filter.js", "scenario.json", ...extra], { cwd: dir, env });
        assert.is(r.code, 0, r.stderr);
        const transcript = JSON.parse(r.stdout);
        assert.is(transcript.streams.length, 1);
        assert.is(transcript.streams[0].localReply.status, 401);
        assert.is(transcript.streams[0].localReply.body, "missing");
        assert.is(transcript.streams[0].upstreamRequest, null);
        assert.is(r.stdout, stub.stdout, "the stub prints the same transcript");
      }
    } finally {
      cleanup();
    }
  });
} else {
  console.log(`  (native engine test not run: ${realAddon} is not built; run make native)`);
}

// The dynamic module through the ABI host stub, once `make module` has built them.
const realAbiHost = abiHostPath({});
if (existsSync(realAbiHost) && existsSync(realAddon)) {
  test("module engine: the same transcript as the native engine, from source and from bytecode", () => {
    const { dir, cleanup } = scratch({
      "filter.ts": `import { defineFilter } from "@envoy-js/sdk";
export default defineFilter<{ header: string }>({
  async onRequest(req, ctx) {
    await new Promise<void>((r) => setTimeout(() => r(), 5));
    if (!req.headers.has(ctx.config.header)) return ctx.respond(401, { body: "missing" });
    req.headers.set("x-checked", "1");
  },
});
`,
      "scenario.json": JSON.stringify({
        config: { header: "x-api-key" },
        streams: [
          { request: { headers: { ":method": "GET", ":path": "/", ":authority": "h" } } },
          { request: { headers: { ":method": "GET", ":path": "/", ":authority": "h", "x-api-key": "k" } } },
        ],
      }),
      "broken.js": "export default {\n  onRequest() { return 1 +* 2; }\n};\n",
    });
    try {
      const env = { ENVOY_JS_NATIVE_ADDON: undefined, ENVOY_JS_ABI_HOST: undefined, ENVOY_JS_MODULE: undefined };
      const built = runCli(["build", "filter.ts", "--bytecode"], { cwd: dir, env });
      assert.is(built.code, 0, built.stderr);
      const native = runCli(["replay", "dist/filter.js", "scenario.json"], { cwd: dir, env });
      assert.is(native.code, 0, native.stderr);
      for (const extra of [[], ["--bytecode", "dist/filter.qjsbc"]]) {
        const r = runCli(["replay", "dist/filter.js", "scenario.json", "--engine", "module", ...extra], { cwd: dir, env });
        assert.is(r.code, 0, r.stderr);
        assert.equal(JSON.parse(r.stdout), JSON.parse(native.stdout));
        const [denied, allowed] = JSON.parse(r.stdout).streams;
        assert.is(denied.localReply.status, 401);
        assert.is(allowed.upstreamRequest.headers["x-checked"], "1");
      }
      const broken = runCli(["replay", "broken.js", "scenario.json", "--engine", "module"], { cwd: dir, env });
      assert.is(broken.code, 1);
      assert.match(broken.stderr, /replay of broken\.js failed: broken\.js:2:\d+: SyntaxError/);
    } finally {
      cleanup();
    }
  });
} else {
  console.log(`  (module engine test not run: ${realAbiHost} is not built; run make module)`);
}

test.run();
