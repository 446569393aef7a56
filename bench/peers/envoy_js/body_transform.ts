// body_transform: upper-case every response body chunk, in place of the chunk.
import { defineFilter } from "@envoy-js/sdk";

export default defineFilter({
  onResponseData(chunk) {
    chunk.replace(chunk.text().toUpperCase());
  },
});
