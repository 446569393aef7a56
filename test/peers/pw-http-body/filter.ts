// Port of proxy-wasm/proxy-wasm-go-sdk examples/http_body. With `"mode": "echo"` (the
// original's plugin configuration "echo") the whole request body comes back as a 200. Otherwise
// a request must carry content-length (else 400 "content must be provided"), which is removed;
// then the request body, or with `buffer-replace-at: response` the response body, gets the
// `buffer-operation` header's edit: append, prepend or replace (the default).
import { defineFilter } from "@envoy-js/sdk";

interface Config {
  mode?: "echo";
}

type Operation = "append" | "prepend" | "replace";

interface Edit {
  operation: Operation;
  atResponse: boolean;
}

const edits = new WeakMap<object, Edit>();

function edited(operation: Operation, original: string, what: string): string {
  if (operation === "append") return `${original}[this is appended ${what}]`;
  if (operation === "prepend") return `[this is prepended ${what}]${original}`;
  return `[this is replaced ${what}]`;
}

export default defineFilter<Config>({
  async onRequest(req, ctx) {
    if (ctx.config.mode === "echo") return ctx.respond(200, { body: await req.body.bytes() });

    const atResponse = req.headers.get("buffer-replace-at") === "response";
    if (!req.headers.has("content-length")) return ctx.respond(400, { body: "content must be provided" });
    req.headers.delete("content-length");
    const asked = req.headers.get("buffer-operation");
    const operation: Operation = asked === "append" || asked === "prepend" ? asked : "replace";
    edits.set(ctx, { operation, atResponse });
    if (atResponse) return;

    const original = await req.body.text();
    ctx.log.info(`original request body: ${original}`);
    req.body.replace(edited(operation, original, "body"));
  },

  async onResponse(res, ctx) {
    const edit = edits.get(ctx);
    if (edit === undefined || !edit.atResponse) return;
    res.headers.delete("content-length");
    const original = await res.body.text();
    ctx.log.info(`original response body: ${original}`);
    res.body.replace(edited(edit.operation, original, "body"));
  },
});
