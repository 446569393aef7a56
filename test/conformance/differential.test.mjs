// Differential conformance: filters assembled at random (seeded, so every run is the same)
// from a menu of hook bodies, replayed on the wasm engine (the runtime in WebAssembly, with the
// scripted Envoy model) and on the dynamic module (libenvoy_js.so behind the ABI host stub,
// which plays Envoy's side of the C ABI); the transcripts must be identical after the same
// normalisation as the hand-written cases, less the ABI's documented differences. The menu includes
// the platform APIs (callouts to a cluster that answers, resets, times out or is too large;
// metrics, metadata, filter state, stream info, clearRouteCache, per-route config, intervals).
import { test } from "uvu";
import * as assert from "uvu/assert";

import { runScenario } from "@envoy-js/sdk/testing";

import { replayModule } from "../lib/module.mjs";
import { normalise } from "./normalise.mjs";

const COMBINATIONS = 300;

const common = {
  sync: `ctx.log.info("sync");`,
  asyncFast: `await null; ctx.log.info("fast");`,
  asyncSlow: `await sleep(3); ctx.log.info("slow " + performance.now());`,
  respond: `return ctx.respond(418, { body: "tea" });`,
  asyncRespond: `await sleep(2); return ctx.respond(419);`,
  throw: `throw new Error("boom");`,
  asyncThrow: `await sleep(1); throw new Error("late boom");`,
  timerLog: `setTimeout(() => ctx.log.info("tick " + performance.now()), 2);`,
  writeSaved: `try { globalThis.saved?.set("x-late", "1"); ctx.log.info("wrote"); } catch (e) { ctx.log.info(e.message); }`,
  awaitThenWrite: `await sleep(1); try { globalThis.saved?.append("x-late", "2"); } catch (e) { ctx.log.info(e.message); }`,
  badStatus: `try { ctx.respond(700); } catch (e) { ctx.log.info(e.message); }`,
  respondFromJob: `Promise.resolve().then(() => { try { ctx.respond(420); } catch (e) { ctx.log.info(e.message); } });`,
  fetch: `try { const r = await ctx.fetch("a", { path: "/x", timeoutMs: 20 }); ctx.log.info("fetch " + r.status + " " + (await r.text()) + " at " + performance.now()); } catch (e) { ctx.log.info("fetch failed " + e.name + " " + e.code); }`,
  fetchForget: `ctx.fetch(performance.now() > 5 ? "a" : "nowhere", { timeoutMs: 5 });`,
  fetchThenRespond: `const r = await ctx.fetch("a", { method: "POST", body: "b", timeoutMs: 20 }).catch((e) => null); if (!r) return ctx.respond(502);`,
  metrics: `ctx.metrics.hits.inc(); ctx.metrics.size.record(performance.now()); try { ctx.metrics.hits.set(1); } catch (e) { ctx.log.info(e.message); }`,
  metadata: `ctx.metadata.set("ns", "k", { at: performance.now() }); ctx.log.info(JSON.stringify(ctx.metadata.get("ns", "k")), JSON.stringify(ctx.metadata.get("in", "k")));`,
  filterState: `ctx.filterState.set("fs", String(ctx.filterState.get("fs")) + "+");`,
  info: `ctx.log.info(ctx.stream.id, ctx.stream.protocol, JSON.stringify(ctx.config));`,
  clearRoute: `try { ctx.clearRouteCache(); } catch (e) { ctx.log.info(e.message); }`,
  interval: `const id = setInterval(() => ctx.log.info("iv " + performance.now()), 3); setTimeout(() => clearInterval(id), 8);`,
  ownRejection: `Promise.reject(new Error("own")); const p = Promise.reject(new Error("later")); await null; p.catch(() => {});`,
};
const headersHook = (m) => ({
  ...common,
  save: `globalThis.saved = ${m}.headers; ctx.log.info(${m}.headers.get("content-length"));`,
  readBody: `const t = await ${m}.body.text(); ctx.log.info("body=" + t); try { ${m}.body.replace(t + "!"); } catch (e) { ctx.log.info(e.message); }`,
  readNoAwait: `${m}.body.text().then((t) => ctx.log.info("later " + t), (e) => ctx.log.info("err " + e.message));`,
});
const dataHook = {
  ...common,
  keep: `globalThis.kept = c; ctx.log.info(c.size, c.endOfStream);`,
  useKept: `try { ctx.log.info(globalThis.kept?.text()); } catch (e) { ctx.log.info(e.message); }`,
  edit: `c.append("+"); ctx.log.info("d=" + c.text());`,
  asyncEdit: `const t = c.text(); await sleep(t.length); c.replace("[" + t + "]");`,
};
const trailersHook = { ...common, edit: `t.set("x-t", "edited");` };
const HOOKS = [
  ["onRequest", "req", headersHook("req")],
  ["onRequestData", "c", dataHook],
  ["onRequestTrailers", "t", trailersHook],
  ["onResponse", "res", headersHook("res")],
  ["onResponseData", "c", dataHook],
  ["onResponseTrailers", "t", trailersHook],
  [
    "onDone",
    null,
    { sync: `ctx.log.info("done " + ctx.aborted);`, asyncThrow: `await null; throw new Error("done failed");` },
  ],
];

/** A small deterministic generator (an LCG): the same seed gives the same cases. */
function random(seed) {
  let s = seed;
  return () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s / 2147483648;
  };
}

function generate(rnd) {
  const pick = (list) => list[Math.floor(rnd() * list.length)];
  let source =
    'const sleep = (ms) => new Promise((r) => setTimeout(r, ms));\nexport default {\n  metrics: { hits: "counter", size: "histogram" },\n';
  for (const [name, arg, bodies] of HOOKS) {
    const body = pick([null, ...Object.values(bodies)]);
    if (body === null) continue;
    source += `  ${body.includes("await") ? "async " : ""}${name}(${arg ? arg + ", " : ""}ctx) { ${body} },\n`;
  }
  source += "};\n";
  const maybe = (p, v) => (rnd() < p ? v : {});
  const cluster = () =>
    pick([
      {},
      { delayMs: 2, body: "ok" },
      { delayMs: 4, reset: true },
      { timeout: true },
      { body: "too long" },
      { headers: { ":status": "503" } },
    ]);
  const route = () => pick([{}, {}, { route: { disabled: true } }, { route: { config: { base: 2, extra: [1] } } }]);
  const scenario = {
    config: { base: 1 },
    settings: pick([{}, { failure_mode: "open" }, { buffer_limit_bytes: 3 }]),
    streams: [
      {
        request: {
          headers: { ":method": "POST", ":path": "/", ":authority": "h", ...maybe(0.5, { "content-length": "9" }) },
          body: pick([[], ["ab"], ["a", "bc"], [""]]),
          ...maybe(0.3, { trailers: { "x-t": "1" } }),
        },
        upstream: {
          headers: { ":status": "200", ...maybe(0.5, { "content-length": "9" }) },
          body: pick([[], ["xy"], ["x", "yz"]]),
          ...maybe(0.3, { trailers: { "x-t": "2" } }),
        },
        reset: pick(["none", "none", "none", "afterRequestHeaders", "afterRequestBody"]),
        clusters: { a: cluster() },
        ...maybe(0.3, {
          metadata: { in: { k: [1, "x"] } },
          filterState: { fs: "in" },
          stream: { id: "s-1", protocol: "HTTP/2" },
        }),
        ...route(),
      },
      {
        request: { headers: { ":method": "GET", ":path": "/2", ":authority": "h" } },
        clusters: { a: cluster() },
        ...route(),
      },
    ],
  };
  return { source, scenario };
}

function run(replay) {
  try {
    return normalise(replay());
  } catch (err) {
    return { loadError: normalise(String(err instanceof Error ? err.message : err)) };
  }
}

// What Envoy's ABI does differently, each documented in test/module/module.test.mjs: metrics
// hold whole numbers; metadata through the ABI holds scalars and filter state is read-only once
// set (so the stores, and the logs that print them, are left out when the filter uses them);
// a timed-out callout's last events depend on the module's clock.
function withoutAbiDifferences(t, source, scenario) {
  if (!t.streams) return t;
  const out = {
    ...t,
    metrics: JSON.parse(JSON.stringify(t.metrics, (k, v) => (typeof v === "number" ? Math.round(v) : v))),
  };
  const stores = /ctx\.(metadata|filterState)\./.test(source);
  out.streams = t.streams.map((s, i) => {
    const copy = { ...s };
    if (stores) {
      delete copy.metadata;
      delete copy.filterState;
      delete copy.logs;
    }
    if (Object.values(scenario.streams[i].clusters ?? {}).some((c) => c.timeout)) {
      copy.events = copy.events.filter((e) => !/^callout \d+ (done|cancelled)$/.test(e));
    }
    return copy;
  });
  return out;
}

test(`${COMBINATIONS} generated filters and scenarios give identical transcripts`, () => {
  const rnd = random(20240611);
  const failures = [];
  let loaded = 0;
  for (let i = 0; i < COMBINATIONS; i++) {
    const { source, scenario } = generate(rnd);
    const wasm = withoutAbiDifferences(
      run(() => runScenario({ source, filename: "filter.js" }, scenario)),
      source,
      scenario,
    );
    const module = withoutAbiDifferences(
      run(() => replayModule(source, scenario, { args: ["--envoy", "1.40"] })),
      source,
      scenario,
    );
    if (wasm.streams && module.streams) loaded++;
    try {
      assert.equal(module, wasm);
    } catch {
      failures.push(
        `#${i}\n${source}${JSON.stringify(scenario)}\nwasm:   ${JSON.stringify(wasm)}\nmodule: ${JSON.stringify(module)}`,
      );
    }
  }
  assert.equal(failures.length, 0, failures.slice(0, 2).join("\n\n"));
  // The menu makes filters that load: the comparison is of transcripts, not of two refusals.
  assert.ok(loaded > COMBINATIONS * 0.9, `only ${loaded} of ${COMBINATIONS} generated filters loaded on both`);
});

test.run();
