// Data queued behind a pending hook counts against buffer_limit_bytes: over it, 413.
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export default {
  async onRequestData(c, ctx) {
    ctx.log.info("data " + c.size);
    await sleep(10);
  },
};
