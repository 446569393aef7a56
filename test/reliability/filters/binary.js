// Bytes that are not UTF-8: the body passes through unchanged, text() substitutes U+FFFD,
// the data hook checks every byte.
export default {
  onRequestData(chunk, ctx) {
    const bytes = chunk.bytes();
    let ok = bytes.length === 256;
    for (let i = 0; ok && i < 256; i++) ok = bytes[i] === i;
    ctx.log.info("all 256 byte values: " + ok);
  },
  async onResponse(res, ctx) {
    const text = await res.body.text();
    const replacements = text.split("\ufffd").length - 1;
    // 41 ff 42 c3 28 e2 82: at least one U+FFFD for each of ff, c3 and the cut-off e2 82.
    ctx.log.info("replacement chars: " + (replacements >= 3 ? "yes" : replacements));
    try {
      new TextDecoder("utf-8", { fatal: true }).decode(await res.body.bytes());
    } catch (e) {
      ctx.log.info("fatal decoder: " + e.name);
    }
  },
};
