// The .qjsbc file format, written independently of runtime/engine.cc so that tests can check
// the runtime against it and forge files (damaged, truncated, older versions).
//
//   envoy-js-bytecode 2\n
//   quickjs-ng <version>\n
//   metrics <name:kind,...|->\n        (what the build's scratch run checked)
//   load-heap <bytes>\n
//   size <n> sum64 <16 hex digits>\n  (sum64 over the bytecode, continued over the two lines above)
//   <n bytes of quickjs-ng bytecode>
const MASK = 0xffffffffffffffffn;
const FNV_OFFSET = 0xcbf29ce484222325n;
const FNV_PRIME = 0x100000001b3n;

export function fnv1a(bytes, h = FNV_OFFSET) {
  for (const x of bytes) h = ((h ^ BigInt(x)) * FNV_PRIME) & MASK;
  return h;
}

function u64le(n) {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(n);
  return b;
}

/** Four FNV-style lanes over little-endian 64-bit words, then FNV-1a over lanes, tail, length. */
export function sum64(bytes) {
  const lanes = [0x243f6a8885a308d3n, 0x13198a2e03707344n, 0xa4093822299f31d0n, 0x082efa98ec4e6c89n];
  let i = 0;
  for (; i + 32 <= bytes.length; i += 32) {
    for (let k = 0; k < 4; k++) lanes[k] = ((lanes[k] ^ bytes.readBigUInt64LE(i + 8 * k)) * FNV_PRIME) & MASK;
  }
  let h = fnv1a(Buffer.concat(lanes.map(u64le)));
  h = fnv1a(bytes.subarray(i), h);
  return fnv1a(u64le(BigInt(bytes.length)), h);
}

const hex = (n) => n.toString(16).padStart(16, "0");

/** Splits a version 2 file into its lines and body. */
export function parseBytecode(file) {
  const text = file.toString("latin1");
  const m =
    /^(envoy-js-bytecode 2\n)(quickjs-ng [^\n]*\n)(metrics [^\n]*\nload-heap \d+\n)size (\d+) sum64 ([0-9a-f]{16})\n/.exec(
      text,
    );
  if (!m) throw new Error("not a version 2 .qjsbc header");
  return { magic: m[1], version: m[2], facts: m[3], size: Number(m[4]), sum: m[5], body: file.subarray(m[0].length) };
}

/** A version 2 file with a header that matches `body` (and `facts`). */
export function writeBytecode({ version, facts, body }) {
  const digest = fnv1a(Buffer.from(facts, "latin1"), sum64(body));
  return Buffer.concat([
    Buffer.from(`envoy-js-bytecode 2\n${version}${facts}size ${body.length} sum64 ${hex(digest)}\n`, "latin1"),
    body,
  ]);
}

/** The same bytecode in the version 1 layout (no facts, byte-wise FNV-1a). */
export function writeBytecodeV1({ version, body }) {
  return Buffer.concat([
    Buffer.from(`envoy-js-bytecode 1\n${version}size ${body.length} fnv1a ${hex(fnv1a(body))}\n`, "latin1"),
    body,
  ]);
}
