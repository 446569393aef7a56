// Metric labels on the wasm engine: `{ kind, labels }` declarations, one series per label-value
// combination through labels({...}), the errors for wrong keys and values, and the bound on
// series per metric. In a real Envoy (tags in /stats): test/envoy/metric_labels.test.mjs.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { parseBytecode } from "../lib/qjsbc.mjs";
import { get, replay, wasm } from "../lib/wasm.mjs";

test("each label-value combination is its own series, recorded and read back apart", () => {
  const src = `
    export default {
      metrics: {
        requests: { kind: "counter", labels: ["method", "status"] },
        inflight: { kind: "gauge", labels: ["route"] },
        sizes: { kind: "histogram", labels: ["route"] },
        plain: { kind: "counter" },
      },
      onRequest(req, ctx) {
        const m = ctx.metrics;
        m.requests.labels({ method: req.method, status: "200" }).inc();
        m.requests.labels({ status: 404, method: "GET" }).inc(2);
        m.inflight.labels({ route: "a" }).set(3);
        m.inflight.labels({ route: "b" }).inc();
        m.sizes.labels({ route: "a" }).record(7);
        m.plain.inc();
        ctx.log.info(
          m.requests.labels({ method: "GET", status: "200" }).value,
          m.requests.labels({ method: "GET", status: "404" }).value,
          m.requests.labels({ method: "PUT", status: "200" }).value,
          m.inflight.labels({ route: "a" }).value,
          m.plain.value,
          m.requests.labels({ method: "GET", status: "200" }).name,
        );
      },
    };`;
  const t = replay(src, { streams: [get("/"), get("/")] });
  assert.equal(t.streams[0].errors, []);
  assert.equal(t.streams[0].logs, ["[info] 1 2 0 3 1 requests"]);
  assert.equal(t.streams[1].logs, ["[info] 2 4 0 3 2 requests"]);
  // The host was told each series by its label values, in the declaration's order.
  assert.equal(t.metrics, {
    'requests{method="GET",status="200"}': 2,
    'requests{method="GET",status="404"}': 4,
    'inflight{route="a"}': 3,
    'inflight{route="b"}': 2,
    'sizes{route="a"}': [7, 7],
    plain: 2,
  });
});

test("wrong or missing label keys and bad values are errors naming the metric and its labels", () => {
  const src = `
    export default {
      metrics: { requests: { kind: "counter", labels: ["method", "status"] }, plain: "counter" },
      onRequest(req, ctx) {
        const m = ctx.metrics;
        for (const f of [
          () => m.requests.labels({ method: "GET" }),
          () => m.requests.labels({ method: "GET", status: "200", path: "/" }),
          () => m.requests.labels(),
          () => m.requests.labels(["GET", "200"]),
          () => m.requests.labels({ method: "GET", status: true }),
          () => m.requests.labels({ method: "", status: "200" }),
          () => m.requests.labels({ method: "x".repeat(129), status: "200" }),
          () => m.requests.inc(),
          () => m.requests.value,
          () => m.plain.labels({ method: "GET" }),
          () => m.requests.labels({ method: "GET", status: "200" }).labels({ method: "GET", status: "200" }),
          () => m.requests.labels({ method: "GET", status: "200" }).dec(),
        ]) {
          try { f(); ctx.log.info("accepted"); } catch (e) { ctx.log.info(e.name, e.message); }
        }
      },
    };`;
  const t = replay(src, { streams: [get("/")] });
  assert.equal(t.streams[0].errors, []);
  assert.equal(t.streams[0].logs, [
    "[info] TypeError metric `requests`: missing label `status` (its labels: method, status)",
    "[info] TypeError metric `requests`: unknown label `path` (its labels: method, status)",
    "[info] TypeError metric `requests`: labels() takes an object with the labels method, status",
    "[info] TypeError metric `requests`: labels() takes an object with the labels method, status",
    "[info] TypeError metric `requests`: label `status` must be a string",
    "[info] RangeError metric `requests`: label `method` must be 1 to 128 bytes without NUL",
    "[info] RangeError metric `requests`: label `method` must be 1 to 128 bytes without NUL",
    "[info] TypeError metric `requests` has labels (method, status): use ctx.metrics.requests.labels({ ... }).inc()",
    "[info] TypeError metric `requests` has labels (method, status): use ctx.metrics.requests.labels({ ... }).value",
    "[info] TypeError metric `plain` declares no labels",
    "[info] TypeError metric `requests`: labels() is already applied",
    "[info] TypeError metric `requests` is a counter: use inc(n)",
  ]);
  assert.equal(t.metrics, {});
});

test("a metric has at most 100 label-value combinations; the known ones keep working", () => {
  const src = `
    export default {
      metrics: { hits: { kind: "counter", labels: ["user"] } },
      onRequest(req, ctx) {
        for (let i = 0; i < 100; i++) ctx.metrics.hits.labels({ user: "u" + i }).inc();
        try { ctx.metrics.hits.labels({ user: "one-too-many" }); ctx.log.info("accepted"); }
        catch (e) { ctx.log.info(e.name, e.message); }
        ctx.metrics.hits.labels({ user: "u7" }).inc();
        ctx.log.info(ctx.metrics.hits.labels({ user: "u7" }).value);
      },
    };`;
  const t = replay(src, { streams: [get("/")] });
  assert.equal(t.streams[0].errors, []);
  assert.equal(t.streams[0].logs, [
    "[info] RangeError metric `hits`: more than 100 label-value combinations (see docs/limits.md)",
    "[info] 2",
  ]);
  assert.equal(Object.keys(t.metrics).length, 100);
  assert.equal(t.metrics['hits{user="u7"}'], 2);
});

test("label declarations are checked when the filter loads", () => {
  const cases = [
    ['{ kind: "counter", labels: "method" }', /metric `m` labels must be an array of label names/],
    ['{ kind: "counter", labels: ["method", "method"] }', /metric `m` names label `method` twice/],
    ['{ kind: "counter", labels: ["1st"] }', /metric `m` label 0 must be a name of letters/],
    ['{ kind: "counter", labels: ["a-b"] }', /metric `m` label 0 must be a name of letters/],
    ['{ kind: "counter", labels: [""] }', /metric `m` label 0 must be a name of letters/],
    ['{ kind: "counter", labels: ["a","b","c","d","e","f","g","h","i"] }', /metric `m` has more than 8 labels/],
    ['{ kind: "meter", labels: ["a"] }', /metric `m` must be "counter", "gauge", "histogram" or \{ kind, labels/],
    ['{ labels: ["a"] }', /metric `m` must be "counter"/],
  ];
  for (const [decl, re] of cases) {
    const src = `export default { metrics: { m: ${decl} } };`;
    assert.throws(() => replay(src, { streams: [] }), re, decl);
  }
});

test("labels survive bytecode: the .qjsbc facts carry them and the built filter records series", () => {
  const src = `
    export default {
      metrics: { requests: { kind: "counter", labels: ["method", "code"] }, up: "gauge" },
      onRequest(req, ctx) { ctx.metrics.requests.labels({ method: req.method, code: 1 }).inc(); },
    };`;
  const bytecode = wasm.compileBytecode(src, "f.js");
  assert.equal(parseBytecode(bytecode).facts.split("\n")[0], "metrics requests:counter/method;code,up:gauge");
  const t = replay("", { streams: [get("/")] }, { bytecode });
  assert.equal(t.streams[0].errors, []);
  assert.equal(t.metrics, { 'requests{method="GET",code="1"}': 1 });
});

test.run();
