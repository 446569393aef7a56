// Port of TykTechnologies/tyk test/goplugins/test_goplugin.go, the chain that
// goplugin/mw_go_plugin_test.go's TestGoPluginMWs runs: MyPluginPre (notes the initial URI),
// MyPluginAuthCheck (only the token "abc"; else 403 "auth failed"), MyPluginPostKeyAuth
// (names the session) and MyPluginPost (answers itself with {"message":"post message"} and the
// API's config data). In Tyk, headers a middleware puts on the response writer end up on the
// client's response; here they are gathered and sent with the filter's own reply. The session
// goes to dynamic metadata (envoy_js.tyk: session_alias, session_org) where Tyk keeps it in
// the request context.
import { defineFilter } from "@envoy-js/sdk";

interface Config {
  /** The API definition's config_data (MyPluginPost reads "my-context-data"). */
  configData?: Record<string, unknown>;
  /** The only token MyPluginAuthCheck accepts (default "abc", as the original). */
  token?: string;
}

export default defineFilter<Config>({
  onRequest(req, ctx) {
    // MyPluginPre: no session yet is the normal case.
    const out: Record<string, string> = { "x-initial-uri": req.path };

    // MyPluginAuthCheck.
    if (req.headers.get("authorization") !== (ctx.config.token ?? "abc")) {
      out["x-auth-result"] = "failed";
      return ctx.respond(403, { body: "auth failed", headers: out, details: "tyk_auth_check" });
    }
    // Scalars: through the dynamic module, Envoy's ABI stores an object as its JSON text.
    const session = { orgId: "default", alias: "abc-session" };
    ctx.metadata.set("envoy_js.tyk", "session_alias", session.alias);
    ctx.metadata.set("envoy_js.tyk", "session_org", session.orgId);
    out["x-auth-result"] = "OK";

    // MyPluginPostKeyAuth.
    out["x-session-alias"] = session.alias;

    // MyPluginPost.
    const data = ctx.config.configData?.["my-context-data"];
    out["x-plugin-data"] = typeof data === "string" && data !== "" ? data : "null";
    out["content-type"] = "application/json";
    return ctx.respond(200, { body: JSON.stringify({ message: "post message" }), headers: out });
  },
});
