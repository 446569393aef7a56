/**
 * The globals that the envoy-js engine (QuickJS-ng inside Envoy) provides,
 * for filter code type-checked without the DOM lib or `@types/node`.
 *
 * Use it from a filter's tsconfig (`"lib": ["ES2023"], "types":
 * ["@envoy-js/sdk/globals"]`) or with a triple-slash reference. Do not combine
 * it with the DOM lib or `@types/node`: they declare the same names with
 * other types, and the engine has only what is declared here. Anything else
 * comes from npm through the bundle. `envoy-js build` type-checks with these
 * globals.
 *
 * @example
 * ```ts
 * /// <reference types="@envoy-js/sdk/globals" />
 * const started = performance.now();
 * ```
 */

/**
 * `console`: writes to Envoy's log (`log` and `info` at info level, `debug`
 * at debug, `warn` at warn, `error` at error).
 *
 * @example
 * ```ts
 * console.log("loaded", { version: 3 });
 * ```
 */
interface Console {
  /**
   * Logs at info level.
   *
   * @example
   * ```ts
   * console.log("worker ready");
   * ```
   */
  log(...data: unknown[]): void;
  /**
   * Logs at info level.
   *
   * @example
   * ```ts
   * console.info("cache size", cache.size);
   * ```
   */
  info(...data: unknown[]): void;
  /**
   * Logs at debug level.
   *
   * @example
   * ```ts
   * console.debug("state", state);
   * ```
   */
  debug(...data: unknown[]): void;
  /**
   * Logs at warn level.
   *
   * @example
   * ```ts
   * console.warn("retrying");
   * ```
   */
  warn(...data: unknown[]): void;
  /**
   * Logs at error level.
   *
   * @example
   * ```ts
   * console.error("failed", err);
   * ```
   */
  error(...data: unknown[]): void;
}

/**
 * The engine's console.
 *
 * @example
 * ```ts
 * console.log("hello from the filter");
 * ```
 */
declare var console: Console;

/**
 * Runs `callback` once after `ms` milliseconds (0 when absent) on the
 * worker's event loop. Returns an id for `clearTimeout`.
 *
 * @example
 * ```ts
 * await new Promise<void>((resolve) => setTimeout(resolve, 10));
 * ```
 */
declare function setTimeout<A extends unknown[]>(callback: (...args: A) => void, ms?: number, ...args: A): number;

/**
 * Cancels a timer made by `setTimeout`; unknown ids are ignored.
 *
 * @example
 * ```ts
 * const id = setTimeout(() => console.log("late"), 1000);
 * clearTimeout(id);
 * ```
 */
declare function clearTimeout(id: number | undefined): void;

/**
 * Runs `callback` every `ms` milliseconds until `clearInterval`.
 *
 * @example
 * ```ts
 * const id = setInterval(() => console.log("tick"), 1000);
 * ```
 */
declare function setInterval<A extends unknown[]>(callback: (...args: A) => void, ms?: number, ...args: A): number;

/**
 * Cancels a timer made by `setInterval`; unknown ids are ignored.
 *
 * @example
 * ```ts
 * clearInterval(id);
 * ```
 */
declare function clearInterval(id: number | undefined): void;

/**
 * Runs `callback` as a microtask, before the engine returns to Envoy.
 *
 * @example
 * ```ts
 * queueMicrotask(() => console.log("after the current job"));
 * ```
 */
declare function queueMicrotask(callback: () => void): void;

/**
 * UTF-8 encoder.
 *
 * @example
 * ```ts
 * const bytes = new TextEncoder().encode("héllo");
 * ```
 */
interface TextEncoder {
  /**
   * Always `"utf-8"`.
   *
   * @example
   * ```ts
   * new TextEncoder().encoding; // "utf-8"
   * ```
   */
  readonly encoding: "utf-8";
  /**
   * Encodes a string as UTF-8 bytes.
   *
   * @example
   * ```ts
   * chunk.replace(new TextEncoder().encode("replaced"));
   * ```
   */
  encode(input?: string): Uint8Array<ArrayBuffer>;
}

/**
 * The `TextEncoder` constructor.
 *
 * @example
 * ```ts
 * const enc = new TextEncoder();
 * ```
 */
declare var TextEncoder: {
  prototype: TextEncoder;
  new (): TextEncoder;
};

/**
 * Options of the `TextDecoder` constructor.
 *
 * @example
 * ```ts
 * const strict = new TextDecoder("utf-8", { fatal: true });
 * ```
 */
interface TextDecoderOptions {
  /**
   * Throw a `TypeError` on malformed input instead of inserting U+FFFD.
   *
   * @example
   * ```ts
   * new TextDecoder("utf-8", { fatal: true });
   * ```
   */
  fatal?: boolean;
  /**
   * Keep a leading byte order mark instead of dropping it.
   *
   * @example
   * ```ts
   * new TextDecoder("utf-8", { ignoreBOM: true });
   * ```
   */
  ignoreBOM?: boolean;
}

/**
 * UTF-8 decoder (the engine decodes UTF-8 only).
 *
 * @example
 * ```ts
 * const text = new TextDecoder().decode(chunk.bytes());
 * ```
 */
interface TextDecoder {
  /**
   * Always `"utf-8"`.
   *
   * @example
   * ```ts
   * new TextDecoder().encoding; // "utf-8"
   * ```
   */
  readonly encoding: "utf-8";
  /**
   * Whether malformed input throws.
   *
   * @example
   * ```ts
   * new TextDecoder("utf-8", { fatal: true }).fatal; // true
   * ```
   */
  readonly fatal: boolean;
  /**
   * Whether a byte order mark is kept.
   *
   * @example
   * ```ts
   * new TextDecoder().ignoreBOM; // false
   * ```
   */
  readonly ignoreBOM: boolean;
  /**
   * Decodes UTF-8 bytes to a string.
   *
   * @example
   * ```ts
   * const s = new TextDecoder().decode(new Uint8Array([104, 105])); // "hi"
   * ```
   */
  decode(input?: ArrayBuffer | ArrayBufferView): string;
}

/**
 * The `TextDecoder` constructor.
 *
 * @example
 * ```ts
 * const dec = new TextDecoder();
 * ```
 */
declare var TextDecoder: {
  prototype: TextDecoder;
  new (label?: "utf-8" | "utf8" | "unicode-1-1-utf-8", options?: TextDecoderOptions): TextDecoder;
};

/**
 * High-resolution time.
 *
 * @example
 * ```ts
 * const t0 = performance.now();
 * ```
 */
interface Performance {
  /**
   * Milliseconds (fractional) since an arbitrary start; only differences are
   * meaningful.
   *
   * @example
   * ```ts
   * const ms = performance.now() - t0;
   * ```
   */
  now(): number;
}

/**
 * The engine's `performance` object.
 *
 * @example
 * ```ts
 * ctx.metrics.latencyMs.record(performance.now() - start);
 * ```
 */
declare var performance: Performance;

/**
 * Integer typed arrays that `crypto.getRandomValues` fills.
 *
 * @example
 * ```ts
 * const a: RandomValuesArray = new Uint32Array(4);
 * ```
 */
type RandomValuesArray =
  | Int8Array
  | Uint8Array
  | Uint8ClampedArray
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array;

/**
 * Cryptographically strong randomness.
 *
 * @example
 * ```ts
 * const id = crypto.randomUUID();
 * ```
 */
interface Crypto {
  /**
   * Fills `array` with random values and returns it (at most 65536 bytes).
   *
   * @example
   * ```ts
   * const nonce = crypto.getRandomValues(new Uint8Array(16));
   * ```
   */
  getRandomValues<T extends RandomValuesArray>(array: T): T;
  /**
   * A random (version 4) UUID.
   *
   * @example
   * ```ts
   * req.headers.set("x-request-id", crypto.randomUUID());
   * ```
   */
  randomUUID(): `${string}-${string}-${string}-${string}-${string}`;
}

/**
 * The engine's `crypto` object.
 *
 * @example
 * ```ts
 * const bytes = crypto.getRandomValues(new Uint8Array(8));
 * ```
 */
declare var crypto: Crypto;
