// Port of envoyproxy/envoy contrib/golang/filters/http/test/test_data/routeconfig: on the
// response, removes the configured `remove` header and sets the `set` header to "test-value".
// The config is the filter's, overridden per virtual host or per route (the original's parser
// Merge keeps the parent's field when the child leaves it empty; ctx.config's deep merge does
// the same).
import { defineFilter } from "@envoy-js/sdk";

interface Config {
  remove?: string;
  set?: string;
}

export default defineFilter<Config>({
  onResponse(res, ctx) {
    if (ctx.config.remove) res.headers.delete(ctx.config.remove);
    if (ctx.config.set) res.headers.set(ctx.config.set, "test-value");
  },
});
