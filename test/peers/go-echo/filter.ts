// Port of envoyproxy/envoy contrib/golang/filters/http/test/test_data/echo: removes the
// request's x-test-header-1, sets rsp-header-from-go: foo-test on it, and answers a request
// for `match_path` itself with 403 "<echo_body>, path: <path>\r\n"; every upstream response
// gets rsp-header-from-go: bar-test.
import { defineFilter } from "@envoy-js/sdk";

interface Config {
  echo_body?: string;
  match_path?: string;
}

export default defineFilter<Config>({
  onRequest(req, ctx) {
    req.headers.delete("x-test-header-1");
    const path = req.path;
    req.headers.set("rsp-header-from-go", "foo-test");
    const match = ctx.config.match_path ?? "";
    if (match !== "" && path === match)
      return ctx.respond(403, { body: `${ctx.config.echo_body ?? ""}, path: ${path}\r\n` });
  },

  onResponse(res) {
    res.headers.set("rsp-header-from-go", "bar-test");
  },
});
