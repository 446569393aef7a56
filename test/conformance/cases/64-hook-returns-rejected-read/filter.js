// A hook that returns the (already rejected) promise of a refused body read: the failure
// policy applies, and the rejection is reported once, when the promise was made.
let request;
export default {
  onRequest(req) {
    request = req;
  },
  onResponse() {
    return request.body.text();
  },
};
