// @ts-check
/**
 * The filter build: TypeScript entry -> one ES module for the engine, with a
 * source map beside it. `envoy-js build` and the repository's
 * `rollup.config.mjs` both go through {@link createRollupOptions}, so a
 * filter bundles the same way either way.
 *
 * Steps:
 *  1. Check the program with the TypeScript API (all errors, as
 *     `file:line:col`); with `typecheck: false` only syntax is checked.
 *  2. Bundle with rollup: @rollup/plugin-typescript transpiles (no second
 *     type check), node-resolve and commonjs bring in npm dependencies,
 *     `@envoy-js/sdk` resolves to this SDK's own build. Anything left
 *     external fails the build: the engine has no module loader.
 *
 * @module
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import commonjs from "@rollup/plugin-commonjs";
import { nodeResolve } from "@rollup/plugin-node-resolve";
import typescript from "@rollup/plugin-typescript";
import { rollup } from "rollup";
import ts from "typescript";

import { BuildError } from "./errors.mjs";
import { loadWasmEngine } from "./wasm.mjs";

const SDK_ROOT = fileURLToPath(new URL("..", import.meta.url));
/** The SDK's runtime part, bundled into every filter. */
const SDK_ENTRY = path.join(SDK_ROOT, "dist", "index.js");
/** Its types, for the type check. */
const SDK_TYPES = path.join(SDK_ROOT, "dist", "index.d.ts");
/** Declarations of the engine's globals (console, setTimeout, ...). */
const ENGINE_GLOBALS = path.join(SDK_ROOT, "globals.d.ts");

export { BuildError };

/**
 * @typedef {object} FilterBuildOptions
 * @property {string} entry The filter's entry file (`.ts` or `.js`).
 * @property {string} outFile Where to write the bundle; the map goes to `<outFile>.map`.
 * @property {boolean} [typecheck] Fail on type errors (default `true`).
 * @property {(message: string) => void} [warn] Where rollup warnings go (default: stderr).
 */

/**
 * Compiler options for filter code: the engine runs ES2023 and has no DOM
 * and no Node.js, only the globals in `globals.d.ts`.
 *
 * @param {boolean} transpileOnly for the rollup plugin, which only emits;
 *   otherwise for the check, which emits nothing
 * @returns {Record<string, unknown>} tsconfig-style (JSON) compiler options
 */
function filterCompilerOptions(transpileOnly) {
  return {
    target: "ES2023",
    lib: ["ES2023"],
    module: "ESNext",
    moduleResolution: "bundler",
    types: [],
    strict: true,
    skipLibCheck: true,
    esModuleInterop: true,
    resolveJsonModule: true,
    forceConsistentCasingInFileNames: true,
    sourceMap: true,
    inlineSources: true,
    // Sources may be anywhere (an entry outside the current directory, a
    // temporary config file); "/" keeps TypeScript from policing that.
    rootDir: path.parse(process.cwd()).root,
    // The filter always gets the SDK that ships with this CLI.
    paths: { "@envoy-js/sdk": [SDK_TYPES] },
    ...(transpileOnly
      ? { noCheck: true, noEmitOnError: false }
      : // The check also parses plain JavaScript (entry or local modules),
        // so its syntax errors are reported the same way; rollup bundles it.
        { allowJs: true, checkJs: false, noEmit: true }),
  };
}

/**
 * Path as shown in messages: relative to the current directory when inside
 * it, absolute otherwise.
 *
 * @param {string} file
 */
function displayPath(file) {
  const rel = path.relative(process.cwd(), file);
  return rel && !rel.startsWith("..") && !path.isAbsolute(rel) ? rel : file;
}

/**
 * One TypeScript diagnostic as `file:line:col - error TS1234: message`.
 *
 * @param {ts.Diagnostic} d
 */
export function formatDiagnostic(d) {
  const message = ts.flattenDiagnosticMessageText(d.messageText, "\n");
  const kind = ts.DiagnosticCategory[d.category].toLowerCase();
  if (d.file && d.start !== undefined) {
    const { line, character } = d.file.getLineAndCharacterOfPosition(d.start);
    return `${displayPath(d.file.fileName)}:${line + 1}:${character + 1} - ${kind} TS${d.code}: ${message}`;
  }
  return `${kind} TS${d.code}: ${message}`;
}

/**
 * Checks the entry and everything it imports. Throws a {@link BuildError}
 * listing every error; with `typecheck` false only syntax errors count.
 *
 * @param {string} entry absolute path
 * @param {boolean} typecheck
 */
export function checkFilter(entry, typecheck) {
  const parsed = ts.parseJsonConfigFileContent(
    { compilerOptions: filterCompilerOptions(false), files: [entry, ENGINE_GLOBALS] },
    ts.sys,
    path.dirname(entry),
  );
  const program = ts.createProgram({ rootNames: parsed.fileNames, options: parsed.options });
  /** @type {readonly ts.Diagnostic[]} */
  const diagnostics = typecheck
    ? ts.getPreEmitDiagnostics(program)
    : [...parsed.errors, ...program.getOptionsDiagnostics(), ...program.getSyntacticDiagnostics()];
  const errors = diagnostics.filter((d) => d.category === ts.DiagnosticCategory.Error);
  if (errors.length > 0) {
    const count = errors.length === 1 ? "1 error" : `${errors.length} errors`;
    throw new BuildError(`${count}:\n${errors.map(formatDiagnostic).join("\n")}`);
  }
}

/**
 * The rollup plugin instance for TypeScript. It is configured through a
 * temporary tsconfig.json because that is the only way to hand it a file
 * list (otherwise it globs every .ts file under the current directory); the
 * plugin parses the file when it is created, so the file is removed at once.
 *
 * @param {string} entry absolute path
 */
function typescriptPlugin(entry) {
  const dir = mkdtempSync(path.join(os.tmpdir(), "envoy-js-build-"));
  try {
    const tsconfig = path.join(dir, "tsconfig.json");
    const config = { compilerOptions: filterCompilerOptions(true), files: [entry] };
    writeFileSync(tsconfig, JSON.stringify(config));
    return typescript({
      tsconfig,
      // Match by extension wherever the file lives (the entry need not be
      // under the current directory).
      filterRoot: false,
      include: [/\.[cm]?tsx?$/],
      exclude: [/\.d\.[cm]?ts$/],
      outputToFilesystem: false,
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Rollup plugin with the engine's rules: `@envoy-js/sdk` is this SDK; no
 * import may stay external; the entry must have a default export.
 *
 * @returns {import("rollup").Plugin}
 */
function enginePlugin() {
  return {
    name: "envoy-js",
    resolveId(source) {
      return source === "@envoy-js/sdk" ? SDK_ENTRY : null;
    },
    buildEnd(error) {
      if (error) return;
      for (const id of this.getModuleIds()) {
        const info = this.getModuleInfo(id);
        if (!info?.isExternal) continue;
        const importers = info.importers.map(displayPath).join(", ");
        this.error(
          `cannot bundle '${id}' (imported by ${importers}): the engine has no module loader, ` +
            `so every import must resolve to a file that can be bundled (is the package installed?)`,
        );
      }
    },
    generateBundle(_options, bundle) {
      for (const chunk of Object.values(bundle)) {
        if (chunk.type === "chunk" && chunk.isEntry && !chunk.exports.includes("default")) {
          this.error(
            `${displayPath(chunk.facadeModuleId ?? chunk.fileName)} has no default export: ` +
              "export the filter with `export default defineFilter({ ... })`",
          );
        }
      }
    },
  };
}

/**
 * Type-checks the filter and returns the rollup options that bundle it.
 * Throws a {@link BuildError} when the check fails.
 *
 * @param {FilterBuildOptions} options
 * @returns {Promise<import("rollup").RollupOptions & { output: import("rollup").OutputOptions }>}
 */
export async function createRollupOptions({ entry, outFile, typecheck = true, warn }) {
  const input = path.resolve(entry);
  if (!existsSync(input)) throw new BuildError(`entry not found: ${entry}`);
  if (!existsSync(SDK_ENTRY) || !existsSync(SDK_TYPES)) {
    throw new BuildError(`the SDK is not built (${displayPath(SDK_ENTRY)} is missing): run \`npm run build -w sdk\``);
  }
  checkFilter(input, typecheck);
  const report = warn ?? ((m) => process.stderr.write(`warning: ${m}\n`));
  return {
    input,
    plugins: [
      enginePlugin(),
      typescriptPlugin(input),
      nodeResolve({ preferBuiltins: false, extensions: [".mjs", ".js", ".json", ".ts", ".mts"] }),
      commonjs(),
    ],
    onwarn(warning) {
      // Unresolved imports are reported by enginePlugin as an error.
      if (warning.code === "UNRESOLVED_IMPORT") return;
      const where = warning.loc?.file
        ? `${displayPath(warning.loc.file)}:${warning.loc.line}:${warning.loc.column} - `
        : "";
      report(where + warning.message);
    },
    output: {
      file: path.resolve(outFile),
      format: "es",
      sourcemap: true,
      inlineDynamicImports: true,
      generatedCode: "es2015",
    },
  };
}

/**
 * @typedef {object} BuildResult
 * @property {string} outFile absolute path of the bundle
 * @property {string} mapFile absolute path of its source map
 * @property {string | null} bytecodeFile absolute path of the bytecode, when asked for
 * @property {number} bytes size of the bundle
 * @property {number} ms wall time of the whole build
 */

/**
 * Rollup's errors as `file:line:col - message`.
 *
 * @param {unknown} err
 * @returns {never}
 */
function rethrowRollupError(err) {
  if (err instanceof BuildError || !(err instanceof Error)) throw err;
  const log = /** @type {import("rollup").RollupError} */ (err);
  const file = log.loc?.file ?? log.id;
  const where = file ? `${displayPath(file)}${log.loc ? `:${log.loc.line}:${log.loc.column}` : ""} - ` : "";
  // Rollup prefixes plugin errors with "[plugin name] "; the location says enough.
  const message = log.message.replace(/^\[plugin [^\]]+\] /, "").replace(/^[^:]+\.\w+ \(\d+:\d+\): /, "");
  throw new BuildError(`${where}${message}${log.frame ? `\n${log.frame}` : ""}`);
}

/**
 * Builds a filter: bundle + source map, and optionally bytecode compiled by
 * the wasm engine's quickjs-ng (`<outFile without .js>.qjsbc`).
 *
 * @param {FilterBuildOptions & { bytecode?: boolean }} options
 * @returns {Promise<BuildResult>}
 */
export async function buildFilter(options) {
  const started = performance.now();
  // Load the engine first: no point bundling when the bytecode cannot be made.
  const engine = options.bytecode ? loadWasmEngine() : null;
  const rollupOptions = await createRollupOptions(options);
  const outFile = /** @type {string} */ (rollupOptions.output.file);
  let bundle;
  try {
    bundle = await rollup(rollupOptions);
    await bundle.write(rollupOptions.output);
  } catch (err) {
    rethrowRollupError(err);
  } finally {
    await bundle?.close();
  }
  let bytecodeFile = null;
  if (engine) {
    bytecodeFile = outFile.replace(/\.[cm]?js$/, "") + ".qjsbc";
    const code = engine.compileBytecode(readFileSync(outFile, "utf8"), path.basename(outFile));
    writeFileSync(bytecodeFile, code);
  }
  return {
    outFile,
    mapFile: `${outFile}.map`,
    bytecodeFile,
    bytes: statSync(outFile).size,
    ms: performance.now() - started,
  };
}
