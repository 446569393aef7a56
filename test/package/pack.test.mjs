// @envoy-js/sdk as users get it: `npm pack`, the tarball installed into an empty folder,
// `envoy-js init`, then the new project's `npm install` and `npm test`, with a PATH that has
// sh, node and npm and nothing else (no C/C++ compiler, no make, no python): the package must
// carry its engine (the .wasm) and build nothing on install.
import { execFileSync, spawnSync } from "node:child_process";
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

import { test } from "uvu";
import * as assert from "uvu/assert";

import { runScenario } from "@envoy-js/sdk/testing";

import { buildFilter } from "../../sdk/cli/build.mjs";

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const SDK = path.join(REPO, "sdk");
const WASM_GZIP_LIMIT = 2 * 1024 * 1024;

const work = mkdtempSync(path.join(os.tmpdir(), "envoy-js-pack-"));
test.after(() => rmSync(work, { recursive: true, force: true }));

// A bin folder with sh, node, npm and npx only: what a machine without build tools has.
function bareBin() {
  const bin = path.join(work, "bin");
  mkdirSync(bin, { recursive: true });
  const nodeDir = path.dirname(process.execPath);
  for (const tool of ["node", "npm", "npx"]) symlinkSync(path.join(nodeDir, tool), path.join(bin, tool));
  symlinkSync("/bin/sh", path.join(bin, "sh"));
  return bin;
}

function run(cmd, args, cwd, env) {
  const r = spawnSync(cmd, args, { cwd, env, encoding: "utf8", timeout: 300_000 });
  if (r.error) throw r.error;
  return { code: r.status, out: `${r.stdout}\n${r.stderr}` };
}

let tarball;
/** The user's folder with the packed SDK installed, and the environment it was installed with. */
let installed;

test("npm pack: the tarball carries the wasm engine and nothing that compiles on install", () => {
  const packDir = path.join(work, "pack");
  mkdirSync(packDir);
  const out = execFileSync("npm", ["pack", "--json", "--pack-destination", packDir], { cwd: SDK, encoding: "utf8" });
  const [info] = JSON.parse(out.slice(out.indexOf("[")));
  tarball = path.join(packDir, info.filename);
  const files = info.files.map((f) => f.path);
  assert.ok(files.includes("wasm/envoy-js.wasm"), "the .wasm is in the package");
  assert.ok(files.includes("dist/testing/index.js"));
  assert.ok(files.includes("cli/envoy-js.mjs"));
  assert.not.ok(
    files.some((f) => f.endsWith(".node") || f.endsWith("binding.gyp") || f.endsWith(".cc")),
    files.join(" "),
  );
  const pkg = JSON.parse(readFileSync(path.join(SDK, "package.json"), "utf8"));
  assert.not.ok(pkg.gypfile, "no gypfile");
  for (const script of ["preinstall", "install", "postinstall"])
    assert.not.ok(pkg.scripts?.[script], `no ${script} script`);
  const wasm = readFileSync(path.join(SDK, "wasm", "envoy-js.wasm"));
  const gz = gzipSync(wasm, { level: 9 }).length;
  console.log(`  envoy-js.wasm: ${wasm.length} bytes, ${gz} gzipped; tarball ${statSync(tarball).size} bytes`);
  assert.ok(gz <= WASM_GZIP_LIMIT, `the .wasm is ${gz} bytes gzipped, over ${WASM_GZIP_LIMIT}`);
});

test("installed into an empty folder, `envoy-js init` makes a project whose npm test passes without a compiler", () => {
  assert.ok(tarball, "packed");
  const env = {
    HOME: process.env.HOME ?? work,
    PATH: bareBin(),
    npm_config_cache: process.env.npm_config_cache ?? path.join(os.homedir(), ".npm"),
  };
  for (const tool of ["cc", "gcc", "g++", "clang", "make", "python3"]) {
    assert.is(
      run("/bin/sh", ["-c", `command -v ${tool}`], work, env).code !== 0,
      true,
      `${tool} must not be on the test's PATH`,
    );
  }
  const user = path.join(work, "user");
  mkdirSync(user);
  writeFileSync(path.join(user, "package.json"), JSON.stringify({ name: "user", private: true }));
  const npmFlags = ["--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error"];
  let r = run("npm", ["install", ...npmFlags, tarball], user, env);
  assert.is(r.code, 0, r.out);
  installed = { user, env };
  r = run("npx", ["envoy-js", "init", "my-filter"], user, env);
  assert.is(r.code, 0, r.out);
  const project = path.join(user, "my-filter");
  r = run("npm", ["install", ...npmFlags], project, env);
  assert.is(r.code, 0, r.out);
  r = run("npm", ["test"], project, env);
  assert.is(r.code, 0, r.out);
  assert.match(r.out, /Passed:\s+3/);
  // The project's own replay runs on the same engine.
  r = run("npm", ["run", "--silent", "replay"], project, env);
  assert.is(r.code, 0, r.out);
  const transcript = JSON.parse(r.out.slice(r.out.indexOf("{"), r.out.lastIndexOf("}") + 1));
  assert.ok(transcript.streams.length > 0);
});

// Issue 16: "ports kept outside the repository check the same". One port of each ecosystem
// (test/peers/), copied into the user's folder, built and replayed with the installed CLI; and
// three that use the later APIs (chunk.hold(); ctx.property() with the SDK's PropertyName and
// Context types; a metric with labels typed through Context's metrics parameter), so the
// packed SDK's types and engine are checked to have them.
const OUTSIDE = [
  "dm-rust-regex-waf",
  "pw-http-auth-random",
  "go-routeconfig",
  "tyk-goplugin-per-path",
  "pw-http-body-chunk",
  "go-property",
  "dm-rust-metrics",
];

test("ports of other projects' examples, kept outside the repository, replay as they do in it", async () => {
  assert.ok(installed, "installed");
  const { user, env } = installed;
  for (const name of OUTSIDE) {
    const from = path.join(REPO, "test", "peers", name);
    const dir = path.join(user, "ports", name);
    mkdirSync(dir, { recursive: true });
    for (const f of ["filter.ts", "scenario.json"]) copyFileSync(path.join(from, f), path.join(dir, f));
    let r = run(
      "npx",
      ["envoy-js", "build", `ports/${name}/filter.ts`, "-o", `ports/${name}/dist/filter.js`],
      user,
      env,
    );
    assert.is(r.code, 0, r.out);
    r = run("npx", ["envoy-js", "replay", `ports/${name}/dist/filter.js`, `ports/${name}/scenario.json`], user, env);
    assert.is(r.code, 0, r.out);
    const outside = JSON.parse(r.out.slice(r.out.indexOf("{"), r.out.lastIndexOf("}") + 1));

    const { outFile } = await buildFilter({
      entry: path.join(from, "filter.ts"),
      outFile: path.join(work, "inside", name, "filter.js"),
      quiet: true,
    });
    const scenario = JSON.parse(readFileSync(path.join(from, "scenario.json"), "utf8"));
    const inside = runScenario({ source: readFileSync(outFile, "utf8"), filename: "filter.js" }, scenario, {
      engine: "wasm",
    });
    assert.equal(outside, inside, `${name}: the transcript outside the repository`);
    assert.ok(outside.streams.length > 0);
  }
});

test.run();
