// Port of envoy contrib/golang/filters/http/test/test_data/bufferinjectdata: completes
// "To be, ..." into "To be, or not to be, that is the question" by adding text to a body as
// it passes, in the request (`?bufferingly_decode`, `?nonbufferingly_decode`) or the response
// (`?bufferingly_encode`, `?nonbufferingly_encode`), after an await as the original does it
// from a goroutine.
//
// Bufferingly: every piece is held (`chunk.hold()`, the original's StopAndBuffer) until the
// last one, which gets "or not to be, " and, 10 ms later, "that is the question" added.
// Nonbufferingly: each piece goes on at once, the first with "or not to be, " after it, the
// second with "the question".
//
// Differs: the text is added to the piece the hook was given (`chunk.append`) instead of
// injected into the filter chain from outside the data callback (`InjectData`); the original's
// checks that InjectData is refused from a header callback or synchronously have no
// counterpart (envoy-js has no call to refuse there).
import { defineFilter } from "@envoy-js/sdk";
import type { BodyHold, Chunk } from "@envoy-js/sdk";

const wait = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

const modes = new WeakMap<object, string>();
const pieces = new WeakMap<object, number>();

async function complete(chunk: Chunk, buffering: boolean, ctx: object): Promise<BodyHold | undefined> {
  if (buffering) {
    if (!chunk.endOfStream) return chunk.hold();
    await wait(0);
    chunk.append("or not to be, ");
    await wait(10);
    chunk.append("that is the question");
    return;
  }
  await wait(0);
  const n = pieces.get(ctx) ?? 0;
  pieces.set(ctx, n + 1);
  if (n === 0) chunk.append("or not to be, ");
  else if (n === 1) chunk.append("the question");
}

export default defineFilter({
  onRequest(req, ctx) {
    modes.set(ctx, req.path.split("?", 2)[1] ?? "");
  },

  onRequestData(chunk, ctx) {
    const mode = modes.get(ctx);
    if (mode === "bufferingly_decode" || mode === "nonbufferingly_decode")
      return complete(chunk, mode === "bufferingly_decode", ctx);
  },

  onResponseData(chunk, ctx) {
    const mode = modes.get(ctx);
    if (mode === "bufferingly_encode" || mode === "nonbufferingly_encode")
      return complete(chunk, mode === "bufferingly_encode", ctx);
  },
});
