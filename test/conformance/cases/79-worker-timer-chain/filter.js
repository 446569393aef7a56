// Timers made outside any stream (setup, and then inside a worker timer) belong to the worker;
// one made in a callout's continuation belongs to the stream; a stream clears a worker timer.
let workerTimer;
let ticks = 0;
export default {
  setup() {
    setTimeout(() => {
      console.log("first worker timer at " + performance.now());
      setTimeout(() => console.log("nested worker timer at " + performance.now()), 3);
    }, 2);
    workerTimer = setInterval(() => console.log("worker interval " + ++ticks + " at " + performance.now()), 4);
    return {};
  },
  async onRequest(req, ctx) {
    await ctx.fetch("c", {});
    setTimeout(() => ctx.log.info("stream timer at " + performance.now()), 1);
    await new Promise((r) => setTimeout(r, 10));
    if (req.path === "/stop") clearInterval(workerTimer);
  },
};
