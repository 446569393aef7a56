// Failures in every shape: sync throw, async rejection, non-Error throw, a throw once the
// response has started (which can only reset), a throw in a timer, a throw in onDone.
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
function check(path) {
  throw new Error("bad path " + path);
}

export default {
  async onRequest(req, ctx) {
    switch (req.path) {
      case "/sync":
        check(req.path);
        break;
      case "/async":
        await sleep(3);
        throw new TypeError("async failure");
      case "/value":
        throw { code: 7 };
      case "/timer":
        setTimeout(() => { throw new Error("timer failure"); }, 1);
        await sleep(5);
        break;
    }
    req.headers.set("x-passed", "1");
  },
  onResponseData(chunk) {
    if (chunk.text() === "bad") throw new Error("late failure");
  },
  onDone(ctx) {
    if (ctx.aborted) throw new Error("onDone failure");
  },
};
