// The filter's own local reply from the request phase runs through its own response hooks, as
// Envoy runs a local reply through every encoder filter; the client gets it as they left it.
// A second respond() or a throw there leaves the first reply as it is.
export default {
  onRequest(req, ctx) {
    return ctx.respond(401, { body: "no", headers: { "x-path": req.path } });
  },
  onResponse(res, ctx) {
    res.headers.set("access-control-allow-origin", "*");
    ctx.log.info(`onResponse ${res.status}`);
    if (res.headers.get("x-path") === "/again") return ctx.respond(500);
    if (res.headers.get("x-path") === "/throw") throw new Error("boom");
  },
  onResponseData(chunk, ctx) {
    ctx.log.info(`onResponseData ${chunk.text()} ${chunk.endOfStream}`);
    chunk.replace(`{"error":"${chunk.text()}"}`);
  },
};
