// Source map v3 reader: JSON through quickjs's own parser (in a scratch runtime, as
// Settings::fromJson does), then the "mappings" VLQ decoded into per-line segment tables.
#include "source_map.h"

#include <algorithm>
#include <cctype>

#include "internal.h"

namespace envoy_js {
namespace {

// Base64 digit value, or -1.
int base64Value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

// One base64 VLQ value starting at *pos (advanced past it). Each digit carries 5 bits, least
// significant group first, with bit 6 (32) saying "more digits follow"; the lowest bit of
// the assembled value is the sign.
bool readVlq(std::string_view s, size_t* pos, int64_t* out) {
  uint64_t value = 0;
  int shift = 0;
  for (;;) {
    if (*pos >= s.size() || shift > 60) return false;
    int digit = base64Value(s[(*pos)++]);
    if (digit < 0) return false;
    value |= static_cast<uint64_t>(digit & 31) << shift;
    shift += 5;
    if ((digit & 32) == 0) break;
  }
  int64_t magnitude = static_cast<int64_t>(value >> 1);
  *out = (value & 1) ? -magnitude : magnitude;
  return true;
}

// "../../src/filter.ts" -> "src/filter.ts", "./a.ts" -> "a.ts".
std::string shownSource(std::string path) {
  for (;;) {
    if (path.rfind("./", 0) == 0) path.erase(0, 2);
    else if (path.rfind("../", 0) == 0) path.erase(0, 3);
    else break;
  }
  return path;
}

std::string toStdString(JSContext* ctx, JSValueConst v) {
  const char* s = JS_ToCString(ctx, v);
  std::string out = s ? s : "";
  if (s) JS_FreeCString(ctx, s);
  return out;
}

bool isNameChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '/' || c == '-';
}

// Reads decimal digits at *pos; false when there are none.
bool readNumber(std::string_view s, size_t* pos, uint32_t* out) {
  size_t start = *pos;
  uint64_t v = 0;
  while (*pos < s.size() && std::isdigit(static_cast<unsigned char>(s[*pos])) && *pos - start < 9) {
    v = v * 10 + static_cast<uint64_t>(s[*pos] - '0');
    (*pos)++;
  }
  *out = static_cast<uint32_t>(v);
  return *pos > start;
}

// True when text[0, at) ends with ":<digits> (": the location at `at` is the bundle half of
// an already mapped "src/filter.ts:L:C (filter.js:L:C)".
bool alreadyMapped(std::string_view text, size_t at) {
  if (at < 4 || text.substr(at - 2, 2) != " (") return false;
  size_t i = at - 2;
  size_t digitsEnd = i;
  while (i > 0 && std::isdigit(static_cast<unsigned char>(text[i - 1]))) i--;
  return i < digitsEnd && i > 0 && text[i - 1] == ':';
}

}  // namespace

std::unique_ptr<const SourceMap> SourceMap::parse(std::string_view json, std::string* error) {
  JSRuntime* rt = JS_NewRuntime();
  limitJsStack(rt);
  JSContext* ctx = JS_NewContext(rt);
  std::unique_ptr<SourceMap> map(new SourceMap());
  bool ok = true;
  auto fail = [&](std::string message) {
    if (ok) *error = std::move(message);
    ok = false;
  };
  std::string text(json);
  JSValue obj = JS_ParseJSON(ctx, text.c_str(), text.size(), "<source map>");
  if (JS_IsException(obj)) {
    JSValue exc = JS_GetException(ctx);
    fail("source map is not JSON: " + toStdString(ctx, exc));
    JS_FreeValue(ctx, exc);
  } else if (!JS_IsObject(obj) || JS_IsArray(obj)) {
    fail("source map must be a JSON object");
  } else {
    JSValue version = JS_GetPropertyStr(ctx, obj, "version");
    JSValue sections = JS_GetPropertyStr(ctx, obj, "sections");
    JSValue sources = JS_GetPropertyStr(ctx, obj, "sources");
    JSValue root = JS_GetPropertyStr(ctx, obj, "sourceRoot");
    JSValue mappings = JS_GetPropertyStr(ctx, obj, "mappings");
    int32_t v = 0;
    if (!JS_IsNumber(version) || JS_ToInt32(ctx, &v, version) != 0 || v != 3) {
      fail("source map version must be 3");
    } else if (!JS_IsUndefined(sections)) {
      fail("index source maps (\"sections\") are not supported");
    } else if (!JS_IsArray(sources) || !JS_IsString(mappings)) {
      fail("source map needs \"sources\" (an array) and \"mappings\" (a string)");
    } else {
      std::string prefix = JS_IsString(root) ? toStdString(ctx, root) : "";
      if (!prefix.empty() && prefix.back() != '/') prefix += '/';
      int64_t count = 0;
      JS_GetLength(ctx, sources, &count);
      for (int64_t i = 0; i < count; i++) {
        JSValue s = JS_GetPropertyInt64(ctx, sources, i);
        // A null source stays in the table (indices must hold) but maps to nothing useful.
        map->sources_.push_back(JS_IsString(s) ? shownSource(prefix + toStdString(ctx, s)) : "");
        JS_FreeValue(ctx, s);
      }
      std::string m = toStdString(ctx, mappings);
      std::string why;
      if (!map->decodeMappings(m, &why)) fail("source map \"mappings\" is malformed: " + why);
    }
    for (JSValue* p : {&version, &sections, &sources, &root, &mappings}) JS_FreeValue(ctx, *p);
  }
  JS_FreeValue(ctx, obj);
  JS_FreeContext(ctx);
  JS_FreeRuntime(rt);
  if (!ok) return nullptr;
  return map;
}

bool SourceMap::decodeMappings(std::string_view m, std::string* error) {
  // Fields are deltas: the generated column from the previous segment of the same line, the
  // others from the previous segment anywhere in the map.
  int64_t source = 0, line = 0, column = 0;  // a 5th field, the name index, is not used
  lines_.emplace_back();
  int64_t genColumn = 0;
  size_t pos = 0;
  while (pos < m.size()) {
    char c = m[pos];
    if (c == ';') {
      lines_.emplace_back();
      genColumn = 0;
      pos++;
      continue;
    }
    if (c == ',') {
      pos++;
      continue;
    }
    int64_t fields[5];
    int n = 0;
    while (pos < m.size() && m[pos] != ',' && m[pos] != ';') {
      if (n == 5 || !readVlq(m, &pos, &fields[n])) {
        *error = "bad segment at offset " + std::to_string(pos);
        return false;
      }
      n++;
    }
    if (n != 1 && n != 4 && n != 5) {
      *error = "a segment has " + std::to_string(n) + " fields (1, 4 or 5 expected)";
      return false;
    }
    genColumn += fields[0];
    if (genColumn < 0) {
      *error = "negative generated column";
      return false;
    }
    if (n == 1) continue;  // generated code with no original: nothing to map to
    source += fields[1];
    line += fields[2];
    column += fields[3];
    if (source < 0 || source >= static_cast<int64_t>(sources_.size()) || line < 0 || column < 0) {
      *error = "a segment points outside the sources";
      return false;
    }
    lines_.back().push_back({static_cast<uint32_t>(genColumn), static_cast<uint32_t>(source),
                             static_cast<uint32_t>(line), static_cast<uint32_t>(column)});
  }
  for (auto& segments : lines_) {
    std::stable_sort(segments.begin(), segments.end(),
                     [](const Segment& a, const Segment& b) { return a.generatedColumn < b.generatedColumn; });
  }
  return true;
}

std::optional<SourceMap::Position> SourceMap::lookup(uint32_t line, uint32_t column) const {
  if (line == 0 || line > lines_.size()) return std::nullopt;
  const auto& segments = lines_[line - 1];
  if (segments.empty()) return std::nullopt;
  uint32_t col0 = column > 0 ? column - 1 : 0;
  // Last segment whose generated column is <= col0.
  auto it = std::upper_bound(segments.begin(), segments.end(), col0,
                             [](uint32_t c, const Segment& s) { return c < s.generatedColumn; });
  const Segment& seg = it == segments.begin() ? *it : *(it - 1);
  const std::string& source = sources_[seg.source];
  if (source.empty()) return std::nullopt;
  return Position{source, seg.line + 1, seg.column + 1};
}

std::string SourceMap::rewrite(std::string_view text, std::string_view bundleFilename) const {
  std::string out;
  if (bundleFilename.empty()) return std::string(text);
  size_t copied = 0;
  size_t at = 0;
  while ((at = text.find(bundleFilename, at)) != std::string_view::npos) {
    size_t pos = at + bundleFilename.size();
    uint32_t line = 0, column = 0;
    bool located = pos < text.size() && text[pos] == ':' && readNumber(text, &++pos, &line) && pos < text.size() &&
                   text[pos] == ':' && readNumber(text, &++pos, &column);
    bool standalone = at == 0 || !isNameChar(text[at - 1]);
    std::optional<Position> p;
    if (located && standalone && !alreadyMapped(text, at)) p = lookup(line, column);
    if (p) {
      out.append(text.substr(copied, at - copied));
      out += p->source + ":" + std::to_string(p->line) + ":" + std::to_string(p->column) + " (";
      out.append(text.substr(at, pos - at));
      out += ")";
      copied = pos;
    }
    at = located ? pos : at + bundleFilename.size();
  }
  out.append(text.substr(copied));
  return out;
}

}  // namespace envoy_js
