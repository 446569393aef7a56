// The static metrics declaration is checked at load.
export default {
  metrics: { requests: "counter", latency: "histogram", load: "meter" },
  onRequest() {},
};
