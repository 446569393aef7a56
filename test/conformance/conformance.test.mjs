// Conformance: every case in cases/NN-name/ (filter.js + scenario.json) runs on the pure
// TypeScript host stub (@envoy-js/sdk/testing) and on the native engine (the real QuickJS
// runtime behind the Node addon); the two transcripts must be identical after normalise().
//
// A case whose scenario.json has "expectLoadError": true expects the filter, its settings or
// the scenario to be refused; then the two error messages must be identical instead.
// A case whose scenario.json has "expect" (a part of the transcript: the keys given, arrays
// at their full length) also asserts what the engines agree on.
// normalise.mjs holds the one normalisation (strings cut at their first newline).
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { test } from "uvu";
import * as assert from "uvu/assert";

import { runScenario } from "@envoy-js/sdk/testing";

import { normalise } from "./normalise.mjs";

const CASES = path.join(path.dirname(fileURLToPath(import.meta.url)), "cases");

/**
 * Cases where the native engine does something we believe is a bug. The stub does what
 * DESIGN.md (or the runtime's own comments) say instead, so these cases must DIFFER; when
 * the native engine is fixed, the case fails here and comes off this list.
 */
const KNOWN_DIVERGENCES = {
  // None at the moment. Fixed on the native side and now required to agree:
  // 09-headers-iteration, 31-body-read-twice, 45-respond-after-hook-settled,
  // 57-awaited-helper-rejection.
};

/**
 * What conformance does not cover, and why. These behaviours are tested on the native
 * engine alone (test/runtime/failures.test.mjs).
 */
export const NOT_IN_CONFORMANCE = {
  "max_cpu_ms_per_event": "the stub runs the filter in-process and cannot interrupt a synchronous loop; it accepts the setting and does not enforce it",
  "max_heap_bytes": "V8 has no per-realm heap limit; the stub accepts the setting and does not enforce it",
  "errors raised by the JS engine itself": "QuickJS and V8 word their own errors differently (syntax errors, JSON.parse, 'x is not a function', stack overflow); cases use the envoy-js API's errors and errors the filter throws",
  "awaiting a thenable that is not a promise, in an async function whose own promise then rejects unhandled": "the stub learns about handlers from V8's promise hooks, where the promise wrapping such a thenable looks like a handler of the function's promise (sdk/src/testing/realm.ts)",
};

function run(source, scenario, engine) {
  try {
    return { transcript: runScenario({ source, filename: "filter.js" }, scenario, { engine }) };
  } catch (err) {
    return { loadError: err instanceof Error ? err.message : String(err) };
  }
}

// Every key of `expected` is in `actual` with that value; arrays have the same length, and
// their elements match the same way.
function expectPart(actual, expected, where = "transcript") {
  if (Array.isArray(expected)) {
    assert.ok(Array.isArray(actual) && actual.length === expected.length, `${where}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
    expected.forEach((v, i) => expectPart(actual[i], v, `${where}[${i}]`));
    return;
  }
  if (expected !== null && typeof expected === "object") {
    assert.ok(actual !== null && typeof actual === "object", `${where}: expected an object, got ${JSON.stringify(actual)}`);
    for (const [k, v] of Object.entries(expected)) expectPart(actual[k], v, `${where}.${k}`);
    return;
  }
  assert.equal(actual, expected, where);
}

const names = readdirSync(CASES).filter((n) => /^\d\d-/.test(n)).sort();

test("there are at least 80 cases and every listed divergence exists", () => {
  assert.ok(names.length >= 80, `only ${names.length} cases`);
  for (const name of Object.keys(KNOWN_DIVERGENCES)) assert.ok(names.includes(name), `${name} is listed but missing`);
});

for (const name of names) {
  test(name, () => {
    const dir = path.join(CASES, name);
    const source = readFileSync(path.join(dir, "filter.js"), "utf8");
    const scenario = JSON.parse(readFileSync(path.join(dir, "scenario.json"), "utf8"));
    const stub = normalise(run(source, scenario, "stub"));
    const native = normalise(run(source, scenario, "native"));
    assert.is("loadError" in native, scenario.expectLoadError === true, `native: ${JSON.stringify(native).slice(0, 400)}`);
    if (name in KNOWN_DIVERGENCES) {
      // The case does fail (the engines differ); it is reported, not hidden.
      assert.not.equal(stub, native, `native now agrees with the stub: take ${name} off KNOWN_DIVERGENCES`);
      console.log(`  known divergence ${name}: ${KNOWN_DIVERGENCES[name]}`);
      return;
    }
    assert.equal(stub, native);
    if (scenario.expect !== undefined) expectPart(native.transcript, normalise(scenario.expect));
  });
}

test.run();
