// A filter program: compiled once per configuration (source or bytecode file), validated in a
// scratch engine, shared read-only by the worker engines. Also the settings it runs under.
#include <bit>
#include <cinttypes>
#include <cstring>
#include <string>

#include "internal.h"
#include "source_map.h"

namespace envoy_js {
namespace {

JSValue getProp(JSContext* ctx, JSValueConst obj, const char* name) { return JS_GetPropertyStr(ctx, obj, name); }

// The header carries what the build's scratch engine checked (metrics, load heap), so that a
// configuration loads the bytecode without running the module once more. (Version 1 had no
// such facts; it never left this repository.)
constexpr std::string_view kBytecodeMagic = "envoy-js-bytecode 2\n";

constexpr uint64_t kFnvOffset = 14695981039346656037ull;
constexpr uint64_t kFnvPrime = 1099511628211ull;

uint64_t fnv1a(const uint8_t* data, size_t len, uint64_t h = kFnvOffset) {
  for (size_t i = 0; i < len; i++) {
    h ^= data[i];
    h *= kFnvPrime;
  }
  return h;
}

// The .qjsbc integrity digest ("sum64"): four FNV-style lanes over little-endian 64-bit words
// (independent, so the CPU runs them in parallel: ~20x faster than byte-wise FNV-1a, which
// took 90 us on a 90 KiB bundle), then FNV-1a over the lanes, the tail bytes and the length.
// Every step is injective in its input word, so any single changed word changes the digest.
// An integrity check against damage, not a signature.
static_assert(std::endian::native == std::endian::little, "sum64 reads little-endian words");
uint64_t sum64(const uint8_t* data, size_t len) {
  uint64_t lanes[4] = {0x243f6a8885a308d3ull, 0x13198a2e03707344ull, 0xa4093822299f31d0ull, 0x082efa98ec4e6c89ull};
  size_t i = 0;
  for (; i + 32 <= len; i += 32) {
    for (int k = 0; k < 4; k++) {
      uint64_t word;
      std::memcpy(&word, data + i + 8 * k, 8);  // the build and the load are both little-endian
      lanes[k] = (lanes[k] ^ word) * kFnvPrime;
    }
  }
  uint64_t h = fnv1a(reinterpret_cast<const uint8_t*>(lanes), sizeof lanes);
  h = fnv1a(data + i, len - i, h);
  uint64_t length = len;
  return fnv1a(reinterpret_cast<const uint8_t*>(&length), sizeof length, h);
}

}  // namespace

std::string FilterProgram::engineVersion() { return JS_GetVersion(); }

// ---- Settings --------------------------------------------------------------------------------

bool Settings::fromJson(std::string_view json, Settings* out, std::string* error) {
  JSRuntime* rt = JS_NewRuntime();
  limitJsStack(rt);
  JSContext* ctx = JS_NewContext(rt);
  bool ok = true;
  std::string text(json);
  JSValue obj = JS_ParseJSON(ctx, text.c_str(), text.size(), "<settings>");
  auto fail = [&](std::string message) {
    *error = std::move(message);
    ok = false;
  };
  if (JS_IsException(obj)) {
    JSValue exc = JS_GetException(ctx);
    const char* m = JS_ToCString(ctx, exc);
    fail(std::string("invalid settings JSON: ") + (m ? m : "parse error"));
    if (m) JS_FreeCString(ctx, m);
    JS_FreeValue(ctx, exc);
  } else if (!JS_IsObject(obj) || JS_IsArray(obj)) {
    fail("settings must be a JSON object");
  } else {
    JSValue mode = getProp(ctx, obj, "failure_mode");
    if (!JS_IsUndefined(mode)) {
      const char* m = JS_IsString(mode) ? JS_ToCString(ctx, mode) : nullptr;
      if (m && std::strcmp(m, "closed") == 0) out->failureMode = FailureMode::Closed;
      else if (m && std::strcmp(m, "open") == 0) out->failureMode = FailureMode::Open;
      else fail("failure_mode must be \"closed\" or \"open\"");
      if (m) JS_FreeCString(ctx, m);
    }
    JS_FreeValue(ctx, mode);
    JSValue allow = getProp(ctx, obj, "allow_code_from_strings");
    if (JS_IsBool(allow)) out->allowCodeFromStrings = JS_ToBool(ctx, allow) == 1;
    else if (!JS_IsUndefined(allow)) fail("allow_code_from_strings must be true or false");
    JS_FreeValue(ctx, allow);
    struct Limit {
      const char* key;
      double min, max;
    } limits[] = {{"max_heap_bytes", 1 << 20, 1ull << 34},
                  {"max_cpu_ms_per_event", 1, 60000},
                  {"buffer_limit_bytes", 0, 1ull << 32}};
    for (const Limit& l : limits) {
      if (!ok) break;
      JSValue v = getProp(ctx, obj, l.key);
      if (!JS_IsUndefined(v)) {
        double d = 0;
        if (!JS_IsNumber(v) || JS_ToFloat64(ctx, &d, v) != 0 || d != static_cast<double>(static_cast<uint64_t>(d)) ||
            d < l.min || d > l.max) {
          char buf[200];
          snprintf(buf, sizeof buf, "%s must be an integer between %.0f and %.0f", l.key, l.min, l.max);
          fail(buf);
        } else if (std::strcmp(l.key, "max_heap_bytes") == 0) {
          out->maxHeapBytes = static_cast<size_t>(d);
        } else if (std::strcmp(l.key, "max_cpu_ms_per_event") == 0) {
          out->maxCpuMsPerEvent = static_cast<uint32_t>(d);
        } else {
          out->bufferLimitBytes = static_cast<size_t>(d);
        }
      }
      JS_FreeValue(ctx, v);
    }
  }
  JS_FreeValue(ctx, obj);
  JS_FreeContext(ctx);
  JS_FreeRuntime(rt);
  return ok;
}

// ---- FilterProgram ---------------------------------------------------------------------------

namespace {

// "    at src/filter.ts:3:13" -> "src/filter.ts:3:13"
std::string firstStackLocation(const std::string& stack) {
  size_t at = stack.find("at ");
  if (at == std::string::npos) return "";
  size_t start = at + 3;
  size_t end = stack.find('\n', start);
  std::string loc = stack.substr(start, end == std::string::npos ? std::string::npos : end - start);
  // "fn (file:1:2)" -> "file:1:2"
  size_t open = loc.find('(');
  if (open != std::string::npos && loc.back() == ')') loc = loc.substr(open + 1, loc.size() - open - 2);
  return loc;
}

}  // namespace

std::string FilterProgram::mapLocations(std::string_view text) const {
  return sourceMap_ ? sourceMap_->rewrite(text, filename_) : std::string(text);
}

std::shared_ptr<const FilterProgram> FilterProgram::compile(std::string_view source, std::string filename,
                                                            std::string configJson, Settings settings,
                                                            std::string* error, std::string_view sourceMapJson) {
  JSRuntime* rt = JS_NewRuntime();
  limitJsStack(rt);
  JS_SetModuleLoaderFunc(rt, nullptr, refuseImports, nullptr);
  JSContext* ctx = JS_NewContext(rt);
  std::string text(source);
  JSValue module =
      JS_Eval(ctx, text.c_str(), text.size(), filename.c_str(), JS_EVAL_TYPE_MODULE | JS_EVAL_FLAG_COMPILE_ONLY);
  std::vector<uint8_t> bytecode;
  if (JS_IsException(module)) {
    JSValue exc = JS_GetException(ctx);
    JSValue stack = JS_GetPropertyStr(ctx, exc, "stack");
    const char* m = JS_ToCString(ctx, exc);
    const char* st = JS_IsString(stack) ? JS_ToCString(ctx, stack) : nullptr;
    std::string loc = st ? firstStackLocation(st) : "";
    *error = (loc.empty() ? filename : loc) + ": " + (m ? m : "compile error");
    if (!sourceMapJson.empty()) {
      std::string ignored;
      if (auto map = SourceMap::parse(sourceMapJson, &ignored)) *error = map->rewrite(*error, filename);
    }
    if (m) JS_FreeCString(ctx, m);
    if (st) JS_FreeCString(ctx, st);
    JS_FreeValue(ctx, stack);
    JS_FreeValue(ctx, exc);
  } else {
    size_t size = 0;
    // Without the functions' source text (kept only for Function.prototype.toString): it
    // doubled the bytecode, and every worker engine read and kept a copy (docs/limits.md).
    uint8_t* buf = JS_WriteObject(ctx, &size, module, JS_WRITE_OBJ_BYTECODE | JS_WRITE_OBJ_STRIP_SOURCE);
    if (buf == nullptr) {
      *error = filename + ": could not serialize the compiled module";
    } else {
      bytecode.assign(buf, buf + size);
      js_free(ctx, buf);
    }
    JS_FreeValue(ctx, module);
  }
  JS_FreeContext(ctx);
  JS_FreeRuntime(rt);
  if (bytecode.empty()) return nullptr;
  return finish(std::move(bytecode), std::move(filename), std::move(configJson), settings, error, sourceMapJson);
}

namespace {
// Metric names go into a header line: bytes outside [A-Za-z0-9_.-] are %XX-escaped.
std::string escapeName(const std::string& name) {
  std::string out;
  for (unsigned char c : name) {
    if (std::isalnum(c) || c == '_' || c == '.' || c == '-') {
      out += static_cast<char>(c);
    } else {
      char buf[4];
      snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

bool unescapeName(std::string_view text, std::string* out) {
  out->clear();
  for (size_t i = 0; i < text.size(); i++) {
    if (text[i] != '%') {
      out->push_back(text[i]);
      continue;
    }
    auto hex = [](char c) { return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1; };
    if (i + 2 >= text.size() || hex(text[i + 1]) < 0 || hex(text[i + 2]) < 0) return false;
    out->push_back(static_cast<char>(hex(text[i + 1]) * 16 + hex(text[i + 2])));
    i += 2;
  }
  return !out->empty();
}

const char* metricKindName(MetricKind k) {
  switch (k) {
    case MetricKind::Counter: return "counter";
    case MetricKind::Gauge: return "gauge";
    case MetricKind::Histogram: return "histogram";
  }
  return "counter";
}

// "metrics a:counter,b:gauge/l1;l2\nload-heap 123\n" (metrics "-" when none; "/" starts the
// labels, ";" separates them: escapeName leaves neither in a name).
std::string checkedFacts(const std::vector<MetricDeclaration>& metrics, size_t loadHeapBytes) {
  std::string text = "metrics ";
  if (metrics.empty()) text += "-";
  for (size_t i = 0; i < metrics.size(); i++) {
    if (i > 0) text += ",";
    text += escapeName(metrics[i].name) + ":" + metricKindName(metrics[i].kind);
    for (size_t l = 0; l < metrics[i].labels.size(); l++) text += (l == 0 ? "/" : ";") + metrics[i].labels[l];
  }
  text += "\nload-heap " + std::to_string(loadHeapBytes) + "\n";
  return text;
}

bool parseMetrics(std::string_view list, std::vector<MetricDeclaration>* out) {
  out->clear();
  if (list == "-") return true;
  while (!list.empty()) {
    size_t comma = list.find(',');
    std::string_view item = list.substr(0, comma);
    MetricDeclaration m;
    size_t slash = item.find('/');
    if (slash != std::string_view::npos) {
      std::string_view labels = item.substr(slash + 1);
      item = item.substr(0, slash);
      while (true) {
        size_t semi = labels.find(';');
        std::string_view label = labels.substr(0, semi);
        if (label.empty()) return false;
        m.labels.emplace_back(label);
        if (semi == std::string_view::npos) break;
        labels = labels.substr(semi + 1);
      }
    }
    size_t colon = item.rfind(':');
    if (colon == std::string_view::npos) return false;
    if (!unescapeName(item.substr(0, colon), &m.name)) return false;
    std::string_view kind = item.substr(colon + 1);
    if (kind == "counter") m.kind = MetricKind::Counter;
    else if (kind == "gauge") m.kind = MetricKind::Gauge;
    else if (kind == "histogram") m.kind = MetricKind::Histogram;
    else return false;
    out->push_back(std::move(m));
    if (comma == std::string_view::npos) break;
    list = list.substr(comma + 1);
  }
  return true;
}

// The filter config must be JSON (Envoy hands over a Struct as JSON; other hosts raw text).
// Checked once per configuration in a bare context; the workers parse it again for ctx.config.
bool checkConfigJson(const std::string& json, const std::string& filename, std::string* error) {
  if (json.empty() || json == "{}") return true;
  JSRuntime* rt = JS_NewRuntime();
  limitJsStack(rt);
  JSContext* ctx = JS_NewContextRaw(rt);
  bool ok = ctx != nullptr && JS_AddIntrinsicBaseObjects(ctx) == 0;
  if (ok) {
    JSValue value = JS_ParseJSON(ctx, json.c_str(), json.size(), "<filter config>");
    if (JS_IsException(value)) {
      ok = false;
      JSValue exc = JS_GetException(ctx);
      JSValue name = JS_GetPropertyStr(ctx, exc, "name");
      JSValue message = JS_GetPropertyStr(ctx, exc, "message");
      const char* n = JS_ToCString(ctx, name);
      const char* m = JS_ToCString(ctx, message);
      *error = filename + ": invalid filter config JSON: " + (n ? n : "SyntaxError") + ": " + (m ? m : "");
      if (n) JS_FreeCString(ctx, n);
      if (m) JS_FreeCString(ctx, m);
      JS_FreeValue(ctx, name);
      JS_FreeValue(ctx, message);
      JS_FreeValue(ctx, exc);
    }
    JS_FreeValue(ctx, value);
  } else {
    *error = filename + ": could not create a quickjs context to check the filter config";
  }
  if (ctx) JS_FreeContext(ctx);
  JS_FreeRuntime(rt);
  return ok;
}

// quickjs-ng's bytecode starts with a version byte and a 32-bit checksum of the rest, which
// JS_ReadObject recomputes on every load unless it is 0xffffffff (its documented escape
// hatch). The program's bytecode is checked once when it enters the process (compiled here,
// or a .qjsbc file whose sum64 matched), so the workers' loads skip it: ~2 % of Engine::create.
void skipReaderChecksum(std::vector<uint8_t>* bytecode) {
  if (bytecode->size() > 5) std::memset(bytecode->data() + 1, 0xff, 4);
}

// Splits off the first line of `*rest` (without its newline); false when there is none.
bool takeLine(std::string_view* rest, std::string_view* line) {
  size_t eol = rest->find('\n');
  if (eol == std::string_view::npos) return false;
  *line = rest->substr(0, eol);
  *rest = rest->substr(eol + 1);
  return true;
}
}  // namespace

std::vector<uint8_t> FilterProgram::serializedBytecode() const {
  std::string facts = checkedFacts(metrics_, loadHeapBytes_);
  // Only when true: files of filters without `background` stay as they were.
  if (hasBackground_) facts += "background\n";
  uint64_t digest =
      fnv1a(reinterpret_cast<const uint8_t*>(facts.data()), facts.size(), sum64(bytecode_.data(), bytecode_.size()));
  char sizeLine[96];
  snprintf(sizeLine, sizeof sizeLine, "size %zu sum64 %016" PRIx64 "\n", bytecode_.size(), digest);
  std::string header = std::string(kBytecodeMagic) + "quickjs-ng " + JS_GetVersion() + "\n" + facts + sizeLine;
  std::vector<uint8_t> out(header.begin(), header.end());
  out.insert(out.end(), bytecode_.begin(), bytecode_.end());
  return out;
}

std::shared_ptr<const FilterProgram> FilterProgram::fromBytecodeFile(std::string_view file, std::string filename,
                                                                     std::string configJson, Settings settings,
                                                                     std::string* error,
                                                                     std::string_view sourceMapJson) {
  if (file.substr(0, kBytecodeMagic.size()) != kBytecodeMagic) {
    *error = filename + ": not an envoy-js bytecode file (build it with `envoy-js build --bytecode`)";
    return nullptr;
  }
  std::string_view rest = file.substr(kBytecodeMagic.size());
  std::string_view versionLine;
  bool hasVersion = takeLine(&rest, &versionLine);
  std::string expected = std::string("quickjs-ng ") + JS_GetVersion();
  if (!hasVersion || versionLine != expected) {
    versionLine = hasVersion ? versionLine : rest;
    *error = filename + ": bytecode was built for " + std::string(versionLine.substr(0, 64)) +
             " but this runtime embeds " + expected +
             "; rebuild it with `envoy-js build --bytecode` from the same envoy-js release";
    return nullptr;
  }
  auto damaged = [&] {
    *error = filename + ": bytecode header is damaged";
    return nullptr;
  };
  std::string_view factsStart = rest;
  std::vector<MetricDeclaration> metrics;
  size_t loadHeapBytes = 0;
  std::string_view metricsLine, heapLine;
  if (!takeLine(&rest, &metricsLine) || !takeLine(&rest, &heapLine)) return damaged();
  if (metricsLine.substr(0, 8) != "metrics " || !parseMetrics(metricsLine.substr(8), &metrics)) return damaged();
  std::string heapText(heapLine);
  if (sscanf(heapText.c_str(), "load-heap %zu", &loadHeapBytes) != 1) return damaged();
  bool hasBackground = false;
  if (std::string_view bg = "background\n"; rest.substr(0, bg.size()) == bg) {
    hasBackground = true;
    rest = rest.substr(bg.size());
  }
  std::string_view facts = factsStart.substr(0, factsStart.size() - rest.size());
  std::string_view sizeView;
  if (!takeLine(&rest, &sizeView)) return damaged();
  size_t size = 0;
  uint64_t sum = 0;
  std::string sizeLine(sizeView);
  if (sscanf(sizeLine.c_str(), "size %zu sum64 %" SCNx64, &size, &sum) != 2) {
    return damaged();
  }
  const auto* data = reinterpret_cast<const uint8_t*>(rest.data());
  uint64_t digest = 0;
  if (rest.size() == size) {
    digest = fnv1a(reinterpret_cast<const uint8_t*>(facts.data()), facts.size(), sum64(data, size));
  }
  if (rest.size() != size || digest != sum) {
    *error = filename + ": bytecode is truncated or corrupt (expected " + std::to_string(size) + " bytes, found " +
             std::to_string(rest.size()) + ")";
    return nullptr;
  }
  // What the build's scratch run established about this exact bytecode holds here too (same
  // quickjs-ng, same runtime); what depends on this configuration is checked now.
  if (loadHeapBytes > settings.maxHeapBytes) {
    *error = filename + ": max_heap_bytes " + std::to_string(settings.maxHeapBytes) +
             " is too small: loading this bundle takes " + std::to_string(loadHeapBytes) + " bytes";
    return nullptr;
  }
  if (!checkConfigJson(configJson, filename, error)) return nullptr;
  auto program = assemble(std::vector<uint8_t>(data, data + size), std::move(filename), std::move(configJson), settings,
                          sourceMapJson);
  program->metrics_ = std::move(metrics);
  program->loadHeapBytes_ = loadHeapBytes;
  program->hasBackground_ = hasBackground;
  return program;
}

std::shared_ptr<FilterProgram> FilterProgram::assemble(std::vector<uint8_t> bytecode, std::string filename,
                                                       std::string configJson, Settings settings,
                                                       std::string_view sourceMapJson) {
  auto program = std::make_shared<FilterProgram>();
  if (!sourceMapJson.empty()) program->sourceMap_ = SourceMap::parse(sourceMapJson, &program->sourceMapError_);
  program->bytecode_ = std::move(bytecode);
  skipReaderChecksum(&program->bytecode_);
  program->filename_ = std::move(filename);
  program->configJson_ = configJson.empty() ? "{}" : std::move(configJson);
  program->settings_ = settings;
  return program;
}

std::shared_ptr<const FilterProgram> FilterProgram::finish(std::vector<uint8_t> bytecode, std::string filename,
                                                           std::string configJson, Settings settings,
                                                           std::string* error, std::string_view sourceMapJson) {
  auto program = assemble(std::move(bytecode), std::move(filename), std::move(configJson), settings, sourceMapJson);
  // Validate in a scratch engine: the module runs, exports a filter, declares sane metrics.
  // Logs of this scratch engine are dropped; errors end up in *error.
  DiscardingEngineHost scratch;
  Engine::Impl impl;
  impl.program = program;
  impl.host = &scratch;
  std::vector<MetricDeclaration> metrics;
  bool ok = loadInScratchEngine(&impl, error, &metrics);
  size_t loadHeapBytes = impl.heapUsed;
  bool hasBackground = !JS_IsUndefined(impl.backgroundFn);
  destroyScratchEngine(&impl);
  if (!ok) return nullptr;
  program->metrics_ = std::move(metrics);
  program->loadHeapBytes_ = loadHeapBytes;
  program->hasBackground_ = hasBackground;
  return program;
}

}  // namespace envoy_js
