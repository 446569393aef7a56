// Runaway code: sync, after an await, in a timer and in a microtask.
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export default {
  async onRequest(req, ctx) {
    if (req.path === "/spin") for (;;) {}
    if (req.path === "/spin-later") {
      await sleep(1);
      while (true) {}
    }
    if (req.path === "/spin-timer") {
      setTimeout(() => { for (;;) {} }, 1);
      await sleep(5);
    }
    if (req.path === "/spin-microtask") {
      queueMicrotask(() => { for (;;) {} });
    }
    req.headers.set("x-ok", "1");
  },
};
