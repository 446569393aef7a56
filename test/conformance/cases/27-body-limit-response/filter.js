// A response body over buffer_limit_bytes while reading it whole: 500, nothing downstream.
export default {
  async onResponse(res) {
    await res.body.text();
  },
};
