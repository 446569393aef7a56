// The SDK's types: test/types/*.ts must compile (misuse there is marked
// `// @ts-expect-error`, so misuse that compiles fails too), every public
// declaration carries an @example, and defineFilter is the identity.
import path from "node:path";
import { fileURLToPath } from "node:url";

import ts from "typescript";
import { test } from "uvu";
import * as assert from "uvu/assert";

import { defineFilter } from "@envoy-js/sdk";

const SDK = fileURLToPath(new URL("..", import.meta.url));

/** @param {readonly ts.Diagnostic[]} diagnostics */
function format(diagnostics) {
  return ts.formatDiagnostics(diagnostics, {
    getCanonicalFileName: (f) => f,
    getCurrentDirectory: () => SDK,
    getNewLine: () => "\n",
  });
}

test("test/types-testing compiles: the testing API's types accept its uses and refuse misuse", () => {
  const configFile = path.join(SDK, "test/types-testing/tsconfig.json");
  const { config } = ts.readConfigFile(configFile, ts.sys.readFile);
  const parsed = ts.parseJsonConfigFileContent(config, ts.sys, path.dirname(configFile));
  const program = ts.createProgram(parsed.fileNames, parsed.options);
  const diagnostics = ts.getPreEmitDiagnostics(program);
  assert.is(diagnostics.length, 0, format(diagnostics));
  assert.ok(
    program.getSourceFiles().some((f) => f.fileName.endsWith("/dist/testing/index.d.ts")),
    "resolved through the package exports",
  );
});

test("test/types compiles: correct usage passes, every misuse is an error", () => {
  const configFile = path.join(SDK, "test/types/tsconfig.json");
  const { config, error } = ts.readConfigFile(configFile, ts.sys.readFile);
  assert.is(error, undefined);
  const parsed = ts.parseJsonConfigFileContent(config, ts.sys, path.dirname(configFile));
  assert.equal(parsed.errors, []);
  assert.ok(parsed.fileNames.length >= 3, "the type tests were found");
  const program = ts.createProgram(parsed.fileNames, parsed.options);
  const diagnostics = ts.getPreEmitDiagnostics(program);
  assert.is(diagnostics.length, 0, format(diagnostics));
  // The tests go through the package's exports, as a filter author would.
  const sdkTypes = program
    .getSourceFiles()
    .map((f) => f.fileName)
    .filter((f) => f.endsWith("/dist/index.d.ts"));
  assert.is(sdkTypes.length, 1);
  assert.ok(
    program.getSourceFiles().some((f) => f.fileName.endsWith("/sdk/globals.d.ts")),
    "@envoy-js/sdk/globals resolves through the package exports",
  );
});

/**
 * Declarations that need documentation: top-level declarations of the file
 * and the members of its interfaces and object types.
 *
 * @param {ts.SourceFile} file
 */
function* publicDeclarations(file) {
  for (const statement of file.statements) {
    if (ts.isImportDeclaration(statement) || ts.isExportDeclaration(statement)) continue;
    const names = ts.isVariableStatement(statement)
      ? statement.declarationList.declarations.map((d) => d.name.getText(file))
      : [/** @type {any} */ (statement).name?.getText(file) ?? "?"];
    // The unique-symbol brands of LocalReply and BodyHold are an implementation detail.
    if (names[0] === "localReplyBrand" || names[0] === "bodyHoldBrand") continue;
    yield { node: statement, name: names.join(",") };
    const members = ts.isInterfaceDeclaration(statement)
      ? statement.members
      : ts.isVariableStatement(statement)
        ? statement.declarationList.declarations.flatMap((d) =>
            d.type && ts.isTypeLiteralNode(d.type) ? [...d.type.members] : [],
          )
        : [];
    for (const member of members) {
      // Constructor signatures and brands are described by their type.
      if (
        ts.isConstructSignatureDeclaration(member) ||
        (ts.isPropertySignature(member) && member.name.getText(file) === "prototype")
      )
        continue;
      if (member.name?.getText(file).includes("Brand")) continue;
      yield { node: member, name: `${names[0]}.${member.name?.getText(file) ?? "?"}` };
    }
  }
}

test("every public declaration has JSDoc with an @example", () => {
  const files = [
    path.join(SDK, "dist/index.d.ts"),
    path.join(SDK, "globals.d.ts"),
    path.join(SDK, "dist/testing/index.d.ts"),
    path.join(SDK, "dist/testing/types.d.ts"),
  ];
  const missing = [];
  let checked = 0;
  for (const fileName of files) {
    const text = /** @type {string} */ (ts.sys.readFile(fileName));
    const file = ts.createSourceFile(fileName, text, ts.ScriptTarget.ES2023, /* setParentNodes */ true);
    for (const { node, name } of publicDeclarations(file)) {
      checked++;
      const tags = ts.getJSDocTags(node).map((t) => t.tagName.text);
      if (!tags.includes("example")) missing.push(`${path.basename(fileName)}: ${name}`);
    }
  }
  assert.ok(checked > 100, `only ${checked} declarations seen`);
  assert.equal(missing, [], `without @example:\n${missing.join("\n")}`);
});

test("defineFilter returns its argument unchanged", () => {
  const def = { metrics: { hits: "counter" }, onRequest() {} };
  assert.is(defineFilter(def), def);
  assert.equal(Object.keys(defineFilter(def)), ["metrics", "onRequest"]);
});

test.run();
