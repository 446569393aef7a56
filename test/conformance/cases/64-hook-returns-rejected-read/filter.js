// A hook that returns the (already rejected) promise of a refused body read: the failure
// policy applies, and the rejection, which nothing handles, is reported once after the drain.
let request;
export default {
  onRequest(req) {
    request = req;
  },
  onResponse() {
    return request.body.text();
  },
};
