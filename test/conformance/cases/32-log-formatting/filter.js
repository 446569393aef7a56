// ctx.log and console format their arguments the engine's way: strings as they are, objects
// and arrays as JSON, errors as "Name: message" (plus the stack), functions as text.
export default {
  onRequest(req, ctx) {
    ctx.log.info("str", 1, 2.5, true, null, undefined, { a: [1, { b: "c" }] }, [1, "x"]);
    ctx.log.debug(new Error("boom"));
    ctx.log.trace(new RangeError("range"));
    const cyclic = {};
    cyclic.self = cyclic;
    ctx.log.warn("cyclic", cyclic);
    ctx.log.error({ toJSON() { return "custom"; } }, new Map([[1, 2]]));
    console.log("console.log");
    console.info("console.info");
    console.debug("console.debug");
    console.trace("console.trace");
    console.warn("console.warn");
    console.error("console.error");
    ctx.log.info();
  },
};
