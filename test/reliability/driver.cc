// Scenario driver: runs one filter file against one scenario file (DESIGN.md section 7) on the
// scripted Envoy-like host, without Node, and prints a compact transcript: one JSON line per
// stream, then counters and worker logs. Built plain and under ASan/UBSan (make test-sanitize).
//
//   driver FILTER.js SCENARIO.json [--bytecode FILE.qjsbc] [--strict] [--full]
//
// Scenario extensions understood here (the replay keys are unchanged):
//  - a body chunk or header value may be {"hex": "00ff..."} (arbitrary bytes) or
//    {"repeat": "ab", "times": N}; a message may add "manyHeaders": {"prefix", "count"};
//  - a stream may have "repeat": N (N copies, each checked against its expectations);
//  - "configJson" / "settingsJson": raw text handed to the runtime as is (to feed it bad JSON);
//  - "expect" per stream and "expectCounters" / "expectLoadError" at the top: properties the
//    transcript must have. The driver checks them and exits 1 when one does not hold, so a run
//    cannot pass vacuously. --strict also fails a scenario that expects nothing.
//
// Exit codes: 0 ok, 1 an expectation failed, 2 the filter or scenario could not be loaded (an
// unexpected load error; with expectLoadError a matching load error is 0), 64 usage.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "../host_stub/scripted_host.h"
extern "C" {
#include "quickjs.h"
}

namespace {

using envoy_js::LocalReply;
using namespace envoy_js::stub;

// ---- reading the scenario through a scratch quickjs runtime -----------------------------------

class ScenarioError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Json {
  JSContext* ctx;

  std::string str(JSValueConst v, const std::string& where) const {
    if (JS_IsNumber(v) || JS_IsBool(v)) {
      // Header values like 200 are accepted as their text, as the Node host stub does.
    } else if (!JS_IsString(v)) {
      throw ScenarioError(where + " must be a string");
    }
    size_t len = 0;
    const char* p = JS_ToCStringLen(ctx, &len, v);
    if (p == nullptr) throw ScenarioError(where + ": not convertible to a string");
    std::string out(p, len);
    JS_FreeCString(ctx, p);
    return out;
  }

  JSValue get(JSValueConst obj, const char* key) const { return JS_GetPropertyStr(ctx, obj, key); }

  bool has(JSValueConst obj, const char* key) const {
    JSValue v = get(obj, key);
    bool present = !JS_IsUndefined(v);
    JS_FreeValue(ctx, v);
    return present;
  }

  std::string stringify(JSValueConst v) const {
    JSValue s = JS_JSONStringify(ctx, v, JS_UNDEFINED, JS_UNDEFINED);
    std::string out = JS_IsString(s) ? str(s, "json") : "{}";
    JS_FreeValue(ctx, s);
    return out;
  }

  // Own enumerable string keys, in order.
  void forEachKey(JSValueConst obj, const std::function<void(const std::string&, JSValueConst)>& fn) const {
    JSPropertyEnum* props = nullptr;
    uint32_t count = 0;
    if (JS_GetOwnPropertyNames(ctx, &props, &count, obj, JS_GPN_STRING_MASK | JS_GPN_ENUM_ONLY) != 0) {
      throw ScenarioError("cannot enumerate an object");
    }
    try {
      for (uint32_t i = 0; i < count; i++) {
        const char* k = JS_AtomToCString(ctx, props[i].atom);
        std::string key(k ? k : "");
        if (k) JS_FreeCString(ctx, k);
        JSValue v = JS_GetProperty(ctx, obj, props[i].atom);
        try {
          fn(key, v);
        } catch (...) {
          JS_FreeValue(ctx, v);
          throw;
        }
        JS_FreeValue(ctx, v);
      }
    } catch (...) {
      JS_FreePropertyEnum(ctx, props, count);
      throw;
    }
    JS_FreePropertyEnum(ctx, props, count);
  }

  void forEachItem(JSValueConst arr, const std::function<void(uint32_t, JSValueConst)>& fn) const {
    int64_t n = 0;
    JS_GetLength(ctx, arr, &n);
    for (int64_t i = 0; i < n; i++) {
      JSValue v = JS_GetPropertyInt64(ctx, arr, i);
      try {
        fn(static_cast<uint32_t>(i), v);
      } catch (...) {
        JS_FreeValue(ctx, v);
        throw;
      }
      JS_FreeValue(ctx, v);
    }
  }
};

std::string readChunk(const Json& j, JSValueConst v, const std::string& where);

HeaderList readHeaders(const Json& j, JSValueConst v, const std::string& where) {
  HeaderList out;
  if (JS_IsUndefined(v) || JS_IsNull(v)) return out;
  if (!JS_IsObject(v) || JS_IsArray(v)) throw ScenarioError(where + " must be an object of name: value");
  j.forEachKey(v, [&](const std::string& name, JSValueConst value) {
    if (JS_IsArray(value)) {
      j.forEachItem(value, [&](uint32_t i, JSValueConst item) {
        out.emplace_back(name, readChunk(j, item, where + "." + name + "[" + std::to_string(i) + "]"));
      });
    } else {
      out.emplace_back(name, readChunk(j, value, where + "." + name));
    }
  });
  return out;
}

std::string fromHex(const std::string& hex, const std::string& where) {
  if (hex.size() % 2 != 0) throw ScenarioError(where + ".hex must have an even number of digits");
  auto digit = [&](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    throw ScenarioError(where + ".hex has a non-hex digit");
  };
  std::string out;
  for (size_t i = 0; i < hex.size(); i += 2) out.push_back(static_cast<char>(digit(hex[i]) * 16 + digit(hex[i + 1])));
  return out;
}

// A string, or {"hex": "..."}, or {"repeat": "...", "times": N}; numbers as their text.
std::string readChunk(const Json& j, JSValueConst v, const std::string& where) {
  if (!JS_IsObject(v)) return j.str(v, where);
  if (!JS_IsObject(v)) throw ScenarioError(where + " must be a string, {hex} or {repeat, times}");
  if (j.has(v, "hex")) {
    JSValue h = j.get(v, "hex");
    std::string hex;
    try {
      hex = j.str(h, where + ".hex");
    } catch (...) {
      JS_FreeValue(j.ctx, h);
      throw;
    }
    JS_FreeValue(j.ctx, h);
    return fromHex(hex, where);
  }
  JSValue r = j.get(v, "repeat");
  JSValue t = j.get(v, "times");
  double times = -1;
  bool ok = JS_IsString(r) && JS_IsNumber(t) && JS_ToFloat64(j.ctx, &times, t) == 0 && times >= 0 && times <= 1e9;
  std::string unit = ok ? j.str(r, where + ".repeat") : "";
  JS_FreeValue(j.ctx, r);
  JS_FreeValue(j.ctx, t);
  if (!ok) throw ScenarioError(where + " must be a string, {hex} or {repeat, times}");
  std::string out;
  out.reserve(unit.size() * static_cast<size_t>(times));
  for (size_t i = 0; i < static_cast<size_t>(times); i++) out += unit;
  return out;
}

std::vector<std::string> readBody(const Json& j, JSValueConst v, const std::string& where) {
  std::vector<std::string> out;
  if (JS_IsUndefined(v) || JS_IsNull(v)) return out;
  if (JS_IsArray(v)) {
    j.forEachItem(
        v, [&](uint32_t i, JSValueConst c) { out.push_back(readChunk(j, c, where + "[" + std::to_string(i) + "]")); });
  } else {
    out.push_back(readChunk(j, v, where));
  }
  return out;
}

Message readMessage(const Json& j, JSValueConst v, const std::string& where) {
  if (!JS_IsObject(v)) throw ScenarioError(where + " must be an object");
  Message m;
  JSValue h = j.get(v, "headers"), b = j.get(v, "body"), t = j.get(v, "trailers");
  try {
    m.headers = readHeaders(j, h, where + ".headers");
    m.body = readBody(j, b, where + ".body");
    if (!JS_IsUndefined(t) && !JS_IsNull(t)) m.trailers = readHeaders(j, t, where + ".trailers");
    // "manyHeaders": {"prefix": "x-h-", "count": N} appends prefix0: "0" ... prefix(N-1): "N-1".
    if (j.has(v, "manyHeaders")) {
      JSValue mh = j.get(v, "manyHeaders");
      JSValue prefix = j.get(mh, "prefix"), count = j.get(mh, "count");
      double n = -1;
      bool ok = JS_IsString(prefix) && JS_IsNumber(count) && JS_ToFloat64(j.ctx, &n, count) == 0 && n >= 0 && n <= 1e7;
      std::string pre = ok ? j.str(prefix, where + ".manyHeaders.prefix") : "";
      JS_FreeValue(j.ctx, prefix), JS_FreeValue(j.ctx, count), JS_FreeValue(j.ctx, mh);
      if (!ok) throw ScenarioError(where + ".manyHeaders must be {prefix, count}");
      for (size_t i = 0; i < static_cast<size_t>(n); i++)
        m.headers.emplace_back(pre + std::to_string(i), std::to_string(i));
    }
  } catch (...) {
    JS_FreeValue(j.ctx, h), JS_FreeValue(j.ctx, b), JS_FreeValue(j.ctx, t);
    throw;
  }
  JS_FreeValue(j.ctx, h), JS_FreeValue(j.ctx, b), JS_FreeValue(j.ctx, t);
  return m;
}

// ---- expectations ------------------------------------------------------------------------------

// One check: a description and a predicate over the transcript that returns "" or a complaint.
struct Check {
  std::string what;
  std::function<std::string(const Transcript&)> test;
};

struct Loaded {
  Scenario scenario;
  std::vector<Check> checks;
  std::string expectLoadError;  // non-empty: loading must fail with this substring
};

std::string headerValue(const HeaderList& list, const std::string& name, bool* found) {
  std::string out;
  *found = false;
  for (const auto& [k, v] : list) {
    if (k != name) continue;
    if (*found) out += ", ";
    out += v;
    *found = true;
  }
  return out;
}

std::string quote(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s.substr(0, 120)) {
    if (c == '"' || c == '\\') out += '\\', out += static_cast<char>(c);
    else if (c < 0x20 || c >= 0x7f) {
      char buf[8];
      snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  if (s.size() > 120) out += "...(" + std::to_string(s.size()) + " bytes)";
  return out + "\"";
}

std::vector<std::string> readStrings(const Json& j, JSValueConst v, const std::string& where) {
  std::vector<std::string> out;
  if (!JS_IsArray(v)) throw ScenarioError(where + " must be an array of strings");
  j.forEachItem(v, [&](uint32_t i, JSValueConst s) { out.push_back(j.str(s, where + "[" + std::to_string(i) + "]")); });
  return out;
}

bool anyContains(const std::vector<std::string>& lines, const std::string& needle) {
  for (const auto& l : lines) {
    if (l.find(needle) != std::string::npos) return true;
  }
  return false;
}

// Header expectations: {name: "value"} (joined with ", " like headers.get) or {name: null} (absent).
void headerChecks(const Json& j, JSValueConst obj, size_t si, const std::string& key,
                  std::function<const HeaderList*(const StreamTranscript&)> pick, std::vector<Check>* checks) {
  j.forEachKey(obj, [&](const std::string& name, JSValueConst v) {
    bool wantAbsent = JS_IsNull(v);
    std::string want = wantAbsent ? "" : readChunk(j, v, key + "." + name);
    std::string what = "stream " + std::to_string(si) + " " + key + "." + name;
    checks->push_back({what, [=](const Transcript& t) -> std::string {
                         const HeaderList* list = pick(t.streams[si]);
                         if (list == nullptr) return "the message does not exist";
                         bool found = false;
                         std::string got = headerValue(*list, name, &found);
                         if (wantAbsent) return found ? "present (" + quote(got) + "), want absent" : "";
                         if (!found) return "absent, want " + quote(want);
                         return got == want ? "" : "is " + quote(got) + ", want " + quote(want);
                       }});
  });
}

void readExpect(const Json& j, JSValueConst ex, size_t si, std::vector<Check>* checks) {
  if (!JS_IsObject(ex)) throw ScenarioError("stream " + std::to_string(si) + ": expect must be an object");
  std::string prefix = "stream " + std::to_string(si) + " ";
  auto sent = [](const std::optional<SentMessage> StreamTranscript::*m) {
    return [m](const StreamTranscript& s) -> const SentMessage* { return (s.*m) ? &*(s.*m) : nullptr; };
  };
  j.forEachKey(ex, [&](const std::string& key, JSValueConst v) {
    std::string what = prefix + key;
    auto add = [&](std::function<std::string(const StreamTranscript&)> f) {
      checks->push_back({what, [si, f](const Transcript& t) {
                           if (si >= t.streams.size()) return std::string("no such stream in the transcript");
                           return f(t.streams[si]);
                         }});
    };
    if (key == "localReplyStatus") {
      if (JS_IsNull(v)) {
        add([](const StreamTranscript& s) {
          return s.localReply ? "is " + std::to_string(s.localReply->status) + ", want none" : "";
        });
      } else {
        int32_t want = 0;
        JS_ToInt32(j.ctx, &want, v);
        add([want](const StreamTranscript& s) -> std::string {
          if (!s.localReply) return "no local reply, want " + std::to_string(want);
          return s.localReply->status == want
                     ? ""
                     : "is " + std::to_string(s.localReply->status) + ", want " + std::to_string(want);
        });
      }
    } else if (key == "localReplyDetails" || key == "localReplyBody") {
      std::string want = j.str(v, what);
      bool details = key == "localReplyDetails";
      add([want, details](const StreamTranscript& s) -> std::string {
        if (!s.localReply) return "no local reply";
        const std::string& got = details ? s.localReply->details : s.localReply->body;
        return got == want ? "" : "is " + quote(got) + ", want " + quote(want);
      });
    } else if (key == "upstream" || key == "downstream") {
      if (!JS_IsBool(v)) throw ScenarioError(what + " must be true (reached) or false (never sent)");
      bool want = JS_ToBool(j.ctx, v);
      auto pick = sent(key == "upstream" ? &StreamTranscript::upstreamRequest : &StreamTranscript::downstreamResponse);
      add([want, pick](const StreamTranscript& s) -> std::string {
        bool got = pick(s) != nullptr;
        return got == want ? "" : got ? "was sent, want not sent" : "was not sent, want sent";
      });
    } else if (key == "upstreamBody" || key == "downstreamBody") {
      std::string want = JS_IsObject(v) ? readChunk(j, v, what) : j.str(v, what);
      auto pick =
          sent(key == "upstreamBody" ? &StreamTranscript::upstreamRequest : &StreamTranscript::downstreamResponse);
      add([want, pick](const StreamTranscript& s) -> std::string {
        const SentMessage* m = pick(s);
        if (!m) return "the message was not sent";
        return m->body == want ? "" : "is " + quote(m->body) + ", want " + quote(want);
      });
    } else if (key == "upstreamHeaders" || key == "downstreamHeaders" || key == "upstreamTrailers" ||
               key == "downstreamTrailers") {
      bool up = key.rfind("upstream", 0) == 0;
      bool trailers = key.find("Trailers") != std::string::npos;
      auto pick = sent(up ? &StreamTranscript::upstreamRequest : &StreamTranscript::downstreamResponse);
      headerChecks(
          j, v, si, key,
          [pick, trailers](const StreamTranscript& s) -> const HeaderList* {
            const SentMessage* m = pick(s);
            if (!m) return nullptr;
            if (!trailers) return &m->headers;
            return m->trailers ? &*m->trailers : nullptr;
          },
          checks);
    } else if (key == "resetByFilter") {
      bool want = JS_ToBool(j.ctx, v);
      add([want](const StreamTranscript& s) -> std::string {
        return s.resetByFilter == want ? "" : std::string("is ") + (s.resetByFilter ? "true" : "false");
      });
    } else if (key == "logs") {
      std::vector<std::string> want = readStrings(j, v, what);
      add([want](const StreamTranscript& s) -> std::string {
        if (s.logs == want) return "";
        std::string got;
        for (const auto& l : s.logs) got += "\n      " + quote(l);
        return "differ; got:" + (got.empty() ? std::string(" (none)") : got);
      });
    } else if (key == "logsInclude" || key == "errorsInclude" || key == "eventsInclude") {
      std::vector<std::string> want = readStrings(j, v, what);
      auto field = key == "logsInclude"     ? &StreamTranscript::logs
                   : key == "errorsInclude" ? &StreamTranscript::errors
                                            : &StreamTranscript::events;
      add([want, field](const StreamTranscript& s) -> std::string {
        for (const auto& w : want) {
          if (!anyContains(s.*field, w)) return "nothing contains " + quote(w);
        }
        return "";
      });
    } else if (key == "errorCount") {
      int32_t want = 0;
      JS_ToInt32(j.ctx, &want, v);
      add([want](const StreamTranscript& s) -> std::string {
        return static_cast<int32_t>(s.errors.size()) == want ? "" : "is " + std::to_string(s.errors.size());
      });
    } else {
      throw ScenarioError("unknown expectation " + what);
    }
  });
}

Loaded readScenario(const std::string& text, const std::string& filename) {
  JSRuntime* rt = JS_NewRuntime();
  JSContext* ctx = JS_NewContext(rt);
  Json j{ctx};
  Loaded out;
  JSValue root = JS_ParseJSON(ctx, text.c_str(), text.size(), filename.c_str());
  std::string error;
  try {
    if (JS_IsException(root)) {
      JSValue exc = JS_GetException(ctx);
      std::string m = j.str(exc, "error");
      JS_FreeValue(ctx, exc);
      throw ScenarioError(filename + ": invalid JSON: " + m);
    }
    if (!JS_IsObject(root) || JS_IsArray(root)) throw ScenarioError("the scenario must be a JSON object");
    auto section = [&](const char* key, const char* rawKey, std::string* dest) {
      JSValue v = j.get(root, key);
      if (!JS_IsUndefined(v)) *dest = j.stringify(v);
      JS_FreeValue(ctx, v);
      JSValue raw = j.get(root, rawKey);
      if (!JS_IsUndefined(raw)) {
        std::string s;
        try {
          s = j.str(raw, rawKey);
        } catch (...) {
          JS_FreeValue(ctx, raw);
          throw;
        }
        *dest = s;
      }
      JS_FreeValue(ctx, raw);
    };
    section("config", "configJson", &out.scenario.configJson);
    section("settings", "settingsJson", &out.scenario.settingsJson);
    JSValue ele = j.get(root, "expectLoadError");
    if (!JS_IsUndefined(ele)) out.expectLoadError = j.str(ele, "expectLoadError");
    JS_FreeValue(ctx, ele);
    JSValue counters = j.get(root, "expectCounters");
    if (!JS_IsUndefined(counters)) {
      j.forEachKey(counters, [&](const std::string& name, JSValueConst v) {
        int64_t want = 0;
        JS_ToInt64(ctx, &want, v);
        out.checks.push_back({"counter " + name, [name, want](const Transcript& t) -> std::string {
                                auto it = t.counters.find(name);
                                int64_t got = it == t.counters.end() ? 0 : static_cast<int64_t>(it->second);
                                return got == want ? ""
                                                   : "is " + std::to_string(got) + ", want " + std::to_string(want);
                              }});
      });
    }
    JS_FreeValue(ctx, counters);
    JSValue wl = j.get(root, "expectWorkerLogsInclude");
    if (!JS_IsUndefined(wl)) {
      std::vector<std::string> want;
      try {
        want = readStrings(j, wl, "expectWorkerLogsInclude");
      } catch (...) {
        JS_FreeValue(ctx, wl);
        throw;
      }
      out.checks.push_back({"worker logs", [want](const Transcript& t) -> std::string {
                              for (const auto& w : want) {
                                if (!anyContains(t.workerLogs, w)) return "nothing contains " + quote(w);
                              }
                              return "";
                            }});
    }
    JS_FreeValue(ctx, wl);
    JSValue streams = j.get(root, "streams");
    try {
      if (!JS_IsArray(streams)) throw ScenarioError("scenario.streams must be an array");
      j.forEachItem(streams, [&](uint32_t i, JSValueConst sv) {
        std::string where = "streams[" + std::to_string(i) + "]";
        if (!JS_IsObject(sv)) throw ScenarioError(where + " must be an object");
        StreamScenario s;
        JSValue rq = j.get(sv, "request"), up = j.get(sv, "upstream"), reset = j.get(sv, "reset"),
                ex = j.get(sv, "expect");
        try {
          s.request = readMessage(j, rq, where + ".request");
          if (!JS_IsUndefined(up) && !JS_IsNull(up)) s.upstream = readMessage(j, up, where + ".upstream");
          if (!JS_IsUndefined(reset)) {
            s.reset = j.str(reset, where + ".reset");
            if (s.reset != "none" && s.reset != "afterRequestHeaders" && s.reset != "afterRequestBody") {
              throw ScenarioError(where + ".reset must be none, afterRequestHeaders or afterRequestBody");
            }
          }
          int32_t copies = 1;
          JSValue rep = j.get(sv, "repeat");
          if (!JS_IsUndefined(rep) &&
              (!JS_IsNumber(rep) || JS_ToInt32(ctx, &copies, rep) != 0 || copies < 1 || copies > 1000000)) {
            JS_FreeValue(ctx, rep);
            throw ScenarioError(where + ".repeat must be a count from 1");
          }
          JS_FreeValue(ctx, rep);
          // "repeat": N runs N copies of this stream; its expectations hold for every copy.
          for (int32_t c = 0; c < copies; c++) {
            size_t index = out.scenario.streams.size();
            if (!JS_IsUndefined(ex)) readExpect(j, ex, index, &out.checks);
            out.scenario.streams.push_back(s);
          }
        } catch (...) {
          JS_FreeValue(ctx, rq), JS_FreeValue(ctx, up), JS_FreeValue(ctx, reset), JS_FreeValue(ctx, ex);
          throw;
        }
        JS_FreeValue(ctx, rq), JS_FreeValue(ctx, up), JS_FreeValue(ctx, reset), JS_FreeValue(ctx, ex);
      });
    } catch (...) {
      JS_FreeValue(ctx, streams);
      throw;
    }
    JS_FreeValue(ctx, streams);
  } catch (const ScenarioError& e) {
    error = e.what();
  }
  JS_FreeValue(ctx, root);
  JS_FreeContext(ctx);
  JS_FreeRuntime(rt);
  if (!error.empty()) throw ScenarioError(error);
  return out;
}

// ---- printing ----------------------------------------------------------------------------------

class Printer {
 public:
  explicit Printer(bool full) : full_(full) {}

  // A JSON string; invalid UTF-8 bytes become U+FFFD; long strings are cut unless --full.
  void str(std::string_view s) {
    size_t limit = full_ ? s.size() : std::min<size_t>(s.size(), 200);
    out_ += '"';
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    size_t i = 0;
    while (i < limit) {
      unsigned char c = p[i];
      size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
      bool ok = n > 0 && i + n <= s.size();
      for (size_t k = 1; ok && k < n; k++) ok = (p[i + k] & 0xc0) == 0x80;
      if (!ok) {
        out_ += "\\ufffd";
        i++;
        continue;
      }
      if (n > 1) {
        out_.append(s.substr(i, n));
      } else if (c == '"' || c == '\\') {
        out_ += '\\';
        out_ += static_cast<char>(c);
      } else if (c == '\n') {
        out_ += "\\n";
      } else if (c < 0x20 || c == 0x7f) {
        char buf[8];
        snprintf(buf, sizeof buf, "\\u%04x", c);
        out_ += buf;
      } else {
        out_ += static_cast<char>(c);
      }
      i += n;
    }
    if (limit < s.size()) out_ += "...(" + std::to_string(s.size()) + " bytes)";
    out_ += '"';
  }
  void raw(std::string_view s) { out_ += s; }
  void key(const char* k) {
    str(k);
    out_ += ':';
  }
  void headers(const HeaderList& list) {
    // Lower-case names; a repeated name becomes an array of its values in order.
    std::vector<std::string> names;
    for (const auto& [k, v] : list) {
      if (std::find(names.begin(), names.end(), k) == names.end()) names.push_back(k);
    }
    out_ += '{';
    for (size_t i = 0; i < names.size(); i++) {
      if (i) out_ += ',';
      str(names[i]);
      out_ += ':';
      std::vector<std::string_view> values;
      for (const auto& [k, v] : list) {
        if (k == names[i]) values.push_back(v);
      }
      if (values.size() == 1) {
        str(values[0]);
      } else {
        out_ += '[';
        for (size_t k = 0; k < values.size(); k++) {
          if (k) out_ += ',';
          str(values[k]);
        }
        out_ += ']';
      }
    }
    out_ += '}';
  }
  void sent(const std::optional<SentMessage>& m) {
    if (!m) return raw("null");
    raw("{\"headers\":");
    headers(m->headers);
    raw(",\"body\":");
    str(m->body);
    raw(",\"trailers\":");
    if (m->trailers) headers(*m->trailers);
    else raw("null");
    raw("}");
  }
  void strings(const std::vector<std::string>& v) {
    out_ += '[';
    for (size_t i = 0; i < v.size(); i++) {
      if (i) out_ += ',';
      str(v[i]);
    }
    out_ += ']';
  }
  void stream(const StreamTranscript& s) {
    raw("{\"upstreamRequest\":");
    sent(s.upstreamRequest);
    raw(",\"localReply\":");
    if (s.localReply) {
      raw("{\"status\":" + std::to_string(s.localReply->status) + ",\"body\":");
      str(s.localReply->body);
      raw(",\"headers\":");
      headers(HeaderList(s.localReply->headers.begin(), s.localReply->headers.end()));
      raw(",\"details\":");
      str(s.localReply->details);
      raw("}");
    } else {
      raw("null");
    }
    raw(",\"downstreamResponse\":");
    sent(s.downstreamResponse);
    raw(",\"logs\":");
    strings(s.logs);
    raw(",\"errors\":");
    strings(s.errors);
    raw(",\"events\":");
    strings(s.events);
    raw(s.resetByFilter ? ",\"resetByFilter\":true}" : ",\"resetByFilter\":false}");
  }
  std::string take() { return std::move(out_); }

 private:
  bool full_;
  std::string out_;
};

bool readFile(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream ss;
  ss << in.rdbuf();
  *out = ss.str();
  return true;
}

int usage() {
  fprintf(stderr, "usage: driver FILTER.js SCENARIO.json [--bytecode FILE.qjsbc] [--strict] [--full]\n");
  return 64;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> positional;
  std::string bytecodePath;
  bool strict = false, full = false;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--strict") strict = true;
    else if (a == "--full") full = true;
    else if (a == "--bytecode" && i + 1 < argc) bytecodePath = argv[++i];
    else if (a.rfind("--", 0) == 0) return usage();
    else positional.push_back(a);
  }
  if (positional.size() != 2) return usage();
  const std::string& filterPath = positional[0];
  const std::string& scenarioPath = positional[1];

  std::string source, scenarioText, bytecode;
  if (!readFile(filterPath, &source)) {
    fprintf(stderr, "driver: cannot read %s\n", filterPath.c_str());
    return 2;
  }
  if (!readFile(scenarioPath, &scenarioText)) {
    fprintf(stderr, "driver: cannot read %s\n", scenarioPath.c_str());
    return 2;
  }
  if (!bytecodePath.empty() && !readFile(bytecodePath, &bytecode)) {
    fprintf(stderr, "driver: cannot read %s\n", bytecodePath.c_str());
    return 2;
  }
  Loaded loaded;
  try {
    loaded = readScenario(scenarioText, scenarioPath);
  } catch (const ScenarioError& e) {
    fprintf(stderr, "driver: %s: %s\n", scenarioPath.c_str(), e.what());
    return 2;
  }
  // The filename the runtime sees (and puts in stack traces) is the path as given.
  Transcript t;
  std::string error;
  bool ok = runScenario(source, filterPath, bytecodePath.empty() ? nullptr : &bytecode, loaded.scenario, &t, &error);
  if (!ok) {
    if (!loaded.expectLoadError.empty() && error.find(loaded.expectLoadError) != std::string::npos) {
      printf("{\"loadError\":");
      Printer p(full);
      p.str(error);
      printf("%s}\nexpect: ok (load error as expected)\n", p.take().c_str());
      return 0;
    }
    fprintf(stderr, "driver: cannot load the filter: %s\n", error.c_str());
    return 2;
  }
  if (!loaded.expectLoadError.empty()) {
    printf("expect FAILED: the filter loaded, want a load error containing %s\n",
           quote(loaded.expectLoadError).c_str());
    return 1;
  }
  Printer p(full);
  for (size_t i = 0; i < t.streams.size(); i++) {
    p.raw("stream " + std::to_string(i) + " ");
    p.stream(t.streams[i]);
    p.raw("\n");
  }
  p.raw("counters {");
  bool first = true;
  for (const auto& [k, v] : t.counters) {
    if (!first) p.raw(",");
    first = false;
    p.str(k);
    p.raw(":" + std::to_string(v));
  }
  p.raw("}\nworkerLogs ");
  p.strings(t.workerLogs);
  p.raw("\n");
  fputs(p.take().c_str(), stdout);

  int failed = 0;
  for (const Check& c : loaded.checks) {
    std::string why = c.test(t);
    if (!why.empty()) {
      printf("expect FAILED: %s: %s\n", c.what.c_str(), why.c_str());
      failed++;
    }
  }
  if (failed) return 1;
  if (loaded.checks.empty()) {
    if (strict) {
      printf("expect FAILED: the scenario expects nothing (--strict)\n");
      return 1;
    }
    printf("expect: none\n");
    return 0;
  }
  printf("expect: ok (%zu checks)\n", loaded.checks.size());
  return 0;
}
