// Port of the "pre" and "post" JSVM middlewares of TykTechnologies/tyk
// gateway/mw_js_plugin_test.go TestJSVMStagesRequest (shaped like middleware/sample_pre.js):
// pre sets the Pre: foobar header and the pre=foobar query parameter, post does the same with
// Post / post. With `samplePre` on, the other operations of middleware/sample_pre.js run too:
// User-Agent: Tyk-Custom-JSVM-Middleware, test_param=My Teapot added, delete_me removed, and
// the body replaced by "New Request body".
//
// Differs: Tyk rebuilds the query with Go's url.Values.Encode (keys sorted); here the
// parameters keep their order and new ones go last. The body override works on a request that
// came without a body too (a GET goes upstream with "New Request body" and its length).
import { defineFilter } from "@envoy-js/sdk";

interface Config {
  samplePre?: boolean;
}

// Encodes like Go's url.QueryEscape: spaces become "+".
const queryEscape = (s: string) => encodeURIComponent(s).replace(/%20/g, "+");

function withParams(path: string, add: [string, string][], remove: string[]): string {
  const q = path.indexOf("?");
  const base = q < 0 ? path : path.slice(0, q);
  const pairs = q < 0 || q === path.length - 1 ? [] : path.slice(q + 1).split("&");
  const names = new Set([...remove, ...add.map(([k]) => k)]);
  const kept = pairs.filter((p) => !names.has(decodeURIComponent(p.split("=", 1)[0].replace(/\+/g, " "))));
  const all = [...kept, ...add.map(([k, v]) => `${queryEscape(k)}=${queryEscape(v)}`)];
  return all.length === 0 ? base : `${base}?${all.join("&")}`;
}

export default defineFilter<Config>({
  async onRequest(req, ctx) {
    // pre
    ctx.log.info("Running sample  PRE PROCESSOR JSVM middleware");
    req.headers.set("pre", "foobar");
    const add: [string, string][] = [["pre", "foobar"]];
    const remove: string[] = [];
    if (ctx.config.samplePre) {
      req.headers.set("user-agent", "Tyk-Custom-JSVM-Middleware");
      add.push(["test_param", "My Teapot"]);
      remove.push("delete_me");
    }
    // post
    ctx.log.info("Running sample  POST PROCESSOR JSVM middleware");
    req.headers.set("post", "foobar");
    add.push(["post", "foobar"]);
    req.headers.set(":path", withParams(req.path, add, remove));
    ctx.clearRouteCache();

    if (ctx.config.samplePre) {
      await req.body.text();
      req.body.replace("New Request body");
    }
  },
});
