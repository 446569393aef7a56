// Node addon: the native host stub. Converts scenarios and transcripts between JS and the
// scripted host (scripted_host.h); all behaviour lives there and in runtime/.
//
// exports.quickjsVersion: string
// exports.compileBytecode(source, filename): Buffer           (throws the located error)
// exports.replay({source, filename, bytecode?}, scenario): transcript (throws if unloadable)
#include <napi.h>

#include "scripted_host.h"

namespace {

using envoy_js::FilterProgram;
using envoy_js::Settings;
using namespace envoy_js::stub;

std::string stringify(Napi::Env env, Napi::Value v) {
  if (v.IsUndefined() || v.IsNull()) return "{}";
  Napi::Object json = env.Global().Get("JSON").As<Napi::Object>();
  Napi::Value s = json.Get("stringify").As<Napi::Function>().Call(json, {v});
  return s.IsString() ? s.As<Napi::String>().Utf8Value() : "{}";
}

HeaderList readHeaders(Napi::Env env, Napi::Value v, const char* where) {
  HeaderList out;
  if (v.IsUndefined() || v.IsNull()) return out;
  if (!v.IsObject() || v.IsArray()) throw Napi::TypeError::New(env, std::string(where) + " must be an object of name: value");
  Napi::Object o = v.As<Napi::Object>();
  Napi::Array names = o.GetPropertyNames();
  for (uint32_t i = 0; i < names.Length(); i++) {
    std::string name = names.Get(i).ToString().Utf8Value();
    Napi::Value value = o.Get(name);
    if (value.IsArray()) {
      Napi::Array arr = value.As<Napi::Array>();
      for (uint32_t j = 0; j < arr.Length(); j++) out.emplace_back(name, arr.Get(j).ToString().Utf8Value());
    } else {
      out.emplace_back(name, value.ToString().Utf8Value());
    }
  }
  return out;
}

std::vector<std::string> readBody(Napi::Env env, Napi::Value v, const char* where) {
  std::vector<std::string> out;
  if (v.IsUndefined() || v.IsNull()) return out;
  if (v.IsString()) {
    out.push_back(v.As<Napi::String>().Utf8Value());
    return out;
  }
  if (!v.IsArray()) throw Napi::TypeError::New(env, std::string(where) + " must be a string or an array of strings");
  Napi::Array arr = v.As<Napi::Array>();
  for (uint32_t i = 0; i < arr.Length(); i++) {
    Napi::Value c = arr.Get(i);
    if (c.IsBuffer()) {
      auto b = c.As<Napi::Buffer<char>>();
      out.emplace_back(b.Data(), b.Length());
    } else {
      out.push_back(c.ToString().Utf8Value());
    }
  }
  return out;
}

Message readMessage(Napi::Env env, Napi::Value v, const char* where) {
  Message m;
  if (!v.IsObject()) throw Napi::TypeError::New(env, std::string(where) + " must be an object");
  Napi::Object o = v.As<Napi::Object>();
  std::string w(where);
  m.headers = readHeaders(env, o.Get("headers"), (w + ".headers").c_str());
  m.body = readBody(env, o.Get("body"), (w + ".body").c_str());
  Napi::Value t = o.Get("trailers");
  if (!t.IsUndefined() && !t.IsNull()) m.trailers = readHeaders(env, t, (w + ".trailers").c_str());
  return m;
}

Scenario readScenario(Napi::Env env, Napi::Value v) {
  if (!v.IsObject()) throw Napi::TypeError::New(env, "scenario must be an object");
  Napi::Object o = v.As<Napi::Object>();
  Scenario sc;
  sc.configJson = stringify(env, o.Get("config"));
  sc.settingsJson = stringify(env, o.Get("settings"));
  Napi::Value streams = o.Get("streams");
  if (!streams.IsArray()) throw Napi::TypeError::New(env, "scenario.streams must be an array");
  Napi::Array arr = streams.As<Napi::Array>();
  for (uint32_t i = 0; i < arr.Length(); i++) {
    std::string where = "streams[" + std::to_string(i) + "]";
    Napi::Value sv = arr.Get(i);
    if (!sv.IsObject()) throw Napi::TypeError::New(env, where + " must be an object");
    Napi::Object so = sv.As<Napi::Object>();
    StreamScenario s;
    s.request = readMessage(env, so.Get("request"), (where + ".request").c_str());
    Napi::Value up = so.Get("upstream");
    if (!up.IsUndefined() && !up.IsNull()) s.upstream = readMessage(env, up, (where + ".upstream").c_str());
    Napi::Value info = so.Get("stream");
    if (info.IsObject()) {
      Napi::Object io = info.As<Napi::Object>();
      auto field = [&](const char* k, std::string* out) {
        if (io.Get(k).IsString()) *out = io.Get(k).As<Napi::String>().Utf8Value();
      };
      field("id", &s.info.id);
      field("protocol", &s.info.protocol);
      field("remoteAddress", &s.info.remoteAddress);
      field("localAddress", &s.info.localAddress);
      field("routeName", &s.info.routeName);
    }
    Napi::Value md = so.Get("metadata");
    if (md.IsObject()) {
      Napi::Object mo = md.As<Napi::Object>();
      Napi::Array nss = mo.GetPropertyNames();
      for (uint32_t n = 0; n < nss.Length(); n++) {
        std::string ns = nss.Get(n).ToString().Utf8Value();
        Napi::Value keys = mo.Get(ns);
        if (!keys.IsObject()) throw Napi::TypeError::New(env, where + ".metadata." + ns + " must be an object");
        Napi::Object ko = keys.As<Napi::Object>();
        Napi::Array kn = ko.GetPropertyNames();
        for (uint32_t k = 0; k < kn.Length(); k++) {
          std::string key = kn.Get(k).ToString().Utf8Value();
          s.metadata[ns][key] = stringify(env, ko.Get(key));
        }
      }
    }
    Napi::Value fs = so.Get("filterState");
    if (fs.IsObject()) {
      Napi::Object fo = fs.As<Napi::Object>();
      Napi::Array kn = fo.GetPropertyNames();
      for (uint32_t k = 0; k < kn.Length(); k++) {
        std::string key = kn.Get(k).ToString().Utf8Value();
        s.filterState[key] = fo.Get(key).ToString().Utf8Value();
      }
    }
    Napi::Value route = so.Get("route");
    if (route.IsObject()) {
      Napi::Object ro = route.As<Napi::Object>();
      s.route.disabled = ro.Get("disabled").ToBoolean();
      if (!ro.Get("config").IsUndefined()) s.route.configJson = stringify(env, ro.Get("config"));
    }
    Napi::Value clusters = so.Get("clusters");
    if (clusters.IsObject()) {
      Napi::Object co = clusters.As<Napi::Object>();
      Napi::Array names = co.GetPropertyNames();
      for (uint32_t c = 0; c < names.Length(); c++) {
        std::string name = names.Get(c).ToString().Utf8Value();
        std::string cw = where + ".clusters." + name;
        Napi::Value cv = co.Get(name);
        if (!cv.IsObject()) throw Napi::TypeError::New(env, cw + " must be an object");
        Napi::Object cobj = cv.As<Napi::Object>();
        ClusterScript script;
        script.response.headers = readHeaders(env, cobj.Get("headers"), (cw + ".headers").c_str());
        if (script.response.headers.empty()) script.response.headers.emplace_back(":status", "200");
        script.response.body = readBody(env, cobj.Get("body"), (cw + ".body").c_str());
        if (cobj.Get("delayMs").IsNumber()) script.delayMs = cobj.Get("delayMs").As<Napi::Number>().DoubleValue();
        script.reset = cobj.Get("reset").ToBoolean();
        script.timeout = cobj.Get("timeout").ToBoolean();
        s.clusters[name] = std::move(script);
      }
    }
    Napi::Value reset = so.Get("reset");
    if (!reset.IsUndefined()) {
      s.reset = reset.ToString().Utf8Value();
      if (s.reset != "none" && s.reset != "afterRequestHeaders" && s.reset != "afterRequestBody") {
        throw Napi::TypeError::New(env, where + ".reset must be none, afterRequestHeaders or afterRequestBody");
      }
    }
    sc.streams.push_back(std::move(s));
  }
  return sc;
}

// Header names lower-case; a name that occurs more than once becomes an array, in order.
Napi::Object writeHeaders(Napi::Env env, const HeaderList& list) {
  Napi::Object o = Napi::Object::New(env);
  for (const auto& [k, v] : list) {
    if (!o.Has(k)) {
      o.Set(k, v);
      continue;
    }
    Napi::Value prev = o.Get(k);
    if (prev.IsArray()) {
      Napi::Array a = prev.As<Napi::Array>();
      a.Set(a.Length(), v);
    } else {
      Napi::Array a = Napi::Array::New(env);
      a.Set(0u, prev);
      a.Set(1u, v);
      o.Set(k, a);
    }
  }
  return o;
}

Napi::Value writeSent(Napi::Env env, const std::optional<SentMessage>& m) {
  if (!m) return env.Null();
  Napi::Object o = Napi::Object::New(env);
  o.Set("headers", writeHeaders(env, m->headers));
  o.Set("body", Napi::String::New(env, m->body));
  o.Set("trailers", m->trailers ? Napi::Value(writeHeaders(env, *m->trailers)) : env.Null());
  return o;
}

Napi::Array writeStrings(Napi::Env env, const std::vector<std::string>& v) {
  Napi::Array a = Napi::Array::New(env, v.size());
  for (size_t i = 0; i < v.size(); i++) a.Set(static_cast<uint32_t>(i), v[i]);
  return a;
}

Napi::Value Replay(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsObject()) throw Napi::TypeError::New(env, "replay(bundle, scenario)");
  Napi::Object bundle = info[0].As<Napi::Object>();
  std::string source = bundle.Get("source").IsString() ? bundle.Get("source").As<Napi::String>().Utf8Value() : "";
  std::string filename = bundle.Get("filename").IsString() ? bundle.Get("filename").As<Napi::String>().Utf8Value() : "filter.js";
  std::optional<std::string> bytecode;
  if (bundle.Get("bytecode").IsBuffer()) {
    auto b = bundle.Get("bytecode").As<Napi::Buffer<char>>();
    bytecode.emplace(b.Data(), b.Length());
  }
  Scenario scenario = readScenario(env, info[1]);
  Transcript t;
  std::string error;
  if (!runScenario(source, filename, bytecode ? &*bytecode : nullptr, scenario, &t, &error)) {
    throw Napi::Error::New(env, error);
  }
  Napi::Object out = Napi::Object::New(env);
  Napi::Array streams = Napi::Array::New(env, t.streams.size());
  for (size_t i = 0; i < t.streams.size(); i++) {
    const StreamTranscript& s = t.streams[i];
    Napi::Object o = Napi::Object::New(env);
    o.Set("upstreamRequest", writeSent(env, s.upstreamRequest));
    if (s.localReply) {
      Napi::Object r = Napi::Object::New(env);
      r.Set("status", s.localReply->status);
      r.Set("body", s.localReply->body);
      HeaderList h(s.localReply->headers.begin(), s.localReply->headers.end());
      r.Set("headers", writeHeaders(env, h));
      r.Set("details", s.localReply->details);
      o.Set("localReply", r);
    } else {
      o.Set("localReply", env.Null());
    }
    o.Set("downstreamResponse", writeSent(env, s.downstreamResponse));
    o.Set("logs", writeStrings(env, s.logs));
    o.Set("errors", writeStrings(env, s.errors));
    o.Set("events", writeStrings(env, s.events));
    o.Set("resetByFilter", s.resetByFilter);
    Napi::Object json = env.Global().Get("JSON").As<Napi::Object>();
    Napi::Function parse = json.Get("parse").As<Napi::Function>();
    Napi::Object md = Napi::Object::New(env);
    for (const auto& [ns, keys] : s.metadata) {
      Napi::Object ko = Napi::Object::New(env);
      for (const auto& [k, v] : keys) ko.Set(k, parse.Call(json, {Napi::String::New(env, v)}));
      md.Set(ns, ko);
    }
    o.Set("metadata", md);
    Napi::Object fs = Napi::Object::New(env);
    for (const auto& [k, v] : s.filterState) fs.Set(k, v);
    o.Set("filterState", fs);
    o.Set("routeCacheClears", s.routeCacheClears);
    Napi::Array callouts = Napi::Array::New(env, s.callouts.size());
    for (size_t c = 0; c < s.callouts.size(); c++) {
      Napi::Object co = Napi::Object::New(env);
      co.Set("cluster", s.callouts[c].cluster);
      co.Set("headers", writeHeaders(env, s.callouts[c].headers));
      co.Set("body", s.callouts[c].body);
      callouts.Set(static_cast<uint32_t>(c), co);
    }
    o.Set("callouts", callouts);
    streams.Set(static_cast<uint32_t>(i), o);
  }
  out.Set("streams", streams);
  Napi::Object counters = Napi::Object::New(env);
  for (const auto& [k, v] : t.counters) counters.Set(k, static_cast<double>(v));
  out.Set("counters", counters);
  Napi::Object metrics = Napi::Object::New(env);
  for (const auto& [name, m] : t.metrics) {
    if (m.kind == envoy_js::MetricKind::Histogram) {
      Napi::Array a = Napi::Array::New(env, m.samples.size());
      for (size_t i = 0; i < m.samples.size(); i++) a.Set(static_cast<uint32_t>(i), m.samples[i]);
      metrics.Set(name, a);
    } else {
      metrics.Set(name, m.value);
    }
  }
  out.Set("metrics", metrics);
  out.Set("workerLogs", writeStrings(env, t.workerLogs));
  return out;
}

Napi::Value CompileBytecode(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsString()) {
    throw Napi::TypeError::New(env, "compileBytecode(source, filename)");
  }
  std::string error;
  auto program = FilterProgram::compile(info[0].As<Napi::String>().Utf8Value(), info[1].As<Napi::String>().Utf8Value(),
                                        "{}", Settings{}, &error);
  if (!program) throw Napi::Error::New(env, error);
  std::vector<uint8_t> bytes = program->serializedBytecode();
  return Napi::Buffer<uint8_t>::Copy(env, bytes.data(), bytes.size());
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("quickjsVersion", FilterProgram::engineVersion());
  exports.Set("replay", Napi::Function::New(env, Replay, "replay"));
  exports.Set("compileBytecode", Napi::Function::New(env, CompileBytecode, "compileBytecode"));
  return exports;
}

}  // namespace

NODE_API_MODULE(envoy_js_host, Init)
