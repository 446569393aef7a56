// @ts-check
/**
 * Watching a filter's sources for `envoy-js run` and `envoy-js dev`.
 *
 * Node's `fs.watch(dir, { recursive: true })` on Linux (Node 20) watches
 * each file it found at the start: a file that an editor replaces by rename
 * (`sed -i`, vim, many IDEs save that way) is not seen again. Watching every
 * directory of the tree without `recursive` sees every change of the
 * directory's entries, renames included, and a new subdirectory is watched
 * when it appears.
 *
 * @module
 */
import { readdirSync, watch } from "node:fs";
import path from "node:path";

/** Directories never watched: dependencies, build output, version control. */
export const IGNORED_DIRS = /^(node_modules|dist|\.git)$/;

/**
 * Calls `onChange` (with the changed path) whenever something changes in
 * `root` or any directory below it, except {@link IGNORED_DIRS}.
 *
 * @param {string} root
 * @param {(file: string) => void} onChange
 * @returns {{ close: () => void }}
 */
export function watchTree(root, onChange) {
  /** @type {Map<string, import("node:fs").FSWatcher>} */
  const watchers = new Map();
  let closed = false;

  /** @param {string} dir */
  function add(dir) {
    if (closed || watchers.has(dir)) return;
    /** @type {import("node:fs").FSWatcher} */
    let w;
    try {
      w = watch(dir, (event, file) => {
        if (file && IGNORED_DIRS.test(String(file))) return;
        const changed = path.join(dir, file ? String(file) : "");
        // A new (or renamed) directory gets its own watcher.
        if (event === "rename") scan(dir);
        onChange(changed);
      });
    } catch {
      return; // gone already
    }
    w.on("error", () => {
      w.close();
      watchers.delete(dir);
    });
    watchers.set(dir, w);
    scan(dir);
  }

  /** @param {string} dir */
  function scan(dir) {
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      // The directory went away: stop watching it and anything below it.
      for (const [d, w] of watchers) {
        if (d === dir || d.startsWith(dir + path.sep)) {
          w.close();
          watchers.delete(d);
        }
      }
      return;
    }
    for (const e of entries) {
      if (e.isDirectory() && !IGNORED_DIRS.test(e.name)) add(path.join(dir, e.name));
    }
  }

  add(root);
  return {
    close() {
      closed = true;
      for (const w of watchers.values()) w.close();
      watchers.clear();
    },
  };
}

/**
 * Calls `onChange` when the file `file` is written or replaced, by watching
 * its directory (a watch on the file itself ends when an editor replaces it).
 *
 * @param {string} file
 * @param {() => void} onChange
 * @returns {{ close: () => void }}
 */
export function watchOneFile(file, onChange) {
  const name = path.basename(file);
  const w = watch(path.dirname(file), (_event, changed) => {
    if (changed === null || String(changed) === name) onChange();
  });
  return { close: () => w.close() };
}
