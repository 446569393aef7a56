// A data hook that rejects after an await, with later chunks held in the host's buffer: the
// stream gets the 500, nothing goes upstream.
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export default {
  async onRequestData(c, ctx) {
    const text = c.text();
    await sleep(2);
    if (text.includes("forbidden")) throw new Error("forbidden content");
    c.replace(text.toUpperCase());
  },
};
