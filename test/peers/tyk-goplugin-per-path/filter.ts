// Port of TykTechnologies/tyk test/goplugins/test_goplugin.go MyPluginPerPathFoo, ...Bar and
// ...Resp, as goplugin/mw_go_plugin_test.go TestGoPluginPerPathSingleFile binds them to paths
// of an API: GET <listen path>/foo gets X-foo: foo and /bar X-bar: bar on the response (headers
// the plugin put on Tyk's response writer), /resp is answered by the plugin with
// {"current_time":"now"}; a disabled binding does nothing.
import { defineFilter } from "@envoy-js/sdk";

type Plugin = "foo" | "bar" | "resp";

interface Binding {
  path: string;
  method: string;
  plugin: Plugin;
  disabled?: boolean;
}

interface Config {
  listenPath: string;
  plugins: Binding[];
}

const responseHeaders = new WeakMap<object, [string, string]>();

export default defineFilter<Config>({
  onRequest(req, ctx) {
    const pathname = req.path.split("?", 1)[0];
    if (!pathname.startsWith(ctx.config.listenPath)) return;
    const rest = pathname.slice(ctx.config.listenPath.length) || "/";
    const bound = ctx.config.plugins.find((b) => !b.disabled && b.path === rest && b.method === req.method);
    if (bound === undefined) return;
    if (bound.plugin === "resp")
      return ctx.respond(200, {
        body: JSON.stringify({ current_time: "now" }),
        headers: { "content-type": "application/json" },
      });
    responseHeaders.set(ctx, bound.plugin === "foo" ? ["x-foo", "foo"] : ["x-bar", "bar"]);
  },

  onResponse(res, ctx) {
    const header = responseHeaders.get(ctx);
    if (header) res.headers.append(header[0], header[1]);
  },
});
