#!/usr/bin/env node
// Lists the public filter API from sdk/src/index.ts with the TypeScript compiler API: every
// exported interface with its members, the exported type aliases and functions. docs/api.md
// is checked against this list (test/docs/api-docs.test.mjs), so the reference cannot fall
// behind the types. `node scripts/api-members.mjs` prints the list.
import path from "node:path";
import { fileURLToPath } from "node:url";

import ts from "typescript";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const API_SOURCE = path.join(ROOT, "sdk", "src", "index.ts");

const exported = (node) => ts.getCombinedModifierFlags(node) & ts.ModifierFlags.Export;

/** @param {ts.PropertyName} name @param {ts.SourceFile} sf */
function memberName(name, sf) {
  if (ts.isComputedPropertyName(name)) return `[${name.expression.getText(sf)}]`;
  return name.getText(sf);
}

/**
 * @returns {{ interfaces: Record<string, string[]>, types: string[], functions: string[] }}
 *   members in declaration order; members whose name is a unique-symbol brand are left out
 */
export function apiMembers(file = API_SOURCE) {
  const program = ts.createProgram([file], { noEmit: true, target: ts.ScriptTarget.ES2022 });
  const sf = program.getSourceFile(file);
  if (!sf) throw new Error(`cannot read ${file}`);
  /** @type {Record<string, string[]>} */
  const interfaces = {};
  const types = [];
  const functions = [];
  for (const node of sf.statements) {
    if (!exported(node)) continue;
    if (ts.isInterfaceDeclaration(node)) {
      const names = [];
      for (const m of node.members) {
        if (!m.name) continue;
        const name = memberName(m.name, sf);
        if (name.endsWith("Brand]")) continue; // opaque brand, not present at run time
        if (!names.includes(name)) names.push(name);
      }
      interfaces[node.name.text] = names;
    } else if (ts.isTypeAliasDeclaration(node)) {
      types.push(node.name.text);
    } else if (ts.isFunctionDeclaration(node) && node.name) {
      functions.push(node.name.text);
    }
  }
  return { interfaces, types, functions };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { interfaces, types, functions } = apiMembers();
  for (const [name, members] of Object.entries(interfaces)) console.log(`${name}: ${members.join(", ")}`);
  console.log(`types: ${types.join(", ")}`);
  console.log(`functions: ${functions.join(", ")}`);
}
