// Byte <-> string conversions with the native engine's rules. The engine keeps bodies as bytes
// and turns them into JS strings the way quickjs-ng's JS_NewStringLen does: valid UTF-8 is
// decoded, and each byte that does not start a valid sequence becomes one U+FFFD (WHATWG
// decoders, Buffer#toString included, fold a truncated sequence into one U+FFFD instead).
import { isUtf8 } from "node:buffer";

/** Decodes `bytes` as quickjs-ng's JS_NewStringLen does. */
export function decodeUtf8(bytes: Uint8Array): string {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (isUtf8(buf)) return buf.toString("utf8");
  let out = "";
  let i = 0;
  const n = buf.length;
  while (i < n) {
    const c = buf[i]!;
    if (c < 0x80) {
      out += String.fromCharCode(c);
      i++;
      continue;
    }
    const [cp, len] = decodeOne(buf, i, n);
    out += String.fromCodePoint(cp);
    i += len;
  }
  return out;
}

// One sequence starting at a byte >= 0x80: [code point, bytes used]. Mirrors utf8_decode_len
// in quickjs-ng's cutils.h (encoded surrogates are accepted, as there).
function decodeOne(b: Buffer, i: number, n: number): [number, number] {
  const c = b[i]!;
  const left = n - i;
  const cont = (k: number, lo = 0x80, hi = 0xbf): boolean => i + k < n && b[i + k]! >= lo && b[i + k]! <= hi;
  if (c >= 0xc2 && c <= 0xdf) {
    if (left >= 2 && cont(1)) return [((c - 0xc0) << 6) + (b[i + 1]! - 0x80), 2];
  } else if (c >= 0xe0 && c <= 0xef) {
    if (left >= 3 && cont(1, c === 0xe0 ? 0xa0 : 0x80) && cont(2)) {
      return [((c - 0xe0) << 12) + ((b[i + 1]! - 0x80) << 6) + (b[i + 2]! - 0x80), 3];
    }
  } else if (c >= 0xf0 && c <= 0xf4) {
    const lo = c === 0xf0 ? 0x90 : 0x80;
    const hi = c === 0xf4 ? 0x8f : 0xbf;
    if (left >= 4 && cont(1, lo, hi) && cont(2) && cont(3)) {
      return [((c - 0xf0) << 18) + ((b[i + 1]! - 0x80) << 12) + ((b[i + 2]! - 0x80) << 6) + (b[i + 3]! - 0x80), 4];
    }
  }
  return [0xfffd, 1];
}

/** UTF-8 bytes of a JS string (lone surrogates become U+FFFD). */
export function encodeUtf8(s: string): Buffer {
  return Buffer.from(s, "utf8");
}

/** Bytes of a transcript body: the addon hands std::string bodies to V8 as UTF-8. */
export function transcriptText(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("utf8");
}
