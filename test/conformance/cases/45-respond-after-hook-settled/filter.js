// respond() from a job that runs after a synchronous hook returned: the hook has settled, so
// the reply goes out at once (stream.cc: "ctx.respond() outside any hook of this stream:
// send at once").
export default {
  onRequest(req, ctx) {
    Promise.resolve().then(() => {
      ctx.respond(403, { body: "denied later" });
      ctx.log.info("responded from a job");
    });
  },
};
