// Values a filter should not produce: non-reply returns, unprintable throws, errors whose
// getters throw, timers with absurd delays, many timers at once.
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export default {
  async onRequest(req, ctx) {
    switch (req.path) {
      case "/return-number":
        return 403;
      case "/return-object":
        return { status: 403 };
      case "/throw-symbol":
        throw Symbol("s");
      case "/throw-getter": {
        const e = new Error("x");
        Object.defineProperty(e, "message", { get() { throw new Error("stale"); } });
        ctx.log.info(e);
        try {
          ctx.respond(200, { headers: 5 });
        } catch (err) {
          ctx.log.info(err.name);
        }
        throw e;
      }
      case "/infinite-delay":
        await new Promise((resolve) => setTimeout(resolve, Infinity));
        await sleep(2 ** 40);
        break;
      case "/many-timers": {
        let fired = 0;
        await new Promise((resolve) => {
          for (let i = 0; i < 20000; i++) setTimeout(() => { if (++fired === 20000) resolve(); }, i % 13);
        });
        for (let i = 0; i < 20000; i++) setTimeout(() => ctx.log.info("must not run"), 100000);
        ctx.log.info("fired " + fired);
        break;
      }
    }
    req.headers.set("x-ok", "1");
  },
};
