// Regression tests for runtime bugs found by the reliability work (test/reliability/): each
// failed before its fix.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { one, get, post } from "../lib/native.mjs";

const sleep = "const sleep = (ms) => new Promise((r) => setTimeout(r, ms));\n";

test("a second whole-body read after the first finished resolves from the buffer instead of hanging", () => {
  const src = `export default {
    async onRequest(req, ctx) {
      const first = await req.body.text();
      req.body.replace(first.toUpperCase());
      const second = await req.body.text();
      const bytes = await req.body.bytes();
      ctx.log.info(first, second, bytes.length);
    },
  };`;
  const t = one(src, post("/", ["ab", "c"]));
  assert.equal(t.logs, ["[info] abc ABC 3"]);
  assert.equal(t.upstreamRequest.body, "ABC");
  assert.not.ok(t.events.some((e) => e.startsWith("stalled")), t.events.join("\n"));
});

test.run();
