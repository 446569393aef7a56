// ctx.fetch(cluster, init), ported from runtime/fetch.cc: HTTP callouts through the host. The
// promise settles when the host reports the callout done; a destroyed stream cancels its
// callouts and their promises reject with StreamGone. Messages are the native ones.
import { types } from "node:util";

import { decodeUtf8, encodeUtf8 } from "./bytes.js";
import type { CalloutRequest, CalloutResponse } from "./host.js";
import type { Engine, PendingCallout, StreamState } from "./runtime.js";

type HeaderPairs = Array<[string, string]>;

/** A settled response: headers and body stay on the stub's side until the filter reads them. */
interface ResponseData {
  status: number;
  headers: HeaderPairs;
  body: Buffer;
}

const TOKEN_PUNCT = "!#$%&'*+-.^_`|~";
const lowerAscii = (s: string): string => s.replace(/[A-Z]/g, (c) => c.toLowerCase());
const upperAscii = (s: string): string => s.replace(/[a-z]/g, (c) => c.toUpperCase());

function validToken(name: string): boolean {
  if (name.length === 0) return false;
  for (const c of name) {
    if (!((c >= "a" && c <= "z") || (c >= "0" && c <= "9") || TOKEN_PUNCT.includes(c))) return false;
  }
  return true;
}

/** C's atoi: leading white space, a sign, digits; 0 when there are none. */
function atoi(v: string): number {
  const m = /^[ \t\n\v\f\r]*([+-]?\d+)/.exec(v);
  return m ? Number.parseInt(m[1]!, 10) | 0 : 0;
}

/** A failure the filter sees as a rejected promise: a TypeError with `message`. */
class InitError {
  constructor(readonly message: string) {}
}

export class FetchApi {
  readonly #e: Engine;
  readonly #responses = new WeakMap<object, ResponseData>();
  readonly #headers = new WeakMap<object, HeaderPairs>();
  readonly #responseProto: object;
  readonly #headersProto: object;

  constructor(engine: Engine) {
    this.#e = engine;
    const realm = engine.realm;
    const api = this;
    const on = <T>(map: WeakMap<object, T>, cls: string, self: unknown): T => {
      const v = typeof self === "object" && self !== null ? map.get(self) : undefined;
      if (v === undefined) throw realm.typeError(`${cls} object expected`);
      return v;
    };
    const read = (format: "text" | "json" | "bytes"): [number, (this: unknown) => unknown] => [
      0,
      function (this: unknown) {
        return api.#read(on(api.#responses, "FetchResponse", this), format);
      },
    ];
    this.#responseProto = realm.makePrototype(
      { text: read("text"), json: read("json"), bytes: read("bytes") },
      {
        status: function (this: unknown) {
          return on(api.#responses, "FetchResponse", this).status;
        },
      },
    );
    const lookup = (magic: "get" | "getAll" | "has"): [number, (this: unknown, ...a: unknown[]) => unknown] => [
      1,
      function (this: unknown, ...args: unknown[]) {
        return api.#lookup(on(api.#headers, "FetchHeaders", this), args, magic);
      },
    ];
    this.#headersProto = realm.makePrototype({
      get: lookup("get"),
      getAll: lookup("getAll"),
      has: lookup("has"),
      entries: [
        0,
        function (this: unknown) {
          const pairs = on(api.#headers, "FetchHeaders", this);
          return realm.array(pairs.map(([k, v]) => realm.array([k, v]))).values();
        },
      ],
    });
    // JS_ALIAS_DEF: the iterator is the entries function itself.
    const entries = Object.getOwnPropertyDescriptor(this.#headersProto, "entries")!.value as unknown;
    Object.defineProperty(this.#headersProto, Symbol.iterator, { value: entries, writable: true, configurable: true });
  }

  /** An Error named FetchError with its `code` (fetchError in fetch.cc). */
  fetchError(code: string, message: string): Error {
    return this.#e.bindings.newError({ name: "FetchError", code, message });
  }

  // JS_ToCString: symbols cannot be converted.
  #cstr(v: unknown): string {
    if (typeof v === "symbol") throw this.#e.realm.typeError("cannot convert symbol to string");
    return String(v);
  }

  // Reads `init` into `req` in the native order; an InitError for what the filter got wrong,
  // anything else thrown is an exception raised while reading (a getter, a toString).
  #readInit(init: unknown, req: CalloutRequest): void {
    let method = "GET";
    let path = "/";
    let authority = req.cluster;
    if (init !== undefined && init !== null) {
      if ((typeof init !== "object" && typeof init !== "function") || init === null) {
        throw new InitError("fetch(cluster, init): init must be an object");
      }
      const o = init as Record<string, unknown>;
      const str = (key: string, fallback: string): string => {
        const v = o[key];
        return v === undefined ? fallback : this.#cstr(v);
      };
      method = str("method", method);
      path = str("path", path);
      authority = str("authority", authority);
      const headers = o["headers"];
      if (headers !== undefined) {
        if ((typeof headers !== "object" && typeof headers !== "function") || headers === null) {
          throw new InitError("fetch(): headers must be an object of name: value");
        }
        const h = headers as Record<string, unknown>;
        for (const key of Object.keys(h)) {
          const name = lowerAscii(key);
          const v = h[key];
          // HeadersInit: a header that occurs more than once is an array of its values.
          const values: unknown[] = Array.isArray(v) ? v : [v];
          let ok = validToken(name);
          for (let j = 0; ok && j < values.length; j++) {
            const value = this.#cstr(values[j]);
            ok = !/[\r\n\0]/.test(value);
            if (ok) req.headers.push([name, value]);
          }
          if (!ok) throw new InitError(`fetch(): invalid header '${name}'`);
        }
      }
      const body = o["body"];
      if (body !== undefined && body !== null) {
        if (typeof body === "string") req.body = encodeUtf8(body);
        else if (isUint8(body)) req.body = Buffer.from(body as Uint8Array);
        else throw new InitError("fetch(): body must be a string or a Uint8Array");
      }
      const timeout = o["timeoutMs"];
      if (timeout !== undefined) {
        const t = +(timeout as number);
        if (!(t >= 1 && t <= 300000)) throw new InitError("fetch(): timeoutMs must be between 1 and 300000");
        req.timeoutMs = Math.trunc(t);
      }
    }
    const lower = lowerAscii(method);
    if (!validToken(lower) || path.length === 0 || path[0] !== "/" || /[\r\n\0 ]/.test(path)) {
      throw new InitError("fetch(): method must be a token and path must start with '/'");
    }
    req.headers.unshift([":method", upperAscii(lower)], [":path", path], [":authority", authority]);
    // The body's length is the host's to state: a filter-given content-length could lie.
    req.headers = req.headers.filter(([name]) => name !== "content-length");
    if (req.body.length > 0) req.headers.push(["content-length", String(req.body.length)]);
  }

  /** ctx.fetch: always returns a promise of the realm; never throws. */
  fetch(s: StreamState, args: unknown[]): unknown {
    const e = this.#e;
    const { promise, resolve, reject } = e.newPromise();
    const rejectNow = (err: unknown) => {
      reject(err);
      return promise;
    };
    if (s.host === null) return rejectNow(e.bindings.newStreamGoneError());
    const cluster = args[0];
    if (args.length < 1 || typeof cluster !== "string") {
      return rejectNow(e.realm.typeError("fetch(cluster, init): cluster must be a string"));
    }
    const req: CalloutRequest = { cluster, headers: [], body: Buffer.alloc(0), timeoutMs: 5000 };
    try {
      this.#readInit(args.length > 1 ? args[1] : undefined, req);
    } catch (err) {
      return rejectNow(err instanceof InitError ? e.realm.typeError(err.message) : err);
    }
    const id = e.nextCalloutId++;
    switch (s.host.startCallout(id, req)) {
      case "started":
        break;
      case "unknown_cluster":
        return rejectNow(this.fetchError("unknown_cluster", `fetch(): no cluster named '${req.cluster}'`));
      case "cannot_create":
        return rejectNow(this.fetchError("cannot_create", `fetch(): the host could not start a callout to '${req.cluster}'`));
    }
    e.callouts.set(id, { resolve, reject, owner: s });
    return promise;
  }

  // ---- the response object: {status, headers, text(), json(), bytes()} ----

  makeResponse(r: CalloutResponse): object {
    const data: ResponseData = { status: 0, headers: [], body: Buffer.from(r.body) };
    for (const [k, v] of r.headers) {
      if (k === ":status") data.status = atoi(v);
      else data.headers.push([lowerAscii(k), v]);
    }
    const headers = Object.create(this.#headersProto) as object;
    this.#headers.set(headers, data.headers.map(([k, v]): [string, string] => [k, v]));
    const obj = Object.create(this.#responseProto) as object;
    this.#responses.set(obj, data);
    Object.defineProperty(obj, "headers", { value: headers, enumerable: true });
    return obj;
  }

  // JS_NewSettledPromise of what the read gives.
  #read(r: ResponseData, format: "text" | "json" | "bytes"): unknown {
    const e = this.#e;
    if (format === "bytes") return e.realm.helpers.resolved(e.realm.uint8Array(r.body));
    const text = decodeUtf8(r.body);
    if (format === "text") return e.realm.helpers.resolved(text);
    let value: unknown;
    try {
      value = e.realm.intrinsics.JSON.parse(text);
    } catch (err) {
      return e.rejectedPromise(err);
    }
    return e.realm.helpers.resolved(value);
  }

  #lookup(pairs: HeaderPairs, args: unknown[], magic: "get" | "getAll" | "has"): unknown {
    const realm = this.#e.realm;
    const name = lowerAscii(this.#cstr(args.length > 0 ? args[0] : undefined));
    const all = pairs.filter(([k]) => k === name).map(([, v]) => v);
    if (magic === "getAll") return realm.array(all);
    if (magic === "has") return all.length > 0;
    return all.length === 0 ? null : all.join(", ");
  }

  // ---- callouts finishing ----

  #settle(c: PendingCallout, ok: boolean, value: unknown): void {
    (ok ? c.resolve : c.reject)(value);
  }

  /** The host reports callout `id` of `s` done (deliverCallout). */
  deliver(s: StreamState, id: number, response: CalloutResponse): void {
    const e = this.#e;
    const c = e.callouts.get(id);
    if (c === undefined || c.owner !== s) return;
    e.callouts.delete(id);
    switch (response.result) {
      case "success":
        this.#settle(c, true, this.makeResponse(response));
        break;
      case "reset":
        this.#settle(c, false, this.fetchError("reset", "fetch(): the callout was reset before a response"));
        break;
      case "timeout":
        this.#settle(c, false, this.fetchError("timeout", "fetch(): no response within timeoutMs"));
        break;
      case "response_too_large":
        this.#settle(c, false, this.fetchError("response_too_large", "fetch(): the response body is over the buffer limit"));
        break;
    }
  }

  /** The stream goes away: its callouts are cancelled and reject with StreamGone. */
  cancelStream(s: StreamState): void {
    const e = this.#e;
    for (const [id, c] of [...e.callouts]) {
      if (c.owner !== s) continue;
      if (s.host !== null) s.host.cancelCallout(id);
      e.callouts.delete(id);
      this.#settle(c, false, e.bindings.newStreamGoneError());
    }
  }
}

// JS_GetUint8Array: a Uint8Array or a Uint8ClampedArray.
const isUint8 = (v: unknown): boolean => types.isUint8Array(v) || types.isUint8ClampedArray(v);
