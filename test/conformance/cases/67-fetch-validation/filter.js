// ctx.fetch checks its arguments: each mistake rejects with a TypeError naming it. Defaults:
// GET, path "/", authority = cluster; content-length follows a body.
export default {
  async onRequest(req, ctx) {
    const bad = [
      [],
      [42],
      ["c", "init"],
      ["c", { path: "no-slash" }],
      ["c", { path: "" }],
      ["c", { path: "/a b" }],
      ["c", { method: "GE T" }],
      ["c", { method: "" }],
      ["c", { timeoutMs: 0 }],
      ["c", { timeoutMs: 300001 }],
      ["c", { timeoutMs: "abc" }],
      ["c", { body: 5 }],
      ["c", { body: new Uint16Array(2) }],
      ["c", { headers: "x" }],
      ["c", { headers: { "bad name": "v" } }],
      ["c", { headers: { ":path": "/x" } }],
      ["c", { headers: { "x-ok": "a\r\nb" } }],
      ["c", { headers: { "x-list": ["a", "b\nc"] } }],
      ["c", { path: "/p", timeoutMs: 0, method: "bad method" }],
    ];
    for (const args of bad) {
      try {
        await ctx.fetch(...args);
        ctx.log.info("resolved?!");
      } catch (e) {
        ctx.log.info(e.name + ": " + e.message);
      }
    }
    const ok = [undefined, null, {}, { authority: "other.internal", method: "Delete", path: "/x?y=1", body: "", timeoutMs: 1.9 }, { body: "abc", headers: { "Content-Length": "99" } }, { headers: { "x-list": ["1", 2], "x-none": [], "x-one": ["only"] } }];
    for (const init of ok) await ctx.fetch("c", init);
  },
};
