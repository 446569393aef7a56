// setTimeout/setInterval on the host's fake clock: order by due time then creation, extra
// arguments passed on, clearTimeout/clearInterval, negative and NaN delays run first.
export default {
  async onRequest(req, ctx) {
    const log = (what) => ctx.log.info(what + " at " + performance.now());
    setTimeout(log, 10, "timeout 10");
    setTimeout(log, 5, "timeout 5");
    setTimeout(log, -3, "negative");
    setTimeout(log, NaN, "NaN");
    const cancelled = setTimeout(log, 1, "cancelled");
    clearTimeout(cancelled);
    clearTimeout("not a number");
    let n = 0;
    await new Promise((resolve) => {
      const id = setInterval(() => {
        log("interval " + ++n);
        if (n === 3) {
          clearInterval(id);
          resolve();
        }
      }, 4);
    });
    ctx.log.info(typeof cancelled, cancelled > 0);
  },
};
