// Unbounded recursion in several places, and input that makes the engine recurse.
function down(n) {
  return down(n + 1) + 1;
}
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export default {
  async onRequest(req, ctx) {
    if (req.path === "/sync") down(0);
    if (req.path === "/async") {
      await sleep(1);
      down(0);
    }
    if (req.path === "/json") {
      try {
        JSON.parse(await req.body.text());
      } catch (e) {
        ctx.log.info("json: " + e.name);
      }
    }
    if (req.path === "/stringify") {
      let o = {};
      const root = o;
      for (let i = 0; i < 100000; i++) o = o.next = {};
      try {
        JSON.stringify(root);
      } catch (e) {
        ctx.log.info("stringify: " + e.name);
      }
    }
    if (req.path === "/caught") {
      try {
        down(0);
      } catch (e) {
        ctx.log.info("caught: " + e.name);
      }
    }
    req.headers.set("x-ok", "1");
  },
};
