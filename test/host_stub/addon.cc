// Node addon: the native host stub. Converts scenarios and transcripts between JS and the
// scripted host (scripted_host.h); all behaviour lives there and in runtime/.
//
// exports.quickjsVersion: string
// exports.compileBytecode(source, filename): Buffer           (throws the located error)
// exports.replay({source, filename, bytecode?}, scenario): transcript (throws if unloadable)
// new exports.ScriptedHost(bundle, {config, settings}): the same host driven step by step
//   (newStream(setup) -> index, requestHeaders(i, headers, endStream), requestData(i, chunk,
//   endStream), ..., advanceTime(ms), stream(i), transcript(), close())
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

// A scenario value that stands for itself (a route's config, a metadata value): null stays
// null, as Envoy has it; only a missing one reads as {}.
std::string stringifyValue(Napi::Env env, Napi::Value v) {
  return v.IsNull() ? "null" : stringify(env, v);
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

// One stream's scenario: its messages (unless only the setup is wanted) and its setup.
StreamScenario readStream(Napi::Env env, Napi::Value value, const std::string& where, bool withRequest) {
  Napi::Value sv = value;
  if (!sv.IsObject()) throw Napi::TypeError::New(env, where + " must be an object");
  Napi::Object so = sv.As<Napi::Object>();
  StreamScenario s;
  if (withRequest) s.request = readMessage(env, so.Get("request"), (where + ".request").c_str());
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
        s.metadata[ns][key] = stringifyValue(env, ko.Get(key));
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
    if (!ro.Get("config").IsUndefined()) s.route.configJson = stringifyValue(env, ro.Get("config"));
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
  Napi::Value direct = so.Get("directResponse");
  if (!direct.IsUndefined() && !direct.IsNull()) {
    s.directResponse = readMessage(env, direct, (where + ".directResponse").c_str());
  }
  Napi::Value earlier = so.Get("earlierFilterBuffers");
  if (!earlier.IsUndefined() && !earlier.IsNull()) {
    const std::string bad = where + ".earlierFilterBuffers must be an array of \"request\" and \"response\"";
    if (!earlier.IsArray()) throw Napi::TypeError::New(env, bad);
    Napi::Array a = earlier.As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); i++) {
      std::string d = a.Get(i).ToString().Utf8Value();
      if (d == "request") s.earlierFilterBuffers[0] = true;
      else if (d == "response") s.earlierFilterBuffers[1] = true;
      else throw Napi::TypeError::New(env, bad);
    }
  }
  return s;
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
    sc.streams.push_back(readStream(env, arr.Get(i), "streams[" + std::to_string(i) + "]", true));
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

Napi::Object writeStream(Napi::Env env, const StreamTranscript& s) {
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
  return o;
}

Napi::Object writeTranscript(Napi::Env env, const Transcript& t) {
  Napi::Object out = Napi::Object::New(env);
  Napi::Array streams = Napi::Array::New(env, t.streams.size());
  for (size_t i = 0; i < t.streams.size(); i++) streams.Set(static_cast<uint32_t>(i), writeStream(env, t.streams[i]));
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

struct Bundle {
  std::string source;
  std::string filename = "filter.js";
  std::optional<std::string> bytecode;
};

Bundle readBundle(Napi::Env env, Napi::Value v) {
  if (!v.IsObject()) throw Napi::TypeError::New(env, "bundle must be {source, filename, bytecode?}");
  Napi::Object o = v.As<Napi::Object>();
  Bundle b;
  if (o.Get("source").IsString()) b.source = o.Get("source").As<Napi::String>().Utf8Value();
  if (o.Get("filename").IsString()) b.filename = o.Get("filename").As<Napi::String>().Utf8Value();
  if (o.Get("bytecode").IsBuffer()) {
    auto buf = o.Get("bytecode").As<Napi::Buffer<char>>();
    b.bytecode.emplace(buf.Data(), buf.Length());
  }
  return b;
}

Napi::Value Replay(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2) throw Napi::TypeError::New(env, "replay(bundle, scenario)");
  Bundle bundle = readBundle(env, info[0]);
  Scenario scenario = readScenario(env, info[1]);
  Transcript t;
  std::string error;
  if (!runScenario(bundle.source, bundle.filename, bundle.bytecode ? &*bundle.bytecode : nullptr, scenario, &t, &error)) {
    throw Napi::Error::New(env, error);
  }
  return writeTranscript(env, t);
}

// createHost(bundle, {config, settings}): the scripted host driven step by step.
class HostWrap : public Napi::ObjectWrap<HostWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "ScriptedHost",
                       {InstanceMethod("newStream", &HostWrap::NewStream),
                        InstanceMethod("requestHeaders", &HostWrap::RequestHeaders),
                        InstanceMethod("requestData", &HostWrap::RequestData),
                        InstanceMethod("requestTrailers", &HostWrap::RequestTrailers),
                        InstanceMethod("responseHeaders", &HostWrap::ResponseHeaders),
                        InstanceMethod("responseData", &HostWrap::ResponseData),
                        InstanceMethod("responseTrailers", &HostWrap::ResponseTrailers),
                        InstanceMethod("complete", &HostWrap::Complete),
                        InstanceMethod("destroy", &HostWrap::Destroy),
                        InstanceMethod("advanceTime", &HostWrap::AdvanceTime),
                        InstanceMethod("now", &HostWrap::Now),
                        InstanceMethod("stream", &HostWrap::Stream),
                        InstanceMethod("transcript", &HostWrap::TranscriptOf),
                        InstanceMethod("close", &HostWrap::Close)});
  }

  HostWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<HostWrap>(info) {
    Napi::Env env = info.Env();
    Bundle bundle = readBundle(env, info[0]);
    std::string config = "{}", settings = "{}";
    if (info.Length() > 1 && info[1].IsObject()) {
      Napi::Object o = info[1].As<Napi::Object>();
      config = stringify(env, o.Get("config"));
      settings = stringify(env, o.Get("settings"));
    }
    std::string error;
    host_ = ScriptedHost::create(bundle.source, bundle.filename, bundle.bytecode ? &*bundle.bytecode : nullptr, config,
                                 settings, &error);
    if (!host_) throw Napi::Error::New(env, error);
  }

 private:
  ScriptedHost& host(Napi::Env env) {
    if (!host_) throw Napi::Error::New(env, "this host was closed");
    return *host_;
  }
  size_t index(const Napi::CallbackInfo& info) {
    if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(info.Env(), "stream index expected");
    size_t i = info[0].As<Napi::Number>().Uint32Value();
    if (i >= host(info.Env()).transcript().streams.size()) throw Napi::RangeError::New(info.Env(), "no such stream");
    return i;
  }
  static bool endStream(const Napi::CallbackInfo& info, size_t at) { return info.Length() > at && info[at].ToBoolean(); }
  static std::string chunk(const Napi::CallbackInfo& info, size_t at) {
    if (info.Length() <= at) return "";
    if (info[at].IsBuffer()) {
      auto b = info[at].As<Napi::Buffer<char>>();
      return std::string(b.Data(), b.Length());
    }
    return info[at].ToString().Utf8Value();
  }

  Napi::Value NewStream(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    StreamScenario setup;
    if (info.Length() > 0 && info[0].IsObject()) setup = readStream(env, info[0], "stream", false);
    return Napi::Number::New(env, static_cast<double>(host(env).newStream(setup)));
  }
  Napi::Value RequestHeaders(const Napi::CallbackInfo& info) {
    host(info.Env()).requestHeaders(index(info), readHeaders(info.Env(), info[1], "headers"), endStream(info, 2));
    return info.Env().Undefined();
  }
  Napi::Value RequestData(const Napi::CallbackInfo& info) {
    host(info.Env()).requestData(index(info), chunk(info, 1), endStream(info, 2));
    return info.Env().Undefined();
  }
  Napi::Value RequestTrailers(const Napi::CallbackInfo& info) {
    host(info.Env()).requestTrailers(index(info), readHeaders(info.Env(), info[1], "trailers"));
    return info.Env().Undefined();
  }
  Napi::Value ResponseHeaders(const Napi::CallbackInfo& info) {
    host(info.Env()).responseHeaders(index(info), readHeaders(info.Env(), info[1], "headers"), endStream(info, 2));
    return info.Env().Undefined();
  }
  Napi::Value ResponseData(const Napi::CallbackInfo& info) {
    host(info.Env()).responseData(index(info), chunk(info, 1), endStream(info, 2));
    return info.Env().Undefined();
  }
  Napi::Value ResponseTrailers(const Napi::CallbackInfo& info) {
    host(info.Env()).responseTrailers(index(info), readHeaders(info.Env(), info[1], "trailers"));
    return info.Env().Undefined();
  }
  Napi::Value Complete(const Napi::CallbackInfo& info) {
    host(info.Env()).complete(index(info));
    return info.Env().Undefined();
  }
  Napi::Value Destroy(const Napi::CallbackInfo& info) {
    std::string why = info.Length() > 1 && info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "";
    host(info.Env()).destroy(index(info), why.empty() ? nullptr : why.c_str());
    return info.Env().Undefined();
  }
  Napi::Value AdvanceTime(const Napi::CallbackInfo& info) {
    double ms = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : 0;
    if (!host(info.Env()).advanceTime(ms)) {
      throw Napi::Error::New(info.Env(), "advanceTime: more than 100000 timers fired; is an interval of 0 ms running?");
    }
    return info.Env().Undefined();
  }
  Napi::Value Now(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), host(info.Env()).now()); }
  // The stream's transcript so far, plus where it stands.
  Napi::Value Stream(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    size_t i = index(info);
    ScriptedHost& h = host(env);
    Napi::Object o = writeStream(env, h.transcript().streams[i]);
    o.Set("requestSentUpstream", h.requestSentUpstream(i));
    o.Set("responseSentDownstream", h.responseSentDownstream(i));
    o.Set("live", h.live(i));
    return o;
  }
  Napi::Value TranscriptOf(const Napi::CallbackInfo& info) { return writeTranscript(info.Env(), host(info.Env()).transcript()); }
  Napi::Value Close(const Napi::CallbackInfo& info) {
    host_.reset();
    return info.Env().Undefined();
  }

  std::unique_ptr<ScriptedHost> host_;
};

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
  exports.Set("ScriptedHost", HostWrap::Define(env));
  return exports;
}

}  // namespace

NODE_API_MODULE(envoy_js_host, Init)
