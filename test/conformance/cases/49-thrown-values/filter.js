// Throwing something that is not an Error: "thrown value: ..." in the error and the log.
export default {
  onRequest(req) {
    if (req.path === "/string") throw "plain string";
    if (req.path === "/object") throw { code: 7 };
    if (req.path === "/undefined") return Promise.reject(undefined);
    if (req.path === "/custom") {
      class MyError extends Error {}
      const e = new MyError("custom");
      e.name = "MyError";
      throw e;
    }
  },
};
