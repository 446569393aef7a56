// Port of envoyproxy/dynamic-modules-examples rust/src/http_access_logger.rs: every request's
// and response's headers, as "name: value" lines, are written as one JSON line when the
// stream ends. The original hands the line to writer threads that append it to
// <dirname>/access_log_<n>.log; a filter here has no file system, so the line goes to Envoy's
// log (at info, under the configured `logger` prefix) for Envoy's own log pipeline to ship.
import { defineFilter } from "@envoy-js/sdk";

interface Config {
  /** Prefix of each line, to find them in Envoy's log (default "access_log"). */
  logger?: string;
}

interface Entry {
  request_headers: string[];
  response_headers: string[];
}

const entries = new WeakMap<object, Entry>();

function entryOf(ctx: object): Entry {
  let entry = entries.get(ctx);
  if (entry === undefined) {
    entry = { request_headers: [], response_headers: [] };
    entries.set(ctx, entry);
  }
  return entry;
}

export default defineFilter<Config>({
  onRequest(req, ctx) {
    const lines = entryOf(ctx).request_headers;
    for (const [name, value] of req.headers) lines.push(`${name}: ${value}`);
  },

  onResponse(res, ctx) {
    const lines = entryOf(ctx).response_headers;
    for (const [name, value] of res.headers) lines.push(`${name}: ${value}`);
  },

  onDone(ctx) {
    ctx.log.info(`${ctx.config.logger ?? "access_log"} ${JSON.stringify(entryOf(ctx))}`);
  },
});
