// A module whose top-level code throws (after a top-level await) cannot load.
await Promise.resolve();
const config = JSON.parse("{}");
if (!config.ready) throw new TypeError("module not ready");
export default {};
