// Standalone test of runtime/source_map.{h,cc} and its hooks in FilterProgram (built by
// samples/samples.mk, run by source_map.test.mjs; the Node addon does not pass source maps).
//
//   source_map_test                      the built-in cases; exit 1 when one fails
//   source_map_test BUNDLE.js MAP        compile BUNDLE with MAP and print the error, if any
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "../../runtime/engine.h"
#include "../../runtime/source_map.h"

using envoy_js::FilterProgram;
using envoy_js::Settings;
using envoy_js::SourceMap;

namespace {

int passed = 0, failed = 0;

void check(bool ok, const std::string& what, const std::string& detail = "") {
  if (ok) {
    passed++;
  } else {
    failed++;
    std::printf("FAIL %s%s%s\n", what.c_str(), detail.empty() ? "" : ": ", detail.c_str());
  }
}

void checkEq(const std::string& got, const std::string& want, const std::string& what) {
  check(got == want, what, "got \"" + got + "\", want \"" + want + "\"");
}

std::string mapJson(const std::string& sources, const std::string& mappings, const std::string& extra = "") {
  return "{\"version\":3,\"sources\":" + sources + ",\"names\":[],\"mappings\":\"" + mappings + "\"" + extra + "}";
}

std::string at(const SourceMap& m, uint32_t line, uint32_t col) {
  auto p = m.lookup(line, col);
  return p ? p->source + ":" + std::to_string(p->line) + ":" + std::to_string(p->column) : "none";
}

std::unique_ptr<const SourceMap> parseOk(const std::string& json, const std::string& what) {
  std::string error;
  auto m = SourceMap::parse(json, &error);
  check(m != nullptr, what + " parses", error);
  return m;
}

void lookups() {
  // Line 1: (0 -> a.ts 0:0). Line 2: (0 -> 1:0), (4 -> 1:4). Line 3 empty.
  // Line 4: (16 -> 3:9) "gB" is 16 in two digits, columns continue from line 2 (4 + 5); then (18 -> 3:8), a negative
  // delta.
  auto m = parseOk(mapJson("[\"../src/a.ts\"]", "AAAA;AACA,IAAI;;gBAEK,EAAD"), "basic map");
  if (!m) return;
  checkEq(at(*m, 1, 1), "src/a.ts:1:1", "first segment");
  checkEq(at(*m, 2, 5), "src/a.ts:2:5", "exact segment");
  checkEq(at(*m, 2, 3), "src/a.ts:2:1", "greatest lower bound");
  checkEq(at(*m, 2, 400), "src/a.ts:2:5", "past the last segment");
  checkEq(at(*m, 3, 1), "none", "line without mappings");
  checkEq(at(*m, 4, 17), "src/a.ts:4:10", "multi-digit VLQ column");
  checkEq(at(*m, 4, 1), "src/a.ts:4:10", "before the first segment: that segment");
  checkEq(at(*m, 4, 19), "src/a.ts:4:9", "negative delta");
  checkEq(at(*m, 9, 1), "none", "past the last line");
  checkEq(at(*m, 0, 1), "none", "line 0");

  auto rooted = parseOk(mapJson("[\"filter.ts\", null, \"lib/x.ts\"]", "AAAA,CCAA,CCAA", ",\"sourceRoot\":\"src\""),
                        "sourceRoot map");
  if (rooted) {
    checkEq(at(*rooted, 1, 1), "src/filter.ts:1:1", "sourceRoot joined");
    checkEq(at(*rooted, 1, 2), "none", "null source maps to nothing");
    checkEq(at(*rooted, 1, 3), "src/lib/x.ts:1:1", "sourceRoot joined with a slash");
  }
  // A 1-field segment (generated code with no original) is skipped.
  auto sparse = parseOk(mapJson("[\"./a.ts\"]", "AAAA,I"), "1-field segment");
  if (sparse) checkEq(at(*sparse, 1, 9), "a.ts:1:1", "1-field segment ignored");
}

void parseErrors() {
  struct Case {
    std::string json, want, what;
  } cases[] = {
      {"{not json", "not JSON", "not JSON"},
      {"[]", "must be a JSON object", "array"},
      {"{\"version\":2,\"sources\":[],\"mappings\":\"\"}", "version must be 3", "version"},
      {"{\"version\":3,\"sections\":[]}", "sections", "index map"},
      {"{\"version\":3,\"sources\":[]}", "needs \"sources\"", "no mappings"},
      {mapJson("[\"a.ts\"]", "AA!A"), "malformed", "bad base64 digit"},
      {mapJson("[\"a.ts\"]", "AA"), "2 fields", "two fields"},
      {mapJson("[\"a.ts\"]", "ACAA"), "outside the sources", "source index out of range"},
      {mapJson("[\"a.ts\"]", "g"), "malformed", "unterminated VLQ"},
  };
  for (const Case& c : cases) {
    std::string error;
    auto m = SourceMap::parse(c.json, &error);
    check(m == nullptr && error.find(c.want) != std::string::npos, "refuses " + c.what, error);
  }
}

void rewrites() {
  auto m = parseOk(mapJson("[\"../src/filter.ts\"]", "AAAA;AACA,IAAI"), "rewrite map");
  if (!m) return;
  checkEq(m->rewrite("Error: x\n    at f (filter.js:2:5)\n    at g (filter.js:1:1)", "filter.js"),
          "Error: x\n    at f (src/filter.ts:2:5 (filter.js:2:5))\n    at g (src/filter.ts:1:1 (filter.js:1:1))",
          "stack lines");
  checkEq(m->rewrite("filter.js:2:1: SyntaxError: unexpected token", "filter.js"),
          "src/filter.ts:2:1 (filter.js:2:1): SyntaxError: unexpected token", "syntax error location");
  std::string once = m->rewrite("at f (filter.js:2:5)", "filter.js");
  checkEq(m->rewrite(once, "filter.js"), once, "mapped text is not mapped twice");
  checkEq(m->rewrite("myfilter.js:1:1 dist/filter.js:1:1", "filter.js"), "myfilter.js:1:1 dist/filter.js:1:1",
          "longer file names untouched");
  checkEq(m->rewrite("filter.js:7:1 filter.js: filter.js:1", "filter.js"), "filter.js:7:1 filter.js: filter.js:1",
          "uncovered or partial locations untouched");
  checkEq(m->rewrite("no locations", ""), "no locations", "empty bundle name");
}

const char* kBundle = "function fail(n) {\n"
                      "  throw new Error('setup ' + n);\n"
                      "}\n"
                      "fail(1);\n"
                      "export default {};\n";
// Lines 1, 2 and 4 of the bundle map to lines 3, 7 and 12 of src/filter.ts.
const char* kBundleMap = "{\"version\":3,\"sources\":[\"../src/filter.ts\"],\"names\":[],"
                         "\"mappings\":\"AAEA;EAIE;;AAKF\"}";

void programHooks() {
  std::string error;
  auto program = FilterProgram::compile(kBundle, "filter.js", "{}", Settings{}, &error, kBundleMap);
  check(program == nullptr, "a bundle that throws while loading is refused");
  check(error.find("Error: setup 1") != std::string::npos, "load error keeps the message", error);
  check(error.find("src/filter.ts:7:3 (filter.js:2:") != std::string::npos, "load error stack is mapped", error);
  check(error.find("src/filter.ts:12:1 (filter.js:4:") != std::string::npos, "caller frame is mapped", error);

  error.clear();
  FilterProgram::compile(kBundle, "filter.js", "{}", Settings{}, &error);
  check(error.find("filter.js:2:") != std::string::npos && error.find("src/filter.ts") == std::string::npos,
        "without a map, bundle positions", error);

  error.clear();
  FilterProgram::compile("export default {\n  x: ,\n};\n", "filter.js", "{}", Settings{}, &error, kBundleMap);
  check(error.rfind("src/filter.ts:7:", 0) == 0 && error.find("(filter.js:2:") != std::string::npos &&
            error.find("SyntaxError") != std::string::npos,
        "syntax error located in the source", error);

  error.clear();
  auto ok = FilterProgram::compile("export default {};\n", "filter.js", "{}", Settings{}, &error, "{broken");
  check(ok != nullptr, "a broken map does not fail the program", error);
  if (ok) {
    check(ok->sourceMap() == nullptr && ok->sourceMapError().find("not JSON") != std::string::npos,
          "a broken map is reported", ok->sourceMapError());
    checkEq(ok->mapLocations("at filter.js:1:1"), "at filter.js:1:1", "no map, no mapping");
  }
  auto good = FilterProgram::compile("export default {};\n", "filter.js", "{}", Settings{}, &error, kBundleMap);
  check(good && good->sourceMap() && good->sourceMapError().empty(), "a good map is kept");
  if (good) {
    auto bc = good->serializedBytecode();
    auto fromBc = FilterProgram::fromBytecodeFile(std::string_view(reinterpret_cast<const char*>(bc.data()), bc.size()),
                                                  "filter.js", "{}", Settings{}, &error, kBundleMap);
    check(fromBc && fromBc->sourceMap(), "bytecode programs take a map too", error);
  }
}

std::string readFile(const char* path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3) {
    std::string error;
    std::string bundle = readFile(argv[1]);
    std::string name = argv[1];
    name = name.substr(name.find_last_of('/') + 1);
    auto program = FilterProgram::compile(bundle, name, "{}", Settings{}, &error, readFile(argv[2]));
    if (program && !program->sourceMapError().empty())
      std::printf("map error: %s\n", program->sourceMapError().c_str());
    std::printf("%s\n", program ? "loaded" : error.c_str());
    return 0;
  }
  lookups();
  parseErrors();
  rewrites();
  programHooks();
  std::printf("source_map_test: %d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
