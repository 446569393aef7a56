// docs/api.md against the types in sdk/src/index.ts: every exported interface has a section
// whose text names each of its members, and every exported type alias and function is named.
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { test } from "uvu";
import * as assert from "uvu/assert";

import { apiMembers } from "../../scripts/api-members.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const doc = readFileSync(path.join(root, "docs", "api.md"), "utf8");
const api = apiMembers();

/** The text under each "## " heading; a heading may name several interfaces ("A, B"). */
function sections(markdown) {
  const out = new Map();
  const parts = markdown.split(/^## /m).slice(1);
  for (const part of parts) {
    const [heading, ...rest] = part.split("\n");
    for (const name of heading.split(/,\s*/)) out.set(name.trim(), rest.join("\n"));
  }
  return out;
}

const escapeRegExp = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
const bySection = sections(doc);

test("the extraction finds the API (a sanity check of scripts/api-members.mjs)", () => {
  assert.ok(Object.keys(api.interfaces).length >= 15);
  assert.equal(api.interfaces.Chunk, [
    "size",
    "endOfStream",
    "text",
    "bytes",
    "replace",
    "append",
    "prepend",
    "clear",
    "addTrailers",
  ]);
  assert.ok(api.interfaces.ReadonlyHeaders.includes("[Symbol.iterator]"));
  assert.equal(api.functions, ["defineFilter"]);
});

for (const [name, members] of Object.entries(api.interfaces)) {
  test(`docs/api.md documents ${name}`, () => {
    const text = bySection.get(name);
    assert.ok(text !== undefined, `no "## ${name}" section in docs/api.md`);
    // Counter, Gauge and Histogram share a section: a member must be named in it.
    const missing = members.filter((m) => !new RegExp("`(ctx\\.\\w+\\.)?" + escapeRegExp(m) + "[`(]").test(text));
    assert.equal(missing, [], `${name} members not documented: ${missing.join(", ")}`);
  });
}

test("docs/api.md names every exported type and function", () => {
  const missing = [...api.types, ...api.functions].filter((n) => !doc.includes("`" + n));
  assert.equal(missing, []);
});

test.run();
