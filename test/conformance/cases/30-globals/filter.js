// The engine's globals: TextEncoder/TextDecoder (utf-8 only), queueMicrotask, performance on
// the host clock, atob/btoa, and no Intl or WebAssembly.
export default {
  onRequest(req, ctx) {
    const enc = new TextEncoder().encode("é€");
    const dec = new TextDecoder().decode(enc);
    ctx.log.info(enc.length, enc instanceof Uint8Array, dec, new TextEncoder().encoding, new TextDecoder("UTF-8").encoding);
    ctx.log.info(new TextDecoder().decode(new Uint8Array([0xef, 0xbb, 0xbf, 0x41])).length);
    try { new TextDecoder("latin1"); } catch (e) { ctx.log.info(e.name + ": " + e.message); }
    try { new TextDecoder("utf-8", { fatal: true }).decode(new Uint8Array([0xff])); } catch (e) { ctx.log.info(e.name + ": " + e.message); }
    try { new TextDecoder().decode("text"); } catch (e) { ctx.log.info(e.name + ": " + e.message); }
    try { queueMicrotask(1); } catch (e) { ctx.log.info(e.name + ": " + e.message); }
    try { setTimeout("code"); } catch (e) { ctx.log.info(e.name + ": " + e.message); }
    queueMicrotask(() => ctx.log.info("microtask"));
    ctx.log.info(typeof performance.now(), performance.now(), btoa("hi"), atob("aGk="));
    ctx.log.info(typeof Intl, typeof WebAssembly, typeof process, typeof require, typeof crypto);
  },
};
