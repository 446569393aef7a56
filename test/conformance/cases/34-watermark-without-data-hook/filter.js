// Without data hooks, data held behind a pending hook is buffered by the host with flow
// control (StopIterationAndWatermark) and passed on whole.
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export default {
  async onRequest(req) {
    await sleep(5);
  },
};
