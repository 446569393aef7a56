// The filter config and the per-route config: parsed, compiled once, metrics defined.
#include "config.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "abi_util.h"
extern "C" {
#include "quickjs.h"
}

namespace envoy_js::module {
namespace {

bool readFile(const std::string& path, std::string* out, std::string* error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = "cannot read " + path + ": " + std::strerror(errno);
    return false;
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  *out = ss.str();
  return true;
}

std::string baseName(const std::string& path) {
  size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// A scratch QuickJS context for reading configuration JSON (main thread only).
class JsonDoc {
 public:
  JsonDoc() : rt_(JS_NewRuntime()), ctx_(JS_NewContext(rt_)) {}
  ~JsonDoc() {
    JS_FreeValue(ctx_, root_);
    JS_FreeContext(ctx_);
    JS_FreeRuntime(rt_);
  }
  // Parses an object; an empty text is an empty object.
  bool parseObject(std::string_view text, const char* what, std::string* error) {
    std::string z = text.empty() ? std::string("{}") : std::string(text);
    root_ = JS_ParseJSON(ctx_, z.c_str(), z.size(), what);
    if (JS_IsException(root_)) {
      *error = std::string(what) + " is not valid JSON: " + exception();
      return false;
    }
    if (!JS_IsObject(root_) || JS_IsArray(root_)) {
      *error = std::string(what) + " must be a JSON object";
      return false;
    }
    return true;
  }
  // Every key must be one of `known`.
  bool checkKeys(const std::vector<std::string>& known, const char* what, std::string* error) {
    JSPropertyEnum* props = nullptr;
    uint32_t n = 0;
    if (JS_GetOwnPropertyNames(ctx_, &props, &n, root_, JS_GPN_STRING_MASK | JS_GPN_ENUM_ONLY) != 0) return false;
    bool ok = true;
    for (uint32_t i = 0; i < n && ok; i++) {
      const char* key = JS_AtomToCString(ctx_, props[i].atom);
      if (key && std::find(known.begin(), known.end(), key) == known.end()) {
        std::string list;
        for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
        *error = std::string("unknown key `") + key + "` in " + what + " (known keys: " + list + ")";
        ok = false;
      }
      if (key) JS_FreeCString(ctx_, key);
    }
    JS_FreePropertyEnum(ctx_, props, n);
    return ok;
  }
  bool has(const char* key) {
    JSValue v = JS_GetPropertyStr(ctx_, root_, key);
    bool present = !JS_IsUndefined(v);
    JS_FreeValue(ctx_, v);
    return present;
  }
  bool getString(const char* key, std::string* out, std::string* error) {
    JSValue v = JS_GetPropertyStr(ctx_, root_, key);
    bool ok = true;
    if (!JS_IsUndefined(v)) {
      size_t len = 0;
      const char* s = JS_IsString(v) ? JS_ToCStringLen(ctx_, &len, v) : nullptr;
      if (s == nullptr || len == 0) {
        *error = std::string("`") + key + "` must be a non-empty string";
        ok = false;
      } else {
        out->assign(s, len);
      }
      if (s) JS_FreeCString(ctx_, s);
    }
    JS_FreeValue(ctx_, v);
    return ok;
  }
  bool getBool(const char* key, bool* out, std::string* error) {
    JSValue v = JS_GetPropertyStr(ctx_, root_, key);
    bool ok = true;
    if (JS_IsBool(v)) *out = JS_ToBool(ctx_, v) == 1;
    else if (!JS_IsUndefined(v)) ok = false, *error = std::string("`") + key + "` must be true or false";
    JS_FreeValue(ctx_, v);
    return ok;
  }
  // The JSON text of root[key]; `fallback` when absent.
  std::string getJson(const char* key, const char* fallback) {
    JSValue v = JS_GetPropertyStr(ctx_, root_, key);
    std::string out = fallback;
    if (!JS_IsUndefined(v)) {
      JSValue s = JS_JSONStringify(ctx_, v, JS_UNDEFINED, JS_UNDEFINED);
      size_t len = 0;
      const char* c = JS_IsString(s) ? JS_ToCStringLen(ctx_, &len, s) : nullptr;
      if (c) {
        out.assign(c, len);
        JS_FreeCString(ctx_, c);
      }
      JS_FreeValue(ctx_, s);
    }
    JS_FreeValue(ctx_, v);
    return out;
  }

 private:
  std::string exception() {
    JSValue e = JS_GetException(ctx_);
    const char* m = JS_ToCString(ctx_, e);
    std::string out = m ? m : "parse error";
    if (m) JS_FreeCString(ctx_, m);
    JS_FreeValue(ctx_, e);
    return out;
  }
  JSRuntime* rt_;
  JSContext* ctx_;
  JSValue root_ = JS_UNDEFINED;
};

std::atomic<uint64_t> gNextSerial{1};

// Logs of the dry run that checks setup() at config time go nowhere: the workers run it again.
using CheckHost = envoy_js::DiscardingEngineHost;

const char* const kEngineCounters[] = {"envoy_js.errors", "envoy_js.cpu_limit", "envoy_js.heap_limit"};

}  // namespace

FilterConfig* newFilterConfig(envoy_dynamic_module_type_http_filter_config_envoy_ptr envoyConfig, std::string name,
                              std::string_view json, std::string* error) {
  JsonDoc doc;
  if (!doc.parseObject(json, "filter_config", error)) return nullptr;
  if (!doc.checkKeys({"source", "inline", "bytecode", "source_map", "config", "failure_mode", "max_heap_bytes",
                      "max_cpu_ms_per_event", "buffer_limit_bytes"},
                     "filter_config", error)) {
    return nullptr;
  }
  std::string sourcePath, inlineCode, bytecodePath, sourceMapPath;
  if (!doc.getString("source", &sourcePath, error) || !doc.getString("inline", &inlineCode, error) ||
      !doc.getString("bytecode", &bytecodePath, error) || !doc.getString("source_map", &sourceMapPath, error)) {
    return nullptr;
  }
  if (!sourcePath.empty() && !inlineCode.empty()) {
    *error = "filter_config: give `source` (a file) or `inline` (the code), not both";
    return nullptr;
  }
  if (sourcePath.empty() && inlineCode.empty() && bytecodePath.empty()) {
    *error = "filter_config needs `source` (the bundle's path), `inline` (its code) or `bytecode`";
    return nullptr;
  }
  Settings settings;
  if (!Settings::fromJson(json.empty() ? std::string_view("{}") : json, &settings, error)) return nullptr;
  std::string configJson = doc.getJson("config", "{}");

  std::string filename = !sourcePath.empty() ? baseName(sourcePath)
                         : !bytecodePath.empty() ? baseName(bytecodePath)
                                                 : std::string("inline.js");
  // The bundle's source map: errors in Envoy's log then name the TypeScript source.
  std::string sourceMap;
  if (!sourceMapPath.empty() && !readFile(sourceMapPath, &sourceMap, error)) return nullptr;
  std::shared_ptr<const FilterProgram> program;
  if (!bytecodePath.empty()) {
    std::string bytes;
    if (!readFile(bytecodePath, &bytes, error)) return nullptr;
    program = FilterProgram::fromBytecodeFile(bytes, filename, configJson, settings, error, sourceMap);
  } else {
    std::string source = inlineCode;
    if (!sourcePath.empty() && !readFile(sourcePath, &source, error)) return nullptr;
    program = FilterProgram::compile(source, filename, configJson, settings, error, sourceMap);
  }
  if (!program) return nullptr;
  if (!program->sourceMapError().empty()) {
    logLine(LogLevel::Warn, "envoy_js(" + name + "): source_map " + sourceMapPath + " is not used: " + program->sourceMapError());
  }
  {
    // setup() runs on every worker; a setup that throws rejects the config here instead.
    CheckHost check;
    if (!Engine::create(program, check, 0, error)) return nullptr;
  }

  auto shared = std::make_shared<ConfigShared>();
  shared->name = std::move(name);
  shared->program = program;
  shared->serial = gNextSerial++;
  auto define = [&](const std::string& metric, MetricKind kind, size_t* id) {
    envoy_dynamic_module_type_metrics_result r;
    if (kind == MetricKind::Counter) {
      r = envoy_dynamic_module_callback_http_filter_config_define_counter(envoyConfig, buf(metric), nullptr, 0, id);
    } else if (kind == MetricKind::Gauge) {
      r = envoy_dynamic_module_callback_http_filter_config_define_gauge(envoyConfig, buf(metric), nullptr, 0, id);
    } else {
      r = envoy_dynamic_module_callback_http_filter_config_define_histogram(envoyConfig, buf(metric), nullptr, 0, id);
    }
    if (r != envoy_dynamic_module_type_metrics_result_Success) {
      *error = "Envoy refused to define metric `" + metric + "` (result " + std::to_string(static_cast<int>(r)) + ")";
      return false;
    }
    return true;
  };
  for (const char* counter : kEngineCounters) {
    size_t id = 0;
    if (!define(counter, MetricKind::Counter, &id)) return nullptr;
    shared->counterIds[counter] = id;
  }
  for (const MetricDeclaration& m : program->metrics()) {
    size_t id = 0;
    if (!define(m.name, m.kind, &id)) return nullptr;
    shared->metricIds.push_back(id);
  }
  return new FilterConfig{std::move(shared)};
}

RouteConfig* newRouteConfig(std::string_view json, std::string* error) {
  JsonDoc doc;
  if (!doc.parseObject(json, "per-route filter_config", error)) return nullptr;
  if (!doc.checkKeys({"config", "disabled"}, "per-route filter_config", error)) return nullptr;
  auto* rc = new RouteConfig();
  if (!doc.getBool("disabled", &rc->route.disabled, error)) {
    delete rc;
    return nullptr;
  }
  rc->route.configJson = doc.getJson("config", "");
  return rc;
}

}  // namespace envoy_js::module
