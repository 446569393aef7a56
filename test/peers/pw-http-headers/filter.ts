// Port of proxy-wasm/proxy-wasm-go-sdk examples/http_headers: sets `test: best` on every
// request and logs its headers; adds `x-proxy-wasm-go-sdk-example: http_headers` and the
// configured header to every response and logs them; logs "<id> finished" when the stream
// ends. A config without both `header` and `value` is refused at start-up, as the original's
// OnPluginStart fails.
import { defineFilter } from "@envoy-js/sdk";

interface Config {
  header?: string;
  value?: string;
}

export default defineFilter({
  setup(config: Config | null) {
    if (config === null || config === undefined || Object.keys(config).length === 0) return { header: "", value: "" };
    const header = String(config.header ?? "").trim();
    const value = String(config.value ?? "").trim();
    if (header === "" || value === "")
      throw new TypeError(
        'invalid configuration format; expected {"header": "<header name>", "value": "<header value>"}',
      );
    console.info(`header from config: ${header} = ${value}`);
    return { header, value };
  },

  onRequest(req, ctx) {
    req.headers.set("test", "best");
    for (const [name, value] of req.headers) ctx.log.info(`request header --> ${name}: ${value}`);
  },

  onResponse(res, ctx) {
    const { header, value } = ctx.worker;
    ctx.log.info(`adding header: ${header}=${value}`);
    res.headers.append("x-proxy-wasm-go-sdk-example", "http_headers");
    if (header !== "") res.headers.append(header, value);
    for (const [name, v] of res.headers) ctx.log.info(`response header <-- ${name}: ${v}`);
  },

  onDone(ctx) {
    ctx.log.info(`${ctx.stream.id} finished`);
  },
});
