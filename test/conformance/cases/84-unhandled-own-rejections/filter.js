// The filter's own promises: a rejection that nothing handles by the end of the job drain is
// reported once ("[warn] unhandled promise rejection"); one handled in time is not. Also a
// rejection left behind by the module body and by setup, reported at the first drain.
Promise.reject(new Error("left by the module body"));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function helper(fail) {
  if (fail) throw new Error("helper failed");
  return 1;
}
export default {
  setup() {
    Promise.reject(new Error("left by setup"));
    return {};
  },
  async onRequest(req, ctx) {
    switch (req.path) {
      case "/plain": Promise.reject(new Error("plain")); break;
      case "/caught-later": { const p = Promise.reject(new Error("x")); await null; await null; p.catch(() => {}); break; }
      case "/helper-forgotten": helper(true); break;
      case "/helper-awaited": try { await helper(true); } catch (e) { ctx.log.info("caught " + e.message); } break;
      case "/then-without-catch": Promise.reject(new Error("then only")).then(() => {}); break;
      case "/finally": Promise.reject(new Error("finally")).finally(() => ctx.log.info("finally ran")); break;
      case "/all": await Promise.all([helper(false), helper(true)]).catch((e) => ctx.log.info("all: " + e.message)); break;
      case "/race": Promise.race([sleep(5), Promise.reject(new Error("race"))]); break;
      case "/resolve-with-rejected": new Promise((resolve) => resolve(Promise.reject(new Error("adopted")))); break;
      case "/await-value": { const v = await 5; const w = await { then(r) { r(6); } }; ctx.log.info("values", v, w); break; }
      case "/timer": setTimeout(() => { Promise.reject(new Error("in a timer")); }, 2); await sleep(4); break;
      case "/next-event": globalThis.later = Promise.reject(new Error("handled next event")); break;
    }
  },
  onResponse(res, ctx) {
    if (globalThis.later) {
      globalThis.later.catch(() => ctx.log.info("handled in onResponse"));
      globalThis.later = undefined;
    }
  },
};
