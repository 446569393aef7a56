// Port of envoyproxy/dynamic-modules-examples rust/src/http_zero_copy_regex_waf.rs: the whole
// request body is held and matched against the configured pattern; a match is refused with
// 403 "Access forbidden". As in the original (the `matchers` crate), the pattern must match
// the whole body, not a part of it.
import { defineFilter } from "@envoy-js/sdk";

interface Config {
  /** A regular expression, e.g. "^.*(curl|wget).*" (the original's integration config). */
  pattern: string;
}

export default defineFilter({
  setup(config: Config) {
    // Compiled once per worker; `s` lets `.` cross newlines in a body.
    return { whole: new RegExp(`^(?:${config.pattern})$`, "s") };
  },

  async onRequest(req, ctx) {
    const body = await req.body.text();
    if (ctx.worker.whole.test(body)) return ctx.respond(403, { body: "Access forbidden" });
  },
});
