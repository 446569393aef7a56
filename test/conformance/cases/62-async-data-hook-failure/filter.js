// A data hook that rejects after an await: its chunk is dropped, the stream gets the 500.
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export default {
  async onRequestData(c, ctx) {
    const text = c.text();
    await sleep(2);
    if (text.includes("forbidden")) throw new Error("forbidden content");
    c.replace(text.toUpperCase());
  },
};
