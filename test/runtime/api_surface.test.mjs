// The SDK's declared API (sdk/src/index.ts) and what the engine really binds must be the same
// set of members: a member missing on either side fails here.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { one, post, wasm } from "../lib/wasm.mjs";

const require = createRequire(import.meta.url);
const ts = require("typescript");
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const sdkFile = path.join(root, "sdk", "src", "index.ts");

/** Member names of each exported interface, following `extends` within the file. */
function declaredMembers() {
  const sf = ts.createSourceFile(sdkFile, readFileSync(sdkFile, "utf8"), ts.ScriptTarget.ES2022, true);
  const interfaces = new Map();
  sf.forEachChild((node) => {
    if (!ts.isInterfaceDeclaration(node)) return;
    const names = node.members
      .map((m) => {
        if (m.name && ts.isComputedPropertyName(m.name)) return "[" + m.name.expression.getText(sf) + "]";
        return m.name?.getText(sf);
      })
      .filter(Boolean);
    const bases = (node.heritageClauses ?? []).flatMap((h) => h.types.map((t) => t.expression.getText(sf)));
    interfaces.set(node.name.text, { names, bases });
  });
  const all = (name) => {
    const i = interfaces.get(name);
    if (!i) return [];
    return [...new Set([...i.names, ...i.bases.flatMap(all)])].sort();
  };
  return all;
}

// What the engine binds: own property names of each object's prototype chain (minus Object's).
const probe = `
  const names = (o) => {
    const out = new Set();
    for (let p = o; p && p !== Object.prototype; p = Object.getPrototypeOf(p)) {
      for (const k of Object.getOwnPropertyNames(p)) if (k !== "constructor") out.add(k);
      for (const s of Object.getOwnPropertySymbols(p)) if (s !== Symbol.toStringTag) out.add("[" + s.description + "]");
    }
    return [...out].sort();
  };
  export default {
    metrics: { hits: "counter" },
    async onRequest(req, ctx) {
      const r = await ctx.fetch("c", {});
      const fetchError = await ctx.fetch("nowhere", {}).catch((e) => e);
      const surface = {
        Request: names(req), Headers: names(req.headers), Body: names(req.body), Context: names(ctx),
        Logger: names(ctx.log), DynamicMetadata: names(ctx.metadata), FilterState: names(ctx.filterState),
        StreamInfo: names(ctx.stream), FetchResponse: names(r), FetchHeaders: names(r.headers),
        Counter: names(ctx.metrics.hits), SharedData: names(ctx.shared),
        SharedEntry: Object.keys((ctx.shared.set("k", "v"), ctx.shared.get("k"))).sort(),
        SharedWriteResult: Object.keys(ctx.shared.delete("k")).sort(),
        FetchError: [...new Set([...Object.getOwnPropertyNames(fetchError), ...names(Object.getPrototypeOf(fetchError))])].sort(),
        FetchErrorCode: fetchError.code, FetchErrorIsError: fetchError instanceof Error,
      };
      ctx.log.info(JSON.stringify(surface));
    },
    onRequestData(chunk, ctx) { ctx.log.info(JSON.stringify({ Chunk: names(chunk) })); },
    onResponse(res, ctx) { ctx.log.info(JSON.stringify({ Response: names(res) })); },
  };`;

test("every engine object has exactly the members its SDK interface declares", () => {
  const t = one(probe, { ...post("/", ["x"]), clusters: { c: { body: "{}" } } });
  assert.equal(t.errors, []);
  const seen = Object.assign({}, ...t.logs.map((l) => JSON.parse(l.slice("[info] ".length))));
  const declared = declaredMembers();
  const pairs = {
    Request: "Request",
    Response: "Response",
    Headers: "Headers",
    Body: "Body",
    Chunk: "Chunk",
    Context: "Context",
    Logger: "Logger",
    DynamicMetadata: "DynamicMetadata",
    FilterState: "FilterState",
    StreamInfo: "StreamInfo",
    FetchResponse: "FetchResponse",
    FetchHeaders: "ReadonlyHeaders",
    SharedData: "SharedData",
    SharedEntry: "SharedEntry",
    SharedWriteResult: "SharedWriteResult",
  };
  for (const [engineName, sdkName] of Object.entries(pairs)) {
    assert.equal(seen[engineName], declared(sdkName), `${engineName} vs SDK ${sdkName}`);
  }
  // Metric objects carry the methods of every kind (the engine checks the kind at call time);
  // each SDK metric interface must be a subset of them.
  for (const kind of ["Counter", "Gauge", "Histogram", "LabelledMetric"]) {
    for (const m of declared(kind)) assert.ok(seen.Counter.includes(m), `${kind}.${m}`);
  }
  // A FetchError is an Error with the SDK's FetchError members (Error's own: message, stack).
  assert.ok(seen.FetchErrorIsError);
  assert.equal(
    seen.FetchError.filter((m) => !["message", "stack", "toString"].includes(m)),
    declared("FetchError"),
  );
  assert.is(seen.FetchErrorCode, "unknown_cluster");
});

test("the background object has exactly the members of the SDK's Background", () => {
  const source = `
    const names = (o) => Object.getOwnPropertyNames(o).sort();
    export default {
      background(config, bg) {
        bg.log.info(JSON.stringify({ Background: names(bg), Logger: names(bg.log), frozen: Object.isFrozen(bg) }));
        bg.shared.set("shared", JSON.stringify(Object.getOwnPropertyNames(Object.getPrototypeOf(bg.shared)).filter((k) => k !== "constructor").sort()));
      },
    };`;
  const host = new wasm.ScriptedHost({ source, filename: "bg.js" }, {});
  host.startBackground({});
  const seen = JSON.parse(host.transcript().backgroundLogs[0].slice("[info] ".length));
  const declared = declaredMembers();
  assert.equal(seen.Background, declared("Background"));
  assert.equal(seen.Logger, declared("Logger"));
  assert.equal(JSON.parse(host.sharedGet("shared")), declared("SharedData"));
  assert.ok(seen.frozen);
  host.close();
});

test.run();
