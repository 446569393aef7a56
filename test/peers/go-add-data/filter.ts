// Port of envoy contrib/golang/filters/http/test/test_data/add_data: gives a body to a message
// that arrived without one. `?calledInDecodeHeaders=<text>` turns a body-less request into a
// POST whose body is <text> (with its content-length); `?calledInEncodeHeaders=<text>` gives
// a body-less upstream response the body <text>, after an await as the original does it from
// a goroutine.
//
// Differs: the body is given with `body.replace()` once `await body.text()` resolved `""`
// (envoy-js sets content-length itself) instead of `AddData` from the header callback. The
// original's other cases have no counterpart: `calledInDecodeData` checks that AddData is
// refused inside a data callback (envoy-js has no such call; a data hook edits its chunk), and
// `calledInDecodeTrailers` / `calledInEncodeTrailers` add body data from the trailers callback,
// which envoy-js's trailer hooks cannot do.
import { defineFilter } from "@envoy-js/sdk";

function param(path: string, name: string): string | null {
  const at = path.indexOf("?");
  if (at < 0) return null;
  for (const pair of path.slice(at + 1).split("&")) {
    const eq = pair.indexOf("=");
    if (decodeURIComponent(eq < 0 ? pair : pair.slice(0, eq)) === name)
      return eq < 0 ? "" : decodeURIComponent(pair.slice(eq + 1));
  }
  return null;
}

const responseBodies = new WeakMap<object, string>();

export default defineFilter({
  async onRequest(req, ctx) {
    const inEncode = param(req.path, "calledInEncodeHeaders");
    if (inEncode !== null) responseBodies.set(ctx, inEncode);

    const data = param(req.path, "calledInDecodeHeaders");
    if (data === null) return;
    req.headers.set(":method", "POST");
    const had = await req.body.text();
    req.body.replace(had + data);
  },

  async onResponse(res, ctx) {
    const data = responseBodies.get(ctx);
    if (data === undefined) return;
    await Promise.resolve();
    const had = await res.body.text();
    res.body.replace(had + data);
  },
});
