// Code generation from strings (eval, the Function constructors) is off unless the settings
// say `allow_code_from_strings: true` (docs/configuration.md). The default, per engine, is
// also conformance case 87.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { one, get, replay } from "../lib/wasm.mjs";

const evalFilter = `export default { onRequest(req, ctx) {
  const code = req.headers.get("x-code");
  ctx.log.info(String(eval(code)), new Function("a", "return a * 2")(21),
    Object.getPrototypeOf(async () => {}).constructor("return 1") instanceof Function);
} };`;

test("by default a hook that evals request data fails its stream with an EvalError naming the setting", () => {
  const t = one(evalFilter, get("/", { "x-code": "globalThis.pwned = 1" }));
  assert.equal(t.localReply.status, 500);
  assert.is(t.upstreamRequest, null);
  assert.match(t.errors[0], /^EvalError: code generation from strings is disabled: .*"allow_code_from_strings": true/);
  assert.equal(t.counters["envoy_js.errors"], 1);
});

test("allow_code_from_strings: true lets eval, new Function and the async constructor compile", () => {
  const t = one(evalFilter, get("/", { "x-code": "6 * 7" }), { settings: { allow_code_from_strings: true } });
  assert.is(t.localReply, null);
  assert.equal(t.errors, []);
  assert.equal(t.logs, ["[info] 42 42 true"]);
});

test("allow_code_from_strings: false is the default spelled out", () => {
  const t = one(evalFilter, get("/", { "x-code": "1" }), { settings: { allow_code_from_strings: false } });
  assert.equal(t.localReply.status, 500);
  assert.match(t.errors[0], /^EvalError: code generation from strings is disabled/);
});

test("a module that evals at its top level is refused at load with the reason; allowed, it loads", () => {
  const src = `const two = eval("1 + 1");\nexport default { onRequest(req) { req.headers.set("x-two", String(two)); } };`;
  assert.throws(
    () => replay(src, { streams: [] }),
    /the module threw while loading: EvalError: code generation from strings is disabled/,
  );
  const t = replay(src, { settings: { allow_code_from_strings: true }, streams: [get("/")] });
  assert.equal(t.streams[0].upstreamRequest.headers["x-two"], "2");
});

test("replacing the stand-ins does not bring code generation back", () => {
  const src = `export default { onRequest(req, ctx) {
    const proto = Function.prototype;
    delete globalThis.eval; delete globalThis.Function; delete proto.constructor;
    const F = Object.getPrototypeOf(function* () {}).constructor;
    try { F("yield 1"); ctx.log.info("compiled"); } catch (e) { ctx.log.info(e.name + ": " + e.message); }
    try { Reflect.construct(Object.getPrototypeOf(async function () {}).constructor, ["return 1"]); ctx.log.info("compiled"); }
    catch (e) { ctx.log.info(e.name + ": " + e.message); }
  } };`;
  const t = one(src, get("/"));
  assert.equal(t.logs, ["[info] TypeError: eval is not supported", "[info] TypeError: eval is not supported"]);
});

test.run();
