// Streaming response rewrite, chunk by chunk: replaces strings in text responses (internal
// host names, http:// links) as the body streams through, without buffering the whole body.
// A match may be split across chunks, and so may a UTF-8 character: the end of each chunk
// that could still be the start of either is held back and put in front of the next one.
import { defineFilter, type Chunk } from "@envoy-js/sdk";

interface Config {
  /** from -> to, applied left to right; at one position the longest "from" wins. */
  replace: Record<string, string>;
  /** Content types to rewrite, by prefix (default text/ and application/json). */
  contentTypes?: string[];
}

/** Per stream: what is held back from the previous chunk. */
interface State {
  held: Uint8Array;
}

const streams = new WeakMap<object, State>();
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Bytes at the end of `b` that start a UTF-8 character not complete yet. */
function incompleteTail(b: Uint8Array): number {
  for (let back = 1; back <= Math.min(3, b.length); back++) {
    const byte = b[b.length - back];
    if ((byte & 0xc0) === 0x80) continue; // continuation byte: look further back
    const need = byte >= 0xf0 ? 4 : byte >= 0xe0 ? 3 : byte >= 0xc0 ? 2 : 1;
    return need > back ? back : 0;
  }
  return 0;
}

/**
 * Replaces in `text`; unless `final`, stops where a match could still continue into the
 * next chunk. Returns the output and the text to hold back.
 */
function rewrite(text: string, pairs: [string, string][], longest: number, final: boolean) {
  // A match that starts at or after `limit` may be incomplete: hold it back.
  const limit = final ? text.length : Math.max(0, text.length - (longest - 1));
  let out = "";
  let i = 0;
  let count = 0;
  while (i < text.length) {
    let at = -1;
    let pair: [string, string] | undefined;
    for (const p of pairs) {
      const j = text.indexOf(p[0], i);
      if (j !== -1 && (at === -1 || j < at || (j === at && p[0].length > pair![0].length))) {
        at = j;
        pair = p;
      }
    }
    if (pair === undefined || at >= limit || (!final && at + pair[0].length > text.length)) break;
    out += text.slice(i, at) + pair[1];
    i = at + pair[0].length;
    count++;
  }
  const cut = Math.max(i, limit);
  return { out: out + text.slice(i, cut), held: text.slice(cut), count };
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length === 0) return b;
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

export default defineFilter<
  Config,
  unknown,
  {
    rewritten: "counter";
    replacements: "counter";
    heldBytes: "histogram";
  }
>({
  metrics: { rewritten: "counter", replacements: "counter", heldBytes: "histogram" },

  onResponse(res, ctx) {
    const type = res.headers.get("content-type") ?? "";
    const types = ctx.config.contentTypes ?? ["text/", "application/json"];
    // Compressed bodies would need inflating first; leave them alone.
    if (!types.some((t) => type.startsWith(t)) || res.headers.has("content-encoding")) return;
    streams.set(ctx, { held: new Uint8Array(0) });
    ctx.metrics.rewritten.inc();
  },

  onResponseData(chunk: Chunk, ctx) {
    const state = streams.get(ctx);
    if (!state) return;
    const pairs = Object.entries(ctx.config.replace);
    const longest = Math.max(1, ...pairs.map(([from]) => from.length));

    const bytes = concat(state.held, chunk.bytes());
    const partial = chunk.endOfStream ? 0 : incompleteTail(bytes);
    const text = decoder.decode(bytes.subarray(0, bytes.length - partial));
    const r = rewrite(text, pairs, longest, chunk.endOfStream);

    const heldText = encoder.encode(r.held);
    state.held = concat(heldText, bytes.subarray(bytes.length - partial));
    if (!chunk.endOfStream) ctx.metrics.heldBytes.record(state.held.length);
    ctx.metrics.replacements.inc(r.count);
    chunk.replace(r.out);
  },
});
