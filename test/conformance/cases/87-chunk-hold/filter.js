// chunk.hold() keeps the body so far in the host's buffer (StopIterationAndBuffer) and shows
// the data hook each new piece; returning nothing from a later data hook passes everything
// held on, with that hook's edits. A sync hold and an async one behave the same.
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let seen = "";
export default {
  async onRequestData(c, ctx) {
    seen += c.text();
    ctx.log.info(`data ${c.text()} ${c.endOfStream} seen=${seen}`);
    if (c.text() === "b") await sleep(5);
    if (!seen.includes("END")) return c.hold();
    c.append(`|${seen.length}`);
  },
  onResponseData(c, ctx) {
    if (c.endOfStream) {
      try {
        c.hold();
      } catch (e) {
        ctx.log.info(e.name);
      }
      return;
    }
    c.replace(c.text().toUpperCase());
    return c.hold();
  },
};
