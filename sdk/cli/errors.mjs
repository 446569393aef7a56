// @ts-check
/**
 * Error types shared by the CLI's commands, kept apart from the modules that
 * load rollup and TypeScript so that reporting an error loads neither.
 *
 * @module
 */
import { readFileSync } from "node:fs";

/** A build that failed for a reason the user can fix; `message` says where. */
export class BuildError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = "BuildError";
  }
}

/**
 * A JSON file the user named on the command line (`--config`, `--settings`, ...).
 *
 * @param {string} file
 * @param {string} what the option, for the message
 * @returns {any} the parsed value; the caller checks its shape
 * @throws {BuildError} naming the file when it cannot be read or is not JSON
 */
export function readJson(file, what) {
  let text;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new BuildError(`cannot read ${what} ${file}: ${err instanceof Error ? err.message : String(err)}`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new BuildError(`${what} ${file} is not valid JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
}
