// A hook that never settles holds the stream; the host reports it stalled and onDone does
// not run for a response hook that never settled.
export default {
  async onResponse(res, ctx) {
    ctx.log.info("waiting forever");
    await new Promise(() => {});
  },
  onDone(ctx) {
    ctx.log.info("onDone");
  },
};
