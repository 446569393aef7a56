// An async hook whose awaits all settle during the job drain is still the fast path.
export default {
  async onRequest(req, ctx) {
    await null;
    await Promise.resolve("x");
    queueMicrotask(() => ctx.log.info("microtask"));
    req.headers.set("x-async", "2");
  },
};
