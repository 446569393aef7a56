// setInterval in three lives: one cleared by the stream, one left running (cancelled when the
// stream goes), one on the worker from setup.
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
let workerTicks = 0;

export default {
  setup() {
    setInterval(() => { workerTicks++; }, 5);
    return {};
  },
  async onRequest(req, ctx) {
    let n = 0;
    await new Promise((resolve) => {
      const id = setInterval((step) => {
        n += step;
        if (n >= 5) {
          clearInterval(id);
          resolve();
        }
      }, 1, 1);
    });
    setInterval(() => ctx.log.info("leaked interval"), 1000);
    req.headers.set("x-n", String(n));
    await sleep(12);
    req.headers.set("x-worker-ticks-seen", String(workerTicks > 0));
  },
};
