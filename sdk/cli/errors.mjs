// @ts-check
/**
 * Error types shared by the CLI's commands, kept apart from the modules that
 * load rollup and TypeScript so that reporting an error loads neither.
 *
 * @module
 */

/** A build that failed for a reason the user can fix; `message` says where. */
export class BuildError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = "BuildError";
  }
}
