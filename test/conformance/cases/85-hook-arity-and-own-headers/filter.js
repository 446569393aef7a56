// A hook declared with exactly one parameter is called without ctx; rest-parameter and
// two-parameter hooks, and onDone, get it. The first `.headers` read leaves an own,
// read-only, non-enumerable property behind.
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const describe = (msg) => {
  const before = Object.getOwnPropertyNames(msg).length;
  const same = msg.headers === msg.headers;
  const d = Object.getOwnPropertyDescriptor(msg, "headers");
  return [before, same, d.writable, d.enumerable, d.configurable, Object.keys(msg).length].join(",");
};
export default {
  async onRequest(req) {
    req.headers.set("x-args", String(arguments.length));
    await sleep(1);
    req.headers.set("x-own", describe(req));
  },
  onRequestData(chunk, ctx) { chunk.append(":" + typeof ctx.respond); },
  onResponse(...args) {
    Object.freeze(args[0]);
    args[0].headers.set("x-args", args.length + ":" + typeof args[1].respond + ":" + (args[0].headers === args[0].headers));
  },
  onDone(ctx) { ctx.log.info("onDone", typeof ctx.respond); },
};
