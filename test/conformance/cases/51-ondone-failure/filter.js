// An error in onDone cannot fail the finished stream: it is logged and counted.
export default {
  onDone(ctx) {
    ctx.log.info("onDone runs");
    throw new Error("cleanup failed");
  },
};
