// The .qjsbc file format: the header's sum64 digest is the one test/lib/qjsbc.mjs documents.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { fnv1a, parseBytecode, sum64 } from "../lib/qjsbc.mjs";
import { wasm } from "../lib/wasm.mjs";

test("the .qjsbc header's sum64 is the documented digest of the bytecode and the checked facts", () => {
  const bc = wasm.compileBytecode('export default { metrics: { hits: "counter", "a b": "gauge" } };', "f.js");
  const p = parseBytecode(bc);
  assert.equal(p.size, p.body.length);
  assert.equal(p.facts.split("\n")[0], "metrics hits:counter,a%20b:gauge");
  assert.ok(Number(/load-heap (\d+)/.exec(p.facts)[1]) > 50_000, p.facts);
  assert.equal(p.sum, fnv1a(Buffer.from(p.facts, "latin1"), sum64(p.body)).toString(16).padStart(16, "0"));
});

test.run();
