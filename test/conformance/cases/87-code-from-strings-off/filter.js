// Code generation from strings is off by default: eval, indirect eval, the Function
// constructor (however it is reached) and the async and generator function constructors all
// throw, and a request header cannot become code. Ordinary functions are still Functions.
const tryIt = (ctx, what, f) => {
  try {
    ctx.log.info(what, "ran:", String(f()));
  } catch (e) {
    ctx.log.info(what, e.name + ":", e.message);
  }
};
export default {
  onRequest(req, ctx) {
    const code = req.headers.get("x-code");
    tryIt(ctx, "eval", () => eval(code));
    tryIt(ctx, "indirect eval", () => (0, globalThis.eval)(code));
    tryIt(ctx, "new Function", () => new Function(`return ${code}`)());
    tryIt(ctx, "Function()", () => Function(`return ${code}`)());
    tryIt(ctx, "constructor", () => (() => 0).constructor(`return ${code}`)());
    tryIt(ctx, "async", () => Object.getPrototypeOf(async () => {}).constructor(code));
    tryIt(ctx, "generator", () => Object.getPrototypeOf(function* () {}).constructor(code));
    tryIt(ctx, "async generator", () => Object.getPrototypeOf(async function* () {}).constructor(code));
    ctx.log.info("still functions:", (() => 0) instanceof Function, typeof Function.prototype.call);
    req.headers.set("x-served", "1");
  },
};
