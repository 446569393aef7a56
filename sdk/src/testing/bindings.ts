// The JS API of DESIGN.md section 3 as the stub's realm sees it, ported from the native
// runtime/bindings.cc: one prototype per class (methods and getters on the prototype, like
// a JSCFunctionListEntry table), wrappers that reach their stream through a private table
// (the native opaque pointer), and every host-touching method checking that the stream
// still has a host (StreamGone otherwise). Error messages are the native ones, word for word.
import { randomFillSync, randomUUID } from "node:crypto";
import { types } from "node:util";

import { decodeUtf8, encodeUtf8 } from "./bytes.js";
import {
  type BodyBuffer,
  type Direction,
  type HeaderMap,
  type HeaderMapKind,
  type LocalReply,
  type LogLevel,
  type MetricKind,
  REQUEST,
  REQUEST_HEADERS,
  RESPONSE,
  RESPONSE_HEADERS,
  directionOf,
  isTrailers,
} from "./host.js";
import type { HostFunction } from "./realm.js";
import {
  BufferWindow,
  type ChunkRef,
  type ChunkTarget,
  type Engine,
  type MetricDeclaration,
  type StreamState,
  cString,
  replyMustWait,
  sendReplyNow,
  streamBodyReadRefusal,
  streamReadBody,
  streamReplaceWholeBody,
} from "./runtime.js";

const MAP_NAMES = ["request headers", "request trailers", "response headers", "response trailers"] as const;
const dirName = (d: Direction): string => (d === REQUEST ? "request" : "response");
const TOKEN_PUNCT = "!#$%&'*+-.^_`|~";

interface HeadersRef {
  stream: StreamState;
  kind: HeaderMapKind;
}
interface BodyRef {
  stream: StreamState;
  dir: Direction;
}

const METRIC_METHODS: Record<MetricKind, string> = { counter: "inc(n)", gauge: "set(v)", histogram: "record(v)" };

export class Bindings {
  readonly #e: Engine;
  // The native opaque pointers: wrapper -> what it stands for.
  // One table per class, so that a method called on another class's object is refused.
  readonly #streams: Record<"Context" | "Request" | "Response" | "Log", WeakMap<object, StreamState>> = {
    Context: new WeakMap(),
    Request: new WeakMap(),
    Response: new WeakMap(),
    Log: new WeakMap(),
  };
  readonly #headers = new WeakMap<object, HeadersRef>();
  readonly #bodies = new WeakMap<object, BodyRef>();
  readonly #chunks = new WeakMap<object, ChunkRef>();
  readonly #metadata = new WeakMap<object, StreamState>();
  readonly #filterStates = new WeakMap<object, StreamState>();
  readonly #metrics = new WeakMap<object, number>(); // metric -> declaration index
  readonly #protos: Record<
    "context" | "request" | "response" | "headers" | "body" | "chunk" | "log" | "metadata" | "filterState" | "metric",
    object
  >;

  constructor(engine: Engine) {
    this.#e = engine;
    const realm = engine.realm;
    const b = this;
    const on = <T>(map: WeakMap<object, T>, cls: string, self: unknown): T => {
      const v = typeof self === "object" && self !== null ? map.get(self) : undefined;
      if (v === undefined) throw realm.typeError(`${cls} object expected`);
      return v;
    };
    const headersMethod = (fn: (h: HeadersRef, args: unknown[]) => unknown, length: number): [number, HostFunction] => [
      length,
      function (this: unknown, ...args: unknown[]) {
        return fn(on(b.#headers, "Headers", this), args);
      },
    ];
    const streamGetter = (cls: "Context" | "Request" | "Response", fn: (s: StreamState) => unknown): HostFunction =>
      function (this: unknown) {
        return fn(on(b.#streams[cls], cls, this));
      };
    // As the native js_message_headers: the first `.headers` read also stores the object as an
    // own read-only, non-enumerable property (a frozen wrapper just keeps the getter).
    const ownAfterFirstRead = (cls: "Request" | "Response", fn: (s: StreamState) => unknown): HostFunction =>
      function (this: unknown) {
        const value = fn(on(b.#streams[cls], cls, this));
        Reflect.defineProperty(this as object, "headers", { value, writable: false, enumerable: false, configurable: false });
        return value;
      };
    const bodyRead = (format: "text" | "json" | "bytes"): [number, HostFunction] => [
      0,
      function (this: unknown) {
        return b.#bodyRead(on(b.#bodies, "Body", this), format);
      },
    ];
    const chunkMethod = (fn: (c: ChunkRef, args: unknown[]) => unknown, length: number): [number, HostFunction] => [
      length,
      function (this: unknown, ...args: unknown[]) {
        return fn(on(b.#chunks, "Chunk", this), args);
      },
    ];
    const logMethod = (level: LogLevel): [number, HostFunction] => [
      1,
      function (this: unknown, ...args: unknown[]) {
        b.#logTo(on(b.#streams.Log, "Log", this), level, b.formatArgs(args));
      },
    ];
    const metricMethod = (kind: MetricKind): [number, HostFunction] => [
      1,
      function (this: unknown, ...args: unknown[]) {
        b.#recordMetric(on(b.#metrics, "Metric", this), kind, args);
      },
    ];

    this.#protos = {
      headers: realm.makePrototype(
        {
          get: headersMethod((h, [name]) => b.#headersGet(h, name), 1),
          getAll: headersMethod((h, [name]) => b.#headersGetAll(h, name), 1),
          has: headersMethod((h, [name]) => {
            const n = b.#name(name);
            return b.#map(h, false).values(n).length > 0;
          }, 1),
          set: headersMethod((h, [name, value]) => b.#headersWrite(h, name, value, false), 2),
          append: headersMethod((h, [name, value]) => b.#headersWrite(h, name, value, true), 2),
          delete: headersMethod((h, [name]) => {
            const n = b.#name(name);
            b.#map(h, true).remove(n);
          }, 1),
          entries: headersMethod((h) => b.#headersEntries(h), 0),
        },
        {},
        "Headers",
      ),
      request: realm.makePrototype(
        {},
        {
          method: streamGetter("Request", (s) => b.#pseudo(s, ":method")),
          path: streamGetter("Request", (s) => b.#pseudo(s, ":path")),
          authority: streamGetter("Request", (s) => b.#pseudo(s, ":authority")),
          scheme: streamGetter("Request", (s) => b.#pseudo(s, ":scheme")),
          headers: ownAfterFirstRead("Request", (s) => b.headersObject(s, REQUEST_HEADERS)),
          body: streamGetter("Request", (s) => b.#bodyObject(s, REQUEST)),
        },
      ),
      response: realm.makePrototype(
        {},
        {
          status: streamGetter("Response", (s) => b.#status(s)),
          headers: ownAfterFirstRead("Response", (s) => b.headersObject(s, RESPONSE_HEADERS)),
          body: streamGetter("Response", (s) => b.#bodyObject(s, RESPONSE)),
        },
      ),
      body: realm.makePrototype({
        text: bodyRead("text"),
        json: bodyRead("json"),
        bytes: bodyRead("bytes"),
        replace: [
          1,
          function (this: unknown, data: unknown) {
            b.#bodyReplace(on(b.#bodies, "Body", this), data);
          },
        ],
      }),
      chunk: realm.makePrototype(
        {
          text: chunkMethod((c) => decodeUtf8(b.#chunkBytes(c)), 0),
          bytes: chunkMethod((c) => realm.uint8Array(b.#chunkBytes(c)), 0),
          replace: chunkMethod((c, [d]) => b.#chunkWrite(c, "replace", d), 1),
          append: chunkMethod((c, [d]) => b.#chunkWrite(c, "append", d), 1),
          prepend: chunkMethod((c, [d]) => b.#chunkWrite(c, "prepend", d), 1),
          clear: chunkMethod((c) => b.#chunkWrite(c, "clear", undefined), 0),
        },
        {
          size: function (this: unknown) {
            return b.#chunkBuffer(on(b.#chunks, "Chunk", this)).length;
          },
          endOfStream: function (this: unknown) {
            return on(b.#chunks, "Chunk", this).endOfStream;
          },
        },
      ),
      log: realm.makePrototype({
        trace: logMethod(0),
        debug: logMethod(1),
        info: logMethod(2),
        warn: logMethod(3),
        error: logMethod(4),
      }),
      context: realm.makePrototype(
        {
          respond: [
            2,
            function (this: unknown, ...args: unknown[]) {
              return b.#respond(on(b.#streams.Context, "Context", this), args);
            },
          ],
          clearRouteCache: [
            0,
            function (this: unknown) {
              b.#clearRouteCache(on(b.#streams.Context, "Context", this));
            },
          ],
          fetch: [
            2,
            function (this: unknown, ...args: unknown[]) {
              return b.#e.fetchApi.fetch(on(b.#streams.Context, "Context", this), args);
            },
          ],
        },
        {
          config: streamGetter("Context", (s) => (s.routeConfig !== undefined ? s.routeConfig : b.#e.config)),
          worker: streamGetter("Context", () => b.#e.worker),
          aborted: streamGetter("Context", (s) => s.aborted || s.destroyed || s.reset),
          log: streamGetter("Context", (s) => b.#contextLog(s)),
          stream: streamGetter("Context", (s) => b.#streamInfo(s)),
          metadata: streamGetter("Context", (s) => b.#cachedObject(s, "metadata", b.#metadata, b.#protos.metadata)),
          filterState: streamGetter("Context", (s) => b.#cachedObject(s, "filterState", b.#filterStates, b.#protos.filterState)),
          metrics: streamGetter("Context", () => b.#e.metrics),
        },
      ),
      metadata: realm.makePrototype({
        get: [
          2,
          function (this: unknown, ...args: unknown[]) {
            return b.#metadataGet(on(b.#metadata, "DynamicMetadata", this), args);
          },
        ],
        set: [
          3,
          function (this: unknown, ...args: unknown[]) {
            b.#metadataSet(on(b.#metadata, "DynamicMetadata", this), args);
          },
        ],
      }),
      filterState: realm.makePrototype({
        get: [
          1,
          function (this: unknown, ...args: unknown[]) {
            return b.#filterStateGet(on(b.#filterStates, "FilterState", this), args);
          },
        ],
        set: [
          2,
          function (this: unknown, ...args: unknown[]) {
            b.#filterStateSet(on(b.#filterStates, "FilterState", this), args);
          },
        ],
      }),
      metric: realm.makePrototype({
        inc: metricMethod("counter"),
        set: metricMethod("gauge"),
        record: metricMethod("histogram"),
      }),
    };
    // JS_ALIAS_DEF: the iterator is the entries function itself.
    const entries = Object.getOwnPropertyDescriptor(this.#protos.headers, "entries")!.value as unknown;
    Object.defineProperty(this.#protos.headers, Symbol.iterator, { value: entries, writable: true, configurable: true });
  }

  // ---- helpers ----

  #realmObject(proto: object): object {
    return Object.create(proto) as object;
  }

  /** JS_ToCString: symbols cannot be converted. */
  #cstr(v: unknown): string {
    if (typeof v === "symbol") throw this.#e.realm.typeError("cannot convert symbol to string");
    return String(v);
  }

  /** Body data arguments: a string (UTF-8), a Uint8Array or an ArrayBuffer. */
  toBytes(v: unknown): Buffer {
    if (typeof v === "string") return encodeUtf8(v);
    if (types.isUint8Array(v) || types.isUint8ClampedArray(v)) return Buffer.from(v as Uint8Array);
    if (types.isArrayBuffer(v)) return Buffer.from(new Uint8Array(v as ArrayBuffer));
    throw this.#e.realm.typeError("body data must be a string or a Uint8Array");
  }

  // Header names: lower-case ASCII tokens (pseudo-headers start with ':').
  #name(v: unknown): string {
    const s = this.#cstr(v);
    let out = "";
    let ok = s.length > 0;
    for (let i = 0; i < s.length; i++) {
      let c = s[i]!;
      if (c >= "A" && c <= "Z") c = c.toLowerCase();
      const token = (c >= "a" && c <= "z") || (c >= "0" && c <= "9") || TOKEN_PUNCT.includes(c);
      if (!(token || (i === 0 && c === ":"))) ok = false;
      out += c;
    }
    if (!ok || out === ":") {
      const shown = Buffer.from(s, "utf8").subarray(0, 80).toString("utf8");
      throw this.#e.realm.typeError(`invalid header name '${shown}'`);
    }
    return out;
  }

  #checkValue(v: string): void {
    if (/[\r\n\0]/.test(v)) throw this.#e.realm.typeError("header values may not contain CR, LF or NUL");
  }

  /** JS_NewError + JS_SetPropertyStr of each field in order: own enumerable props, no stack. */
  newError(fields: Record<string, string>): Error {
    const err = new this.#e.realm.intrinsics.Error() as Error & Record<string, unknown>;
    delete err["stack"];
    for (const [k, v] of Object.entries(fields)) err[k] = v;
    return err;
  }

  newStreamGoneError(): Error {
    return this.newError({
      name: "StreamGone",
      message: "the stream is gone (the client went away or the stream was destroyed); check ctx.aborted",
    });
  }

  #rejected(error: unknown): unknown {
    return this.#e.rejectedPromise(error);
  }

  // ---- Headers ----

  // The live host map behind a Headers object (mapFor).
  #map(h: HeadersRef, forWrite: boolean): HeaderMap {
    const s = h.stream;
    if (s.host === null) throw this.newStreamGoneError();
    const trailers = isTrailers(h.kind);
    const dir = directionOf(h.kind);
    if (forWrite) {
      const d = s.dir(dir);
      const late = trailers ? d.trailersReleased : d.headersReleased;
      if (late || s.completed) {
        const hook = trailers ? (dir === REQUEST ? "onRequestTrailers" : "onResponseTrailers") : dir === REQUEST ? "onRequest" : "onResponse";
        throw this.#e.realm.typeError(
          `${MAP_NAMES[h.kind]} were already sent on and can no longer be changed: change them in ${hook} before it returns or its promise settles`,
        );
      }
    }
    const map = s.host.headerMap(h.kind);
    if (map === null) throw this.#e.realm.typeError(`this stream has no ${MAP_NAMES[h.kind]}`);
    return map;
  }

  #headersGet(h: HeadersRef, nameArg: unknown): string | null {
    const name = this.#name(nameArg);
    const values = this.#map(h, false).values(name);
    if (values.length === 0) return null;
    return values.join(", ");
  }

  #headersGetAll(h: HeadersRef, nameArg: unknown): string[] {
    const name = this.#name(nameArg);
    return this.#e.realm.array(this.#map(h, false).values(name));
  }

  #headersWrite(h: HeadersRef, nameArg: unknown, valueArg: unknown, append: boolean): void {
    const name = this.#name(nameArg);
    const value = this.#cstr(valueArg);
    this.#checkValue(value);
    const map = this.#map(h, true);
    if (append) map.append(name, value);
    else map.set(name, value);
  }

  // entries() snapshots the map: iteration stays well-defined when the loop body modifies it.
  #headersEntries(h: HeadersRef): unknown {
    const realm = this.#e.realm;
    const pairs = this.#map(h, false).entries().map(([k, v]) => realm.array([k, v]));
    return realm.array(pairs).values();
  }

  headersObject(s: StreamState, kind: HeaderMapKind): object {
    let cached = s.headers[kind];
    if (cached === undefined) {
      cached = this.#realmObject(this.#protos.headers);
      this.#headers.set(cached, { stream: s, kind });
      s.headers[kind] = cached;
    }
    return cached;
  }

  // ---- Request / Response ----

  #pseudo(s: StreamState, name: string): string {
    if (s.host === null) throw this.newStreamGoneError();
    const map = s.host.headerMap(REQUEST_HEADERS);
    const v = map?.values(name)[0];
    return v ?? "";
  }

  #status(s: StreamState): number {
    if (s.host === null) throw this.newStreamGoneError();
    const v = s.host.headerMap(RESPONSE_HEADERS)?.values(":status")[0];
    if (v === undefined) return 0;
    let status = 0;
    for (const c of v) {
      if (c < "0" || c > "9" || status > 9999) return 0;
      status = status * 10 + (c.charCodeAt(0) - 48);
    }
    return status;
  }

  #cachedWrapper(s: StreamState, slot: "req" | "res" | "ctx", proto: object): object {
    let v = s[slot];
    if (v === undefined) {
      v = this.#realmObject(proto);
      this.#streams[slot === "req" ? "Request" : slot === "res" ? "Response" : "Context"].set(v, s);
      s[slot] = v;
    }
    return v;
  }

  makeRequest(s: StreamState): object {
    return this.#cachedWrapper(s, "req", this.#protos.request);
  }

  makeResponse(s: StreamState): object {
    return this.#cachedWrapper(s, "res", this.#protos.response);
  }

  makeContext(s: StreamState): object {
    return this.#cachedWrapper(s, "ctx", this.#protos.context);
  }

  // ---- Body (whole body) ----

  #bodyObject(s: StreamState, dir: Direction): object {
    let cached = s.bodies[dir];
    if (cached === undefined) {
      if (s.destroyed) throw this.newStreamGoneError();
      cached = this.#realmObject(this.#protos.body);
      this.#bodies.set(cached, { stream: s, dir });
      s.bodies[dir] = cached;
    }
    return cached;
  }

  #bodyRead(b: BodyRef, format: "text" | "json" | "bytes"): unknown {
    const s = b.stream;
    if (s.host === null) return this.#rejected(this.newStreamGoneError());
    const why = streamBodyReadRefusal(s, b.dir);
    if (why !== null) return this.#rejected(this.#e.realm.typeError(`cannot read the ${dirName(b.dir)} body: ${why}`));
    return streamReadBody(s, b.dir, format);
  }

  #bodyReplace(b: BodyRef, data: unknown): void {
    const s = b.stream;
    if (s.host === null) throw this.newStreamGoneError();
    const d = s.dir(b.dir);
    if (d.bodyRead !== "done" || d.headersReleased) {
      throw this.#e.realm.typeError(
        `body.replace() needs the whole ${dirName(b.dir)} body held: await body.text(), json() or bytes() first, in the same hook`,
      );
    }
    streamReplaceWholeBody(s, b.dir, this.toBytes(data));
  }

  // ---- Chunk (streaming) ----

  /** A chunk of the running data callback's data ("current"), or a window of the buffered body. */
  makeChunk(s: StreamState, dir: Direction, endOfStream: boolean, target: ChunkTarget, start = 0, len = 0): object {
    const obj = this.#realmObject(this.#protos.chunk);
    const window = new BufferWindow();
    window.start = start;
    window.len = len;
    this.#chunks.set(obj, { stream: s, dir, target, endOfStream, dead: false, window });
    return obj;
  }

  killChunk(chunk: object): void {
    const c = this.#chunks.get(chunk);
    if (c) c.dead = true;
  }

  /** Where a "buffered" chunk ends in the host's buffered body now (after the filter's edits). */
  chunkWindowEnd(chunk: object): number {
    const c = this.#chunks.get(chunk);
    return c !== undefined && c.target === "buffered" ? c.window.start + c.window.len : 0;
  }

  /** The running callback's data is about to go into the host's buffer at [start, start + len). */
  retargetChunk(chunk: object | undefined, start: number, len: number): void {
    const c = chunk === undefined ? undefined : this.#chunks.get(chunk);
    if (c === undefined || c.target !== "current") return;
    c.target = "buffered";
    c.window.start = start;
    c.window.len = len;
  }

  // Where the chunk's bytes are now (chunkBuffer); throws when they are gone.
  #chunkBuffer(c: ChunkRef): BodyBuffer {
    const realm = this.#e.realm;
    if (c.dead) {
      throw realm.typeError(
        `this ${dirName(c.dir)} chunk was already passed on: use a chunk only inside its data hook, before the hook returns or its promise settles`,
      );
    }
    const host = c.stream.host;
    if (host === null) throw this.newStreamGoneError();
    if (c.target === "buffered") {
      c.window.base = host.bufferedData(c.dir);
      return c.window;
    }
    const current = host.currentData(c.dir);
    if (current === null) throw realm.typeError(`this ${dirName(c.dir)} chunk is no longer available`);
    return current;
  }

  // The only place chunk bytes are copied: on demand.
  #chunkBytes(c: ChunkRef): Buffer {
    return this.#chunkBuffer(c).bytes();
  }

  #chunkWrite(c: ChunkRef, op: "replace" | "append" | "prepend" | "clear", arg: unknown): void {
    const buf = this.#chunkBuffer(c);
    const data = op === "clear" ? Buffer.alloc(0) : this.toBytes(arg);
    if (op === "replace" || op === "clear") buf.replace(data);
    else if (op === "append") buf.append(data);
    else buf.prepend(data);
  }

  // ---- Log (ctx.log) and console ----

  formatArgs(args: unknown[]): string {
    let out = "";
    args.forEach((v, i) => {
      if (i > 0) out += " ";
      if (types.isNativeError(v)) {
        out += this.#e.describeException(v);
        return;
      }
      if (typeof v === "object" && v !== null) {
        let json: unknown;
        try {
          json = JSON.stringify(v);
        } catch {
          json = undefined;
        }
        if (typeof json === "string") {
          out += json;
          return;
        }
      }
      out += cString(v) ?? "";
    });
    return out;
  }

  #logTo(s: StreamState | null, level: LogLevel, text: string): void {
    if (s !== null && s.host !== null) s.host.log(level, text);
    else this.#e.logEngine(level, text);
  }

  #contextLog(s: StreamState): object {
    if (s.destroyed && s.log === undefined) {
      // After destroy the cache slot is never freed again: hand out an uncached logger.
      const log = this.#realmObject(this.#protos.log);
      this.#streams.Log.set(log, s);
      return log;
    }
    if (s.log === undefined) {
      s.log = this.#realmObject(this.#protos.log);
      this.#streams.Log.set(s.log, s);
    }
    return s.log;
  }

  // ---- Context.respond ----

  #respond(s: StreamState, args: unknown[]): object {
    const realm = this.#e.realm;
    if (s.host === null) throw this.newStreamGoneError();
    const status = args[0];
    if (args.length < 1 || typeof status !== "number" || !Number.isInteger(status) || status < 200 || status > 599) {
      throw realm.rangeError("respond(status): status must be an integer from 200 to 599");
    }
    if (s.responded || s.pendingReply !== null) throw realm.typeError("respond() was already called for this stream");
    if (s.dir(RESPONSE).headersReleased || s.completed) {
      throw realm.typeError("too late to respond(): the response headers were already sent downstream");
    }
    const reply: LocalReply = { status, body: Buffer.alloc(0), headers: [], details: "envoy_js_respond" };
    this.#readReplyOptions(args[1], reply);
    s.pendingReply = reply;
    // Inside a hook the reply goes out when the hook settles; from anywhere else, now.
    if (!replyMustWait(s)) sendReplyNow(s);
    const marker = realm.intrinsics.Object.create(null) as object;
    Object.defineProperty(marker, "status", { value: status, enumerable: true });
    return marker;
  }

  #readReplyOptions(opts: unknown, reply: LocalReply): void {
    const realm = this.#e.realm;
    if (opts === undefined || opts === null) return;
    if (typeof opts !== "object" && typeof opts !== "function") {
      throw realm.typeError("respond(status, options): options must be an object");
    }
    const o = opts as Record<string, unknown>;
    const body = o["body"];
    if (body !== undefined) reply.body = this.toBytes(body);
    const details = o["details"];
    if (details !== undefined) reply.details = this.#cstr(details).replace(/[ \t\r\n]/g, "_"); // one token
    const headers = o["headers"];
    if (headers === undefined) return;
    if ((typeof headers !== "object" && typeof headers !== "function") || headers === null) {
      throw realm.typeError("respond(): headers must be an object of name: value");
    }
    const h = headers as Record<string, unknown>;
    for (const key of Object.keys(h)) {
      const name = this.#name(key);
      const v = h[key];
      const add = (one: unknown) => {
        const s = this.#cstr(one);
        this.#checkValue(s);
        reply.headers.push([name, s]);
      };
      if (Array.isArray(v)) for (let j = 0; j < v.length; j++) add(v[j]);
      else add(v);
    }
  }

  // ---- ctx.stream, ctx.metadata, ctx.filterState, ctx.metrics, ctx.clearRouteCache ----

  #streamInfo(s: StreamState): object {
    if (s.info !== undefined) return s.info;
    if (s.host === null) throw this.newStreamGoneError();
    const info = s.host.streamInfo();
    const o = new this.#e.realm.intrinsics.Object();
    const fields: Array<[string, unknown]> = [
      ["id", info.id],
      ["protocol", info.protocol],
      ["remoteAddress", info.remoteAddress],
      ["localAddress", info.localAddress],
      ["routeName", info.routeName],
      ["workerIndex", this.#e.workerIndex],
    ];
    for (const [k, v] of fields) Object.defineProperty(o, k, { value: v, enumerable: true });
    s.info = Object.freeze(o); // read-only: it describes the host
    return o;
  }

  #clearRouteCache(s: StreamState): void {
    if (s.host === null) throw this.newStreamGoneError();
    if (s.dir(REQUEST).headersReleased) {
      throw this.#e.realm.typeError("clearRouteCache() after the request headers were sent on has no effect: call it in onRequest");
    }
    s.host.clearRouteCache();
  }

  #cachedObject(s: StreamState, slot: "metadata" | "filterState", map: WeakMap<object, StreamState>, proto: object): object {
    const cached = s[slot];
    if (cached !== undefined) return cached;
    const o = this.#realmObject(proto);
    map.set(o, s);
    if (!s.destroyed) s[slot] = o; // after destroy the slot would never be freed again
    return o;
  }

  #stringArg(args: unknown[], i: number, what: string): string {
    const v = args[i];
    if (i >= args.length || typeof v !== "string") throw this.#e.realm.typeError(`${what} must be a string`);
    return v;
  }

  #metadataGet(s: StreamState, args: unknown[]): unknown {
    const ns = this.#stringArg(args, 0, "metadata namespace");
    const key = this.#stringArg(args, 1, "metadata key");
    if (s.host === null) throw this.newStreamGoneError();
    const json = s.host.getMetadata(ns, key);
    if (json === undefined) return undefined;
    return this.#e.realm.intrinsics.JSON.parse(json);
  }

  #metadataSet(s: StreamState, args: unknown[]): void {
    const ns = this.#stringArg(args, 0, "metadata namespace");
    const key = this.#stringArg(args, 1, "metadata key");
    const json = this.#e.realm.intrinsics.JSON.stringify(args.length > 2 ? args[2] : undefined) as string | undefined;
    if (typeof json !== "string") {
      throw this.#e.realm.typeError("metadata values must be JSON values (string, number, boolean, null, array, object)");
    }
    if (s.host === null) throw this.newStreamGoneError();
    s.host.setMetadata(ns, key, json);
  }

  #filterStateGet(s: StreamState, args: unknown[]): string | undefined {
    const key = this.#stringArg(args, 0, "filter state key");
    if (s.host === null) throw this.newStreamGoneError();
    return s.host.getFilterState(key);
  }

  #filterStateSet(s: StreamState, args: unknown[]): void {
    const key = this.#stringArg(args, 0, "filter state key");
    const value = this.#cstr(args.length > 1 ? args[1] : undefined);
    if (s.host === null) throw this.newStreamGoneError();
    s.host.setFilterState(key, value);
  }

  /** ctx.metrics from the declarations read at load time: one frozen object per engine. */
  buildMetrics(declarations: MetricDeclaration[]): object {
    const obj = new this.#e.realm.intrinsics.Object();
    declarations.forEach((decl, i) => {
      const m = this.#realmObject(this.#protos.metric);
      this.#metrics.set(m, i);
      Object.defineProperty(m, "name", { value: decl.name });
      Object.defineProperty(obj, decl.name, { value: m, enumerable: true });
    });
    return Object.freeze(obj);
  }

  // The method of `kind` called on metric number `index`; the engine checks the kind.
  #recordMetric(index: number, kind: MetricKind, args: unknown[]): void {
    const e = this.#e;
    const decl = e.metricDeclarations[index]!;
    if (decl.kind !== kind) {
      throw e.realm.typeError(`metric \`${decl.name}\` is a ${decl.kind}: use ${METRIC_METHODS[decl.kind]}`);
    }
    let v = kind === "counter" ? 1 : 0;
    if (args.length > 0 && args[0] !== undefined) v = toFloat64(args[0]);
    if (Number.isNaN(v) || (kind === "counter" && v < 0)) {
      throw e.realm.rangeError(`metric \`${decl.name}\`: ${kind === "counter" ? "counters only go up" : "value is NaN"}`);
    }
    e.host.recordMetric(index, kind, v);
  }

  // ---- globals ----

  installGlobals(): void {
    const e = this.#e;
    const realm = e.realm;
    const fn = realm.helpers.fn;
    // quickjs-ng has `performance`, queueMicrotask, atob, btoa and DOMException built in
    // (the runtime replaces their values, keeping them non-enumerable, except performance);
    // console, crypto and the text coders are new enumerable globals; function lists
    // (console's methods, the timers, crypto's methods) are non-enumerable.
    const method = (obj: object, name: string, value: unknown) =>
      Object.defineProperty(obj, name, { value, writable: true, configurable: true });
    const performance = new realm.intrinsics.Object() as Record<string, unknown>;
    performance["now"] = fn("now", 0, () => e.host.nowMs());
    realm.defineGlobal("performance", performance);
    const consoleObj = new realm.intrinsics.Object();
    const levels: Array<[string, LogLevel]> = [
      ["log", 2],
      ["info", 2],
      ["debug", 1],
      ["trace", 0],
      ["warn", 3],
      ["error", 4],
    ];
    for (const [name, level] of levels) {
      method(consoleObj, name, fn(name, 1, (...args: unknown[]) => this.#logTo(e.current, level, this.formatArgs(args))));
    }
    realm.defineGlobal("console", consoleObj);
    const g = realm.global;
    method(g, "queueMicrotask", fn("queueMicrotask", 1, (f: unknown) => realm.helpers.queueMicrotask(f)));
    method(g, "setTimeout", fn("setTimeout", 2, (...a: unknown[]) => e.setTimer(a, false)));
    method(g, "setInterval", fn("setInterval", 2, (...a: unknown[]) => e.setTimer(a, true)));
    method(g, "clearTimeout", fn("clearTimeout", 1, (id: unknown) => e.clearTimer(id)));
    method(g, "clearInterval", fn("clearInterval", 1, (id: unknown) => e.clearTimer(id)));
    method(g, "atob", fn("atob", 1, (s: unknown) => atob(this.#cstr(s))));
    method(g, "btoa", fn("btoa", 1, (s: unknown) => btoa(this.#cstr(s))));
    method(g, "DOMException", DOMException);
    const crypto = new realm.intrinsics.Object();
    const cryptoMethods: Array<[string, number, (...a: unknown[]) => unknown]> = [
      ["getRandomValues", 1, (...a: unknown[]) => this.#getRandomValues(a)],
      ["randomUUID", 0, () => randomUUID()],
    ];
    for (const [name, length, impl] of cryptoMethods) method(crypto, name, fn(name, length, impl));
    realm.defineGlobal("crypto", crypto);
    this.#installTextCoding();
  }

  #getRandomValues(args: unknown[]): unknown {
    const realm = this.#e.realm;
    const a = args[0];
    const integer =
      args.length > 0 &&
      types.isTypedArray(a) &&
      !types.isFloat32Array(a) &&
      !types.isFloat64Array(a) &&
      Object.prototype.toString.call(a) !== "[object Float16Array]";
    if (!integer) throw realm.typeError("crypto.getRandomValues needs an integer typed array");
    const view = a as Uint8Array;
    if (view.byteLength > 65536) throw realm.rangeError("crypto.getRandomValues: at most 65536 bytes at a time");
    if (view.byteLength > 0) randomFillSync(view);
    return a;
  }

  // TextEncoder / TextDecoder: Node's coders, behind the native engine's argument checks
  // (utf-8 only, no string input, a BOM is kept).
  #installTextCoding(): void {
    const realm = this.#e.realm;
    const fn = realm.helpers.fn;
    const encoder = new TextEncoder();
    const encoding = fn("get encoding", 0, () => "utf-8");

    const TE = realm.helpers.klass("TextEncoder", 0, () => {});
    Object.defineProperty(TE.prototype, "encode", {
      value: fn("encode", 1, (s?: unknown) => realm.uint8Array(s === undefined ? new Uint8Array(0) : encoder.encode(this.#cstr(s)))),
      writable: true,
      configurable: true,
    });
    Object.defineProperty(TE.prototype, "encoding", { get: encoding, configurable: true });

    const TD = realm.helpers.klass("TextDecoder", 0, (self, args) => {
      const [label, options] = args;
      if (label !== undefined) {
        const l = this.#cstr(label).replace(/[A-Z]/g, (c) => c.toLowerCase());
        if (l !== "utf-8" && l !== "utf8" && l !== "unicode-1-1-utf-8") {
          throw realm.rangeError(`TextDecoder: only utf-8 is supported, not '${l}'`);
        }
      }
      const fatal = typeof options === "object" && options !== null ? Boolean((options as Record<string, unknown>)["fatal"]) : false;
      Object.defineProperty(self, "fatal", { value: fatal, enumerable: true });
    });
    Object.defineProperty(TD.prototype, "decode", {
      value: fn("decode", 1, function (this: unknown, input?: unknown) {
        let bytes: Uint8Array = new Uint8Array(0);
        if (typeof input === "string") throw realm.typeError("TextDecoder.decode needs a Uint8Array or an ArrayBuffer");
        if (input !== undefined) {
          if (types.isUint8Array(input) || types.isUint8ClampedArray(input)) bytes = input as Uint8Array;
          else if (types.isArrayBuffer(input)) bytes = new Uint8Array(input as ArrayBuffer);
          else throw realm.typeError("TextDecoder.decode needs a Uint8Array or an ArrayBuffer");
        }
        const fatal = Boolean((this as Record<string, unknown> | undefined)?.["fatal"]);
        try {
          return new TextDecoder("utf-8", { fatal, ignoreBOM: true }).decode(bytes);
        } catch {
          throw realm.typeError("TextDecoder: invalid UTF-8 data");
        }
      }),
      writable: true,
      configurable: true,
    });
    Object.defineProperty(TD.prototype, "encoding", { get: encoding, configurable: true });
    realm.defineGlobal("TextEncoder", TE);
    realm.defineGlobal("TextDecoder", TD);
  }
}

/** JS_ToFloat64: ToNumber, which throws for symbols and BigInts. */
function toFloat64(v: unknown): number {
  return +(v as number);
}
