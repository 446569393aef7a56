// content-length with streamed bodies and data hooks: kept when the hooks only read, set to
// the new size of a body that came in one piece, and guarded afterwards: a later chunk may not
// change size once content-length went on unchanged.
export default {
  onRequestData(chunk, ctx) {
    ctx.log.info(`request ${chunk.size} ${chunk.endOfStream}`);
  },
  onResponseData(chunk, ctx) {
    const text = chunk.text();
    if (text === "grow") chunk.append("n");
    if (text === "late") {
      try {
        chunk.append("!");
      } catch (e) {
        ctx.log.info(e.name);
      }
    }
  },
};
