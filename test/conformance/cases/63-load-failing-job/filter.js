// A job queued by the module body that throws fails the load, like a throw in the body.
queueMicrotask(() => {
  throw new Error("init job failed");
});
export default { onRequest() {} };
