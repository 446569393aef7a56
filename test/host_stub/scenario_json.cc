#include "scenario_json.h"

#include <cmath>
#include <cstdio>

extern "C" {
#include "quickjs.h"
}

namespace envoy_js::stub {
namespace {

// The first thing wrong with a scenario. Readers record it and go on with defaults (no
// exceptions: the wasm build has none); parse functions return false when it is set.
struct Problems {
  std::string first;
  void add(const std::string& what) {
    if (first.empty()) first = what;
  }
};

// One scratch runtime per call; values are freed by RAII holders.
class Js {
 public:
  // A small C stack limit: deeply nested JSON is refused by quickjs, never by the host (in
  // the wasm engine, V8's own stack limit would abort the whole module; runtime/internal.h).
  Js() : rt_(JS_NewRuntime()), ctx_((JS_SetMaxStackSize(rt_, 96 * 1024), JS_NewContext(rt_))) {}
  ~Js() {
    JS_FreeContext(ctx_);
    JS_FreeRuntime(rt_);
  }
  JSContext* ctx() { return ctx_; }

 private:
  JSRuntime* rt_;
  JSContext* ctx_;
};

class Val {
 public:
  Val(JSContext* ctx, JSValue v) : ctx_(ctx), v_(v) {}
  Val(const Val&) = delete;
  Val(Val&& o) noexcept : ctx_(o.ctx_), v_(o.v_) { o.v_ = JS_UNDEFINED; }
  ~Val() { JS_FreeValue(ctx_, v_); }
  JSValue get() const { return v_; }
  Val prop(const std::string& key) const { return Val(ctx_, JS_GetPropertyStr(ctx_, v_, key.c_str())); }
  Val at(uint32_t i) const { return Val(ctx_, JS_GetPropertyUint32(ctx_, v_, i)); }
  bool absent() const { return JS_IsUndefined(v_) || JS_IsNull(v_); }
  bool isObject() const { return JS_IsObject(v_); }
  bool isArray() const { return JS_IsArray(v_); }
  bool isString() const { return JS_IsString(v_); }
  bool isNumber() const { return JS_IsNumber(v_); }
  bool truthy() const { return JS_ToBool(ctx_, v_) == 1; }
  uint32_t length() const {
    int64_t n = 0;
    JS_GetLength(ctx_, v_, &n);
    return static_cast<uint32_t>(n);
  }
  double number() const {
    double d = 0;
    JS_ToFloat64(ctx_, &d, v_);
    return d;
  }
  std::string str() const {
    size_t len = 0;
    const char* s = JS_ToCStringLen(ctx_, &len, v_);
    std::string out = s ? std::string(s, len) : std::string();
    if (s) JS_FreeCString(ctx_, s);
    return out;
  }
  // A value that stands for itself (a route's config): null stays null, as
  // Envoy has it (the addon's stringifyValue()).
  std::string valueJson() const { return JS_IsNull(v_) ? "null" : json(); }
  // JSON.stringify, with the addon's rule: undefined and null read as {}.
  std::string json() const {
    if (absent()) return "{}";
    Val s(ctx_, JS_JSONStringify(ctx_, v_, JS_UNDEFINED, JS_UNDEFINED));
    return s.isString() ? s.str() : "{}";
  }
  std::vector<std::string> keys() const {
    std::vector<std::string> out;
    JSPropertyEnum* props = nullptr;
    uint32_t n = 0;
    if (JS_GetOwnPropertyNames(ctx_, &props, &n, v_, JS_GPN_STRING_MASK | JS_GPN_ENUM_ONLY) != 0) return out;
    for (uint32_t i = 0; i < n; i++) {
      const char* k = JS_AtomToCString(ctx_, props[i].atom);
      if (k) out.emplace_back(k);
      if (k) JS_FreeCString(ctx_, k);
    }
    JS_FreePropertyEnum(ctx_, props, n);
    return out;
  }

 private:
  JSContext* ctx_;
  JSValue v_;
};

// A scenario's metadata value (parsed JSON) as the scripted host stores it: typed.
MetadataValue metadataOf(const Val& v) {
  using Kind = MetadataValue::Kind;
  MetadataValue out;
  if (v.isString()) {
    out.kind = Kind::String;
    out.string = v.str();
  } else if (v.isNumber()) {
    out.kind = Kind::Number;
    out.number = v.number();
  } else if (JS_IsBool(v.get())) {
    out.kind = Kind::Bool;
    out.boolean = v.truthy();
  } else if (v.isArray()) {
    out.kind = Kind::List;
    for (uint32_t i = 0, n = v.length(); i < n; i++) out.list.push_back(metadataOf(v.at(i)));
  } else if (v.isObject()) {
    out.kind = Kind::Object;
    for (const std::string& key : v.keys()) out.object.emplace_back(key, metadataOf(v.prop(key)));
  }
  return out;
}

int base64Digit(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+' || c == '-') return 62;
  if (c == '/' || c == '_') return 63;
  return -1;
}

bool decodeBase64(const std::string& in, std::string* out) {
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    if (c == '=' || c == '\n' || c == '\r') continue;
    int d = base64Digit(c);
    if (d < 0) return false;
    acc = (acc << 6) | static_cast<uint32_t>(d);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out->push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return true;
}

// One body chunk: a string (its UTF-8 bytes), or {"base64": "..."} for bytes that are not
// UTF-8 text (the testing API sends a Uint8Array chunk that way).
std::string chunk(Problems& bad, const Val& v, const std::string& where) {
  if (v.isObject() && !v.isArray()) {
    Val b64 = v.prop("base64");
    std::string bytes;
    if (!b64.isString() || !decodeBase64(b64.str(), &bytes)) bad.add(where + ".base64 must be base64 text");
    return bytes;
  }
  return v.str();
}

HeaderList readHeaders(Problems& bad, const Val& v, const std::string& where) {
  HeaderList out;
  if (v.absent()) return out;
  if (!v.isObject() || v.isArray()) {
    bad.add(where + " must be an object of name: value");
    return out;
  }
  for (const std::string& name : v.keys()) {
    Val value = v.prop(name);
    if (value.isArray()) {
      for (uint32_t j = 0; j < value.length(); j++) out.emplace_back(name, value.at(j).str());
    } else {
      out.emplace_back(name, value.str());
    }
  }
  return out;
}

std::vector<std::string> readBody(Problems& bad, const Val& v, const std::string& where) {
  std::vector<std::string> out;
  if (v.absent()) return out;
  if (v.isString() || (v.isObject() && !v.isArray())) {
    out.push_back(chunk(bad, v, where));
    return out;
  }
  if (!v.isArray()) {
    bad.add(where + " must be a string or an array of strings");
    return out;
  }
  for (uint32_t i = 0; i < v.length(); i++) out.push_back(chunk(bad, v.at(i), where + "[" + std::to_string(i) + "]"));
  return out;
}

Message readMessage(Problems& bad, const Val& v, const std::string& where) {
  Message m;
  if (!v.isObject()) {
    bad.add(where + " must be an object");
    return m;
  }
  m.headers = readHeaders(bad, v.prop("headers"), where + ".headers");
  m.body = readBody(bad, v.prop("body"), where + ".body");
  Val t = v.prop("trailers");
  if (!t.absent()) m.trailers = readHeaders(bad, t, where + ".trailers");
  return m;
}

StreamScenario readStream(Problems& bad, const Val& so, const std::string& where, bool withRequest) {
  StreamScenario s;
  if (!so.isObject()) {
    bad.add(where + " must be an object");
    return s;
  }
  if (withRequest) s.request = readMessage(bad, so.prop("request"), where + ".request");
  Val up = so.prop("upstream");
  if (!up.absent()) s.upstream = readMessage(bad, up, where + ".upstream");
  Val info = so.prop("stream");
  if (info.isObject()) {
    auto field = [&](const char* k, std::string* out) {
      Val f = info.prop(k);
      if (f.isString()) *out = f.str();
    };
    field("id", &s.info.id);
    field("protocol", &s.info.protocol);
    field("remoteAddress", &s.info.remoteAddress);
    field("localAddress", &s.info.localAddress);
    field("routeName", &s.info.routeName);
    field("clusterName", &s.facts.clusterName);
    field("upstreamAddress", &s.facts.upstreamAddress);
    field("virtualHostName", &s.facts.virtualHostName);
    field("virtualClusterName", &s.facts.virtualClusterName);
    field("filterChainName", &s.facts.filterChainName);
    field("requestedServerName", &s.facts.requestedServerName);
    Val conn = info.prop("connectionId");
    if (conn.isNumber()) s.facts.connectionId = static_cast<uint64_t>(conn.number());
  }
  for (auto [field, out] : {std::pair{"metadata", &s.metadata}, std::pair{"routeMetadata", &s.routeMetadata}}) {
    Val md = so.prop(field);
    if (!md.isObject()) continue;
    for (const std::string& ns : md.keys()) {
      Val keys = md.prop(ns);
      if (!keys.isObject()) {
        bad.add(where + "." + field + "." + ns + " must be an object");
        continue;
      }
      for (const std::string& key : keys.keys()) (*out)[ns][key] = metadataOf(keys.prop(key));
    }
  }
  Val fs = so.prop("filterState");
  if (fs.isObject()) {
    for (const std::string& key : fs.keys()) s.filterState[key] = fs.prop(key).str();
  }
  auto readRoute = [](const Val& route, RouteOverride* out) {
    out->disabled = route.prop("disabled").truthy();
    Val config = route.prop("config");
    if (!JS_IsUndefined(config.get())) out->configJson = config.valueJson();
  };
  Val route = so.prop("route");
  if (route.isObject()) readRoute(route, &s.route);
  Val after = so.prop("routeAfterClear");
  if (after.isObject()) readRoute(after, &s.routeAfterClear.emplace());
  Val clusters = so.prop("clusters");
  if (clusters.isObject()) {
    for (const std::string& name : clusters.keys()) {
      std::string cw = where + ".clusters." + name;
      Val c = clusters.prop(name);
      if (!c.isObject()) {
        bad.add(cw + " must be an object");
        continue;
      }
      ClusterScript script;
      script.response.headers = readHeaders(bad, c.prop("headers"), cw + ".headers");
      if (script.response.headers.empty()) script.response.headers.emplace_back(":status", "200");
      script.response.body = readBody(bad, c.prop("body"), cw + ".body");
      Val delay = c.prop("delayMs");
      if (delay.isNumber()) script.delayMs = delay.number();
      script.reset = c.prop("reset").truthy();
      script.timeout = c.prop("timeout").truthy();
      s.clusters[name] = std::move(script);
    }
  }
  Val reset = so.prop("reset");
  if (!JS_IsUndefined(reset.get())) {
    s.reset = reset.str();
    if (s.reset != "none" && s.reset != "afterRequestHeaders" && s.reset != "afterRequestBody") {
      bad.add(where + ".reset must be none, afterRequestHeaders or afterRequestBody");
    }
  }
  Val direct = so.prop("directResponse");
  if (!direct.absent()) s.directResponse = readMessage(bad, direct, where + ".directResponse");
  Val earlier = so.prop("earlierFilterBuffers");
  if (!earlier.absent()) {
    const std::string badShape = where + ".earlierFilterBuffers must be an array of \"request\" and \"response\"";
    if (!earlier.isArray()) bad.add(badShape);
    for (uint32_t i = 0; earlier.isArray() && i < earlier.length(); i++) {
      std::string d = earlier.at(i).str();
      if (d == "request") s.earlierFilterBuffers[0] = true;
      else if (d == "response") s.earlierFilterBuffers[1] = true;
      else bad.add(badShape);
    }
  }
  return s;
}

// ---- writing ----

class Writer {
 public:
  explicit Writer(JSContext* ctx) : ctx_(ctx) {}
  JSValue str(std::string_view s) { return JS_NewStringLen(ctx_, s.data(), s.size()); }
  JSValue headers(const HeaderList& list) {
    JSValue o = JS_NewObject(ctx_);
    for (const auto& [k, v] : list) {
      JSAtom atom = JS_NewAtomLen(ctx_, k.data(), k.size());
      JSPropertyDescriptor desc;
      int own = JS_GetOwnProperty(ctx_, &desc, o, atom);
      if (own <= 0) {
        JS_SetProperty(ctx_, o, atom, str(v));
      } else {
        JSValue prev = desc.value;
        JS_FreeValue(ctx_, desc.getter);
        JS_FreeValue(ctx_, desc.setter);
        if (JS_IsArray(prev)) {
          int64_t n = 0;
          JS_GetLength(ctx_, prev, &n);
          JS_SetPropertyInt64(ctx_, prev, n, str(v));
          JS_FreeValue(ctx_, prev);
        } else {
          JSValue a = JS_NewArray(ctx_);
          JS_SetPropertyUint32(ctx_, a, 0, prev);
          JS_SetPropertyUint32(ctx_, a, 1, str(v));
          JS_SetProperty(ctx_, o, atom, a);
        }
      }
      JS_FreeAtom(ctx_, atom);
    }
    return o;
  }
  JSValue sent(const std::optional<SentMessage>& m) {
    if (!m) return JS_NULL;
    JSValue o = JS_NewObject(ctx_);
    JS_SetPropertyStr(ctx_, o, "headers", headers(m->headers));
    JS_SetPropertyStr(ctx_, o, "body", str(m->body));
    JS_SetPropertyStr(ctx_, o, "trailers", m->trailers ? headers(*m->trailers) : JS_NULL);
    return o;
  }
  JSValue strings(const std::vector<std::string>& v) {
    JSValue a = JS_NewArray(ctx_);
    for (size_t i = 0; i < v.size(); i++) JS_SetPropertyUint32(ctx_, a, static_cast<uint32_t>(i), str(v[i]));
    return a;
  }
  // A stored metadata value, shown as the JSON it stands for (the runtime prints it).
  JSValue metadata(const MetadataValue& v) {
    std::string json = metadataToJson(v);
    return JS_ParseJSON(ctx_, json.c_str(), json.size(), "<metadata>");
  }
  JSValue stream(const StreamTranscript& s) {
    JSValue o = JS_NewObject(ctx_);
    JS_SetPropertyStr(ctx_, o, "upstreamRequest", sent(s.upstreamRequest));
    if (s.localReply) {
      JSValue r = JS_NewObject(ctx_);
      JS_SetPropertyStr(ctx_, r, "status", JS_NewInt32(ctx_, s.localReply->status));
      JS_SetPropertyStr(ctx_, r, "body", str(s.localReply->body));
      HeaderList h(s.localReply->headers.begin(), s.localReply->headers.end());
      JS_SetPropertyStr(ctx_, r, "headers", headers(h));
      JS_SetPropertyStr(ctx_, r, "details", str(s.localReply->details));
      JS_SetPropertyStr(ctx_, o, "localReply", r);
    } else {
      JS_SetPropertyStr(ctx_, o, "localReply", JS_NULL);
    }
    JS_SetPropertyStr(ctx_, o, "downstreamResponse", sent(s.downstreamResponse));
    JS_SetPropertyStr(ctx_, o, "logs", strings(s.logs));
    JS_SetPropertyStr(ctx_, o, "errors", strings(s.errors));
    JS_SetPropertyStr(ctx_, o, "events", strings(s.events));
    JS_SetPropertyStr(ctx_, o, "resetByFilter", JS_NewBool(ctx_, s.resetByFilter));
    JSValue md = JS_NewObject(ctx_);
    for (const auto& [ns, keys] : s.metadata) {
      JSValue ko = JS_NewObject(ctx_);
      for (const auto& [k, v] : keys) JS_SetPropertyStr(ctx_, ko, k.c_str(), metadata(v));
      JS_SetPropertyStr(ctx_, md, ns.c_str(), ko);
    }
    JS_SetPropertyStr(ctx_, o, "metadata", md);
    JSValue fs = JS_NewObject(ctx_);
    for (const auto& [k, v] : s.filterState) JS_SetPropertyStr(ctx_, fs, k.c_str(), str(v));
    JS_SetPropertyStr(ctx_, o, "filterState", fs);
    JS_SetPropertyStr(ctx_, o, "routeCacheClears", JS_NewInt32(ctx_, s.routeCacheClears));
    JSValue override = JS_NULL;
    if (s.upstreamOverrideHost) {
      override = JS_NewObject(ctx_);
      JS_SetPropertyStr(ctx_, override, "host", str(s.upstreamOverrideHost->first));
      JS_SetPropertyStr(ctx_, override, "strict", JS_NewBool(ctx_, s.upstreamOverrideHost->second));
    }
    JS_SetPropertyStr(ctx_, o, "upstreamOverrideHost", override);
    JSValue callouts = JS_NewArray(ctx_);
    for (size_t c = 0; c < s.callouts.size(); c++) {
      JSValue co = JS_NewObject(ctx_);
      JS_SetPropertyStr(ctx_, co, "cluster", str(s.callouts[c].cluster));
      JS_SetPropertyStr(ctx_, co, "headers", headers(s.callouts[c].headers));
      JS_SetPropertyStr(ctx_, co, "body", str(s.callouts[c].body));
      JS_SetPropertyUint32(ctx_, callouts, static_cast<uint32_t>(c), co);
    }
    JS_SetPropertyStr(ctx_, o, "callouts", callouts);
    return o;
  }

 private:
  JSContext* ctx_;
};

// Parses `json` into a scratch value; false with *error when it is not JSON.
bool parseRoot(Js& js, std::string_view json, const char* what, std::optional<Val>* root, std::string* error) {
  JSContext* ctx = js.ctx();
  std::string text(json);
  Val v(ctx, JS_ParseJSON(ctx, text.c_str(), text.size(), what));
  if (JS_IsException(v.get())) {
    Val e(ctx, JS_GetException(ctx));
    *error = std::string(what) + " is not valid JSON: " + e.str();
    return false;
  }
  root->emplace(std::move(v));
  return true;
}

bool done(const Problems& bad, std::string* error) {
  if (bad.first.empty()) return true;
  *error = bad.first;
  return false;
}

}  // namespace

bool parseScenario(std::string_view json, Scenario* out, std::string* error) {
  Js js;
  std::optional<Val> root;
  if (!parseRoot(js, json, "scenario", &root, error)) return false;
  Problems bad;
  if (!root->isObject()) {
    *error = "scenario must be an object";
    return false;
  }
  out->configJson = root->prop("config").json();
  out->settingsJson = root->prop("settings").json();
  Val streams = root->prop("streams");
  if (!streams.isArray()) {
    *error = "scenario.streams must be an array";
    return false;
  }
  for (uint32_t i = 0; i < streams.length(); i++) {
    out->streams.push_back(readStream(bad, streams.at(i), "streams[" + std::to_string(i) + "]", true));
  }
  return done(bad, error);
}

bool parseStreamSetup(std::string_view json, StreamScenario* out, std::string* error) {
  Js js;
  std::optional<Val> root;
  if (!parseRoot(js, json, "stream setup", &root, error)) return false;
  if (root->absent()) return true;
  Problems bad;
  *out = readStream(bad, *root, "stream", false);
  return done(bad, error);
}

bool parseHeaders(std::string_view json, const char* where, HeaderList* out, std::string* error) {
  Js js;
  std::optional<Val> root;
  if (!parseRoot(js, json, where, &root, error)) return false;
  Problems bad;
  *out = readHeaders(bad, *root, where);
  return done(bad, error);
}

std::string jsonOf(std::string_view json) {
  Js js;
  std::optional<Val> root;
  std::string error;
  if (!parseRoot(js, json, "value", &root, &error)) return "{}";
  return root->json();
}

std::string streamTranscriptJson(const StreamTranscript& s) {
  Js js;
  JSContext* ctx = js.ctx();
  Writer w(ctx);
  Val text(ctx, JS_JSONStringify(ctx, w.stream(s), JS_UNDEFINED, JS_UNDEFINED));
  return text.str();
}

std::string transcriptJson(const Transcript& t) {
  Js js;
  JSContext* ctx = js.ctx();
  Writer w(ctx);
  JSValue out = JS_NewObject(ctx);
  JSValue streams = JS_NewArray(ctx);
  for (size_t i = 0; i < t.streams.size(); i++)
    JS_SetPropertyUint32(ctx, streams, static_cast<uint32_t>(i), w.stream(t.streams[i]));
  JS_SetPropertyStr(ctx, out, "streams", streams);
  JSValue counters = JS_NewObject(ctx);
  for (const auto& [k, v] : t.counters)
    JS_SetPropertyStr(ctx, counters, k.c_str(), JS_NewFloat64(ctx, static_cast<double>(v)));
  JS_SetPropertyStr(ctx, out, "counters", counters);
  JSValue metrics = JS_NewObject(ctx);
  for (const auto& [name, m] : t.metrics) {
    if (m.kind == MetricKind::Histogram) {
      JSValue a = JS_NewArray(ctx);
      for (size_t i = 0; i < m.samples.size(); i++)
        JS_SetPropertyUint32(ctx, a, static_cast<uint32_t>(i), JS_NewFloat64(ctx, m.samples[i]));
      JS_SetPropertyStr(ctx, metrics, name.c_str(), a);
    } else {
      JS_SetPropertyStr(ctx, metrics, name.c_str(), JS_NewFloat64(ctx, m.value));
    }
  }
  JS_SetPropertyStr(ctx, out, "metrics", metrics);
  JS_SetPropertyStr(ctx, out, "workerLogs", w.strings(t.workerLogs));
  // Only a host that ran a background engine has its logs (createHost's startBackground).
  if (!t.backgroundLogs.empty()) JS_SetPropertyStr(ctx, out, "backgroundLogs", w.strings(t.backgroundLogs));
  Val text(ctx, JS_JSONStringify(ctx, out, JS_UNDEFINED, JS_UNDEFINED));
  JS_FreeValue(ctx, out);
  return text.str();
}

std::string filterConfigJson(const std::string& sourcePath, const std::string* bytecodePath,
                             const std::string* sourceMapPath, const std::string& configJson,
                             const std::string& settingsJson) {
  Js js;
  JSContext* ctx = js.ctx();
  JSValue o = JS_ParseJSON(ctx, settingsJson.c_str(), settingsJson.size(), "<settings>");
  if (!JS_IsObject(o)) {
    JS_FreeValue(ctx, o);
    o = JS_NewObject(ctx);
  }
  JS_SetPropertyStr(ctx, o, "source", JS_NewStringLen(ctx, sourcePath.data(), sourcePath.size()));
  if (bytecodePath)
    JS_SetPropertyStr(ctx, o, "bytecode", JS_NewStringLen(ctx, bytecodePath->data(), bytecodePath->size()));
  if (sourceMapPath) {
    JS_SetPropertyStr(ctx, o, "source_map", JS_NewStringLen(ctx, sourceMapPath->data(), sourceMapPath->size()));
  }
  JS_SetPropertyStr(ctx, o, "config", JS_ParseJSON(ctx, configJson.c_str(), configJson.size(), "<config>"));
  Val text(ctx, JS_JSONStringify(ctx, o, JS_UNDEFINED, JS_UNDEFINED));
  JS_FreeValue(ctx, o);
  return text.str();
}

std::string routeConfigJson(const RouteOverride& route) {
  std::string out = std::string("{\"disabled\":") + (route.disabled ? "true" : "false");
  if (!route.configJson.empty()) out += ",\"config\":" + route.configJson;
  return out + "}";
}

}  // namespace envoy_js::stub
