// A timer created in setup belongs to the worker: it keeps firing while streams wait for
// their own timers, logs to the worker's log, and a throw there is logged and counted.
export default {
  setup() {
    let ticks = 0;
    setInterval(() => {
      ticks++;
      console.log("worker tick " + ticks + " at " + performance.now());
      if (ticks === 2) throw new Error("tick failed");
    }, 7);
    return {};
  },
  async onRequest(req, ctx) {
    await new Promise((r) => setTimeout(r, 15));
    ctx.log.info("stream resumed at " + performance.now());
  },
};
