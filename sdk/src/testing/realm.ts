// The stub's stand-in for one QuickJS context: a separate V8 realm (node:vm) with its own
// microtask queue, so that the runtime can drain the filter's jobs synchronously after every
// host event, exactly where the native runtime calls JS_ExecutePendingJob.
//
// Why a realm and not the test's own global scope:
//  - `microtaskMode: "afterEvaluate"` gives the realm a private microtask queue that a
//    runInContext() call drains before it returns. Promise reactions go to the queue of the
//    realm their handler was created in, so the filter's async code and the runtime's own
//    reactions (created here, in the bootstrap) all land in that queue.
//  - The filter sees only the engine's globals (no `process`, no `require`), and each engine
//    gets fresh module state, as each native engine does.
// Objects the filter can see are created with the realm's own constructors (Promise,
// Uint8Array, TypeError, ...), so `instanceof` inside the filter works as it does natively.
import { createRequire } from "node:module";
import { promiseHooks } from "node:v8";
import vm from "node:vm";
import type * as TS from "typescript";

/** A host function the bootstrap turns into a realm function. */
export type HostFunction = (this: unknown, ...args: unknown[]) => unknown;

/** What the bootstrap script returns: helpers that must be realm functions. */
interface Bootstrap {
  /** Calls onSettled(rejected, value) from a reaction job of this realm. */
  watch(promise: unknown, onSettled: (rejected: boolean, value: unknown) => void): void;

  /** A pending promise of this realm and its resolving functions. */
  capability(): { promise: unknown; resolve: (v: unknown) => void; reject: (e: unknown) => void };
  /** A promise of this realm, already rejected with `reason`. */
  rejected(reason: unknown): unknown;
  /** Promise.resolve(value) of this realm. */
  resolved(value: unknown): unknown;
  /** A realm function named `name` with `length` that calls `impl` with the same this/args. */
  fn(name: string, length: number, impl: HostFunction): HostFunction;
  /** A realm class (constructor only via `new`) whose constructor calls `init(this, args)`. */
  klass(name: string, length: number, init: (self: object, args: unknown[]) => void): new (...args: unknown[]) => object;
  /** queueMicrotask: a job that calls fn; a throw goes to jobFailed, as a failing job does natively. */
  queueMicrotask(fn: unknown): void;
}

// Runs inside the realm. Captures the intrinsics it needs before any filter code can change them.
// The runtime's own reactions (watch, queueMicrotask) are "quiet": the rejection tracking below
// does not count them as the filter's handlers, as the native runtime's own C reactions are
// not JS handlers either.
const BOOTSTRAP = `(function (jobFailed, quiet) {
  "use strict";
  const P = Promise, then = P.prototype.then, apply = Reflect.apply, define = Object.defineProperty;
  const TE = TypeError;
  return {
    watch(promise, onSettled) {
      quiet(1);
      try {
        apply(then, promise, [(v) => { onSettled(false, v); }, (e) => { onSettled(true, e); }]);
      } finally {
        quiet(-1);
      }
    },
    capability() {
      let resolve, reject;
      const promise = new P((a, b) => { resolve = a; reject = b; });
      return { promise, resolve, reject };
    },
    rejected(reason) { return P.reject(reason); },
    resolved(value) { return P.resolve(value); },
    fn(name, length, impl) {
      const f = { [name](...args) { return apply(impl, this, args); } }[name];
      define(f, "length", { value: length });
      return f;
    },
    klass(name, length, init) {
      const C = { [name]: class { constructor(...args) { init(this, args); } } }[name];
      define(C, "length", { value: length });
      return C;
    },
    queueMicrotask(fn) {
      if (typeof fn !== "function") throw new TE("queueMicrotask needs a function");
      quiet(1);
      try {
        apply(then, P.resolve(), [() => { try { fn(); } catch (e) { jobFailed(e); } }]);
      } finally {
        quiet(-1);
      }
    },
  };
})`;

/** Intrinsics of the realm, for creating objects the filter can use with `instanceof`. */
export interface Intrinsics {
  Object: ObjectConstructor;
  Array: ArrayConstructor;
  Error: ErrorConstructor;
  TypeError: TypeErrorConstructor;
  RangeError: RangeErrorConstructor;
  ReferenceError: ReferenceErrorConstructor;
  SyntaxError: SyntaxErrorConstructor;
  Uint8Array: Uint8ArrayConstructor;
  JSON: JSON;
}

// Promise prototypes of every realm made here: a rejection Node finds unhandled in one of them
// is the filter's business (the engine logs it, and so does the stub: see the tracking below),
// not a crash of the test process.
const realmPromises = new WeakSet<object>();
let rejectionFilterInstalled = false;

// ---- unhandled rejections, as quickjs's rejection tracker sees them --------------------------
//
// The native runtime keeps a list: a promise rejected while it has no handler goes in, a
// handler attached later takes it out, and what is left after the job queue drained is
// reported. V8's promise hooks (which Node also runs for vm contexts) give the same facts:
//  - `init(child, parent)`: a promise made with a parent is a handler on that parent (then,
//    catch, finally, await, Promise.all all make one). One exception: `await value` on a
//    value that is not a promise wraps it in a promise whose "parent" is the async function's
//    own promise and which settles at once, before anything else happens; a child made by
//    `then` settles only in a reaction job, announced by `before(child)`. So a parent link
//    counts once the next promise event is anything but the child settling.
//  - `settled(promise)`: a promise settled; if it has no handler, a quiet reaction of the
//    runtime's own says whether it was rejected and with what.

interface PromiseState {
  handled: boolean;
  entry: UnhandledRejection | null;
}

/** A rejection without a handler, in the order it happened. */
interface UnhandledRejection {
  promise: object;
  /** undefined until known: the promise settled, and a reaction of the runtime tells how. */
  rejected: boolean | undefined;
  reason: unknown;
}

let quietDepth = 0;
const quiet = (delta: number): void => {
  quietDepth += delta;
};
// Realm promise prototypes -> their realm; promises -> their state.
const realmsByPromiseProto = new WeakMap<object, Realm>();
const promiseStates = new WeakMap<object, PromiseState>();
// The last parent link, until the next promise event says whether it was a handler.
let link: { child: object; parent: object; realm: Realm } | null = null;
let promiseHooksInstalled = false;

function flushLink(): void {
  const l = link;
  if (l === null) return;
  link = null;
  l.realm.handlerAttached(l.parent);
}

function installPromiseHooks(): void {
  if (promiseHooksInstalled) return;
  promiseHooksInstalled = true;
  promiseHooks.createHook({
    init(promise: Promise<unknown>, parent: Promise<unknown> | undefined) {
      flushLink();
      if (quietDepth > 0) return;
      const realm = realmsByPromiseProto.get(Object.getPrototypeOf(promise) as object);
      if (realm === undefined) return;
      promiseStates.set(promise, { handled: false, entry: null });
      if (parent !== undefined && promiseStates.has(parent)) link = { child: promise, parent, realm };
    },
    before() {
      flushLink();
    },
    settled(promise: Promise<unknown>) {
      if (link !== null && link.child === promise) link = null; // an await's wrapper
      else flushLink();
      const state = promiseStates.get(promise);
      if (state === undefined || state.handled) return;
      const realm = realmsByPromiseProto.get(Object.getPrototypeOf(promise) as object);
      realm?.settledWithoutHandler(promise, state);
    },
  });
}

function installRejectionFilter(): void {
  if (rejectionFilterInstalled) return;
  rejectionFilterInstalled = true;
  process.on("unhandledRejection", (reason, promise) => {
    if (realmPromises.has(Object.getPrototypeOf(promise) as object)) return;
    // Anyone else's rejection: when nobody else listens, fail as Node does without listeners.
    if (process.listenerCount("unhandledRejection") === 1) throw reason;
  });
}

export class Realm {
  readonly context: vm.Context;
  readonly global: Record<string, unknown>;
  readonly intrinsics: Intrinsics;
  readonly helpers: Bootstrap;
  readonly #drainScript: vm.Script;
  #unhandled: UnhandledRejection[] = [];

  /** `jobFailed` receives what a microtask queued with queueMicrotask threw. */
  constructor(jobFailed: (error: unknown) => void) {
    this.context = vm.createContext({}, { name: "envoy-js filter", microtaskMode: "afterEvaluate" });
    this.global = vm.runInContext("globalThis", this.context) as Record<string, unknown>;
    this.intrinsics = vm.runInContext(
      "({ Object, Array, Error, TypeError, RangeError, ReferenceError, SyntaxError, Uint8Array, JSON })",
      this.context,
    ) as Intrinsics;
    const bootstrap = vm.runInContext(BOOTSTRAP, this.context, { filename: "envoy-js:bootstrap" }) as (
      f: (e: unknown) => void,
      q: (delta: number) => void,
    ) => Bootstrap;
    this.helpers = bootstrap(jobFailed, quiet);
    this.#drainScript = new vm.Script("undefined", { filename: "envoy-js:drain" });
    const promiseProto = vm.runInContext("Promise.prototype", this.context) as object;
    realmPromises.add(promiseProto);
    realmsByPromiseProto.set(promiseProto, this);
    installRejectionFilter();
    installPromiseHooks();
    // The native engine (quickjs-ng) has no Intl and no WebAssembly.
    delete this.global["Intl"];
    delete this.global["WebAssembly"];
  }

  /**
   * The runtime attached a reaction of its own to `promise` (JS_PromiseThen): as a handler
   * of the filter's would, it takes the promise off the unhandled list.
   */
  handlerAttached(promise: object): void {
    const state = promiseStates.get(promise);
    if (state === undefined || state.handled) return;
    state.handled = true;
    if (state.entry !== null) this.#unhandled = this.#unhandled.filter((u) => u !== state.entry);
    state.entry = null;
  }

  /** A promise of this realm settled while nothing handles it. */
  settledWithoutHandler(promise: object, state: PromiseState): void {
    const entry: UnhandledRejection = { promise, rejected: undefined, reason: undefined };
    state.entry = entry;
    this.#unhandled.push(entry);
    this.helpers.watch(promise, (rejected, reason) => {
      if (!rejected) {
        this.#unhandled = this.#unhandled.filter((u) => u !== entry);
        state.entry = null;
        return;
      }
      entry.rejected = true;
      entry.reason = reason;
    });
  }

  /** The rejections still without a handler, taken off the list (what the runtime reports). */
  takeUnhandledRejections(): unknown[] {
    flushLink();
    const known = this.#unhandled.filter((u) => u.rejected === true);
    this.#unhandled = this.#unhandled.filter((u) => u.rejected === undefined);
    for (const u of known) {
      const state = promiseStates.get(u.promise);
      if (state) state.entry = null;
    }
    return known.map((u) => u.reason);
  }

  /** Runs every pending job of the realm (JS_ExecutePendingJob until none is left). */
  drain(): void {
    this.#drainScript.runInContext(this.context);
  }

  /** Defines a global as JS_SetPropertyStr does: writable, enumerable, configurable. */
  defineGlobal(name: string, value: unknown): void {
    Object.defineProperty(this.global, name, { value, writable: true, configurable: true, enumerable: true });
  }

  /** A prototype object of this realm, with realm functions for `methods` and `getters`. */
  makePrototype(
    methods: Record<string, [number, HostFunction]>,
    getters: Record<string, HostFunction> = {},
    toStringTag?: string,
  ): object {
    const proto = new this.intrinsics.Object();
    for (const [name, [length, impl]] of Object.entries(methods)) {
      Object.defineProperty(proto, name, { value: this.helpers.fn(name, length, impl), writable: true, configurable: true });
    }
    for (const [name, impl] of Object.entries(getters)) {
      Object.defineProperty(proto, name, { get: this.helpers.fn(`get ${name}`, 0, impl), configurable: true });
    }
    if (toStringTag) Object.defineProperty(proto, Symbol.toStringTag, { value: toStringTag, configurable: true });
    return proto;
  }

  /** An error of this realm: `new TypeError(message)` as the filter would create it. */
  typeError(message: string): Error {
    return new this.intrinsics.TypeError(message);
  }

  rangeError(message: string): Error {
    return new this.intrinsics.RangeError(message);
  }

  /** A Uint8Array of this realm holding a copy of `bytes`. */
  uint8Array(bytes: Uint8Array): Uint8Array {
    const out = new this.intrinsics.Uint8Array(bytes.length);
    out.set(bytes);
    return out;
  }

  /** A realm array of the given items. */
  array<T>(items: readonly T[]): T[] {
    const out = new this.intrinsics.Array<T>();
    for (const item of items) out.push(item);
    return out;
  }
}

// ---- loading an ES module bundle into a realm ---------------------------------------------------

/** A filter that cannot be loaded; `message` is what the native engine reports. */
export class LoadError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "LoadError";
  }
}

const EXPORTS = "__envoy_js_module_exports__";

let typescript: typeof TS | undefined;
function ts(): typeof TS {
  // Loaded on first use: only loading a filter needs a JavaScript parser.
  typescript ??= createRequire(import.meta.url)("typescript") as typeof TS;
  return typescript;
}

/** QuickJS's module name normalisation: relative names are joined to the importer's folder. */
function normalizeModuleName(base: string, name: string): string {
  if (!name.startsWith(".")) return name;
  const parts = base.split("/").slice(0, -1);
  let rest = name;
  for (;;) {
    if (rest.startsWith("./")) rest = rest.slice(2);
    else if (rest.startsWith("../") && parts.length > 0) {
      parts.pop();
      rest = rest.slice(3);
    } else break;
  }
  return [...parts, rest].join("/");
}

export interface CompiledModule {
  /** Runs the module body; resolves (in the realm) when top-level code finished. */
  evaluate(realm: Realm): { promise: unknown; exports: Record<string, unknown> };
}

/**
 * Compiles an ES module for a realm. Imports are refused (the native engine has no module
 * loader either): the error names the first imported module, as JS_ResolveModule does.
 * Throws a LoadError with "file:line:col: SyntaxError: ..." for syntax errors.
 *
 * The module becomes the body of an async function (module scope stays private, top-level
 * await works); `export` forms become assignments to an exports object. Edits keep every line
 * where it was, so stack traces point into the bundle as they do natively.
 */
export function compileModule(source: string, filename: string): CompiledModule {
  const t = ts();
  const file = t.createSourceFile(filename, source, t.ScriptTarget.Latest, true, t.ScriptKind.JS);
  const parseErrors = (file as unknown as { parseDiagnostics?: TS.Diagnostic[] }).parseDiagnostics ?? [];
  const firstError = parseErrors[0];
  if (firstError) {
    const { line, character } = file.getLineAndCharacterOfPosition(firstError.start ?? 0);
    const message = t.flattenDiagnosticMessageText(firstError.messageText, " ");
    throw new LoadError(`${filename}:${line + 1}:${character + 1}: SyntaxError: ${message}`);
  }

  const edits: Array<{ start: number; end: number; text: string }> = [];
  const tail: string[] = [];
  let firstImport: string | undefined;
  const blank = (start: number, end: number) => edits.push({ start, end, text: " ".repeat(end - start) });
  const modifierRange = (node: TS.Node, kind: TS.SyntaxKind) => {
    const mods = t.canHaveModifiers(node) ? (t.getModifiers(node) ?? []) : [];
    const m = mods.find((x) => x.kind === kind);
    return m ? { start: m.getStart(file), end: m.end } : undefined;
  };
  for (const st of file.statements) {
    if (t.isImportDeclaration(st)) {
      if (t.isStringLiteral(st.moduleSpecifier)) firstImport ??= st.moduleSpecifier.text;
      blank(st.getStart(file), st.end);
    } else if (t.isExportDeclaration(st)) {
      if (st.moduleSpecifier && t.isStringLiteral(st.moduleSpecifier)) {
        firstImport ??= st.moduleSpecifier.text;
        blank(st.getStart(file), st.end);
        continue;
      }
      let text = "";
      if (st.exportClause && t.isNamedExports(st.exportClause)) {
        for (const spec of st.exportClause.elements) {
          if (spec.name.text === "default") text += `${EXPORTS}.default = ${(spec.propertyName ?? spec.name).getText(file)};`;
        }
      }
      edits.push({ start: st.getStart(file), end: st.end, text });
    } else if (t.isExportAssignment(st)) {
      edits.push({ start: st.getStart(file), end: st.expression.getStart(file), text: `${EXPORTS}.default = ` });
    } else {
      const exp = modifierRange(st, t.SyntaxKind.ExportKeyword);
      if (!exp) continue;
      const def = modifierRange(st, t.SyntaxKind.DefaultKeyword);
      if (!def) {
        blank(exp.start, exp.end);
        continue;
      }
      const name = (st as TS.FunctionDeclaration | TS.ClassDeclaration).name;
      if (name) {
        blank(exp.start, def.end);
        tail.push(`${EXPORTS}.default = ${name.text};`);
      } else {
        edits.push({ start: exp.start, end: def.end, text: `${EXPORTS}.default =` });
      }
    }
  }
  if (firstImport !== undefined) {
    const name = normalizeModuleName(filename, firstImport);
    throw new LoadError(
      `${filename}: ReferenceError: cannot import '${name}' at run time: bundle the filter with \`envoy-js build\` so that every dependency is inside one file`,
    );
  }
  edits.sort((a, b) => b.start - a.start);
  let body = source;
  for (const e of edits) body = body.slice(0, e.start) + e.text + body.slice(e.end);
  const wrapped = `(async function (${EXPORTS}) { "use strict";\n${body}\n${tail.join("\n")}\n})`;
  let script: vm.Script;
  try {
    script = new vm.Script(wrapped, { filename, lineOffset: -1 });
  } catch (err) {
    throw new LoadError(describeSyntaxError(err, filename));
  }
  return {
    evaluate(realm) {
      const fn = script.runInContext(realm.context) as (exports: object) => unknown;
      const exports = new realm.intrinsics.Object() as Record<string, unknown>;
      return { promise: fn(exports), exports };
    },
  };
}

// V8 reports a syntax error's place in the stack's first lines: "file:LINE\n<source>\n   ^^^".
function describeSyntaxError(err: unknown, filename: string): string {
  const e = err as { name?: string; message?: string; stack?: string };
  const lines = (e.stack ?? "").split("\n");
  const where = /:(\d+)$/.exec(lines[0] ?? "");
  const caret = lines[2]?.indexOf("^") ?? -1;
  const loc = where ? `${filename}:${where[1]}:${caret >= 0 ? caret + 1 : 1}` : filename;
  return `${loc}: ${e.name ?? "SyntaxError"}: ${e.message ?? String(err)}`;
}
