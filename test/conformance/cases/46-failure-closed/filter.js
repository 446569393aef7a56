// A throwing hook under failure_mode closed (the default): local reply 500 with details
// envoy_js_error, the error recorded with its stack, logged and counted; the next stream is
// served normally.
function check(path) {
  if (path === "/boom") throw new Error("bad " + path);
}
export default {
  onRequest(req) {
    check(req.path);
    req.headers.set("x-ok", "1");
  },
};
