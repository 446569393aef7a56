// setInterval in a stream: extra arguments, clearInterval from its own callback, and an
// interval still running when the stream ends is cancelled with it.
export default {
  async onRequest(req, ctx) {
    const seen = [];
    await new Promise((resolve) => {
      let n = 0;
      const id = setInterval((a, b) => {
        seen.push(a + b + ++n + "@" + performance.now());
        if (n === 3) { clearInterval(id); resolve(); }
      }, 4, "x", "y");
    });
    ctx.log.info(seen.join(" "));
    setInterval(() => ctx.log.info("forever at " + performance.now()), 5);
  },
  async onResponse(res, ctx) {
    await new Promise((r) => setTimeout(r, 12));
    ctx.log.info("response at " + performance.now());
  },
};
