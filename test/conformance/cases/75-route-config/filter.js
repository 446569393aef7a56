// Per-route config is deep-merged over the filter's config (plain objects merge, anything
// else replaces), made once per route and shared by its streams.
let seen = [];
export default {
  onRequest(req, ctx) {
    const c = ctx.config;
    const same = seen.findIndex((x) => x === c);
    seen.push(c);
    ctx.log.info(JSON.stringify(c), "same object as stream", same);
  },
};
