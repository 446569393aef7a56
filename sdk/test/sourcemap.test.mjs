// Source-mapped errors on the JS side: sdk/cli/sourcemap.mjs against real
// rollup maps, and `envoy-js replay` printing TypeScript locations.
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";

import { test } from "uvu";
import * as assert from "uvu/assert";

import { buildFilter } from "../cli/build.mjs";
import { nativeAddonPath } from "../cli/native.mjs";
import { BundleSourceMap, loadBundleSourceMap, mapTranscript } from "../cli/sourcemap.mjs";
import { runCli, scratch } from "./helpers.mjs";

// Line 6 throws; line 11 calls it. Columns are 1-based, as tsc prints them.
const FILTER = `import { defineFilter } from "@envoy-js/sdk";

function check(path: string): void {
  const limit: number = 3;
  if (path.length > limit) {
    throw new Error("too long: " + path);
  }
}

export default defineFilter({
  onRequest(req) { check(req.path); },
});
`;

const SCENARIO = {
  streams: [{ request: { headers: { ":method": "GET", ":path": "/toolong", ":authority": "h" } } }],
};

test("maps bundle positions of a real build to the TypeScript lines", async () => {
  const { dir, cleanup } = scratch({ "src/filter.ts": FILTER });
  const cwd = process.cwd();
  try {
    process.chdir(dir);
    await buildFilter({ entry: "src/filter.ts", outFile: "dist/filter.js", typecheck: true });
    const map = loadBundleSourceMap("dist/filter.js");
    assert.ok(map);
    // Find the generated line of the throw and map its start.
    const lines = readFileSync("dist/filter.js", "utf8").split("\n");
    const genLine = lines.findIndex((l) => l.includes("throw new Error")) + 1;
    const genCol = lines[genLine - 1].indexOf("throw") + 1;
    assert.equal(map.lookup(genLine, genCol), { source: path.join("src", "filter.ts"), line: 6, column: 5 });
    // Columns before the line's first segment (its indentation) use that segment.
    assert.is(map.lookup(genLine, 1)?.line, 6);
    assert.is(map.lookup(10_000, 1), null);
    const text = `Error: x\n    at check (filter.js:${genLine}:${genCol})`;
    assert.is(map.rewrite(text), `Error: x\n    at check (src/filter.ts:6:5 (filter.js:${genLine}:${genCol}))`);
    assert.is(map.rewrite(map.rewrite(text)), map.rewrite(text), "mapped text is not mapped twice");
    assert.is(map.rewrite("myfilter.js:1:1 and filter.js:99999:1"), "myfilter.js:1:1 and filter.js:99999:1");
  } finally {
    process.chdir(cwd);
    cleanup();
  }
});

test("mapTranscript rewrites errors, logs and worker logs, nothing else", () => {
  const map = new BundleSourceMap(
    JSON.stringify({ version: 3, sources: ["../src/a.ts"], names: [], mappings: "AAAA;AACA,IAAI" }),
    { bundleFilename: "a.js", mapFile: "/x/dist/a.js.map" },
  );
  const t = mapTranscript(
    {
      streams: [{ errors: ["E at a.js:2:5"], logs: ["[info] a.js:1:1"], upstreamRequest: { body: "a.js:1:1" } }],
      workerLogs: ["w a.js:2:1"],
    },
    map,
  );
  assert.equal(t.streams[0].errors, ["E at /x/src/a.ts:2:5 (a.js:2:5)"]);
  assert.equal(t.streams[0].logs, ["[info] /x/src/a.ts:1:1 (a.js:1:1)"]);
  assert.equal(t.streams[0].upstreamRequest, { body: "a.js:1:1" });
  assert.equal(t.workerLogs, ["w /x/src/a.ts:2:1 (a.js:2:1)"]);
  assert.throws(() => new BundleSourceMap("{not json", { bundleFilename: "a.js", mapFile: "a.js.map" }));
});

if (existsSync(nativeAddonPath({}))) {
  test("envoy-js replay prints errors at the TypeScript source", () => {
    const { dir, cleanup } = scratch({ "src/filter.ts": FILTER, "scenario.json": JSON.stringify(SCENARIO) });
    try {
      const env = { ENVOY_JS_NATIVE_ADDON: undefined };
      const built = runCli(["build", "src/filter.ts", "-o", "dist/filter.js"], { cwd: dir, env });
      assert.is(built.code, 0, built.stderr);
      const r = runCli(["replay", "dist/filter.js", "scenario.json"], { cwd: dir, env });
      assert.is(r.code, 0, r.stderr);
      const stream = JSON.parse(r.stdout).streams[0];
      assert.is(stream.localReply.status, 500);
      assert.match(stream.errors[0], /^Error: too long: \/toolong\n\s+at check \(src\/filter\.ts:6:\d+ \(filter\.js:\d+:\d+\)\)/);
      assert.match(stream.errors[0], /at onRequest \(src\/filter\.ts:11:\d+ \(filter\.js:\d+:\d+\)\)/);
    } finally {
      cleanup();
    }
  });
}

test.run();
