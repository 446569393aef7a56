// Every sample ships what the samples README promises, and its two Envoy configs agree with
// each other and with its scenario.json: the same bundle, the same ctx.config, the same
// settings, and every cluster they name is defined.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";

import { test } from "uvu";
import * as assert from "uvu/assert";
import YAML from "yaml";

import { SAMPLES_DIR } from "./lib/harness.mjs";

const NATIVE_TYPE = "type.googleapis.com/envoyjs.filters.http.quickjs.v1.QuickJs";
const MODULE_TYPE = "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter";
const SETTING_KEYS = ["max_heap_bytes", "max_cpu_ms_per_event", "buffer_limit_bytes"];

const samples = readdirSync(SAMPLES_DIR, { withFileTypes: true })
  .filter((d) => d.isDirectory() && existsSync(path.join(SAMPLES_DIR, d.name, "filter.ts")))
  .map((d) => d.name);

const read = (name, file) => readFileSync(path.join(SAMPLES_DIR, name, file), "utf8");

/** Every object in a parsed YAML tree. */
function* objects(node) {
  if (Array.isArray(node)) for (const v of node) yield* objects(v);
  else if (node && typeof node === "object") {
    yield node;
    for (const v of Object.values(node)) yield* objects(v);
  }
}

function filterEntry(doc, name) {
  const entries = [...objects(doc)].filter((o) => o.name === name && o.typed_config);
  assert.is(entries.length, 1, `one http filter named ${name}`);
  return entries[0].typed_config;
}

function clustersOf(doc) {
  const defined = new Set(doc.static_resources.clusters.map((c) => c.name));
  // route: { cluster: x } and route: { weighted_clusters: { clusters: [{ name: x }] } }
  const routed = [...objects(doc)]
    .filter((o) => o.route && typeof o.route === "object")
    .flatMap((o) => [o.route.cluster, ...(o.route.weighted_clusters?.clusters ?? []).map((c) => c.name)])
    .filter((c) => typeof c === "string");
  return { defined, routed };
}

test("at least 8 samples besides hello", () => {
  assert.ok(samples.filter((s) => s !== "hello").length >= 8, samples.join(", "));
});

for (const name of samples) {
  test(`${name}: files, and both Envoy configs match scenario.json`, () => {
    const files = readdirSync(path.join(SAMPLES_DIR, name));
    for (const f of ["filter.ts", "scenario.json", "envoy.yaml", "envoy-dynamic-module.yaml"]) {
      assert.ok(files.includes(f), `${name}/${f}`);
    }
    assert.ok(
      files.some((f) => f.endsWith(".test.mjs")),
      `${name} has tests`,
    );

    const scenario = JSON.parse(read(name, "scenario.json"));
    const settings = scenario.settings ?? {};
    const bundle = `samples/${name}/dist/filter.js`;

    const native = YAML.parse(read(name, "envoy.yaml"));
    const n = filterEntry(native, "envoy.filters.http.quickjs");
    assert.is(n["@type"], NATIVE_TYPE);
    assert.is(n.source.local.filename, bundle);
    assert.equal(n.config ?? {}, scenario.config ?? {}, "native config = scenario config");
    assert.is(n.failure_mode ?? "CLOSED", (settings.failure_mode ?? "closed").toUpperCase());
    for (const k of SETTING_KEYS) assert.is(n[k], settings[k], `native ${k}`);

    const dynamic = YAML.parse(read(name, "envoy-dynamic-module.yaml"));
    const d = filterEntry(dynamic, "envoy.filters.http.dynamic_modules");
    assert.is(d["@type"], MODULE_TYPE);
    assert.is(d.dynamic_module_config.name, "envoy_js");
    assert.is(d.filter_name, "envoy_js");
    assert.is(d.filter_config["@type"], "type.googleapis.com/google.protobuf.StringValue");
    const json = JSON.parse(d.filter_config.value);
    assert.is(json.source, bundle);
    assert.equal(json.config ?? {}, scenario.config ?? {}, "module config = scenario config");
    assert.is(json.failure_mode ?? "closed", settings.failure_mode ?? "closed");
    for (const k of SETTING_KEYS) assert.is(json[k], settings[k], `module ${k}`);

    for (const doc of [native, dynamic]) {
      const { defined, routed } = clustersOf(doc);
      for (const c of routed) assert.ok(defined.has(c), `cluster ${c} is defined`);
      // Callout clusters named in the filter's config must exist too.
      for (const key of ["cluster"]) {
        const c = scenario.config?.[key];
        if (c) assert.ok(defined.has(c), `callout cluster ${c} is defined`);
      }
    }
  });
}

test.run();
