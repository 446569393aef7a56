// `envoy-js build`, run as a child process on filters written to scratch
// directories.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

import { parseAst } from "rollup/parseAst";
import { test } from "uvu";
import * as assert from "uvu/assert";

import { loadWasmEngine } from "../cli/wasm.mjs";
import { DEFAULT_ENGINES, REPO_ROOT, absentWasm, runCli, scratch } from "./helpers.mjs";

const FILTER = `import { defineFilter } from "@envoy-js/sdk";
import { greet } from "./greet";
import { shout } from "esm-dep";
import pad from "cjs-dep";

export default defineFilter<{ header: string }>({
  metrics: { rejected: "counter" },
  onRequest(req, ctx) {
    if (!req.headers.has(ctx.config.header)) {
      ctx.metrics.rejected.inc();
      return ctx.respond(401, { body: pad(shout(greet(ctx.config.header))) });
    }
  },
});
`;

/** A filter with a local module, an ES module package and a CommonJS package. */
const PROJECT = {
  "src/filter.ts": FILTER,
  "src/greet.ts": `export function greet(name: string): string { return "missing " + name; }\n`,
  "node_modules/esm-dep/package.json": JSON.stringify({
    name: "esm-dep",
    type: "module",
    exports: { ".": { types: "./index.d.ts", default: "./index.js" } },
  }),
  "node_modules/esm-dep/index.js": `export function shout(s) { return s.toUpperCase(); }\n`,
  "node_modules/esm-dep/index.d.ts": `export declare function shout(s: string): string;\n`,
  "node_modules/cjs-dep/package.json": JSON.stringify({ name: "cjs-dep", main: "index.js", types: "index.d.ts" }),
  "node_modules/cjs-dep/index.js": `module.exports = function pad(s) { return "[" + s + "]"; };\n`,
  "node_modules/cjs-dep/index.d.ts": `declare function pad(s: string): string;\nexport = pad;\n`,
};

/** @param {string} source */
function topLevelNodeTypes(source) {
  return parseAst(source).body.map((node) => node.type);
}

test("bundles a filter and its dependencies into one ES module with a source map", async () => {
  const { dir, cleanup } = scratch(PROJECT);
  try {
    const r = runCli(["build", "src/filter.ts", "-o", "out/filter.js"], { cwd: dir });
    assert.is(r.code, 0, r.stderr);
    assert.match(r.stdout, /out\/filter\.js\s+\d+(\.\d)? (B|KiB)/);
    assert.match(r.stdout, /\d+ ms/);

    const out = path.join(dir, "out/filter.js");
    const source = readFileSync(out, "utf8");
    const types = topLevelNodeTypes(source);
    assert.not.ok(types.includes("ImportDeclaration"), "no import left");
    assert.not.match(source, /\brequire\(/);
    assert.not.match(source, /\bimport\(/);
    const exported = parseAst(source)
      .body.filter((n) => n.type === "ExportNamedDeclaration" || n.type === "ExportDefaultDeclaration")
      .flatMap((n) => (n.type === "ExportDefaultDeclaration" ? ["default"] : n.specifiers.map((s) => s.exported.name)));
    assert.equal(exported, ["default"], "exactly one export: the default one");
    assert.match(source, /\/\/# sourceMappingURL=filter\.js\.map\s*$/);

    const map = JSON.parse(readFileSync(`${out}.map`, "utf8"));
    assert.is(map.file, "filter.js");
    assert.ok(map.sources.includes("../src/filter.ts"), JSON.stringify(map.sources));
    assert.ok(map.sources.includes("../src/greet.ts"), JSON.stringify(map.sources));
    assert.ok(map.mappings.length > 0);

    // The bundle runs: the dependencies were inlined and work together.
    const mod = await import(pathToFileURL(out).href);
    const replies = [];
    const ctx = {
      config: { header: "x-api-key" },
      metrics: {
        rejected: {
          n: 0,
          inc() {
            this.n++;
          },
        },
      },
      respond(status, init) {
        replies.push({ status, ...init });
        return "REPLY";
      },
    };
    const req = { headers: { has: () => false } };
    assert.is(mod.default.onRequest(req, ctx), "REPLY");
    assert.equal(replies, [{ status: 401, body: "[MISSING X-API-KEY]" }]);
    assert.is(ctx.metrics.rejected.n, 1);
    assert.equal(mod.default.metrics, { rejected: "counter" });
  } finally {
    cleanup();
  }
});

test("writes dist/<entry name>.js by default", () => {
  const { dir, cleanup } = scratch(PROJECT);
  try {
    const r = runCli(["build", "src/filter.ts"], { cwd: dir });
    assert.is(r.code, 0, r.stderr);
    assert.ok(existsSync(path.join(dir, "dist/filter.js")));
    assert.ok(existsSync(path.join(dir, "dist/filter.js.map")));
    assert.not.ok(existsSync(path.join(dir, "dist/filter.qjsbc")), "bytecode only on request");
  } finally {
    cleanup();
  }
});

test("a syntax error fails the build naming file:line:col", () => {
  const { dir, cleanup } = scratch({
    "bad.ts": `import { defineFilter } from "@envoy-js/sdk";\n\nconst x = ;\nexport default defineFilter({});\n`,
  });
  try {
    for (const extra of [[], ["--no-typecheck"]]) {
      const r = runCli(["build", "bad.ts", ...extra], { cwd: dir });
      assert.is(r.code, 1);
      assert.match(r.stderr, /bad\.ts:3:11 - error TS1109: Expression expected/);
      assert.not.ok(existsSync(path.join(dir, "dist/bad.js")), "nothing written");
    }
  } finally {
    cleanup();
  }
});

test("plain JavaScript builds, and its syntax errors are reported the same way", () => {
  const { dir, cleanup } = scratch({
    "entry.js": `import { defineFilter } from "@envoy-js/sdk";\nimport { tag } from "./lib.js";\nexport default defineFilter({ onResponse(res) { res.headers.set("x-tag", tag()); } });\n`,
    "lib.js": `export function tag() {\n  return "js";\n}\n`,
    "broken.js": `export function tag() {\n  return "js" +;\n}\n`,
    "uses-broken.ts": `import { tag } from "./broken.js";\nexport default { onRequest() { return tag(); } };\n`,
  });
  try {
    const ok = runCli(["build", "entry.js"], { cwd: dir });
    assert.is(ok.code, 0, ok.stderr);
    assert.match(readFileSync(path.join(dir, "dist/entry.js"), "utf8"), /"x-tag", tag\(\)/);
    for (const extra of [[], ["--no-typecheck"]]) {
      const bad = runCli(["build", "uses-broken.ts", ...extra], { cwd: dir });
      assert.is(bad.code, 1);
      assert.match(bad.stderr, /broken\.js:2:16 - error TS1109/);
    }
  } finally {
    cleanup();
  }
});

const TYPE_ERRORS = `import { defineFilter } from "@envoy-js/sdk";

export default defineFilter({
  metrics: { hits: "counter" },
  onRequest(req, ctx) {
    const n: number = req.path;
    ctx.metrics.misses.inc();
  },
});
`;

test("type errors fail the build naming file and line, every one of them", () => {
  const { dir, cleanup } = scratch({ "src/typed.ts": TYPE_ERRORS });
  try {
    const r = runCli(["build", path.join(dir, "src/typed.ts"), "-o", path.join(dir, "dist/typed.js")]);
    assert.is(r.code, 1);
    // Outside the current directory the path is absolute.
    const file = path.join(dir, "src/typed.ts");
    assert.ok(r.stderr.includes(`${file}:6:11 - error TS2322:`), r.stderr);
    assert.ok(r.stderr.includes(`${file}:7:17 - error TS2339: Property 'misses' does not exist`), r.stderr);
    assert.match(r.stderr, /2 errors/);
    assert.not.ok(existsSync(path.join(dir, "dist/typed.js")));
  } finally {
    cleanup();
  }
});

test("--no-typecheck lets type errors through", () => {
  const { dir, cleanup } = scratch({ "src/typed.ts": TYPE_ERRORS });
  try {
    const r = runCli(["build", "src/typed.ts", "--no-typecheck"], { cwd: dir });
    assert.is(r.code, 0, r.stderr);
    const source = readFileSync(path.join(dir, "dist/typed.js"), "utf8");
    assert.match(source, /ctx\.metrics\.misses\.inc\(\)/);
  } finally {
    cleanup();
  }
});

test("an import that cannot be bundled fails the build", () => {
  const { dir, cleanup } = scratch({
    "f.ts": `import { readFileSync } from "node:fs";\nexport default { onRequest() { readFileSync("/x"); } };\n`,
  });
  try {
    const r = runCli(["build", "f.ts", "--no-typecheck"], { cwd: dir });
    assert.is(r.code, 1);
    assert.match(r.stderr, /cannot bundle 'node:fs' \(imported by f\.ts\)/);
    const checked = runCli(["build", "f.ts"], { cwd: dir });
    assert.is(checked.code, 1);
    assert.match(checked.stderr, /f\.ts:1:30 - error TS2591/, "no Node.js types in the engine");
  } finally {
    cleanup();
  }
});

test("an entry without a default export fails the build", () => {
  const { dir, cleanup } = scratch({ "f.ts": `export const onRequest = () => {};\n` });
  try {
    const r = runCli(["build", "f.ts"], { cwd: dir });
    assert.is(r.code, 1);
    assert.match(r.stderr, /f\.ts has no default export/);
  } finally {
    cleanup();
  }
});

test("--bytecode without the wasm engine fails before bundling, saying where it looked", () => {
  const { dir, cleanup } = scratch(PROJECT);
  try {
    const { file, env } = absentWasm(dir);
    const r = runCli(["build", "src/filter.ts", "--bytecode"], { cwd: dir, env });
    assert.is(r.code, 1);
    assert.ok(r.stderr.includes(`envoy-js build: the wasm engine at ${file} cannot be loaded: not found`), r.stderr);
    assert.not.ok(existsSync(path.join(dir, "dist/filter.js")), "nothing written");
    // Without --bytecode the engine is not needed.
    const plain = runCli(["build", "src/filter.ts", "--no-typecheck"], { cwd: dir, env });
    assert.is(plain.code, 0, plain.stderr);
  } finally {
    cleanup();
  }
});

test("--bytecode writes the wasm engine's bytecode of the bundle, which the engine runs", () => {
  const { dir, cleanup } = scratch(PROJECT);
  try {
    const r = runCli(["build", "src/filter.ts", "-o", "dist/filter.js", "--bytecode"], {
      cwd: dir,
      env: DEFAULT_ENGINES,
    });
    assert.is(r.code, 0, r.stderr);
    assert.match(r.stdout, /dist\/filter\.qjsbc/);
    const engine = loadWasmEngine({});
    const source = readFileSync(path.join(dir, "dist/filter.js"), "utf8");
    const bytecode = readFileSync(path.join(dir, "dist/filter.qjsbc"));
    // The bundle compiled under its base name, tagged with the quickjs-ng version inside.
    assert.ok(bytecode.equals(engine.compileBytecode(source, "filter.js")), 'compileBytecode(bundle, "filter.js")');
    assert.ok(
      bytecode.subarray(0, 64).toString("latin1").includes(`quickjs-ng ${engine.quickjsVersion}`),
      bytecode.subarray(0, 64).toString("latin1"),
    );
    // Loaded instead of an empty source, it is the filter: the dependencies are in it.
    const t = engine.replay(
      { source: "", filename: "filter.js", bytecode },
      {
        config: { header: "x-api-key" },
        streams: [{ request: { headers: { ":method": "GET", ":path": "/", ":authority": "h" } } }],
      },
    );
    assert.equal(t.streams[0].localReply?.body, "[MISSING X-API-KEY]");
    assert.equal(t.metrics, { rejected: 1 });
  } finally {
    cleanup();
  }
});

test("usage errors exit 2; help is per command", () => {
  const none = runCli([]);
  assert.is(none.code, 2);
  assert.match(none.stderr, /Usage: envoy-js <command>/);

  const help = runCli(["--help"]);
  assert.is(help.code, 0);
  assert.match(help.stdout, /build <entry\.ts>/);
  assert.match(help.stdout, /replay <bundle\.js> <scenario\.json>/);
  assert.match(help.stdout, /init <dir>/);
  assert.match(help.stdout, /help \[command\]/);
  // Every command listed has its own help, through `<command> --help` and `help <command>`.
  const commands = [...help.stdout.matchAll(/^ {2}([a-z]+) /gm)].map((m) => m[1]);
  assert.equal(commands, ["init", "build", "replay", "run", "dev", "help"]);
  for (const command of commands) {
    const viaHelp = runCli(["help", command]);
    assert.is(viaHelp.code, 0, command);
    assert.match(viaHelp.stdout, new RegExp(`^Usage: envoy-js ${command}`), command);
    const viaFlag = runCli([command, "--help"]);
    assert.is(viaFlag.code, 0, command);
    assert.is(viaFlag.stdout, viaHelp.stdout, command);
  }

  for (const args of [
    ["build", "--help"],
    ["help", "build"],
  ]) {
    const r = runCli(args);
    assert.is(r.code, 0);
    assert.match(r.stdout, /--no-typecheck/);
    assert.match(r.stdout, /--bytecode/);
  }
  const replayHelp = runCli(["replay", "-h"]);
  assert.is(replayHelp.code, 0);
  assert.match(replayHelp.stdout, /--engine <name>/);

  const missing = runCli(["build"]);
  assert.is(missing.code, 2);
  assert.match(missing.stderr, /missing <entry\.ts>/);

  const unknownOption = runCli(["build", "f.ts", "--minify"]);
  assert.is(unknownOption.code, 2);
  assert.match(unknownOption.stderr, /'--minify'/);

  const unknownCommand = runCli(["deploy"]);
  assert.is(unknownCommand.code, 2);
  assert.match(unknownCommand.stderr, /unknown command 'deploy'/);
});

test("rollup -c with the repository config builds the same way", () => {
  const { dir, cleanup } = scratch(PROJECT);
  try {
    const rollupBin = path.join(REPO_ROOT, "node_modules/rollup/dist/bin/rollup");
    const out = path.join(dir, "rollup-out/filter.js");
    const r = spawnSync(process.execPath, [rollupBin, "-c", "--silent"], {
      cwd: REPO_ROOT,
      env: { ...process.env, ENVOY_JS_ENTRY: path.join(dir, "src/filter.ts"), ENVOY_JS_OUT: out },
      encoding: "utf8",
    });
    assert.is(r.status, 0, r.stderr);
    const cli = runCli(["build", "src/filter.ts", "-o", "cli-out/filter.js"], { cwd: dir });
    assert.is(cli.code, 0, cli.stderr);
    assert.is(readFileSync(out, "utf8"), readFileSync(path.join(dir, "cli-out/filter.js"), "utf8"));
  } finally {
    cleanup();
  }
});

test.run();
