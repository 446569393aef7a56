// Type tests for @envoy-js/sdk/globals: the engine's globals are usable
// without the DOM lib or @types/node, and only those exist.
export async function useGlobals(): Promise<string> {
  console.log("a", 1, { b: 2 });
  console.info("i");
  console.debug("d");
  console.warn("w");
  console.error("e");

  const id: number = setTimeout((a: string, b: number) => console.log(a, b), 10, "x", 1);
  clearTimeout(id);
  // @ts-expect-error: the extra arguments must match the callback's parameters
  setTimeout((a: string) => console.log(a), 10, 42);
  const tick = setInterval(() => {}, 1000);
  clearInterval(tick);
  queueMicrotask(() => {});
  await new Promise<void>((resolve) => setTimeout(resolve, 0));

  const bytes: Uint8Array = new TextEncoder().encode("héllo");
  const text: string = new TextDecoder().decode(bytes);
  new TextDecoder("utf-8", { fatal: true });
  // @ts-expect-error: the engine decodes UTF-8 only
  new TextDecoder("latin1");

  const t0: number = performance.now();
  const nonce: Uint8Array = crypto.getRandomValues(new Uint8Array(16));
  const words: Uint32Array = crypto.getRandomValues(new Uint32Array(4));
  // @ts-expect-error: floats cannot be filled with random values
  crypto.getRandomValues(new Float64Array(2));
  const uuid: string = crypto.randomUUID();

  // @ts-expect-error: no DOM in the engine
  document.title = "x";
  // @ts-expect-error: no Node.js in the engine
  process.exit(1);
  // @ts-expect-error: fetch is ctx.fetch, not a global
  await fetch("http://example.invalid");

  return [text, t0, nonce, words, uuid].join();
}
