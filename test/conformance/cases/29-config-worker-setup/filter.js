// ctx.config is the filter config; setup(config, worker) runs once per worker engine and its
// result is ctx.worker; console in setup goes to the worker's log.
let setups = 0;
export default {
  setup(config, worker) {
    setups++;
    console.log("setup for", config.who, "on worker", worker.index);
    return { greeting: "hi " + config.who, worker: worker.index };
  },
  onRequest(req, ctx) {
    ctx.log.info(ctx.worker.greeting, ctx.worker.worker, ctx.config.who, JSON.stringify(ctx.config.list), setups);
    ctx.log.info(ctx.config === ctx.config, ctx.worker === ctx.worker);
  },
};
