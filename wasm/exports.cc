// The wasm engine's exports: runtime/ and the scripted Envoy model (test/host_stub/) behind a
// small C ABI that sdk/src/testing/wasm.ts calls. Built for wasm32-wasi (wasm/wasm.mk) and
// shipped in @envoy-js/sdk, so that filter tests run on the engine Envoy runs.
//
// Calling convention: strings and bytes go in as (pointer, length) pairs in this module's
// memory (the caller copies them in with ejs_alloc). A call that returns data leaves it in the
// result slot (ejs_result_data/ejs_result_size) until the next call. Functions that can fail
// return 0 on success and 1 on failure, the result slot then holding the error text. Structured
// values (scenarios, headers, transcripts) travel as JSON text, read and written by
// test/host_stub/scenario_json.cc, the same reader the ABI host uses.
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "../runtime/engine.h"
#include "../test/host_stub/scenario_json.h"
#include "../test/host_stub/scripted_host.h"

#define EJS_EXPORT(name) extern "C" __attribute__((export_name(#name), visibility("default")))

namespace {

using namespace envoy_js;
using namespace envoy_js::stub;

std::string gResult;
std::map<uint32_t, std::unique_ptr<ScriptedHost>> gHosts;
uint32_t gNextHost = 1;

std::string text(const char* p, uint32_t n) { return p ? std::string(p, n) : std::string(); }

int ok(std::string value) {
  gResult = std::move(value);
  return 0;
}
int fail(std::string error) {
  gResult = std::move(error);
  return 1;
}

// The bundle as every entry point takes it: source, filename, optional bytecode and source map.
struct Bundle {
  std::string source;
  std::string filename;
  std::string bytecode;
  bool hasBytecode = false;
  std::string sourceMap;
};

Bundle bundle(const char* src, uint32_t srcLen, const char* name, uint32_t nameLen, const char* bc, uint32_t bcLen,
              const char* map, uint32_t mapLen) {
  Bundle b{text(src, srcLen), text(name, nameLen), text(bc, bcLen), bc != nullptr, text(map, mapLen)};
  if (b.filename.empty()) b.filename = "filter.js";
  return b;
}

ScriptedHost* host(uint32_t handle) {
  auto it = gHosts.find(handle);
  return it == gHosts.end() ? nullptr : it->second.get();
}

// The host and a stream index it has; otherwise the error is in the result slot.
ScriptedHost* hostStream(uint32_t handle, uint32_t stream) {
  ScriptedHost* h = host(handle);
  if (!h) {
    fail("this host was closed");
    return nullptr;
  }
  if (stream >= h->transcript().streams.size()) {
    fail("no such stream");
    return nullptr;
  }
  return h;
}

enum HeadersOf : uint32_t { kRequestHeaders = 0, kResponseHeaders = 1, kRequestTrailers = 2, kResponseTrailers = 3 };

// Runs one Envoy callback of the step API and leaves the filter's status in the result slot:
// the model records it as the event "<callback> -> <status>" (after a local reply's own
// events); "" when it recorded none. Saves the caller a transcript round trip per callback.
template <typename Call>
int callbackStatus(ScriptedHost* h, uint32_t stream, const char* callback, Call call) {
  const auto& events = h->transcript().streams[stream].events;
  size_t before = events.size();
  call();
  const std::string prefix = std::string(callback) + " -> ";
  for (size_t k = events.size(); k > before; k--) {
    if (events[k - 1].rfind(prefix, 0) == 0) return ok(events[k - 1].substr(prefix.size()));
  }
  return ok("");
}

}  // namespace

EJS_EXPORT(ejs_alloc) void* ejs_alloc(uint32_t size) { return std::malloc(size ? size : 1); }
EJS_EXPORT(ejs_free) void ejs_free(void* p) { std::free(p); }
EJS_EXPORT(ejs_result_data) const char* ejs_result_data() { return gResult.data(); }
EJS_EXPORT(ejs_result_size) uint32_t ejs_result_size() { return static_cast<uint32_t>(gResult.size()); }

EJS_EXPORT(ejs_quickjs_version) int ejs_quickjs_version() { return ok(FilterProgram::engineVersion()); }

// Bytecode tagged with the quickjs-ng version (the `.qjsbc` file); fails with the located error.
EJS_EXPORT(ejs_compile_bytecode)
int ejs_compile_bytecode(const char* src, uint32_t srcLen, const char* name, uint32_t nameLen) {
  std::string error;
  auto program = FilterProgram::compile(text(src, srcLen), text(name, nameLen), "{}", Settings{}, &error);
  if (!program) return fail(error);
  std::vector<uint8_t> bytes = program->serializedBytecode();
  return ok(std::string(bytes.begin(), bytes.end()));
}

// A whole replay scenario (DESIGN.md section 7) in, its transcript out.
EJS_EXPORT(ejs_replay)
int ejs_replay(const char* src, uint32_t srcLen, const char* name, uint32_t nameLen, const char* bc, uint32_t bcLen,
               const char* map, uint32_t mapLen, const char* scenarioJson, uint32_t scenarioLen) {
  Bundle b = bundle(src, srcLen, name, nameLen, bc, bcLen, map, mapLen);
  Scenario scenario;
  std::string error;
  if (!parseScenario(std::string_view(scenarioJson, scenarioLen), &scenario, &error)) return fail(error);
  Transcript t;
  if (!runScenario(b.source, b.filename, b.hasBytecode ? &b.bytecode : nullptr, scenario, &t, &error, b.sourceMap)) {
    return fail(error);
  }
  return ok(transcriptJson(t));
}

// ---- the step API: one ScriptedHost per handle ------------------------------------------------

// Returns a handle (> 0), or 0 with the error in the result slot.
EJS_EXPORT(ejs_host_create)
uint32_t ejs_host_create(const char* src, uint32_t srcLen, const char* name, uint32_t nameLen, const char* bc,
                         uint32_t bcLen, const char* map, uint32_t mapLen, const char* config, uint32_t configLen,
                         const char* settings, uint32_t settingsLen) {
  Bundle b = bundle(src, srcLen, name, nameLen, bc, bcLen, map, mapLen);
  std::string error;
  auto h = ScriptedHost::create(b.source, b.filename, b.hasBytecode ? &b.bytecode : nullptr,
                                jsonOf(std::string_view(config, configLen)),
                                jsonOf(std::string_view(settings, settingsLen)), &error, b.sourceMap);
  if (!h) {
    fail(error);
    return 0;
  }
  uint32_t handle = gNextHost++;
  gHosts[handle] = std::move(h);
  return handle;
}

EJS_EXPORT(ejs_host_close) void ejs_host_close(uint32_t handle) { gHosts.erase(handle); }

// Returns the new stream's index, or -1 with the error in the result slot.
EJS_EXPORT(ejs_host_new_stream) int32_t ejs_host_new_stream(uint32_t handle, const char* setup, uint32_t setupLen) {
  ScriptedHost* h = host(handle);
  if (!h) return fail("this host was closed"), -1;
  StreamScenario s;
  std::string error;
  if (!parseStreamSetup(std::string_view(setup, setupLen), &s, &error)) return fail(error), -1;
  return static_cast<int32_t>(h->newStream(s));
}

EJS_EXPORT(ejs_host_headers)
int ejs_host_headers(uint32_t handle, uint32_t stream, uint32_t which, const char* json, uint32_t len, int endStream) {
  ScriptedHost* h = hostStream(handle, stream);
  if (!h) return 1;
  bool trailers = which == kRequestTrailers || which == kResponseTrailers;
  HeaderList list;
  std::string error;
  if (!parseHeaders(std::string_view(json, len), trailers ? "trailers" : "headers", &list, &error)) return fail(error);
  bool end = endStream != 0;
  switch (which) {
    case kRequestHeaders:
      return callbackStatus(h, stream, "onRequestHeaders", [&] { h->requestHeaders(stream, list, end); });
    case kResponseHeaders:
      return callbackStatus(h, stream, "onResponseHeaders", [&] { h->responseHeaders(stream, list, end); });
    case kRequestTrailers:
      return callbackStatus(h, stream, "onRequestTrailers", [&] { h->requestTrailers(stream, list); });
    case kResponseTrailers:
      return callbackStatus(h, stream, "onResponseTrailers", [&] { h->responseTrailers(stream, list); });
    default: return fail("unknown header block");
  }
}

// `response` 0: a request body chunk; 1: a response body chunk. The result is the status.
EJS_EXPORT(ejs_host_data)
int ejs_host_data(uint32_t handle, uint32_t stream, uint32_t response, const char* data, uint32_t len, int endStream) {
  ScriptedHost* h = hostStream(handle, stream);
  if (!h) return 1;
  std::string chunk = text(data, len);
  bool end = endStream != 0;
  if (response) return callbackStatus(h, stream, "onResponseData", [&] { h->responseData(stream, chunk, end); });
  return callbackStatus(h, stream, "onRequestData", [&] { h->requestData(stream, chunk, end); });
}

// 1 while the stream is not replied to, not reset and not destroyed; 0 otherwise (or no such stream).
EJS_EXPORT(ejs_host_live) int ejs_host_live(uint32_t handle, uint32_t stream) {
  ScriptedHost* h = hostStream(handle, stream);
  return h && h->live(stream) ? 1 : 0;
}

EJS_EXPORT(ejs_host_complete) int ejs_host_complete(uint32_t handle, uint32_t stream) {
  ScriptedHost* h = hostStream(handle, stream);
  if (!h) return 1;
  h->complete(stream);
  return ok("");
}

EJS_EXPORT(ejs_host_destroy) int ejs_host_destroy(uint32_t handle, uint32_t stream, const char* why, uint32_t len) {
  ScriptedHost* h = hostStream(handle, stream);
  if (!h) return 1;
  std::string reason = text(why, len);
  h->destroy(stream, reason.empty() ? nullptr : reason.c_str());
  return ok("");
}

EJS_EXPORT(ejs_host_advance_time) int ejs_host_advance_time(uint32_t handle, double ms) {
  ScriptedHost* h = host(handle);
  if (!h) return fail("this host was closed");
  if (!h->advanceTime(ms)) {
    return fail("advanceTime: more than 100000 timers fired; is an interval of 0 ms running?");
  }
  return ok("");
}

EJS_EXPORT(ejs_host_now) double ejs_host_now(uint32_t handle) {
  ScriptedHost* h = host(handle);
  return h ? h->now() : 0;
}

// The stream's transcript so far, plus where it stands.
EJS_EXPORT(ejs_host_stream) int ejs_host_stream(uint32_t handle, uint32_t stream) {
  ScriptedHost* h = hostStream(handle, stream);
  if (!h) return 1;
  std::string json = streamTranscriptJson(h->transcript().streams[stream]);
  json.pop_back();  // the closing brace: the state follows
  auto flag = [](bool b) { return b ? "true" : "false"; };
  json += std::string(",\"requestSentUpstream\":") + flag(h->requestSentUpstream(stream)) +
          ",\"responseSentDownstream\":" + flag(h->responseSentDownstream(stream)) +
          ",\"live\":" + flag(h->live(stream)) + "}";
  return ok(std::move(json));
}

EJS_EXPORT(ejs_host_transcript) int ejs_host_transcript(uint32_t handle) {
  ScriptedHost* h = host(handle);
  if (!h) return fail("this host was closed");
  return ok(transcriptJson(h->transcript()));
}

// Starts the filter config's background engine; `setup` is JSON {"clusters": {...}} in the
// shape of a stream's clusters. 0, or 1 with the error.
EJS_EXPORT(ejs_host_start_background)
int ejs_host_start_background(uint32_t handle, const char* setup, uint32_t setupLen) {
  ScriptedHost* h = host(handle);
  if (!h) return fail("this host was closed");
  StreamScenario s;
  std::string error;
  if (!parseStreamSetup(std::string_view(setup, setupLen), &s, &error)) return fail(error);
  if (!h->startBackground(s.clusters, &error)) return fail(error);
  return ok("");
}

EJS_EXPORT(ejs_host_stop_background) int ejs_host_stop_background(uint32_t handle) {
  ScriptedHost* h = host(handle);
  if (!h) return fail("this host was closed");
  h->stopBackground();
  return ok("");
}

// The shared store's value under `key`: "+" and the value, or "-" when absent.
EJS_EXPORT(ejs_host_shared_get) int ejs_host_shared_get(uint32_t handle, const char* key, uint32_t keyLen) {
  ScriptedHost* h = host(handle);
  if (!h) return fail("this host was closed");
  std::optional<std::string> v = h->sharedValue(text(key, keyLen));
  return ok(v ? "+" + *v : std::string("-"));
}
