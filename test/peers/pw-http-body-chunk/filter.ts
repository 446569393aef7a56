// Port of proxy-wasm/proxy-wasm-go-sdk examples/http_body_chunk: the request body is looked at
// one piece at a time while Envoy keeps buffering it. A piece that contains "pattern" ends the
// stream with a 403 (`powered-by: proxy-wasm-go-sdk`, body `pattern found in chunk: <n>`), so
// that nothing of the body has gone upstream; when the body ends without it, the whole body
// goes on ("pattern not found").
//
// Differs: each data hook gets only the new piece (`chunk`) instead of reading the growing
// buffer from the offset it had read up to; returning `chunk.hold()` is the original's
// ActionPause in OnHttpRequestBody (Envoy's StopIterationAndBuffer). As in the original, a
// "pattern" split across two pieces is not found.
import { defineFilter } from "@envoy-js/sdk";

interface Progress {
  read: number;
  chunks: number;
}

const progress = new WeakMap<object, Progress>();

export default defineFilter({
  onRequestData(chunk, ctx) {
    const p = progress.get(ctx) ?? { read: 0, chunks: 0 };
    progress.set(ctx, p);
    ctx.log.info(`request body chunk: size ${chunk.size}, read before ${p.read}, endOfStream ${chunk.endOfStream}`);
    if (chunk.size > 0) {
      p.chunks++;
      p.read += chunk.size;
      if (chunk.text().includes("pattern")) {
        const found = `pattern found in chunk: ${p.chunks}`;
        ctx.log.info(found);
        return ctx.respond(403, { headers: { "powered-by": "proxy-wasm-go-sdk" }, body: found });
      }
    }
    if (!chunk.endOfStream) return chunk.hold(); // wait for the whole body before it goes upstream
    ctx.log.info("pattern not found");
  },
});
