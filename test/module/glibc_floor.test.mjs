// The glibc floor: libenvoy_js.so must load on glibc 2.31 (the PyPI Envoy wheel is
// manylinux_2_31), whatever glibc built it. scripts/check-glibc-floor.sh is what
// `make check-glibc-floor` runs; here it runs on the built module, and objdump's own output is
// checked as well, so that a broken script cannot pass for a clean object.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { test } from "uvu";
import * as assert from "uvu/assert";

import { moduleSo } from "../lib/module.mjs";

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const script = path.join(root, "scripts", "check-glibc-floor.sh");
const run = (cmd, args, env = {}) => {
  const r = spawnSync(cmd, args, { encoding: "utf8", maxBuffer: 1 << 26, env: { ...process.env, ...env } });
  if (r.error) throw r.error;
  return r;
};

test("the module exists (make module)", () => {
  assert.ok(existsSync(moduleSo), `${moduleSo} is missing`);
});

test("check-glibc-floor passes on the module", () => {
  const r = run(script, [moduleSo]);
  assert.is(r.status, 0, `check-glibc-floor failed:\n${r.stderr}${r.stdout}`);
  assert.match(r.stdout, /OK: .* needs at most GLIBC_2\.([0-9]|[12][0-9]|3[01])(\.[0-9]+)? \(floor GLIBC_2\.31\)/);
});

test("objdump -T lists no GLIBC_2.32 or newer symbol version", () => {
  const out = run("objdump", ["-T", moduleSo]).stdout;
  assert.ok(/GLIBC_2\.2\.5/.test(out), "objdump -T shows no GLIBC_ versions at all");
  const late = out.split("\n").filter((l) => /GLIBC_2\.(3[2-9]|[4-9][0-9])\b/.test(l));
  assert.equal(late, [], `symbols newer than GLIBC_2.31:\n${late.join("\n")}`);
});

test("objdump -p requires no GLIBC_2.32 or newer version", () => {
  const out = run("objdump", ["-p", moduleSo]).stdout;
  const refs = out.slice(out.indexOf("Version References:"));
  assert.ok(refs.startsWith("Version References:"), "objdump -p shows no version references");
  assert.not.match(refs, /GLIBC_2\.(3[2-9]|[4-9][0-9])\b/);
});

// The script must be able to fail: with a floor below what the module needs, it names symbols.
test("check-glibc-floor fails, naming symbols, when the floor is lower", () => {
  const r = run(script, [moduleSo, "2.2"]);
  assert.is(r.status, 1);
  assert.match(r.stderr, /FAIL: .* newer than GLIBC_2\.2:/);
  assert.match(r.stderr, /^ {2}GLIBC_2\.\d[\d.]* +\S+/m);
  const viaEnv = run(script, [moduleSo], { GLIBC_FLOOR_MAX: "2.2" });
  assert.is(viaEnv.status, 1);
});

test.run();
