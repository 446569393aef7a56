// A failure after the response started downstream cannot become a local reply: the stream
// is reset.
export default {
  onResponseData(c) {
    if (c.text() === "bad") throw new Error("late failure");
  },
};
