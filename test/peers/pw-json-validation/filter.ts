// Port of proxy-wasm/proxy-wasm-go-sdk examples/json_validation: only `content-type:
// application/json` is let in (else 403 "content-type must be provided"); the whole body must
// be valid JSON holding every configured key (else 403 "invalid payload"). Keys are gjson-style
// paths: "a.b" looks inside objects.
import { defineFilter } from "@envoy-js/sdk";

interface Config {
  requiredKeys?: string[];
}

function has(value: unknown, path: string): boolean {
  let here = value;
  for (const part of path.split(".")) {
    if (here === null || typeof here !== "object" || !Object.hasOwn(here, part)) return false;
    here = (here as Record<string, unknown>)[part];
  }
  return true;
}

export default defineFilter<Config>({
  async onRequest(req, ctx) {
    if (req.headers.get("content-type") !== "application/json")
      return ctx.respond(403, { body: "content-type must be provided" });

    const text = await req.body.text();
    let payload: unknown;
    try {
      payload = JSON.parse(text);
    } catch {
      ctx.log.error(`body is not a valid json: ${JSON.stringify(text)}`);
      return ctx.respond(403, { body: "invalid payload" });
    }
    for (const key of ctx.config.requiredKeys ?? []) {
      if (!has(payload, key)) {
        ctx.log.error(`required key (${key}) is missing: ${text}`);
        return ctx.respond(403, { body: "invalid payload" });
      }
    }
  },
});
