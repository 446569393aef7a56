// Does not compile: the load must fail with file:line:col.
export default {
  onRequest(req) {
    return 1 +* 2;
  },
};
