// FilterConfigText and the per-route config (config_text.h), read with a scratch quickjs
// context: the same JSON parser as everything else in the runtime, on the caller's thread
// (Envoy's main thread for the module), never an engine's.
#include "config_text.h"

#include <algorithm>
#include <vector>

#include "internal.h"

namespace envoy_js {
namespace {

// One parsed JSON object in a scratch runtime.
class JsonDoc {
 public:
  JsonDoc() : rt_(JS_NewRuntime()), ctx_(nullptr) {
    limitJsStack(rt_);
    ctx_ = JS_NewContext(rt_);
  }
  ~JsonDoc() {
    JS_FreeValue(ctx_, root_);
    JS_FreeContext(ctx_);
    JS_FreeRuntime(rt_);
  }
  JsonDoc(const JsonDoc&) = delete;
  JsonDoc& operator=(const JsonDoc&) = delete;

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
    if (JS_GetOwnPropertyNames(ctx_, &props, &n, root_, JS_GPN_STRING_MASK | JS_GPN_ENUM_ONLY) != 0) {
      *error = std::string(what) + ": cannot list its keys";
      return false;
    }
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
  // root[key] when it is a non-empty string; absent leaves *out alone.
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
    if (JS_IsBool(v)) {
      *out = JS_ToBool(ctx_, v) == 1;
    } else if (!JS_IsUndefined(v)) {
      *error = std::string("`") + key + "` must be true or false";
      ok = false;
    }
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

std::string baseName(const std::string& path) {
  size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

}  // namespace

std::string FilterConfigText::filename() const {
  if (!sourcePath.empty()) return baseName(sourcePath);
  if (!bytecodePath.empty()) return baseName(bytecodePath);
  return "inline.js";
}

bool FilterConfigText::parse(std::string_view json, FilterConfigText* out, std::string* error) {
  JsonDoc doc;
  if (!doc.parseObject(json, "filter_config", error)) return false;
  if (!doc.checkKeys({"source", "inline", "bytecode", "source_map", "config", "failure_mode", "max_heap_bytes",
                      "max_cpu_ms_per_event", "buffer_limit_bytes", "allow_code_from_strings"},
                     "filter_config", error)) {
    return false;
  }
  FilterConfigText c;
  if (!doc.getString("source", &c.sourcePath, error) || !doc.getString("inline", &c.inlineCode, error) ||
      !doc.getString("bytecode", &c.bytecodePath, error) || !doc.getString("source_map", &c.sourceMapPath, error)) {
    return false;
  }
  if (!c.sourcePath.empty() && !c.inlineCode.empty()) {
    *error = "filter_config: give `source` (a file) or `inline` (the code), not both";
    return false;
  }
  if (c.sourcePath.empty() && c.inlineCode.empty() && c.bytecodePath.empty()) {
    *error = "filter_config needs `source` (the bundle's path), `inline` (its code) or `bytecode`";
    return false;
  }
  if (!Settings::fromJson(json.empty() ? std::string_view("{}") : json, &c.settings, error)) return false;
  c.configJson = doc.getJson("config", "{}");
  *out = std::move(c);
  return true;
}

bool parseRouteConfigText(std::string_view json, RouteOverride* out, std::string* error) {
  JsonDoc doc;
  if (!doc.parseObject(json, "per-route filter_config", error)) return false;
  if (!doc.checkKeys({"config", "disabled"}, "per-route filter_config", error)) return false;
  RouteOverride route;
  if (!doc.getBool("disabled", &route.disabled, error)) return false;
  route.configJson = doc.getJson("config", "");
  *out = std::move(route);
  return true;
}

}  // namespace envoy_js
