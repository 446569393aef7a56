// passthrough_1mib: a response data hook that does not read the data.
import { defineFilter } from "@envoy-js/sdk";

export default defineFilter({
  onResponseData(chunk) {},
});
