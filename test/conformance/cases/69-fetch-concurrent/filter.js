// Several callouts at once: answers arrive in due-time order on the fake clock, interleaved
// with timers; a fetch from the stream's timer; the response path waits for its own.
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export default {
  async onRequest(req, ctx) {
    const order = [];
    const one = (cluster) => ctx.fetch(cluster, { path: "/" + cluster }).then((r) => { order.push(cluster + "@" + performance.now()); return r.status; });
    const timed = sleep(6).then(() => order.push("timer@" + performance.now()));
    const statuses = await Promise.all([one("a"), one("b"), one("c"), timed]);
    ctx.log.info(order.join(" "), statuses.join(","));
    setTimeout(() => {
      ctx.fetch("a", { path: "/from-timer" }).then((r) => ctx.log.info("timer fetch " + r.status + " at " + performance.now()));
    }, 1);
    await sleep(20);
  },
};
