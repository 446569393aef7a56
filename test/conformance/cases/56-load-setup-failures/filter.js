// setup() that throws fails the load with its error.
export default {
  setup(config) {
    if (!config.db) throw new Error("no db in config");
    return {};
  },
};
