// A misspelt hook is refused at load instead of being silently ignored.
export default {
  onRequest() {},
  onReqest() {},
};
