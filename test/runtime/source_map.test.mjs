// The engine's source map reader (runtime/source_map.{h,cc}) and its hooks in FilterProgram:
// through a standalone C++ program (test/runtime/source_map_test.cc, built by
// samples/samples.mk) with its built-in cases and a real rollup map from `envoy-js build`; then
// through @envoy-js/sdk/testing, where the wasm engine gets `<bundle>.map` and a stream's errors
// name the TypeScript source.
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { test } from "uvu";
import * as assert from "uvu/assert";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const program = path.join(root, "build", "release", "test", "source_map_test");

test.before(() => {
  // Up to date after `make test`; builds it when this file is run on its own.
  execFileSync("make", ["-s", "source-map-test"], { cwd: root, stdio: ["ignore", "ignore", "inherit"] });
});

test("the C++ mapper's own cases pass (VLQ, lookup, rewrite, FilterProgram hooks)", () => {
  let out;
  try {
    out = execFileSync(program, { encoding: "utf8" });
  } catch (err) {
    assert.unreachable(`source_map_test failed:\n${err.stdout}`);
  }
  assert.match(out, /^source_map_test: \d+ passed, 0 failed$/m);
});

// Builds src/filter.ts (the given lines) with `envoy-js build` in a scratch directory; `use`
// gets dist/filter.js (its map beside it). The directory goes afterwards.
async function withBuiltFilter(lines, use) {
  const { buildFilter } = await import("../../sdk/cli/build.mjs");
  const dir = mkdtempSync(path.join(os.tmpdir(), "envoy-js-srcmap-"));
  try {
    const entry = path.join(dir, "src", "filter.ts");
    mkdirSync(path.dirname(entry));
    writeFileSync(entry, lines.join("\n"));
    const out = path.join(dir, "dist", "filter.js");
    await buildFilter({ entry, outFile: out });
    await use(out);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test("a rollup map from envoy-js build: the engine names the TypeScript line", async () => {
  const lines = [
    'import { defineFilter } from "@envoy-js/sdk";',
    "",
    "function routes(): Record<string, string> {",
    '  const raw = "{not json";',
    "  return JSON.parse(raw);",
    "}",
    "",
    "const table = routes();",
    "",
    'export default defineFilter({ onRequest(req) { req.headers.set("x-route", table[req.path] ?? ""); } });',
    "",
  ];
  await withBuiltFilter(lines, (out) => {
    const printed = execFileSync(program, [out, `${out}.map`], { encoding: "utf8" });
    assert.match(printed, /^filter\.js: the module threw while loading: SyntaxError/);
    assert.match(printed, /at routes \(src\/filter\.ts:5:\d+ \(filter\.js:\d+:\d+\)\)/);
    assert.match(printed, /src\/filter\.ts:8:\d+ \(filter\.js:\d+:\d+\)/);
  });
});

test("@envoy-js/sdk/testing: a stream's error names the TypeScript line (the wasm engine maps it)", async () => {
  const { request } = await import("@envoy-js/sdk/testing");
  const lines = [
    'import { defineFilter } from "@envoy-js/sdk";',
    "",
    "function check(path: string): void {",
    '  if (path === "/bad") throw new Error("bad path " + path);',
    "}",
    "",
    "export default defineFilter({",
    "  onRequest(req, ctx) {",
    "    check(req.path);",
    "  },",
    "});",
    "",
  ];
  await withBuiltFilter(lines, (out) => {
    const bad = request(out, { path: "/bad" });
    assert.is(bad.localReply?.status, 500);
    assert.match(bad.errors.join("\n"), /bad path \/bad/);
    assert.match(bad.errors.join("\n"), /at check \(src\/filter\.ts:4:\d+ \(filter\.js:\d+:\d+\)\)/);
    assert.is(request(out, { path: "/" }).upstreamRequest?.headers[":path"], "/");
    // Without the map beside it, the same bundle names only filter.js.
    rmSync(`${out}.map`);
    const unmapped = request(out, { path: "/bad" });
    assert.not.match(unmapped.errors.join("\n"), /filter\.ts/);
    assert.match(unmapped.errors.join("\n"), /filter\.js:\d+/);
  });
});

test.run();
