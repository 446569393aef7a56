// `envoy-js init`: the scaffolded project installs (offline, from npm's cache) and its own
// tests pass on the wasm engine. This is the slow test of the SDK suite (npm install, then a
// build): about 10 to 20 seconds.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";

import { test } from "uvu";
import * as assert from "uvu/assert";

import { packageName } from "../cli/init.mjs";
import { runCli, scratch } from "./helpers.mjs";

const npm = (args, cwd) =>
  spawnSync("npm", args, {
    cwd,
    encoding: "utf8",
    env: { ...process.env, npm_config_fund: "false", npm_config_audit: "false" },
  });

test("init writes the project files; a non-empty directory is refused", () => {
  const { dir, cleanup } = scratch({ "busy/file.txt": "x" });
  try {
    const r = runCli(["init", "My Filter"], { cwd: dir });
    assert.is(r.code, 0, r.stderr);
    const project = path.join(dir, "My Filter");
    for (const f of [
      "package.json",
      "tsconfig.json",
      "src/filter.ts",
      "test/filter.test.mjs",
      "test/scenario.json",
      "README.md",
      ".gitignore",
    ]) {
      assert.ok(existsSync(path.join(project, f)), f);
    }
    const pkg = JSON.parse(readFileSync(path.join(project, "package.json"), "utf8"));
    assert.is(pkg.name, "my-filter");
    assert.match(pkg.devDependencies["@envoy-js/sdk"], /^file:/);
    const sdk = path.resolve(project, pkg.devDependencies["@envoy-js/sdk"].slice("file:".length));
    assert.is(JSON.parse(readFileSync(path.join(sdk, "package.json"), "utf8")).name, "@envoy-js/sdk");
    assert.match(readFileSync(path.join(project, "README.md"), "utf8"), /^# my-filter/);

    const busy = runCli(["init", "busy"], { cwd: dir });
    assert.is(busy.code, 1);
    assert.match(busy.stderr, /busy is not empty/);
    const missing = runCli(["init"], { cwd: dir });
    assert.is(missing.code, 2);
    assert.match(missing.stderr, /missing <dir>/);
    const badName = runCli(["init", "other", "--name", "Bad Name"], { cwd: dir });
    assert.is(badName.code, 1);
    assert.match(badName.stderr, /not a valid npm package name/);
  } finally {
    cleanup();
  }
});

test("packageName makes an npm name from a directory", () => {
  assert.is(packageName("/tmp/My Filter"), "my-filter");
  assert.is(packageName("auth.v2"), "auth.v2");
  assert.is(packageName("___"), "envoy-js-filter");
});

test("the scaffolded project installs and its tests pass (npm install --prefer-offline; npm test)", () => {
  const { dir, cleanup } = scratch();
  try {
    const project = path.join(dir, "filter");
    mkdirSync(project);
    const init = runCli(["init", project]);
    assert.is(init.code, 0, init.stderr);
    const install = npm(["install", "--prefer-offline"], project);
    assert.is(install.status, 0, install.stderr);
    const t = npm(["test"], project);
    assert.is(t.status, 0, t.stdout + t.stderr);
    assert.match(t.stdout, /Passed:\s+3/);
    assert.not.match(t.stderr, /DeprecationWarning/, "the tests name no retired engine");
    // The project's envoy-js replays its scenario on the wasm engine.
    const replay = spawnSync("npx", ["--no-install", "envoy-js", "replay", "dist/filter.js", "test/scenario.json"], {
      cwd: project,
      encoding: "utf8",
    });
    assert.is(replay.status, 0, replay.stderr);
    const [known, missing] = JSON.parse(replay.stdout).streams;
    assert.is(known.upstreamRequest.headers["x-client"], "shop");
    assert.is(missing.localReply.status, 401);
    // A change that breaks the filter fails its tests.
    const src = path.join(project, "src/filter.ts");
    writeFileSync(src, readFileSync(src, "utf8").replace('"x-client", client', '"x-client", "nobody"'));
    const broken = npm(["test"], project);
    assert.is.not(broken.status, 0);
  } finally {
    cleanup();
  }
});

test.run();
