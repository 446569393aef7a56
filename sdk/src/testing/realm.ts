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
import vm from "node:vm";
import type * as TS from "typescript";

/** A host function the bootstrap turns into a realm function. */
export type HostFunction = (this: unknown, ...args: unknown[]) => unknown;

/** What the bootstrap script returns: helpers that must be realm functions. */
interface Bootstrap {
  /** Calls onSettled(rejected, value) from a reaction job of this realm. */
  watch(promise: unknown, onSettled: (rejected: boolean, value: unknown) => void): void;
  /**
   * Calls onHandled when the filter attaches a handler to `promise` (then, catch, finally,
   * await, Promise.all, ...): all of them read the promise's `constructor` first, so an own
   * getter there sees them. The runtime's own `watch` does not count.
   */
  track(promise: unknown, onHandled: () => void): void;
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
const BOOTSTRAP = `(function (jobFailed) {
  "use strict";
  const P = Promise, then = P.prototype.then, apply = Reflect.apply, define = Object.defineProperty;
  const TE = TypeError;
  let quiet = false;
  return {
    watch(promise, onSettled) {
      quiet = true;
      try {
        apply(then, promise, [(v) => { onSettled(false, v); }, (e) => { onSettled(true, e); }]);
      } finally {
        quiet = false;
      }
    },
    track(promise, onHandled) {
      define(promise, "constructor", { get() { if (!quiet) onHandled(); return P; }, configurable: true });
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
      apply(then, P.resolve(), [() => { try { fn(); } catch (e) { jobFailed(e); } }]);
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
// is the filter's business (the native engine logs it; the stub cannot see it in time, see
// the README), not a crash of the test process.
const realmPromises = new WeakSet<object>();
let rejectionFilterInstalled = false;

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
    ) => Bootstrap;
    this.helpers = bootstrap(jobFailed);
    this.#drainScript = new vm.Script("undefined", { filename: "envoy-js:drain" });
    realmPromises.add(vm.runInContext("Promise.prototype", this.context) as object);
    installRejectionFilter();
    // The native engine (quickjs-ng) has no Intl and no WebAssembly.
    delete this.global["Intl"];
    delete this.global["WebAssembly"];
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
