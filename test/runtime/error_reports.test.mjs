// What the engine says when a filter goes wrong: errors that cannot be printed, modules that
// cannot load, and which promise rejections count as unhandled. Each test failed before the
// runtime fix it guards (found by the reliability work, test/reliability/).
import { test } from "uvu";
import * as assert from "uvu/assert";
import { one, get, post, replay } from "../lib/wasm.mjs";

const sleep = "const sleep = (ms) => new Promise((r) => setTimeout(r, ms));\n";

test("errors that cannot be printed are described without leaving a stale exception behind", () => {
  const src = `export default {
    onRequest(req, ctx) {
      const e = new Error("x");
      Object.defineProperty(e, "message", { get() { throw new Error("stale"); } });
      ctx.log.info(e);
      // The getter's exception must not leak into the next API call's error.
      try { ctx.respond(200, { headers: 5 }); } catch (err) { ctx.log.info(err.name + ": " + err.message); }
      if (req.path === "/throw") throw e;
      if (req.path === "/symbol") throw Symbol("s");
      if (req.path === "/tostring") throw { toString() { throw new Error("nested"); } };
    },
  };`;
  const t = one(src, get("/"));
  assert.match(t.logs[0], /^\[info\] Error: \(unreadable message\)/);
  assert.equal(t.logs[1], "[info] TypeError: respond(): headers must be an object of name: value");
  assert.match(one(src, get("/throw")).errors[0], /^Error: \(unreadable message\)\n\s+at onRequest/);
  assert.equal(one(src, get("/symbol")).errors[0], "thrown value: a symbol");
  assert.equal(one(src, get("/tostring")).errors[0], "thrown value: an object that cannot be printed");
});

test("loading: a pending top-level await, a function default export and throwing getters get errors that say so", () => {
  const load = (src) => {
    try {
      replay(src, { streams: [] }, { filename: "f.js" });
    } catch (e) {
      return e.message;
    }
    return "loaded";
  };
  assert.match(
    load("await new Promise((r) => setTimeout(r, 10));\nexport default {};"),
    /^f\.js: the module did not finish loading: a top-level await waits for something that cannot happen while a filter loads/,
  );
  assert.match(
    load("export default () => ({ onRequest() {} });"),
    /^f\.js: the default export is a function: export the filter object itself/,
  );
  assert.match(
    load('export default { get onRequest() { throw new Error("getter"); } };'),
    /^f\.js: reading `onRequest` of the default export threw: Error: getter/,
  );
  assert.match(
    load('export default new Proxy({}, { get() { throw new Error("trap"); } });'),
    /^f\.js: reading `onRequest` of the default export threw: Error: trap/,
  );
  assert.match(
    load('export default { get metrics() { throw new Error("m"); } };'),
    /reading `metrics` of the default export threw: Error: m/,
  );
  assert.match(
    load('export default { get setup() { throw new Error("s"); } };'),
    /reading `setup` of the default export threw: Error: s/,
  );
});

test("only rejections nobody handles are logged as unhandled, once the job queue is drained", () => {
  const src =
    sleep +
    `export default {
    async onRequest(req, ctx) {
      if (req.path === "/hook-throws") throw new Error("handled by the failure policy");
      if (req.path === "/later-catch") { const p = Promise.reject(new Error("caught later")); await null; await p.catch(() => {}); }
      if (req.path === "/lost") { Promise.reject(new Error("really lost")); }
      if (req.path === "/gone") { try { await req.body.text(); } catch (e) {} await sleep(1); }
    },
  };`;
  const unhandled = (t) => t.workerLogs.filter((l) => l.includes("unhandled promise rejection"));
  assert.equal(unhandled(one(src, get("/hook-throws"))), []);
  assert.equal(unhandled(one(src, get("/later-catch"))), []);
  assert.equal(unhandled(one(src, { ...post("/gone", ["x"]), reset: "afterRequestHeaders" })), []);
  const lost = unhandled(one(src, get("/lost")));
  assert.equal(lost.length, 1);
  assert.match(lost[0], /^\[warn\] unhandled promise rejection: Error: really lost/);
});

test.run();
