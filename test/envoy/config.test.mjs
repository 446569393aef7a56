// Bad filters and bad configs inside a real Envoy: a listener update (LDS from a watched file)
// carrying a broken filter.js, a missing file or bad JSON is refused with our located message
// in Envoy's log, while Envoy keeps serving its other listeners and the listener's old version.
import path from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";

import {
  envoyUnderTest,
  filterConfigJson,
  h1,
  jsListener,
  loopbackCluster,
  routeTo,
  scratchDir,
  sleep,
  startEnvoy,
  startUpstream,
} from "./lib.mjs";
import { bootstrap, ldsCounters, writeLdsFile } from "../../sdk/cli/envoy.mjs";

let envoy,
  upstream,
  scratch,
  ldsFile,
  version = 0;

const tagged = (tag) => `export default { onResponse(res) { res.headers.set("x-version", ${JSON.stringify(tag)}); } };`;

function dynamicListener(filterConfig) {
  const l = jsListener("dynamic", { inline: "", routes: [routeTo("backend")] });
  l.filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.filter_config.value = filterConfig;
  return l;
}

// Envoy watches the directory and reads the file when it is moved into place.
function publishListener(filterConfig) {
  writeLdsFile(ldsFile, [dynamicListener(filterConfig)], String(++version));
}

async function waitFor(check, what, ms = 10000) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${what}:\n${envoy.logTail(20)}`);
}

test.before(async () => {
  scratch = scratchDir();
  upstream = await startUpstream();
  ldsFile = path.join(scratch.dir, "lds.json");
  publishListener(filterConfigJson({ inline: tagged("v1") }));
  const config = bootstrap({
    listeners: [jsListener("static", { inline: tagged("static"), routes: [routeTo("backend")] })],
    clusters: [loopbackCluster({ name: "backend", port: upstream.port })],
    ldsFile,
  });
  envoy = await startEnvoy({ envoy: envoyUnderTest(), config });
  await waitFor(async () => (await envoy.admin("/listeners")).includes("dynamic::"), "the dynamic listener");
});

test.after(async () => {
  await envoy?.stop();
  await upstream?.close();
  scratch?.remove();
});

async function versionOf(name) {
  const r = await h1(await envoy.listenerPort(name), { path: "/" });
  return r.headers["x-version"];
}

async function refused(filterConfig, message) {
  const before = (await ldsCounters(envoy)).rejected;
  const logFrom = envoy.log.length;
  publishListener(filterConfig);
  await waitFor(async () => (await ldsCounters(envoy)).rejected > before, "the update to be rejected");
  const [line] = await envoy.waitForLog(message, 5000, logFrom);
  assert.ok(line);
  if (process.env.SHOW_REJECTIONS)
    console.log(
      envoy.log
        .slice(logFrom)
        .split("\n")
        .filter((l) => /envoy_js|rejected/.test(l))
        .join("\n"),
    );
  // The old version of the listener and the other listener serve on.
  assert.is(await versionOf("dynamic"), "v1");
  assert.is(await versionOf("static"), "static");
}

test("the first version of the dynamic listener serves", async () => {
  assert.is(await versionOf("dynamic"), "v1");
});

test("a filter with a syntax error is refused with file:line:col; the old version serves on", async () => {
  await refused(
    filterConfigJson({ inline: "export default {\n  onRequest(req) {\n    return req.;\n  },\n};\n" }),
    /inline\.js:3:\d+/,
  );
});

test("a filter file that does not exist is refused, naming the file", async () => {
  await refused(filterConfigJson({ source: "/nonexistent/envoy-js/filter.js" }), /\/nonexistent\/envoy-js\/filter\.js/);
});

test("filter_config that is not JSON is refused with where it broke", async () => {
  await refused('{"inline": "export default {}", ', /filter_config/);
});

test("filter_config with an unknown key is refused, naming the key", async () => {
  await refused(JSON.stringify({ inline: tagged("v2"), max_cpu_ms: 5 }), /max_cpu_ms/);
});

test("a good update after the refused ones is applied", async () => {
  publishListener(filterConfigJson({ inline: tagged("v2") }));
  await waitFor(async () => (await versionOf("dynamic")) === "v2", "v2 to serve");
  assert.is(await versionOf("static"), "static");
});

test.run();
