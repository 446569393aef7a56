// Conformance: every case in cases/NN-name/ (filter.js + scenario.json) runs on the wasm
// engine (@envoy-js/sdk/testing: the runtime, quickjs-ng and the scripted Envoy model compiled
// to WebAssembly). The same cases run on the dynamic module behind the ABI host stub, which
// must give the same transcripts (test/module/module.test.mjs, its differences listed there
// with their reasons), and in a real Envoy (test/envoy/replay.test.mjs, differences listed
// there). Here each case's own expectations are asserted:
//
// A case whose scenario.json has "expectLoadError": true expects the filter, its settings or
// the scenario to be refused. A case whose scenario.json has "expect" (a part of the
// transcript: the keys given, arrays at their full length) asserts that part.
// normalise.mjs holds the one normalisation (strings cut at their first newline).
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { test } from "uvu";
import * as assert from "uvu/assert";

import { runScenario } from "@envoy-js/sdk/testing";

import { normalise } from "./normalise.mjs";

const CASES = path.join(path.dirname(fileURLToPath(import.meta.url)), "cases");

function run(source, scenario) {
  try {
    return { transcript: runScenario({ source, filename: "filter.js" }, scenario) };
  } catch (err) {
    return { loadError: err instanceof Error ? err.message : String(err) };
  }
}

// Every key of `expected` is in `actual` with that value; arrays have the same length, and
// their elements match the same way.
function expectPart(actual, expected, where = "transcript") {
  if (Array.isArray(expected)) {
    assert.ok(
      Array.isArray(actual) && actual.length === expected.length,
      `${where}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`,
    );
    expected.forEach((v, i) => {
      expectPart(actual[i], v, `${where}[${i}]`);
    });
    return;
  }
  if (expected !== null && typeof expected === "object") {
    assert.ok(
      actual !== null && typeof actual === "object",
      `${where}: expected an object, got ${JSON.stringify(actual)}`,
    );
    for (const [k, v] of Object.entries(expected)) expectPart(actual[k], v, `${where}.${k}`);
    return;
  }
  assert.equal(actual, expected, where);
}

const names = readdirSync(CASES)
  .filter((n) => /^\d\d-/.test(n))
  .sort();

test("there are at least 80 cases", () => {
  assert.ok(names.length >= 80, `only ${names.length} cases`);
});

for (const name of names) {
  test(name, () => {
    const dir = path.join(CASES, name);
    const source = readFileSync(path.join(dir, "filter.js"), "utf8");
    const scenario = JSON.parse(readFileSync(path.join(dir, "scenario.json"), "utf8"));
    const wasm = normalise(run(source, scenario));
    assert.is("loadError" in wasm, scenario.expectLoadError === true, `wasm: ${JSON.stringify(wasm).slice(0, 400)}`);
    if (scenario.expect !== undefined) expectPart(wasm.transcript, normalise(scenario.expect));
  });
}

test.run();
