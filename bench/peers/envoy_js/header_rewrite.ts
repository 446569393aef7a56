// header_rewrite: read one request header, set two, remove one.
import { defineFilter } from "@envoy-js/sdk";

export default defineFilter({
  onRequest(req) {
    const headers = req.headers;
    headers.set("x-bench-copy", headers.get("x-bench-in") ?? "none");
    headers.set("x-bench-filter", "envoy_js");
    headers.delete("x-bench-drop");
  },
});
