// Port of TykTechnologies/tyk test/goplugins/test_goplugin.go MyPluginResponse (run by
// goplugin/mw_go_plugin_test.go TestGoPluginResponseHook): the upstream's response gets
// X-Response-Added: resp-added, X-Plugin-Data from the API's config data ("null" without it),
// and its body replaced by {"message":"response injected message"}, also when the upstream
// sent none.
import { defineFilter } from "@envoy-js/sdk";

interface Config {
  configData?: Record<string, unknown>;
}

export default defineFilter<Config>({
  async onResponse(res, ctx) {
    res.headers.append("x-response-added", "resp-added");
    await res.body.text();
    res.body.replace(JSON.stringify({ message: "response injected message" }));
    const data = ctx.config.configData?.["my-context-data"];
    res.headers.append("x-plugin-data", typeof data === "string" && data !== "" ? data : "null");
  },
});
