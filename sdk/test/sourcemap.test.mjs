// Source-mapped errors: sdk/cli/sourcemap.mjs against real rollup maps, the wasm engine
// mapping locations itself when it gets the map, and `envoy-js replay` printing TypeScript
// locations.
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";

import { test } from "uvu";
import * as assert from "uvu/assert";

import { buildFilter } from "../cli/build.mjs";
import { BundleSourceMap, loadBundleSourceMap, mapTranscript, withShownSources } from "../cli/sourcemap.mjs";
import { loadWasmEngine } from "../cli/wasm.mjs";
import { DEFAULT_ENGINES, runCli, scratch } from "./helpers.mjs";

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

test("the wasm engine maps error locations when it gets the map; the CLI's mapping leaves them alone", async () => {
  const { dir, cleanup } = scratch({ "src/filter.ts": FILTER });
  const cwd = process.cwd();
  try {
    process.chdir(dir);
    await buildFilter({ entry: "src/filter.ts", outFile: "dist/filter.js", typecheck: false });
    const source = readFileSync("dist/filter.js", "utf8");
    const sourceMap = readFileSync("dist/filter.js.map", "utf8");
    const engine = loadWasmEngine();
    const plain = engine.replay({ source, filename: "filter.js" }, SCENARIO).streams[0];
    const mapped = engine.replay({ source, filename: "filter.js", sourceMap }, SCENARIO).streams[0];
    assert.match(plain.errors[0], /^Error: too long: \/toolong\n\s+at check \(filter\.js:(\d+):(\d+)\)/);
    assert.not.match(plain.errors[0], /filter\.ts/);
    // Each bundle location becomes `source:line:col (bundle location)`, as sourcemap.mjs writes them.
    const map = loadBundleSourceMap("dist/filter.js");
    assert.ok(map);
    assert.is(mapped.errors[0], map.rewrite(plain.errors[0]));
    assert.match(mapped.errors[0], /at check \(src\/filter\.ts:6:\d+ \(filter\.js:\d+:\d+\)\)/);
    assert.match(mapped.errors[0], /at onRequest \(src\/filter\.ts:11:\d+ \(filter\.js:\d+:\d+\)\)/);
    assert.equal(mapped.logs, plain.logs);
    // The engine's worker log of the failure is mapped too; mapping it again changes nothing.
    const t = engine.replay({ source, filename: "filter.js", sourceMap }, SCENARIO);
    assert.match(t.workerLogs[0], /filter failed: Error: too long.*\n\s+at check \(src\/filter\.ts:6:/s);
    assert.equal(mapTranscript(structuredClone(t), map), t);
  } finally {
    process.chdir(cwd);
    cleanup();
  }
});

test("withShownSources names each source as BundleSourceMap shows it, so the engine and the CLI agree", async () => {
  const { dir, cleanup } = scratch({ "app/src/filter.ts": FILTER });
  const cwd = process.cwd();
  try {
    process.chdir(dir);
    await buildFilter({ entry: "app/src/filter.ts", outFile: "app/dist/filter.js", typecheck: false });
    const mapText = readFileSync("app/dist/filter.js.map", "utf8");
    const shown = JSON.parse(withShownSources(mapText, "app/dist/filter.js.map"));
    const original = JSON.parse(mapText).sources;
    const at = original.indexOf("../src/filter.ts");
    assert.ok(at >= 0, original.join());
    assert.is(shown.sources[at], path.join("app", "src", "filter.ts"), "relative to the current directory");
    // The SDK's runtime is in the bundle too; outside the current directory it is absolute.
    assert.is(shown.sources.length, original.length);
    for (const f of shown.sources) assert.ok(existsSync(f), `${f} exists from here`);
    assert.is(shown.mappings, JSON.parse(mapText).mappings);
    // The engine, given the map as it is, strips "../" (src/filter.ts: no such file from here);
    // given withShownSources's map, it writes what BundleSourceMap.rewrite writes.
    const source = readFileSync("app/dist/filter.js", "utf8");
    const engine = loadWasmEngine();
    const run = (sourceMap) =>
      engine.replay({ source, filename: "filter.js", sourceMap }, SCENARIO).streams[0].errors[0];
    const bundleOnly = run(undefined);
    assert.match(run(mapText), /at check \(src\/filter\.ts:6:/);
    assert.is(run(JSON.stringify(shown)), loadBundleSourceMap("app/dist/filter.js")?.rewrite(bundleOnly));
    assert.match(run(JSON.stringify(shown)), /at check \(app\/src\/filter\.ts:6:\d+ \(filter\.js:\d+:\d+\)\)/);

    // Outside the current directory: absolute. sourceRoot is applied, then dropped.
    process.chdir(path.join(dir, "app", "dist"));
    assert.is(
      JSON.parse(withShownSources(mapText, "filter.js.map")).sources[at],
      path.join(dir, "app", "src", "filter.ts"),
    );
    const rooted = JSON.parse(
      withShownSources(JSON.stringify({ ...JSON.parse(mapText), sourceRoot: `${dir}/lib/` }), "filter.js.map"),
    );
    assert.is(rooted.sources[at], path.join(dir, "src", "filter.ts"));
    assert.not.ok("sourceRoot" in rooted);
    // Not a map it can read: unchanged (the engine ignores it, the CLI warns).
    for (const text of ["{not json", "[]", JSON.stringify({ version: 3, sections: [] })])
      assert.is(withShownSources(text, "x.map"), text);
  } finally {
    process.chdir(cwd);
    cleanup();
  }
});

test("envoy-js replay prints errors at the TypeScript source", () => {
  const { dir, cleanup } = scratch({ "src/filter.ts": FILTER, "scenario.json": JSON.stringify(SCENARIO) });
  try {
    const env = DEFAULT_ENGINES;
    const built = runCli(["build", "src/filter.ts", "-o", "dist/filter.js"], { cwd: dir, env });
    assert.is(built.code, 0, built.stderr);
    const r = runCli(["replay", "dist/filter.js", "scenario.json"], { cwd: dir, env });
    assert.is(r.code, 0, r.stderr);
    const t = JSON.parse(r.stdout);
    const stream = t.streams[0];
    assert.is(stream.localReply.status, 500);
    assert.match(
      stream.errors[0],
      /^Error: too long: \/toolong\n\s+at check \(src\/filter\.ts:6:\d+ \(filter\.js:\d+:\d+\)\)/,
    );
    assert.match(stream.errors[0], /at onRequest \(src\/filter\.ts:11:\d+ \(filter\.js:\d+:\d+\)\)/);
    assert.match(t.workerLogs[0], /at check \(src\/filter\.ts:6:\d+ \(filter\.js:\d+:\d+\)\)/);
    assert.not.match(r.stdout, /\(filter\.js:\d+:\d+\)\)\)/, "nothing mapped twice");
  } finally {
    cleanup();
  }
});

test.run();
