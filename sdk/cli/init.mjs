// @ts-check
/**
 * `envoy-js init <dir>`: scaffold a filter project from `templates/filter-project`:
 * package.json (depending on this SDK through a `file:` path), tsconfig,
 * src/filter.ts, a uvu test on the wasm engine, a scenario and a README.
 *
 * @module
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const TEMPLATE = fileURLToPath(new URL("../templates/filter-project", import.meta.url));
const SDK_DIR = fileURLToPath(new URL("..", import.meta.url));

/** Template files whose name cannot be shipped as is (npm drops `.gitignore`). */
const RENAMED = /** @type {Record<string, string>} */ ({ gitignore: ".gitignore" });

/** A project that cannot be created; `message` says why. */
export class InitError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = "InitError";
  }
}

/**
 * A package name from a directory name: lower-case, npm-safe characters.
 *
 * @example
 * ```js
 * packageName("My Filter"); // "my-filter"
 * ```
 *
 * @param {string} dir
 */
export function packageName(dir) {
  const base = path
    .basename(path.resolve(dir))
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, "-")
    .replace(/^[-._]+|-+$/g, "");
  return base || "envoy-js-filter";
}

/**
 * @param {string} dir
 * @returns {string[]} template-relative file paths
 */
function walk(dir) {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    return statSync(full).isDirectory() ? walk(full).map((f) => path.join(name, f)) : [name];
  });
}

/**
 * Writes a new filter project into `dir` (created if needed; it must be empty).
 * Returns the files written, relative to `dir`.
 *
 * @example
 * ```js
 * const files = initProject("my-filter"); // ["README.md", "package.json", ...]
 * ```
 *
 * @param {string} dir
 * @param {{ name?: string }} [options]
 * @returns {string[]}
 */
export function initProject(dir, options = {}) {
  const target = path.resolve(dir);
  if (existsSync(target)) {
    if (!statSync(target).isDirectory()) throw new InitError(`${dir} exists and is not a directory`);
    if (readdirSync(target).length > 0)
      throw new InitError(`${dir} is not empty: init writes into a new or empty directory`);
  }
  const name = options.name ?? packageName(dir);
  if (!/^(@[a-z0-9._-]+\/)?[a-z0-9][a-z0-9._-]*$/.test(name))
    throw new InitError(`'${name}' is not a valid npm package name`);
  // A relative file: path keeps working when the project and the checkout move together.
  const sdk = path.relative(target, SDK_DIR).split(path.sep).join("/") || ".";
  const written = [];
  for (const rel of walk(TEMPLATE).sort()) {
    const out = path.join(path.dirname(rel), RENAMED[path.basename(rel)] ?? path.basename(rel));
    const text = readFileSync(path.join(TEMPLATE, rel), "utf8").replaceAll("{{name}}", name).replaceAll("{{sdk}}", sdk);
    mkdirSync(path.dirname(path.join(target, out)), { recursive: true });
    writeFileSync(path.join(target, out), text);
    written.push(out.split(path.sep).join("/"));
  }
  return written;
}
