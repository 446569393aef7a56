// The short chaos run inside `make test` (the long one is `make chaos-envoy`): a real Envoy
// with envoy-js under load, faults, hot reloads and hostile input (chaos.mjs). Results go to
// build/chaos/, never over the committed test/reliability/ENVOY-RESULTS.md.
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { test } from "uvu";
import * as assert from "uvu/assert";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const OUT = path.resolve(HERE, "../../../build/chaos");

let run;
let results;
let details;

test.before(() => {
  run = spawnSync(process.execPath, [path.join(HERE, "chaos.mjs"), "--short", "--out", OUT], {
    encoding: "utf8",
    timeout: 170_000,
  });
  process.stdout.write(
    run.stdout
      .split("\n")
      .filter((l) => l.startsWith("[chaos"))
      .join("\n") + "\n",
  );
  if (run.status !== 0) process.stderr.write(run.stderr.slice(-4000));
  results = JSON.parse(readFileSync(path.join(OUT, "envoy-results.json"), "utf8"));
  details = JSON.parse(readFileSync(path.join(OUT, "envoy-details.json"), "utf8"));
});

test("the short run finished by itself and passed its own checks", () => {
  assert.is(run.signal, null, "killed by the time bound");
  assert.is(run.status, 0, run.stderr.slice(-2000));
});

test("every failure is one the run caused, and Envoy did not crash", () => {
  assert.is(results.requests.failed_unexplained, 0, JSON.stringify(details.unexplained));
  assert.is(results.envoy_crashes, 0);
  assert.is(results.requests.sent, results.requests.ok + results.requests.failed_expected);
  assert.ok(results.requests.failed_expected > 0, "the deliberate failures happened");
});

test("the engine's own counters match the deliberate failures exactly", () => {
  const c = (k) => details.counters[`dynamicmodulescustom.envoy_js.${k}`] ?? 0;
  const deliberate = details.by_cause.heap + details.by_cause.loop;
  assert.is(c("errors"), deliberate);
  // A heap hog on a busy machine may run out of CPU time before it runs out of heap.
  assert.is(c("heap_limit") + c("cpu_limit"), deliberate);
  assert.ok(c("cpu_limit") >= details.by_cause.loop);
  assert.ok(c("heap_limit") > 0);
});

test("hot reload: versions applied, the broken one rejected while the old one served, old engines drained", () => {
  assert.ok(results.reloads.applied >= 2, `applied ${results.reloads.applied}`);
  assert.is(results.reloads.rejected, 1);
  assert.is(details.served_during_broken, String(details.broken_version - 1));
  assert.is(results.reloads.old_engines_left, 0);
});

test("background: requests saw its refreshes; each reload stopped the old config's background for good", () => {
  const bg = details.background;
  assert.ok(bg.refreshes_seen_by_requests > 0, "no response carried a background refresh");
  assert.ok(bg.versions_seen_by_requests >= 2, `refreshes of ${bg.versions_seen_by_requests} versions seen`);
  // One engine stopped per applied reload (the broken version never got a config).
  assert.is(bg.stopped_lines, results.reloads.applied);
  assert.equal(bg.old_versions_fetching_after_drain, []);
  // The replaced configs are freed, program and all (destroyed with callouts in flight).
  assert.is(bg.filter_configs_alive_after_drain, 1);
  assert.ok(bg.last_version_refreshes_after_drain > 0, "the last version's background goes on");
});

test("each hostile input is handled and the proxy serves on", () => {
  for (const h of details.hostile) assert.ok(h.handled, `${h.name}: ${h.detail}`);
  assert.is(results.hostile_inputs.handled, results.hostile_inputs.tried);
  assert.ok(results.hostile_inputs.tried >= 8);
});

test.run();
