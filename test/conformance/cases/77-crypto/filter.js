// crypto.getRandomValues fills integer typed arrays in place (at most 65536 bytes) and
// returns them; randomUUID gives a version 4 UUID. Only the shape is compared.
export default {
  onRequest(req, ctx) {
    const out = [];
    for (const T of [Uint8Array, Int8Array, Uint16Array, Int32Array, Uint8ClampedArray, BigUint64Array]) {
      const a = new T(16);
      const r = crypto.getRandomValues(a);
      out.push(T.name + ":" + (r === a) + ":" + a.length);
    }
    ctx.log.info(out.join(" "));
    const big = crypto.getRandomValues(new Uint8Array(65536));
    ctx.log.info(big.length, big.some((x) => x !== 0), crypto.getRandomValues(new Uint8Array(0)).length);
    for (const bad of [[], [new Float32Array(1)], [new Float64Array(1)], [new DataView(new ArrayBuffer(4))], [[1, 2]], [new Uint8Array(65537)], [new Uint32Array(16385)]]) {
      try { crypto.getRandomValues(...bad); ctx.log.info("ok?!"); } catch (e) { ctx.log.info(e.name + ": " + e.message); }
    }
    const u = crypto.randomUUID();
    ctx.log.info(typeof u, u.length, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(u), u !== crypto.randomUUID());
    ctx.log.info(typeof crypto, Object.getOwnPropertyNames(crypto).sort().join(","), crypto.getRandomValues.length, crypto.randomUUID.length);
  },
};
