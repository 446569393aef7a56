// Binary chunks: bytes() is a Uint8Array copy; replace() takes a Uint8Array or ArrayBuffer;
// other data types are refused.
export default {
  onRequestData(c, ctx) {
    const b = c.bytes();
    ctx.log.info(b instanceof Uint8Array, b.length, c.size);
    b[0] = 0; // a copy: the chunk is unchanged
    ctx.log.info(c.text());
    if (c.endOfStream) c.replace(new Uint8Array([0x4f, 0x4b]).buffer);
    else c.replace(c.bytes().map((x) => x ^ 0x20));
    try { c.append(123); } catch (e) { ctx.log.info(e.name + ": " + e.message); }
    try { c.append(new Uint16Array(2)); } catch (e) { ctx.log.info(e.name + ": " + e.message); }
  },
};
