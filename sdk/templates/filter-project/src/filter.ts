// An envoy-js filter: API-key check on the way in, a header on the way out.
// DESIGN of the API: the @envoy-js/sdk README and its types.
import { defineFilter } from "@envoy-js/sdk";

interface Config {
  /** The header that carries the API key. */
  header: string;
  /** Accepted keys -> the client's name, sent upstream as x-client. */
  keys: Record<string, string>;
}

export default defineFilter<Config>({
  onRequest(req, ctx) {
    const key = req.headers.get(ctx.config.header);
    if (key === null) return ctx.respond(401, { body: `missing ${ctx.config.header}\n` });
    const client = ctx.config.keys[key];
    if (client === undefined) return ctx.respond(403, { body: "unknown key\n" });
    req.headers.delete(ctx.config.header);
    req.headers.set("x-client", client);
  },

  onResponse(res) {
    res.headers.set("x-filtered-by", "envoy-js");
  },
});
