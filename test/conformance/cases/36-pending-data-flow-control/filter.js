// Data that arrives while a hook is pending waits in the host's buffer under the host's flow
// control (StopIterationAndWatermark): buffer_limit_bytes does not apply to it (past Envoy's
// own limit Envoy reads more slowly), nothing fails. Each held chunk is then a window of that
// buffer: edits stay inside it.
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export default {
  async onRequestData(c, ctx) {
    ctx.log.info("data " + c.size + " " + c.endOfStream + " " + c.text());
    await sleep(10);
    c.prepend("<");
    c.append(">");
    ctx.log.info("now " + c.text());
  },
};
