// libenvoy_js.so: envoy-js as an Envoy dynamic module (DESIGN.md sections 1, 4 and 8). A thin
// adapter: the exported envoy_dynamic_module_on_* hooks drive runtime/ (FilterProgram, Engine,
// Stream), and runtime/host.h's StreamHost and EngineHost are implemented with Envoy's
// envoy_dynamic_module_callback_* functions, which stay undefined here and resolve from Envoy
// when it loads the module.
//
// Threads and lifetimes:
//  - on_http_filter_config_new runs on Envoy's main thread: it parses the JSON filter_config,
//    compiles the bundle once (a FilterProgram shared by every worker), checks that setup()
//    runs, and defines the metrics (Envoy allows that only there).
//  - A worker creates its engine for a config on its first stream (a thread_local map keyed by
//    config). Every hook of a stream runs on that stream's worker; so does everything the
//    engine does, because the only ways into it are hooks.
//  - A stream is resumed by committing a scheduler event, never from inside Envoy's callback:
//    on_http_filter_scheduled then calls continue_decoding/continue_encoding.
//  - Envoy has no timer callback. Timers (setTimeout, callout deadlines) are armed on a clock
//    owned by the module (host_clock.h): its thread commits a scheduler event when one is due,
//    to the stream that started it or, for worker-level timers, to any live stream of that
//    worker (kept until the next stream when there is none).
//  - One mutex (Globals::mutex) guards what the clock thread touches: timer routes, the live
//    streams of each worker and their schedulers.
//
// Log lines (Envoy's dynamic_modules logger), one format so that they can be told apart:
//    envoy_js(<filter_name>): <message>                          the engine (setup, jobs, ...)
//    envoy_js(<filter_name>) stream <request id>: <message>      ctx.log / console of a stream
//    envoy_js(<filter_name>) stream <request id> failed: <why>   (debug) why a stream failed
#include <dlfcn.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cerrno>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "../../runtime/engine.h"
#include "abi.h"
#include "host_clock.h"
extern "C" {
#include "quickjs.h"
}

#define ENVOY_JS_EXPORT extern "C" __attribute__((visibility("default")))

namespace envoy_js::module {
namespace {

using FilterPtr = envoy_dynamic_module_type_http_filter_envoy_ptr;

envoy_dynamic_module_type_module_buffer buf(std::string_view s) { return {s.data(), s.size()}; }
std::string_view view(envoy_dynamic_module_type_envoy_buffer b) {
  return b.ptr == nullptr ? std::string_view() : std::string_view(b.ptr, b.length);
}

envoy_dynamic_module_type_log_level abiLevel(LogLevel level) {
  switch (level) {
    case LogLevel::Trace: return envoy_dynamic_module_type_log_level_Trace;
    case LogLevel::Debug: return envoy_dynamic_module_type_log_level_Debug;
    case LogLevel::Info: return envoy_dynamic_module_type_log_level_Info;
    case LogLevel::Warn: return envoy_dynamic_module_type_log_level_Warn;
    case LogLevel::Error: return envoy_dynamic_module_type_log_level_Error;
  }
  return envoy_dynamic_module_type_log_level_Info;
}

void logLine(LogLevel level, std::string_view text) { envoy_dynamic_module_callback_log(abiLevel(level), buf(text)); }

// ---- configuration ----------------------------------------------------------------------------

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

// What a config shares with the worker engines made from it; outlives the config itself when
// a worker still holds an engine.
struct ConfigShared {
  std::string name;  // filter_name
  std::shared_ptr<const FilterProgram> program;
  std::vector<size_t> metricIds;     // by index into program->metrics()
  std::map<std::string, size_t> counterIds;  // the engine's own counters (envoy_js.errors, ...)
  uint64_t serial = 0;               // key of the worker engine maps
  std::atomic<bool> alive{true};     // false once Envoy destroyed the config
};

struct FilterConfig {
  std::shared_ptr<ConfigShared> shared;
};

struct RouteConfig {
  RouteOverride route;
};

std::atomic<uint64_t> gNextSerial{1};

// Logs of the dry run that checks setup() at config time go nowhere: the workers run it again.
using CheckHost = envoy_js::DiscardingEngineHost;

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

// Per-route filter_config: {"config": <merged over the filter's config>, "disabled": bool}.
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

// ---- clocks -----------------------------------------------------------------------------------

void timerDue(uint64_t key);

class Clock {
 public:
  virtual ~Clock() = default;
  virtual double nowMs() = 0;
  virtual void arm(uint64_t key, double delayMs) = 0;
  virtual void disarm(uint64_t key) = 0;
};

// The steady clock and one timer thread for the process. The thread only commits scheduler
// events (timerDue); the JS runs on the workers.
class ThreadClock : public Clock {
 public:
  double nowMs() override {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start_).count();
  }
  void arm(uint64_t key, double delayMs) override {
    auto due = std::chrono::steady_clock::now() +
               std::chrono::microseconds(static_cast<int64_t>(std::max(0.0, delayMs) * 1000));
    std::lock_guard<std::mutex> lock(mutex_);
    index_[key] = queue_.emplace(due, key);
    if (!started_) {
      started_ = true;
      // Lives as long as the process: the object is linked with -z nodelete, so Envoy's
      // dlclose never unloads the code this thread (or a worker's thread_local engine) runs.
      std::thread([this] { run(); }).detach();
    }
    wake_.notify_one();
  }
  void disarm(uint64_t key) override {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = index_.find(key);
    if (it == index_.end()) return;
    queue_.erase(it->second);
    index_.erase(it);
  }

 private:
  void run() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      if (queue_.empty()) {
        wake_.wait(lock);
        continue;
      }
      auto first = queue_.begin();
      if (first->first > std::chrono::steady_clock::now()) {
        // A copy: the entry may be disarmed (erased) while this thread waits.
        const auto due = first->first;
        wake_.wait_until(lock, due);
        continue;
      }
      uint64_t key = first->second;
      index_.erase(key);
      queue_.erase(first);
      lock.unlock();
      timerDue(key);
      lock.lock();
    }
  }
  using Queue = std::multimap<std::chrono::steady_clock::time_point, uint64_t>;
  const std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  std::mutex mutex_;
  std::condition_variable wake_;
  Queue queue_;
  std::unordered_map<uint64_t, Queue::iterator> index_;
  bool started_ = false;
};

// The loading process's clock (host_clock.h).
class HostClock : public Clock {
 public:
  explicit HostClock(const envoy_js_host_clock* c) : c_(c) {}
  double nowMs() override { return c_->now_ms(); }
  void arm(uint64_t key, double delayMs) override { c_->arm(key, delayMs, &timerDue); }
  void disarm(uint64_t key) override { c_->disarm(key); }

 private:
  const envoy_js_host_clock* c_;
};

// ---- workers and streams ----------------------------------------------------------------------

class ModuleStream;
class WorkerEngine;

// Scheduler event ids: the low two bits say what the event is for.
enum EventKind : uint64_t {
  kScheduled = 0,       // StreamHost::schedule(): run Stream::onScheduled()
  kUnusedEvent = 1,
  kTimerDue = 2,        // (key << 2): an engine timer
  kCalloutDeadline = 3, // (key << 2): a callout's timeoutMs passed
};

// Where a due timer goes.
struct TimerRoute {
  WorkerEngine* worker;
  ModuleStream* target;  // nullptr once that stream is gone
  EventKind kind;
};

struct Globals {
  std::mutex mutex;
  std::unordered_map<uint64_t, TimerRoute> routes;  // by timer key
  std::atomic<uint64_t> nextKey{1};
  Clock* clock = nullptr;
};
// Never destroyed: worker threads may still use it while the process exits.
Globals& g = *new Globals();

// True on an Envoy with one "in continue" flag for both directions (1.38.x): such an Envoy
// lacks the callbacks that came with the fix in 1.39 (see ModuleStream::continueDecoding).
bool gSingleContinueFlag = false;

// One engine per worker thread and config.
class WorkerEngine : public EngineHost {
 public:
  WorkerEngine(std::shared_ptr<ConfigShared> config, uint32_t index) : config_(std::move(config)), index_(index) {}
  ~WorkerEngine() override {
    engine_.reset();  // cancels its timers through cancelTimer
    std::lock_guard<std::mutex> lock(g.mutex);
    for (auto it = g.routes.begin(); it != g.routes.end();) {
      it = it->second.worker == this ? g.routes.erase(it) : std::next(it);
    }
  }

  bool start(FilterPtr vehicle);
  Engine* engine() { return engine_.get(); }
  uint32_t index() const { return index_; }
  uint64_t nextStreamNumber() { return ++streams_; }
  const ConfigShared& config() const { return *config_; }
  bool configAlive() const { return config_->alive.load(); }

  // The filter whose hook is running (metrics need one) and its stream, if it has one.
  FilterPtr vehicle = nullptr;
  ModuleStream* current = nullptr;
  // Guarded by g.mutex: streams that can carry a scheduler event, and events waiting for one.
  std::vector<ModuleStream*> live;
  std::vector<uint64_t> parked;

  // ---- EngineHost ----
  void log(LogLevel level, std::string_view message) override {
    logLine(level, "envoy_js(" + config_->name + "): " + std::string(message));
  }
  double nowMs() override { return g.clock->nowMs(); }
  void incrementCounter(std::string_view name, uint64_t delta) override {
    auto it = config_->counterIds.find(std::string(name));
    if (it == config_->counterIds.end() || vehicle == nullptr) return;
    envoy_dynamic_module_callback_http_filter_increment_counter(vehicle, it->second, nullptr, 0, delta);
  }
  void recordMetric(size_t index, MetricKind kind, double value) override {
    if (index >= config_->metricIds.size() || vehicle == nullptr) return;
    size_t id = config_->metricIds[index];
    // Envoy's metrics hold unsigned integers.
    uint64_t v = value > 0 ? static_cast<uint64_t>(std::llround(value)) : 0;
    if (kind == MetricKind::Counter) {
      envoy_dynamic_module_callback_http_filter_increment_counter(vehicle, id, nullptr, 0, v);
    } else if (kind == MetricKind::Gauge) {
      envoy_dynamic_module_callback_http_filter_set_gauge(vehicle, id, nullptr, 0, v);
    } else {
      envoy_dynamic_module_callback_http_filter_record_histogram_value(vehicle, id, nullptr, 0, v);
    }
  }
  void startTimer(uint64_t id, double delayMs) override {
    uint64_t key = armTimer(kTimerDue, current, delayMs);
    timers_[key] = id;
    timerKeys_[id] = key;
  }
  void cancelTimer(uint64_t id) override {
    auto it = timerKeys_.find(id);
    if (it == timerKeys_.end()) return;
    uint64_t key = it->second;
    timerKeys_.erase(it);
    timers_.erase(key);
    disarmTimer(key);
  }

  // A kTimerDue event arrived: the engine timer behind `key`, unless it was cancelled.
  bool takeTimer(uint64_t key, uint64_t* id) {
    auto it = timers_.find(key);
    if (it == timers_.end()) return false;
    *id = it->second;
    timers_.erase(it);
    auto k = timerKeys_.find(*id);
    if (k != timerKeys_.end() && k->second == key) timerKeys_.erase(k);
    return true;
  }

  uint64_t armTimer(EventKind kind, ModuleStream* target, double delayMs) {
    uint64_t key = g.nextKey++;
    {
      std::lock_guard<std::mutex> lock(g.mutex);
      g.routes[key] = TimerRoute{this, target, kind};
    }
    g.clock->arm(key, delayMs);
    return key;
  }
  static void disarmTimer(uint64_t key) {
    {
      std::lock_guard<std::mutex> lock(g.mutex);
      g.routes.erase(key);
    }
    g.clock->disarm(key);
  }

 private:
  std::shared_ptr<ConfigShared> config_;
  uint32_t index_;
  std::unique_ptr<Engine> engine_;
  std::string error_;
  uint64_t streams_ = 0;
  std::unordered_map<uint64_t, uint64_t> timers_;     // key -> engine timer id
  std::unordered_map<uint64_t, uint64_t> timerKeys_;  // engine timer id -> key
};

// Marks whose hook runs, for metrics and for the owner of new timers; restores on exit
// (hooks nest when Envoy runs a local reply through the encoder path).
class HookScope {
 public:
  HookScope(WorkerEngine* w, FilterPtr filter, ModuleStream* stream)
      : w_(w), savedVehicle_(w->vehicle), savedCurrent_(w->current) {
    w->vehicle = filter;
    w->current = stream;
  }
  ~HookScope() {
    w_->vehicle = savedVehicle_;
    w_->current = savedCurrent_;
  }

 private:
  WorkerEngine* w_;
  FilterPtr savedVehicle_;
  ModuleStream* savedCurrent_;
};

envoy_dynamic_module_type_http_header_type abiHeaderType(HeaderMapKind kind) {
  switch (kind) {
    case HeaderMapKind::RequestHeaders: return envoy_dynamic_module_type_http_header_type_RequestHeader;
    case HeaderMapKind::RequestTrailers: return envoy_dynamic_module_type_http_header_type_RequestTrailer;
    case HeaderMapKind::ResponseHeaders: return envoy_dynamic_module_type_http_header_type_ResponseHeader;
    case HeaderMapKind::ResponseTrailers: return envoy_dynamic_module_type_http_header_type_ResponseTrailer;
  }
  return envoy_dynamic_module_type_http_header_type_RequestHeader;
}

// A header map that lives in Envoy, reached through the header callbacks.
class AbiHeaderMap : public HeaderMap {
 public:
  void bind(FilterPtr filter, HeaderMapKind kind) {
    filter_ = filter;
    type_ = abiHeaderType(kind);
  }
  size_t get(std::string_view name, size_t index, std::string_view* value) const override {
    envoy_dynamic_module_type_envoy_buffer result{nullptr, 0};
    size_t count = 0;
    if (envoy_dynamic_module_callback_http_get_header(filter_, type_, buf(name), &result, index, &count)) {
      *value = view(result);
    }
    return count;
  }
  void forEach(Visitor fn, void* opaque) const override {
    size_t n = envoy_dynamic_module_callback_http_get_headers_size(filter_, type_);
    if (n == 0) return;
    std::vector<envoy_dynamic_module_type_envoy_http_header> all(n);
    if (!envoy_dynamic_module_callback_http_get_headers(filter_, type_, all.data())) return;
    for (const auto& h : all) {
      fn(opaque, std::string_view(h.key_ptr, h.key_length), std::string_view(h.value_ptr, h.value_length));
    }
  }
  size_t size() const override { return envoy_dynamic_module_callback_http_get_headers_size(filter_, type_); }
  // Envoy's set_header removes the header for an empty value: there is no empty value here.
  void set(std::string_view name, std::string_view value) override {
    envoy_dynamic_module_callback_http_set_header(filter_, type_, buf(name), buf(value));
  }
  void append(std::string_view name, std::string_view value) override {
    envoy_dynamic_module_callback_http_add_header(filter_, type_, buf(name), buf(value));
  }
  void remove(std::string_view name) override {
    envoy_dynamic_module_callback_http_set_header(filter_, type_, buf(name), {nullptr, 0});
  }

 private:
  FilterPtr filter_ = nullptr;
  envoy_dynamic_module_type_http_header_type type_ = envoy_dynamic_module_type_http_header_type_RequestHeader;
};

// Body bytes in Envoy: the data of the running body hook, or the filter's buffered body.
class AbiBody : public BodyBuffer {
 public:
  void bind(FilterPtr filter, envoy_dynamic_module_type_http_body_type type, const bool* hidden) {
    filter_ = filter;
    type_ = type;
    hidden_ = hidden;
  }
  size_t length() const override {
    return *hidden_ ? 0 : envoy_dynamic_module_callback_http_get_body_size(filter_, type_);
  }
  void copyOut(size_t offset, size_t len, uint8_t* dst) const override {
    if (*hidden_ || len == 0) return;
    size_t n = envoy_dynamic_module_callback_http_get_body_chunks_size(filter_, type_);
    std::vector<envoy_dynamic_module_type_envoy_buffer> chunks(n);
    if (n == 0 || !envoy_dynamic_module_callback_http_get_body_chunks(filter_, type_, chunks.data())) return;
    size_t pos = 0;
    for (const auto& c : chunks) {
      size_t end = pos + c.length;
      if (end > offset && pos < offset + len) {
        size_t from = std::max(offset, pos), to = std::min(offset + len, end);
        std::memcpy(dst + (from - offset), c.ptr + (from - pos), to - from);
      }
      pos = end;
    }
  }
  void replace(std::string_view data) override {
    if (!*hidden_) envoy_dynamic_module_callback_http_drain_body(filter_, type_, SIZE_MAX);
    append(data);
  }
  void append(std::string_view data) override {
    if (!data.empty()) envoy_dynamic_module_callback_http_append_body(filter_, type_, buf(data));
  }
  void prepend(std::string_view data) override {
    std::string all(length(), '\0');
    copyOut(0, all.size(), reinterpret_cast<uint8_t*>(all.data()));
    replace(std::string(data) + all);
  }

 private:
  FilterPtr filter_ = nullptr;
  envoy_dynamic_module_type_http_body_type type_ = envoy_dynamic_module_type_http_body_type_ReceivedRequestBody;
  const bool* hidden_ = nullptr;
};

// A filter's grace on top of a callout's timeoutMs, so that the module's own deadline (which
// gives the runtime its Timeout) comes before Envoy's timeout (a 504 response).
constexpr uint64_t kCalloutGraceMs = 1000;

// One HTTP stream: the StreamHost of its envoy_js::Stream.
class ModuleStream : public StreamHost {
 public:
  ModuleStream(WorkerEngine* worker, FilterPtr filter) : worker_(worker), filter_(filter) {
    static const bool kVisible = false;
    for (int k = 0; k < 4; k++) maps_[k].bind(filter, static_cast<HeaderMapKind>(k));
    received_[0].bind(filter, envoy_dynamic_module_type_http_body_type_ReceivedRequestBody, &kVisible);
    received_[1].bind(filter, envoy_dynamic_module_type_http_body_type_ReceivedResponseBody, &kVisible);
    buffered_[0].bind(filter, envoy_dynamic_module_type_http_body_type_BufferedRequestBody, &receivedIsBuffered_[0]);
    buffered_[1].bind(filter, envoy_dynamic_module_type_http_body_type_BufferedResponseBody, &receivedIsBuffered_[1]);
    scheduler_ = envoy_dynamic_module_callback_http_filter_scheduler_new(filter);
  }

  WorkerEngine* worker() { return worker_; }
  FilterPtr filter() { return filter_; }
  // Hooks of this stream on the stack; Envoy's destroy inside one only marks the stream.
  void enter() { depth_++; }
  bool leave() { return --depth_ == 0 && destroyed_; }  // true: delete it now
  bool busy() const { return depth_ > 0; }
  void markDestroyed() { destroyed_ = true; }
  bool destroyed() const { return destroyed_; }
  Stream* stream() { return stream_.get(); }
  void attach(std::unique_ptr<Stream> s) { stream_ = std::move(s); }

  // Under g.mutex: the clock thread may commit at any time.
  void commitLocked(uint64_t event) { envoy_dynamic_module_callback_http_filter_scheduler_commit(scheduler_, event); }
  void commit(uint64_t event) {
    std::lock_guard<std::mutex> lock(g.mutex);
    commitLocked(event);
  }

  // Called by the hooks around the runtime's callbacks.
  void seenHeaders(Direction dir) { seen_[dir == Direction::Request ? 0 : 2] = true; }
  void seenTrailers(Direction dir) { seen_[dir == Direction::Request ? 1 : 3] = true; }
  void enterData(Direction dir) {
    int d = static_cast<int>(dir);
    inData_[d] = true;
    receivedIsBuffered_[d] = dir == Direction::Request
                                 ? envoy_dynamic_module_callback_http_received_buffered_request_body(filter_)
                                 : envoy_dynamic_module_callback_http_received_buffered_response_body(filter_);
  }
  void leaveData(Direction dir) {
    int d = static_cast<int>(dir);
    inData_[d] = false;
    receivedIsBuffered_[d] = false;
  }
  // Envoy 1.38 keeps one "in continue" flag for both directions and sets it after
  // continueDecoding() returns (fixed in 1.39, envoyproxy/envoy#45591). A response that Envoy
  // makes inside our continue (direct_response, 404, 503) and that our response hook holds
  // would then never be continued: continue_encoding is dropped. On such an Envoy a held
  // response that is complete is sent on as a local reply of what the hooks made of it.
  void continueDecoding() {
    inDecodeContinue_ = true;
    envoy_dynamic_module_callback_http_filter_continue_decoding(filter_);
    inDecodeContinue_ = false;
  }
  void encodeReturned(bool stopped, bool endOfStream) {
    if (stopped && inDecodeContinue_) encodeHeldInDecodeContinue_ = true;
    responseEnded_ = responseEnded_ || endOfStream;
  }
  void continueEncoding() {
    bool dropped = gSingleContinueFlag && encodeHeldInDecodeContinue_;
    encodeHeldInDecodeContinue_ = false;
    if (dropped && responseEnded_) {
      sendHeldResponse();
      return;
    }
    envoy_dynamic_module_callback_http_filter_continue_encoding(filter_);
  }

  void raiseBufferLimit(size_t limit) {
    uint64_t current = envoy_dynamic_module_callback_http_get_buffer_limit(filter_);
    if (current != 0 && current < limit) envoy_dynamic_module_callback_http_set_buffer_limit(filter_, limit);
  }

  void calloutDone(uint64_t envoyId, envoy_dynamic_module_type_http_callout_result result,
                   envoy_dynamic_module_type_envoy_http_header* headers, size_t headersSize,
                   envoy_dynamic_module_type_envoy_buffer* chunks, size_t chunksSize) {
    auto it = callouts_.find(envoyId);
    if (it == callouts_.end()) return;  // cancelled, or already timed out
    Pending p = it->second;
    callouts_.erase(it);
    WorkerEngine::disarmTimer(p.deadline);
    deadlines_.erase(p.deadline);
    CalloutResponse response;
    if (result == envoy_dynamic_module_type_http_callout_result_Success) {
      for (size_t i = 0; i < headersSize; i++) {
        response.headers.emplace_back(std::string(headers[i].key_ptr, headers[i].key_length),
                                      std::string(headers[i].value_ptr, headers[i].value_length));
      }
      for (size_t i = 0; i < chunksSize; i++) response.body.append(chunks[i].ptr, chunks[i].length);
      // Envoy applies no response limit the module could set: the filter's buffer limit does.
      if (response.body.size() > worker_->engine()->settings().bufferLimitBytes) {
        response = CalloutResponse{};
        response.result = CalloutResponse::Result::ResponseTooLarge;
      }
    } else if (result == envoy_dynamic_module_type_http_callout_result_ExceedResponseBufferLimit) {
      response.result = CalloutResponse::Result::ResponseTooLarge;
    } else {
      response.result = CalloutResponse::Result::Reset;
    }
    stream_->onCalloutDone(p.runtimeId, response);
  }

  void calloutDeadline(uint64_t key) {
    auto d = deadlines_.find(key);
    if (d == deadlines_.end()) return;
    uint64_t envoyId = d->second;
    deadlines_.erase(d);
    auto it = callouts_.find(envoyId);
    if (it == callouts_.end()) return;
    uint64_t runtimeId = it->second.runtimeId;
    callouts_.erase(it);  // Envoy's later answer (a 504) is dropped
    CalloutResponse response;
    response.result = CalloutResponse::Result::Timeout;
    stream_->onCalloutDone(runtimeId, response);
  }

  void sendHeldResponse() {
    LocalReply reply;
    reply.details = "envoy_js_held_local_reply";
    reply.body.resize(buffered_[1].length());
    if (!reply.body.empty()) buffered_[1].copyOut(0, reply.body.size(), reinterpret_cast<uint8_t*>(reply.body.data()));
    maps_[static_cast<int>(HeaderMapKind::ResponseHeaders)].forEach(
        [](void* out, std::string_view k, std::string_view v) {
          auto* r = static_cast<LocalReply*>(out);
          // Envoy's local reply sets its own length, date, server and, with a body, content-type.
          if (k == ":status") {
            r->status = std::atoi(std::string(v).c_str());
          } else if (!k.empty() && k[0] != ':' && k != "content-length" && k != "date" && k != "server" &&
                     !(k == "content-type" && !r->body.empty())) {
            r->headers.emplace_back(std::string(k), std::string(v));
          }
        },
        &reply);
    if (reply.status <= 0) reply.status = 200;
    sendLocalReply(reply);
  }

  // Forgets pending callouts and deadlines; Envoy cancels the requests when it destroys the
  // filter.
  void dropCallouts() {
    for (auto& [key, id] : deadlines_) WorkerEngine::disarmTimer(key);
    deadlines_.clear();
    callouts_.clear();
  }

  ~ModuleStream() override {
    dropCallouts();
    envoy_dynamic_module_callback_http_filter_scheduler_delete(scheduler_);
  }

  // ---- StreamHost ----
  HeaderMap* headerMap(HeaderMapKind kind) override {
    int k = static_cast<int>(kind);
    return seen_[k] ? &maps_[k] : nullptr;
  }
  BodyBuffer* currentData(Direction dir) override {
    int d = static_cast<int>(dir);
    return inData_[d] ? &received_[d] : nullptr;
  }
  BodyBuffer* bufferedData(Direction dir) override { return &buffered_[static_cast<int>(dir)]; }
  // One scheduler event at a time: requests coalesce until it runs.
  void schedule() override {
    if (scheduled_) return;
    scheduled_ = true;
    commit(kScheduled);
  }
  void scheduledRan() { scheduled_ = false; }
  // The runtime calls this only from onScheduled(), inside Envoy's on_scheduled callback.
  void continueStream(Direction dir) override {
    if (dir == Direction::Request) {
      continueDecoding();
    } else {
      continueEncoding();
    }
  }
  void sendLocalReply(const LocalReply& reply) override {
    std::vector<envoy_dynamic_module_type_module_http_header> headers;
    for (const auto& [k, v] : reply.headers) headers.push_back({k.data(), k.size(), v.data(), v.size()});
    envoy_dynamic_module_callback_http_send_response(filter_, static_cast<uint32_t>(reply.status), headers.data(),
                                                     headers.size(), buf(reply.body), buf(reply.details));
  }
  void resetStream() override {
    envoy_dynamic_module_callback_http_filter_reset_stream(
        filter_, envoy_dynamic_module_type_http_filter_stream_reset_reason_LocalReset, buf("envoy_js_reset"));
  }
  void log(LogLevel level, std::string_view message) override {
    logLine(level, prefix() + ": " + std::string(message));
  }
  void recordError(std::string_view message) override {
    logLine(LogLevel::Debug, prefix() + " failed: " + std::string(message));
  }
  StreamInfo streamInfo() override {
    StreamInfo info;
    info.id = requestId();
    info.protocol = attribute(envoy_dynamic_module_type_attribute_id_RequestProtocol);
    info.remoteAddress = attribute(envoy_dynamic_module_type_attribute_id_SourceAddress);
    info.localAddress = attribute(envoy_dynamic_module_type_attribute_id_DestinationAddress);
    info.routeName = attribute(envoy_dynamic_module_type_attribute_id_XdsRouteName);
    return info;
  }
  // The ABI reads and writes strings, numbers and booleans: those round-trip. Null, lists and
  // objects are stored as their JSON text (a string), and read back as that string.
  std::optional<MetadataValue> getMetadata(std::string_view ns, std::string_view key) override {
    auto src = envoy_dynamic_module_type_metadata_source_Dynamic;
    MetadataValue v;
    envoy_dynamic_module_type_envoy_buffer s{nullptr, 0};
    if (envoy_dynamic_module_callback_http_get_metadata_string(filter_, src, buf(ns), buf(key), &s)) {
      v.kind = MetadataValue::Kind::String;
      v.string = view(s);
    } else if (envoy_dynamic_module_callback_http_get_metadata_number(filter_, src, buf(ns), buf(key), &v.number)) {
      v.kind = MetadataValue::Kind::Number;
    } else if (envoy_dynamic_module_callback_http_get_metadata_bool(filter_, src, buf(ns), buf(key), &v.boolean)) {
      v.kind = MetadataValue::Kind::Bool;
    } else {
      return std::nullopt;
    }
    return v;
  }
  void setMetadata(std::string_view ns, std::string_view key, const MetadataValue& value) override {
    switch (value.kind) {
      case MetadataValue::Kind::String:
        envoy_dynamic_module_callback_http_set_dynamic_metadata_string(filter_, buf(ns), buf(key), buf(value.string));
        break;
      case MetadataValue::Kind::Number:
        envoy_dynamic_module_callback_http_set_dynamic_metadata_number(filter_, buf(ns), buf(key), value.number);
        break;
      case MetadataValue::Kind::Bool:
        envoy_dynamic_module_callback_http_set_dynamic_metadata_bool(filter_, buf(ns), buf(key), value.boolean);
        break;
      case MetadataValue::Kind::Null:
      case MetadataValue::Kind::List:
      case MetadataValue::Kind::Object:
        envoy_dynamic_module_callback_http_set_dynamic_metadata_string(filter_, buf(ns), buf(key),
                                                                      buf(metadataToJson(value)));
        break;
    }
  }
  std::optional<std::string> getFilterState(std::string_view key) override {
    envoy_dynamic_module_type_envoy_buffer s{nullptr, 0};
    if (!envoy_dynamic_module_callback_http_get_filter_state_bytes(filter_, buf(key), &s)) return std::nullopt;
    return std::string(view(s));
  }
  // Envoy stores these values read-only: the first write of a key wins.
  void setFilterState(std::string_view key, std::string_view value) override {
    if (getFilterState(key)) {
      logLine(LogLevel::Warn, prefix() + ": filter state `" + std::string(key) +
                                  "` is already set and Envoy keeps it read-only; the new value is dropped");
      return;
    }
    envoy_dynamic_module_callback_http_set_filter_state_bytes(filter_, buf(key), buf(value));
  }
  void clearRouteCache() override { envoy_dynamic_module_callback_http_clear_route_cache(filter_); }
  RouteOverride routeOverride() override {
    auto* rc = static_cast<const RouteConfig*>(envoy_dynamic_module_callback_get_most_specific_route_config(filter_));
    return rc ? rc->route : RouteOverride{};
  }
  CalloutStart startCallout(uint64_t id, const CalloutRequest& request) override {
    std::vector<envoy_dynamic_module_type_module_http_header> headers;
    for (const auto& [k, v] : request.headers) headers.push_back({k.data(), k.size(), v.data(), v.size()});
    uint64_t envoyId = 0;
    auto r = envoy_dynamic_module_callback_http_filter_http_callout(filter_, &envoyId, buf(request.cluster),
                                                                    headers.data(), headers.size(), buf(request.body),
                                                                    request.timeoutMs + kCalloutGraceMs);
    if (r == envoy_dynamic_module_type_http_callout_init_result_ClusterNotFound) return CalloutStart::UnknownCluster;
    if (r != envoy_dynamic_module_type_http_callout_init_result_Success) return CalloutStart::CannotCreate;
    uint64_t key = worker_->armTimer(kCalloutDeadline, this, request.timeoutMs);
    callouts_[envoyId] = Pending{id, key};
    deadlines_[key] = envoyId;
    return CalloutStart::Started;
  }
  void cancelCallout(uint64_t id) override {
    for (auto it = callouts_.begin(); it != callouts_.end(); ++it) {
      if (it->second.runtimeId != id) continue;
      WorkerEngine::disarmTimer(it->second.deadline);
      deadlines_.erase(it->second.deadline);
      callouts_.erase(it);
      return;
    }
  }

 private:
  std::string attribute(envoy_dynamic_module_type_attribute_id id) {
    envoy_dynamic_module_type_envoy_buffer b{nullptr, 0};
    if (!envoy_dynamic_module_callback_http_filter_get_attribute_string(filter_, id, &b)) return "";
    return std::string(view(b));
  }
  // Envoy's request id (x-request-id); "w<worker>-<n>" when the stream has none.
  const std::string& requestId() {
    if (requestId_.empty()) requestId_ = attribute(envoy_dynamic_module_type_attribute_id_RequestId);
    if (requestId_.empty()) {
      requestId_ = "w" + std::to_string(worker_->index()) + "-" + std::to_string(worker_->nextStreamNumber());
    }
    return requestId_;
  }
  std::string prefix() { return "envoy_js(" + worker_->config().name + ") stream " + requestId(); }

  struct Pending {
    uint64_t runtimeId;
    uint64_t deadline;  // timer key
  };

  WorkerEngine* worker_;
  FilterPtr filter_;
  envoy_dynamic_module_type_http_filter_scheduler_module_ptr scheduler_ = nullptr;
  std::unique_ptr<Stream> stream_;
  AbiHeaderMap maps_[4];
  bool seen_[4] = {false, false, false, false};
  AbiBody received_[2], buffered_[2];
  bool inData_[2] = {false, false};
  // The data of the running body hook is the buffered body itself: the buffered view is empty.
  bool receivedIsBuffered_[2] = {false, false};
  int depth_ = 0;
  bool destroyed_ = false;
  bool scheduled_ = false;  // a kScheduled event is committed and has not run yet
  bool inDecodeContinue_ = false;
  bool encodeHeldInDecodeContinue_ = false;
  bool responseEnded_ = false;
  std::string requestId_;
  std::unordered_map<uint64_t, Pending> callouts_;      // Envoy's callout id -> ours
  std::unordered_map<uint64_t, uint64_t> deadlines_;    // deadline key -> Envoy's callout id
};

bool WorkerEngine::start(FilterPtr filter) {
  HookScope scope(this, filter, nullptr);
  engine_ = Engine::create(config_->program, *this, index_, &error_);
  if (!engine_) log(LogLevel::Error, "the engine of worker " + std::to_string(index_) + " cannot start: " + error_);
  return engine_ != nullptr;
}

// The worker engines of this thread, by config serial.
thread_local std::unordered_map<uint64_t, std::unique_ptr<WorkerEngine>> tWorkers;

WorkerEngine* workerFor(const std::shared_ptr<ConfigShared>& config, FilterPtr filter) {
  // Engines of configs Envoy has dropped go first; no stream of theirs is left.
  for (auto it = tWorkers.begin(); it != tWorkers.end();) {
    it = it->second->configAlive() ? std::next(it) : tWorkers.erase(it);
  }
  auto it = tWorkers.find(config->serial);
  if (it != tWorkers.end()) return it->second.get();
  uint32_t index = envoy_dynamic_module_callback_http_filter_get_worker_index(filter);
  auto worker = std::make_unique<WorkerEngine>(config, index);
  worker->start(filter);  // on failure every stream of this worker gets the failure policy
  return tWorkers.emplace(config->serial, std::move(worker)).first->second.get();
}

void timerDue(uint64_t key) {
  std::lock_guard<std::mutex> lock(g.mutex);
  auto it = g.routes.find(key);
  if (it == g.routes.end()) return;
  TimerRoute route = it->second;
  g.routes.erase(it);
  uint64_t event = (key << 2) | route.kind;
  ModuleStream* to = route.target;
  if (to == nullptr && route.kind == kTimerDue && !route.worker->live.empty()) to = route.worker->live.back();
  if (to != nullptr) {
    to->commitLocked(event);
  } else if (route.kind == kTimerDue) {
    route.worker->parked.push_back(event);  // the next stream of this worker carries it
  }
}

// A stream that can carry scheduler events from now on; takes the events parked meanwhile.
void registerStream(ModuleStream* s) {
  std::lock_guard<std::mutex> lock(g.mutex);
  WorkerEngine* w = s->worker();
  w->live.push_back(s);
  for (uint64_t event : w->parked) s->commitLocked(event);
  w->parked.clear();
}

void unregisterStream(ModuleStream* s) {
  std::lock_guard<std::mutex> lock(g.mutex);
  WorkerEngine* w = s->worker();
  w->live.erase(std::remove(w->live.begin(), w->live.end(), s), w->live.end());
  for (auto& [key, route] : g.routes) {
    if (route.target == s) route.target = nullptr;
  }
}

ModuleStream* streamOf(envoy_dynamic_module_type_http_filter_module_ptr p) {
  return const_cast<ModuleStream*>(static_cast<const ModuleStream*>(p));
}

bool failClosed(ModuleStream* s) {
  return s->worker()->config().program->settings().failureMode == FailureMode::Closed;
}

}  // namespace
}  // namespace envoy_js::module

using namespace envoy_js;
using namespace envoy_js::module;

// ---- hooks ------------------------------------------------------------------------------------

ENVOY_JS_EXPORT envoy_dynamic_module_type_abi_version_module_ptr envoy_dynamic_module_on_program_init(void) {
  if (g.clock == nullptr) {
    auto hostClock = reinterpret_cast<envoy_js_host_clock_fn>(dlsym(RTLD_DEFAULT, ENVOY_JS_HOST_CLOCK_SYMBOL));
    const envoy_js_host_clock* c = hostClock ? hostClock() : nullptr;
    g.clock = c ? static_cast<Clock*>(new HostClock(c)) : static_cast<Clock*>(new ThreadClock());
  }
  gSingleContinueFlag = dlsym(RTLD_DEFAULT, "envoy_dynamic_module_callback_http_get_header_values") == nullptr;
  return ENVOY_JS_DYNAMIC_MODULES_ABI_VERSION;
}

ENVOY_JS_EXPORT envoy_dynamic_module_type_http_filter_config_module_ptr envoy_dynamic_module_on_http_filter_config_new(
    envoy_dynamic_module_type_http_filter_config_envoy_ptr filter_config_envoy_ptr,
    envoy_dynamic_module_type_envoy_buffer name, envoy_dynamic_module_type_envoy_buffer config) {
  std::string error;
  std::string filterName(view(name));
  FilterConfig* c = newFilterConfig(filter_config_envoy_ptr, filterName, view(config), &error);
  if (c == nullptr) logLine(LogLevel::Error, "envoy_js(" + filterName + "): filter_config rejected: " + error);
  return c;
}

ENVOY_JS_EXPORT void envoy_dynamic_module_on_http_filter_config_destroy(
    envoy_dynamic_module_type_http_filter_config_module_ptr filter_config_ptr) {
  auto* c = const_cast<FilterConfig*>(static_cast<const FilterConfig*>(filter_config_ptr));
  c->shared->alive = false;  // workers drop their engine for it at their next stream
  delete c;
}

ENVOY_JS_EXPORT envoy_dynamic_module_type_http_filter_per_route_config_module_ptr
envoy_dynamic_module_on_http_filter_per_route_config_new(envoy_dynamic_module_type_envoy_buffer name,
                                                         envoy_dynamic_module_type_envoy_buffer config) {
  std::string error;
  RouteConfig* rc = newRouteConfig(view(config), &error);
  if (rc == nullptr) logLine(LogLevel::Error, "envoy_js(" + std::string(view(name)) + "): per-route filter_config rejected: " + error);
  return rc;
}

ENVOY_JS_EXPORT void envoy_dynamic_module_on_http_filter_per_route_config_destroy(
    envoy_dynamic_module_type_http_filter_per_route_config_module_ptr filter_config_ptr) {
  delete static_cast<const RouteConfig*>(filter_config_ptr);
}

ENVOY_JS_EXPORT envoy_dynamic_module_type_http_filter_module_ptr envoy_dynamic_module_on_http_filter_new(
    envoy_dynamic_module_type_http_filter_config_module_ptr filter_config_ptr,
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr) {
  const auto* config = static_cast<const FilterConfig*>(filter_config_ptr);
  WorkerEngine* w = workerFor(config->shared, filter_envoy_ptr);
  auto* s = new ModuleStream(w, filter_envoy_ptr);
  if (w->engine() != nullptr) {
    HookScope scope(w, filter_envoy_ptr, s);
    s->attach(w->engine()->newStream(*s));
    registerStream(s);
  }
  return s;
}

namespace {

// Runs a hook of a live stream. Envoy may destroy the stream inside our own calls (a local
// reply or a continue ends it synchronously): the ModuleStream then outlives the hook.
template <typename Status, typename Fn>
Status run(envoy_dynamic_module_type_http_filter_envoy_ptr filter, envoy_dynamic_module_type_http_filter_module_ptr p,
           Status whenGone, Fn fn) {
  ModuleStream* s = streamOf(p);
  if (s == nullptr || s->stream() == nullptr || s->destroyed()) return whenGone;
  s->enter();
  Status r;
  {
    HookScope scope(s->worker(), filter, s);
    r = fn(s, s->stream());
  }
  if (s->leave()) delete s;
  return r;
}

}  // namespace

ENVOY_JS_EXPORT envoy_dynamic_module_type_on_http_filter_request_headers_status
envoy_dynamic_module_on_http_filter_request_headers(envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr,
                                                    envoy_dynamic_module_type_http_filter_module_ptr filter_module_ptr,
                                                    bool end_of_stream) {
  ModuleStream* s = streamOf(filter_module_ptr);
  if (s != nullptr && s->stream() == nullptr) {
    // The worker's engine did not start (logged when it failed): apply the failure policy.
    if (!failClosed(s)) return envoy_dynamic_module_type_on_http_filter_request_headers_status_Continue;
    envoy_dynamic_module_callback_http_send_response(filter_envoy_ptr, 500, nullptr, 0, buf(""),
                                                     buf("envoy_js_engine_unavailable"));
    return envoy_dynamic_module_type_on_http_filter_request_headers_status_StopIteration;
  }
  return run(filter_envoy_ptr, filter_module_ptr, envoy_dynamic_module_type_on_http_filter_request_headers_status_Continue,
             [&](ModuleStream* s, Stream* st) {
               s->seenHeaders(Direction::Request);
               s->raiseBufferLimit(s->worker()->engine()->settings().bufferLimitBytes);
               return static_cast<envoy_dynamic_module_type_on_http_filter_request_headers_status>(
                   st->onRequestHeaders(end_of_stream));
             });
}

ENVOY_JS_EXPORT envoy_dynamic_module_type_on_http_filter_request_body_status envoy_dynamic_module_on_http_filter_request_body(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr,
    envoy_dynamic_module_type_http_filter_module_ptr filter_module_ptr, bool end_of_stream) {
  return run(filter_envoy_ptr, filter_module_ptr, envoy_dynamic_module_type_on_http_filter_request_body_status_Continue,
             [&](ModuleStream* s, Stream* st) {
               s->enterData(Direction::Request);
               auto r = st->onRequestData(end_of_stream);
               s->leaveData(Direction::Request);
               return static_cast<envoy_dynamic_module_type_on_http_filter_request_body_status>(r);
             });
}

ENVOY_JS_EXPORT envoy_dynamic_module_type_on_http_filter_request_trailers_status
envoy_dynamic_module_on_http_filter_request_trailers(envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr,
                                                     envoy_dynamic_module_type_http_filter_module_ptr filter_module_ptr) {
  return run(filter_envoy_ptr, filter_module_ptr, envoy_dynamic_module_type_on_http_filter_request_trailers_status_Continue,
             [&](ModuleStream* s, Stream* st) {
               s->seenTrailers(Direction::Request);
               return static_cast<envoy_dynamic_module_type_on_http_filter_request_trailers_status>(st->onRequestTrailers());
             });
}

ENVOY_JS_EXPORT envoy_dynamic_module_type_on_http_filter_response_headers_status
envoy_dynamic_module_on_http_filter_response_headers(envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr,
                                                     envoy_dynamic_module_type_http_filter_module_ptr filter_module_ptr,
                                                     bool end_of_stream) {
  return run(filter_envoy_ptr, filter_module_ptr, envoy_dynamic_module_type_on_http_filter_response_headers_status_Continue,
             [&](ModuleStream* s, Stream* st) {
               s->seenHeaders(Direction::Response);
               auto r = st->onResponseHeaders(end_of_stream);
               s->encodeReturned(r != HeadersStatus::Continue, end_of_stream);
               return static_cast<envoy_dynamic_module_type_on_http_filter_response_headers_status>(r);
             });
}

ENVOY_JS_EXPORT envoy_dynamic_module_type_on_http_filter_response_body_status envoy_dynamic_module_on_http_filter_response_body(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr,
    envoy_dynamic_module_type_http_filter_module_ptr filter_module_ptr, bool end_of_stream) {
  return run(filter_envoy_ptr, filter_module_ptr, envoy_dynamic_module_type_on_http_filter_response_body_status_Continue,
             [&](ModuleStream* s, Stream* st) {
               s->enterData(Direction::Response);
               auto r = st->onResponseData(end_of_stream);
               s->leaveData(Direction::Response);
               s->encodeReturned(r != DataStatus::Continue, end_of_stream);
               return static_cast<envoy_dynamic_module_type_on_http_filter_response_body_status>(r);
             });
}

ENVOY_JS_EXPORT envoy_dynamic_module_type_on_http_filter_response_trailers_status
envoy_dynamic_module_on_http_filter_response_trailers(envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr,
                                                      envoy_dynamic_module_type_http_filter_module_ptr filter_module_ptr) {
  return run(filter_envoy_ptr, filter_module_ptr, envoy_dynamic_module_type_on_http_filter_response_trailers_status_Continue,
             [&](ModuleStream* s, Stream* st) {
               s->seenTrailers(Direction::Response);
               auto r = st->onResponseTrailers();
               s->encodeReturned(r != TrailersStatus::Continue, true);
               return static_cast<envoy_dynamic_module_type_on_http_filter_response_trailers_status>(r);
             });
}

ENVOY_JS_EXPORT void envoy_dynamic_module_on_http_filter_stream_complete(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr,
    envoy_dynamic_module_type_http_filter_module_ptr filter_module_ptr) {
  // Envoy calls this for every stream, reset ones included, before its access log: onDone runs
  // here, while the filter can still reach Envoy (the ABI forbids that in destroy) and what it
  // sets is still logged. Destroy then only frees.
  run(filter_envoy_ptr, filter_module_ptr, 0, [&](ModuleStream*, Stream* st) {
    st->onComplete();
    return 0;
  });
}

ENVOY_JS_EXPORT void envoy_dynamic_module_on_http_filter_destroy(envoy_dynamic_module_type_http_filter_module_ptr filter_module_ptr) {
  ModuleStream* s = streamOf(filter_module_ptr);
  if (s == nullptr) return;
  if (s->stream() != nullptr) {
    // The ABI forbids using filter_envoy_ptr here: no filter is current (metrics of an onDone
    // that only runs now, without a stream_complete before, are dropped).
    HookScope scope(s->worker(), nullptr, s);
    s->stream()->onDestroy();
    unregisterStream(s);
  }
  if (s->busy()) {
    s->markDestroyed();  // deleted when the hook that Envoy destroyed it from returns
    return;
  }
  delete s;
}

ENVOY_JS_EXPORT void envoy_dynamic_module_on_http_filter_http_callout_done(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr,
    envoy_dynamic_module_type_http_filter_module_ptr filter_module_ptr, uint64_t callout_id,
    envoy_dynamic_module_type_http_callout_result result, envoy_dynamic_module_type_envoy_http_header* headers,
    size_t headers_size, envoy_dynamic_module_type_envoy_buffer* body_chunks, size_t body_chunks_size) {
  run(filter_envoy_ptr, filter_module_ptr, 0, [&](ModuleStream* s, Stream*) {
    s->calloutDone(callout_id, result, headers, headers_size, body_chunks, body_chunks_size);
    return 0;
  });
}

ENVOY_JS_EXPORT void envoy_dynamic_module_on_http_filter_scheduled(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr,
    envoy_dynamic_module_type_http_filter_module_ptr filter_module_ptr, uint64_t event_id) {
  run(filter_envoy_ptr, filter_module_ptr, 0, [&](ModuleStream* s, Stream*) {
    uint64_t key = event_id >> 2;
    switch (static_cast<EventKind>(event_id & 3)) {
      case kScheduled:
        s->scheduledRan();
        s->stream()->onScheduled();
        break;
      case kUnusedEvent:
        break;
      case kTimerDue: {
        uint64_t id = 0;
        if (s->worker()->takeTimer(key, &id)) s->worker()->engine()->fireTimer(id);
        break;
      }
      case kCalloutDeadline:
        s->calloutDeadline(key);
        break;
    }
    return 0;
  });
}

// Streaming callouts and downstream watermarks: required by Envoy, never used by envoy-js.
ENVOY_JS_EXPORT void envoy_dynamic_module_on_http_filter_http_stream_headers(
    envoy_dynamic_module_type_http_filter_envoy_ptr, envoy_dynamic_module_type_http_filter_module_ptr, uint64_t,
    envoy_dynamic_module_type_envoy_http_header*, size_t, bool) {}

ENVOY_JS_EXPORT void envoy_dynamic_module_on_http_filter_http_stream_data(envoy_dynamic_module_type_http_filter_envoy_ptr,
                                                                          envoy_dynamic_module_type_http_filter_module_ptr,
                                                                          uint64_t, const envoy_dynamic_module_type_envoy_buffer*,
                                                                          size_t, bool) {}

ENVOY_JS_EXPORT void envoy_dynamic_module_on_http_filter_http_stream_trailers(
    envoy_dynamic_module_type_http_filter_envoy_ptr, envoy_dynamic_module_type_http_filter_module_ptr, uint64_t,
    envoy_dynamic_module_type_envoy_http_header*, size_t) {}

ENVOY_JS_EXPORT void envoy_dynamic_module_on_http_filter_http_stream_complete(
    envoy_dynamic_module_type_http_filter_envoy_ptr, envoy_dynamic_module_type_http_filter_module_ptr, uint64_t) {}

ENVOY_JS_EXPORT void envoy_dynamic_module_on_http_filter_http_stream_reset(
    envoy_dynamic_module_type_http_filter_envoy_ptr, envoy_dynamic_module_type_http_filter_module_ptr, uint64_t,
    envoy_dynamic_module_type_http_stream_reset_reason) {}

ENVOY_JS_EXPORT void envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark(
    envoy_dynamic_module_type_http_filter_envoy_ptr, envoy_dynamic_module_type_http_filter_module_ptr) {}

ENVOY_JS_EXPORT void envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark(
    envoy_dynamic_module_type_http_filter_envoy_ptr, envoy_dynamic_module_type_http_filter_module_ptr) {}
