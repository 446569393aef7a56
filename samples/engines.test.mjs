// Every sample's scenario.json gives the same transcript on every engine of the harness (the
// native QuickJS engine and the pure TypeScript host stub), beyond what each sample's own
// tests assert. Strings are compared up to their first line (error stacks differ between
// QuickJS and V8), and random UUIDs (crypto.randomUUID) stand for any UUID.
import { existsSync, readdirSync } from "node:fs";
import path from "node:path";

import { test } from "uvu";
import * as assert from "uvu/assert";

import { ENGINES, SAMPLES_DIR, Sample } from "./lib/harness.mjs";

const samples = readdirSync(SAMPLES_DIR, { withFileTypes: true })
  .filter((d) => d.isDirectory() && existsSync(path.join(SAMPLES_DIR, d.name, "filter.ts")))
  .map((d) => d.name);

const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}/g;
const normalise = (v) =>
  JSON.parse(JSON.stringify(v, (k, x) => (typeof x === "string" ? x.split("\n")[0].replace(UUID, "<uuid>") : x)));

test("the harness runs every sample on the native engine and on the stub", () => {
  assert.equal(ENGINES.map((e) => e.name), ["native", "stub"]);
});

for (const name of samples) {
  test(`${name}: scenario.json gives the same transcript on every engine`, async () => {
    const runs = [];
    for (const engine of ENGINES) {
      const sample = new Sample(name, engine);
      await sample.load();
      runs.push([engine.name, normalise(sample.replay())]);
    }
    const [[firstName, first], ...rest] = runs;
    for (const [other, transcript] of rest) assert.equal(transcript, first, `${other} vs ${firstName}`);
    assert.ok(first.streams.length > 0);
  });
}

test.run();
