// The ABI host stub (DESIGN.md section 7): a program that plays Envoy >= 1.38 around
// libenvoy_js.so through the dynamic-module C ABI, and replays a scenario.
//
//   abi_host [--module libenvoy_js.so] [--bytecode filter.qjsbc] [--source-map filter.js.map]
//            <bundle.js> <scenario.json>
//   abi_host [--module libenvoy_js.so] --abi-version    (prints what on_program_init returns)
//   --real-time: offer no clock, so that the module keeps time with its own timer thread (as
//   in Envoy); scheduler commits then arrive from that thread. Scripted clusters still answer
//   on the fake clock, so use it for scenarios without callouts.
//
// prints the transcript (the shape of `envoy-js replay`) on stdout; exits 1 with the reason on
// stderr when the module, the filter or the scenario cannot be loaded, 3 when the module does
// something Envoy would not accept.
//
// What plays which part of Envoy:
//  - test/host_stub/scripted_host.cc: the filter manager (stop/continue, buffering, local
//    replies, upstream and downstream, scripted clusters, the fake clock). The native stub runs
//    the runtime directly on the same model, so both give comparable transcripts.
//  - EnvoyFilter below: Envoy's dynamic-module HTTP filter around the module (the filter
//    object behind filter_envoy_ptr, its config, schedulers, callouts), as Envoy 1.38's
//    source/extensions/filters/http/dynamic_modules/ behaves.
//  - The envoy_dynamic_module_callback_* functions: exported from this executable (-rdynamic)
//    and bound by the dynamic loader, as Envoy's are; each maps onto the model's stream state.
//  - Threads: on_program_init and the configs run on the main thread, the streams on a worker
//    thread, as in Envoy. Time is the model's fake clock, offered to the module through
//    host_clock.h.
// The stub fails loudly on what it does not implement instead of pretending.
#include <dlfcn.h>
#include <unistd.h>

#include <climits>
#include <condition_variable>
#include <mutex>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "../../envoy_ext/module/abi.h"
#include "../../envoy_ext/module/host_clock.h"
#include "../host_stub/scripted_host.h"
#include "scenario_json.h"

#define ABI_HOST_EXPORT extern "C" __attribute__((visibility("default")))

namespace envoy_js::abi_host {
namespace {

using namespace envoy_js::stub;

[[noreturn]] void fatal(const std::string& message) {
  std::fprintf(stderr, "abi_host: %s\n", message.c_str());
  std::fflush(stdout);
  std::_Exit(3);
}

// Every hook Envoy 1.38 resolves for an HTTP filter (filter_config.cc): it refuses the module
// when one is missing. The per-route pair is resolved when a route configures the filter.
struct Hooks {
  decltype(&envoy_dynamic_module_on_program_init) program_init;
  decltype(&envoy_dynamic_module_on_http_filter_config_new) config_new;
  decltype(&envoy_dynamic_module_on_http_filter_config_destroy) config_destroy;
  decltype(&envoy_dynamic_module_on_http_filter_per_route_config_new) per_route_config_new;
  decltype(&envoy_dynamic_module_on_http_filter_per_route_config_destroy) per_route_config_destroy;
  decltype(&envoy_dynamic_module_on_http_filter_new) filter_new;
  decltype(&envoy_dynamic_module_on_http_filter_request_headers) request_headers;
  decltype(&envoy_dynamic_module_on_http_filter_request_body) request_body;
  decltype(&envoy_dynamic_module_on_http_filter_request_trailers) request_trailers;
  decltype(&envoy_dynamic_module_on_http_filter_response_headers) response_headers;
  decltype(&envoy_dynamic_module_on_http_filter_response_body) response_body;
  decltype(&envoy_dynamic_module_on_http_filter_response_trailers) response_trailers;
  decltype(&envoy_dynamic_module_on_http_filter_stream_complete) stream_complete;
  decltype(&envoy_dynamic_module_on_http_filter_destroy) destroy;
  decltype(&envoy_dynamic_module_on_http_filter_http_callout_done) http_callout_done;
  decltype(&envoy_dynamic_module_on_http_filter_http_stream_headers) http_stream_headers;
  decltype(&envoy_dynamic_module_on_http_filter_http_stream_data) http_stream_data;
  decltype(&envoy_dynamic_module_on_http_filter_http_stream_trailers) http_stream_trailers;
  decltype(&envoy_dynamic_module_on_http_filter_http_stream_complete) http_stream_complete;
  decltype(&envoy_dynamic_module_on_http_filter_http_stream_reset) http_stream_reset;
  decltype(&envoy_dynamic_module_on_http_filter_scheduled) scheduled;
  decltype(&envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark) above_high_watermark;
  decltype(&envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark) below_low_watermark;
};

struct MetricDef {
  std::string name;
  MetricKind kind;
};

// What Envoy holds for one process, one filter config and one worker.
struct AbiHost {
  Hooks hooks{};
  std::string filterName = "envoy-js";
  // DynamicModuleHttpFilterConfig: metric definitions (one id space per kind, as in Envoy),
  // frozen once on_http_filter_config_new returned.
  std::vector<MetricDef> counters, gauges, histograms;
  bool metricsFrozen = false;
  envoy_dynamic_module_type_http_filter_config_module_ptr config = nullptr;
  std::map<std::string, envoy_dynamic_module_type_http_filter_per_route_config_module_ptr> routes;
  // Error lines the module logged while its config was being created.
  bool inConfig = false;
  std::vector<std::string> configErrors;
  // The worker while a replay runs (its thread only).
  HostWorker* worker = nullptr;
  double lastNow = 0;
  std::map<uint64_t, uint64_t> clockTimers;  // module timer key -> fake-clock handle
  std::map<std::string, StreamTranscript*> streamsById;
  // Callout ids are Envoy's to choose ("arbitrary" in the ABI); one counter per worker, counted
  // per attempt, reads the same as the runtime's own numbering in events.
  uint64_t nextCalloutId = 1;
  uint64_t nextCommit = 1;
};
AbiHost gHost;

MetricDef* metricDef(std::vector<MetricDef>& defs, size_t id) { return id < defs.size() ? &defs[id] : nullptr; }

const char* levelName(envoy_dynamic_module_type_log_level level) {
  switch (level) {
    case envoy_dynamic_module_type_log_level_Trace: return "trace";
    case envoy_dynamic_module_type_log_level_Debug: return "debug";
    case envoy_dynamic_module_type_log_level_Info: return "info";
    case envoy_dynamic_module_type_log_level_Warn: return "warn";
    case envoy_dynamic_module_type_log_level_Error: return "error";
    case envoy_dynamic_module_type_log_level_Critical: return "critical";
    case envoy_dynamic_module_type_log_level_Off: return "off";
  }
  return "info";
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string str(envoy_dynamic_module_type_module_buffer b) {
  return b.ptr == nullptr ? std::string() : std::string(b.ptr, b.length);
}

std::string readAll(const BodyBuffer* b) {
  std::string out;
  if (b == nullptr || b->length() == 0) return out;
  out.resize(b->length());
  b->copyOut(0, out.size(), reinterpret_cast<uint8_t*>(out.data()));
  return out;
}

// Envoy's DynamicModuleHttpFilter: one per stream, the filter_envoy_ptr the module sees.
class EnvoyFilter : public FilterUnderTest {
 public:
  explicit EnvoyFilter(HostStream& stream) : s_(stream), info_(stream.streamInfo()) {
    gHost.streamsById[info_.id] = &stream.transcript();
    module_ = gHost.hooks.filter_new(gHost.config, this);
    if (module_ == nullptr) fatal("on_http_filter_new returned null");
  }
  // A commit is a post to this worker; one from another thread waits in the inbox.
  static void commitFrom(EnvoyFilter* f, const std::weak_ptr<bool>& alive, uint64_t event);
  ~EnvoyFilter() override { *alive_ = false; }

  HostStream& stream() { return s_; }
  const StreamInfo& info() const { return info_; }
  bool destroyed() const { return module_ == nullptr; }
  std::string& scratch(int slot) { return scratch_[slot]; }
  uint64_t bufferLimit = kEnvoyDefaultBufferLimit;  // Envoy's per-stream buffer limit; the module may raise it
  uint64_t envoyBufferLimit() const override { return bufferLimit; }

  // ---- FilterUnderTest: Envoy's decode*/encode* ----
  HeadersStatus onRequestHeaders(bool endStream) override {
    return track<HeadersStatus>([&] { return gHost.hooks.request_headers(this, module_, endStream); });
  }
  DataStatus onRequestData(bool endStream) override {
    return track<DataStatus>([&] { return gHost.hooks.request_body(this, module_, endStream); });
  }
  TrailersStatus onRequestTrailers() override {
    return track<TrailersStatus>([&] { return gHost.hooks.request_trailers(this, module_); });
  }
  // After the filter's own local reply Envoy passes the reply's headers and body through
  // without calling the module.
  HeadersStatus onResponseHeaders(bool endStream) override {
    if (sentLocalReply_) return HeadersStatus::Continue;
    return track<HeadersStatus>([&] { return gHost.hooks.response_headers(this, module_, endStream); });
  }
  DataStatus onResponseData(bool endStream) override {
    if (sentLocalReply_) return DataStatus::Continue;
    return track<DataStatus>([&] { return gHost.hooks.response_body(this, module_, endStream); });
  }
  TrailersStatus onResponseTrailers() override {
    if (sentLocalReply_) return TrailersStatus::Continue;
    return track<TrailersStatus>([&] { return gHost.hooks.response_trailers(this, module_); });
  }
  // Envoy's async client, as it reports to the filter: a timeout is the router's 504 reply
  // "upstream request timeout", delivered as a success.
  void onCalloutDone(uint64_t id, const CalloutResponse& response) override {
    callouts_.erase(id);
    if (destroyed()) return;
    CalloutResponse r = response;
    auto result = envoy_dynamic_module_type_http_callout_result_Success;
    switch (response.result) {
      case CalloutResponse::Result::Success: break;
      case CalloutResponse::Result::Timeout:
        r.headers = {{":status", "504"}, {"content-length", "24"}, {"content-type", "text/plain"}};
        r.body = "upstream request timeout";
        break;
      case CalloutResponse::Result::Reset: result = envoy_dynamic_module_type_http_callout_result_Reset; break;
      case CalloutResponse::Result::ResponseTooLarge:
        result = envoy_dynamic_module_type_http_callout_result_ExceedResponseBufferLimit;
        break;
    }
    if (result != envoy_dynamic_module_type_http_callout_result_Success) {
      gHost.hooks.http_callout_done(this, module_, id, result, nullptr, 0, nullptr, 0);
      return;
    }
    std::vector<envoy_dynamic_module_type_envoy_http_header> headers;
    for (const auto& [k, v] : r.headers) headers.push_back({k.data(), k.size(), v.data(), v.size()});
    envoy_dynamic_module_type_envoy_buffer body{r.body.data(), r.body.size()};
    gHost.hooks.http_callout_done(this, module_, id, result, headers.data(), headers.size(),
                                  r.body.empty() ? nullptr : &body, r.body.empty() ? 0 : 1);
  }
  void onComplete() override {
    completed_ = true;
    gHost.hooks.stream_complete(this, module_);
  }
  // Envoy's deferred stream destroy: onStreamComplete (reset streams too), then the filter's
  // onDestroy: the module's destroy hook, then the pending callouts are cancelled.
  void onDestroy() override {
    if (destroyed()) return;
    if (!completed_) onComplete();
    auto module = module_;
    module_ = nullptr;
    gHost.hooks.destroy(module);
    for (uint64_t id : std::set<uint64_t>(callouts_)) s_.cancelCallout(id);
    callouts_.clear();
  }

  // ---- what the callbacks need ----
  void sentLocalReply() { sentLocalReply_ = true; }
  void addCallout(uint64_t id) { callouts_.insert(id); }

  // continueDecoding()/continueEncoding(): only after a hook that stopped iteration.
  void continueDirection(Direction dir) {
    if (destroyed()) return;
    if (inHook_ > 0) fatal("continue_decoding/continue_encoding called inside a filter callback of the same stream");
    if (inContinue_) return;
    inContinue_ = true;
    if (!postedContinues_.empty()) postedContinues_.back().push_back(dir);
    s_.continueNow(dir);
  }

  // A scheduler commit: Envoy posts on_http_filter_scheduled to the worker. The commit is
  // recorded where it happened and labelled when it ran by the continue it carried ("continue
  // request (posted)", as the native stub records its posts); a commit that carried none (a
  // timer) leaves no event.
  void commit(uint64_t event) {
    if (destroyed()) return;
    std::string token = "\x01posted " + std::to_string(gHost.nextCommit++);
    s_.recordEvent(token);
    StreamTranscript* t = &s_.transcript();
    std::weak_ptr<bool> alive = alive_;
    gHost.worker->post([this, alive, t, token, event] {
      std::vector<Direction> continued;
      auto a = alive.lock();
      if (a && *a && !destroyed()) {
        postedContinues_.emplace_back();
        gHost.hooks.scheduled(this, module_, event);
        continued = std::move(postedContinues_.back());
        postedContinues_.pop_back();
      }
      auto& events = t->events;
      auto it = std::find(events.begin(), events.end(), token);
      if (it == events.end()) return;
      it = events.erase(it);
      for (Direction d : continued) {
        it = events.insert(it, std::string("continue ") + (d == Direction::Request ? "request" : "response") + " (posted)");
        ++it;
      }
    });
  }
  std::weak_ptr<bool> aliveToken() const { return alive_; }

 private:
  // Runs a decode/encode hook: marks it (a continue from inside one is an error in Envoy) and
  // keeps Envoy's in_continue_ (a later continue only acts after a hook that stopped).
  template <typename Status, typename Hook>
  Status track(Hook hook) {
    inHook_++;
    auto status = hook();
    inHook_--;
    inContinue_ = static_cast<int>(status) == 0;
    return static_cast<Status>(status);
  }
  HostStream& s_;
  StreamInfo info_;
  envoy_dynamic_module_type_http_filter_module_ptr module_ = nullptr;
  bool inContinue_ = true;
  bool sentLocalReply_ = false;
  bool completed_ = false;
  int inHook_ = 0;
  std::set<uint64_t> callouts_;
  std::vector<std::vector<Direction>> postedContinues_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  // Storage behind pointers handed to the module, valid until the next call of that kind:
  // [0..3] body slices by body type, [4] metadata strings, [5] filter state.
  std::string scratch_[6];
};

EnvoyFilter* filterOf(envoy_dynamic_module_type_http_filter_envoy_ptr p) { return static_cast<EnvoyFilter*>(p); }

// Envoy's scheduler: a weak reference to the filter.
struct Scheduler {
  EnvoyFilter* filter;
  std::weak_ptr<bool> alive;
};

// Commits made on other threads (the module's timer thread with --real-time), for the worker.
struct Inbox {
  std::mutex mutex;
  std::condition_variable ready;
  struct Item {
    EnvoyFilter* filter;
    std::weak_ptr<bool> alive;
    uint64_t event;
  };
  std::vector<Item> items;
  std::thread::id worker;
} gInbox;

void EnvoyFilter::commitFrom(EnvoyFilter* f, const std::weak_ptr<bool>& alive, uint64_t event) {
  if (std::this_thread::get_id() != gInbox.worker) {
    std::lock_guard<std::mutex> lock(gInbox.mutex);
    gInbox.items.push_back({f, alive, event});
    gInbox.ready.notify_one();
    return;
  }
  auto a = alive.lock();
  if (a && *a) f->commit(event);
}

// The worker's idle wait with --real-time: the next commits from other threads.
bool waitForCommits() {
  std::vector<Inbox::Item> items;
  {
    std::unique_lock<std::mutex> lock(gInbox.mutex);
    gInbox.ready.wait_for(lock, std::chrono::seconds(10), [] { return !gInbox.items.empty(); });
    items.swap(gInbox.items);
  }
  for (auto& item : items) {
    auto a = item.alive.lock();
    if (a && *a) item.filter->commit(item.event);
  }
  return !items.empty();
}
bool gRealTime = false;

class ModuleEngine : public FilterEngine {
 public:
  std::unique_ptr<FilterUnderTest> newFilter(HostStream& stream) override {
    return std::make_unique<EnvoyFilter>(stream);
  }
  // The module sets no response limit on Envoy's async client.
  size_t calloutResponseLimit() const override { return SIZE_MAX; }
};

HeaderMap* headerMapOf(EnvoyFilter* f, envoy_dynamic_module_type_http_header_type type) {
  if (static_cast<int>(type) < 0 || static_cast<int>(type) > 3) fatal("bad header map type " + std::to_string(type));
  return f->stream().headerMap(static_cast<HeaderMapKind>(type));
}

BodyBuffer* bodyOf(EnvoyFilter* f, envoy_dynamic_module_type_http_body_type type) {
  switch (type) {
    case envoy_dynamic_module_type_http_body_type_ReceivedRequestBody: return f->stream().currentData(Direction::Request);
    case envoy_dynamic_module_type_http_body_type_BufferedRequestBody: return f->stream().bufferedData(Direction::Request);
    case envoy_dynamic_module_type_http_body_type_ReceivedResponseBody: return f->stream().currentData(Direction::Response);
    case envoy_dynamic_module_type_http_body_type_BufferedResponseBody: return f->stream().bufferedData(Direction::Response);
  }
  fatal("bad body type " + std::to_string(type));
}

// The module's log lines (module.cc's format) go where the native stub puts them.
void attributeLog(envoy_dynamic_module_type_log_level level, const std::string& line) {
  std::string lead = "envoy_js(" + gHost.filterName + ")";
  std::string tag = std::string("[") + levelName(level) + "] ";
  if (gHost.worker == nullptr) {
    std::fprintf(stderr, "abi_host: module log outside a replay: %s\n", line.c_str());
    return;
  }
  Transcript& t = gHost.worker->transcript();
  if (line.rfind(lead, 0) != 0) {
    t.workerLogs.push_back(tag + line);
    return;
  }
  std::string rest = line.substr(lead.size());
  if (rest.rfind(": ", 0) == 0) {
    t.workerLogs.push_back(tag + rest.substr(2));
    return;
  }
  if (rest.rfind(" stream ", 0) == 0) {
    std::string after = rest.substr(8);
    for (const auto& [id, st] : gHost.streamsById) {
      if (after.rfind(id + ": ", 0) == 0) {
        st->logs.push_back(tag + after.substr(id.size() + 2));
        return;
      }
      if (after.rfind(id + " failed: ", 0) == 0) {
        st->errors.push_back(after.substr(id.size() + 9));
        return;
      }
    }
  }
  t.workerLogs.push_back(tag + line);
}

// ---- the fake clock, offered to the module ----

double clockNow() { return gHost.worker ? gHost.worker->now() : gHost.lastNow; }
void clockArm(uint64_t key, double delayMs, void (*fire)(uint64_t)) {
  if (gHost.worker == nullptr) return;  // the replay is over
  gHost.clockTimers[key] = gHost.worker->at(delayMs, [key, fire] {
    gHost.clockTimers.erase(key);
    fire(key);
  });
}
void clockDisarm(uint64_t key) {
  auto it = gHost.clockTimers.find(key);
  if (it == gHost.clockTimers.end()) return;
  if (gHost.worker) gHost.worker->cancelAt(it->second);
  gHost.clockTimers.erase(it);
}
const envoy_js_host_clock kFakeClock = {clockNow, clockArm, clockDisarm};

}  // namespace
}  // namespace envoy_js::abi_host

using namespace envoy_js;
using namespace envoy_js::abi_host;

ABI_HOST_EXPORT const envoy_js_host_clock* envoy_js_host_clock(void) { return gRealTime ? nullptr : &kFakeClock; }

// ---- callbacks (Envoy's side of the ABI) ------------------------------------------------------

ABI_HOST_EXPORT void envoy_dynamic_module_callback_log(envoy_dynamic_module_type_log_level level,
                                                       envoy_dynamic_module_type_module_buffer message) {
  std::string line = str(message);
  if (gHost.inConfig) {
    if (level >= envoy_dynamic_module_type_log_level_Error) gHost.configErrors.push_back(line);
    return;
  }
  attributeLog(level, line);
}

namespace {
envoy_dynamic_module_type_metrics_result define(std::vector<MetricDef>& defs, MetricKind kind,
                                                envoy_dynamic_module_type_module_buffer name, size_t labels, size_t* id) {
  if (gHost.metricsFrozen) return envoy_dynamic_module_type_metrics_result_Frozen;
  if (labels != 0) fatal("metric labels are not implemented by this stub");
  *id = defs.size();
  defs.push_back({str(name), kind});
  return envoy_dynamic_module_type_metrics_result_Success;
}
// The runtime's own counters (envoy_js.*) go to `counters`, the filter's metrics to `metrics`.
void record(MetricDef& m, uint64_t value) {
  Transcript& t = gHost.worker->transcript();
  if (m.name.rfind("envoy_js.", 0) == 0 && m.kind == MetricKind::Counter) {
    t.counters[m.name] += value;
    return;
  }
  MetricValue& v = t.metrics[m.name];
  v.kind = m.kind;
  if (m.kind == MetricKind::Counter) v.value += static_cast<double>(value);
  else if (m.kind == MetricKind::Gauge) v.value = static_cast<double>(value);
  else v.samples.push_back(static_cast<double>(value));
}
}  // namespace

ABI_HOST_EXPORT envoy_dynamic_module_type_metrics_result envoy_dynamic_module_callback_http_filter_config_define_counter(
    envoy_dynamic_module_type_http_filter_config_envoy_ptr, envoy_dynamic_module_type_module_buffer name,
    envoy_dynamic_module_type_module_buffer*, size_t label_names_length, size_t* counter_id_ptr) {
  return define(gHost.counters, MetricKind::Counter, name, label_names_length, counter_id_ptr);
}
ABI_HOST_EXPORT envoy_dynamic_module_type_metrics_result envoy_dynamic_module_callback_http_filter_config_define_gauge(
    envoy_dynamic_module_type_http_filter_config_envoy_ptr, envoy_dynamic_module_type_module_buffer name,
    envoy_dynamic_module_type_module_buffer*, size_t label_names_length, size_t* gauge_id_ptr) {
  return define(gHost.gauges, MetricKind::Gauge, name, label_names_length, gauge_id_ptr);
}
ABI_HOST_EXPORT envoy_dynamic_module_type_metrics_result envoy_dynamic_module_callback_http_filter_config_define_histogram(
    envoy_dynamic_module_type_http_filter_config_envoy_ptr, envoy_dynamic_module_type_module_buffer name,
    envoy_dynamic_module_type_module_buffer*, size_t label_names_length, size_t* histogram_id_ptr) {
  return define(gHost.histograms, MetricKind::Histogram, name, label_names_length, histogram_id_ptr);
}
ABI_HOST_EXPORT envoy_dynamic_module_type_metrics_result envoy_dynamic_module_callback_http_filter_increment_counter(
    envoy_dynamic_module_type_http_filter_envoy_ptr, size_t id, envoy_dynamic_module_type_module_buffer*, size_t labels,
    uint64_t value) {
  MetricDef* m = metricDef(gHost.counters, id);
  if (m == nullptr) return envoy_dynamic_module_type_metrics_result_MetricNotFound;
  if (labels != 0) return envoy_dynamic_module_type_metrics_result_InvalidLabels;
  record(*m, value);
  return envoy_dynamic_module_type_metrics_result_Success;
}
ABI_HOST_EXPORT envoy_dynamic_module_type_metrics_result envoy_dynamic_module_callback_http_filter_set_gauge(
    envoy_dynamic_module_type_http_filter_envoy_ptr, size_t id, envoy_dynamic_module_type_module_buffer*, size_t labels,
    uint64_t value) {
  MetricDef* m = metricDef(gHost.gauges, id);
  if (m == nullptr) return envoy_dynamic_module_type_metrics_result_MetricNotFound;
  if (labels != 0) return envoy_dynamic_module_type_metrics_result_InvalidLabels;
  record(*m, value);
  return envoy_dynamic_module_type_metrics_result_Success;
}
ABI_HOST_EXPORT envoy_dynamic_module_type_metrics_result envoy_dynamic_module_callback_http_filter_record_histogram_value(
    envoy_dynamic_module_type_http_filter_envoy_ptr, size_t id, envoy_dynamic_module_type_module_buffer*, size_t labels,
    uint64_t value) {
  MetricDef* m = metricDef(gHost.histograms, id);
  if (m == nullptr) return envoy_dynamic_module_type_metrics_result_MetricNotFound;
  if (labels != 0) return envoy_dynamic_module_type_metrics_result_InvalidLabels;
  record(*m, value);
  return envoy_dynamic_module_type_metrics_result_Success;
}

// Header maps: Envoy lower-cases every name it is given.
ABI_HOST_EXPORT bool envoy_dynamic_module_callback_http_get_header(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr, envoy_dynamic_module_type_http_header_type header_type,
    envoy_dynamic_module_type_module_buffer key, envoy_dynamic_module_type_envoy_buffer* result_buffer, size_t index,
    size_t* optional_size) {
  HeaderMap* map = headerMapOf(filterOf(filter_envoy_ptr), header_type);
  *result_buffer = {nullptr, 0};
  if (optional_size) *optional_size = 0;
  if (map == nullptr) return false;
  std::string_view value;
  size_t n = map->get(lower(str(key)), index, &value);
  if (optional_size) *optional_size = n;
  if (index >= n) return false;
  *result_buffer = {value.data(), value.size()};
  return true;
}
ABI_HOST_EXPORT size_t envoy_dynamic_module_callback_http_get_headers_size(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr, envoy_dynamic_module_type_http_header_type header_type) {
  HeaderMap* map = headerMapOf(filterOf(filter_envoy_ptr), header_type);
  return map ? map->size() : 0;
}
ABI_HOST_EXPORT bool envoy_dynamic_module_callback_http_get_headers(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr, envoy_dynamic_module_type_http_header_type header_type,
    envoy_dynamic_module_type_envoy_http_header* result_headers) {
  HeaderMap* map = headerMapOf(filterOf(filter_envoy_ptr), header_type);
  if (map == nullptr) return false;
  struct Out {
    envoy_dynamic_module_type_envoy_http_header* at;
  } out{result_headers};
  map->forEach(
      [](void* opaque, std::string_view k, std::string_view v) {
        auto* o = static_cast<Out*>(opaque);
        *o->at++ = {k.data(), k.size(), v.data(), v.size()};
      },
      &out);
  return true;
}
ABI_HOST_EXPORT bool envoy_dynamic_module_callback_http_add_header(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr, envoy_dynamic_module_type_http_header_type header_type,
    envoy_dynamic_module_type_module_buffer key, envoy_dynamic_module_type_module_buffer value) {
  HeaderMap* map = headerMapOf(filterOf(filter_envoy_ptr), header_type);
  if (map == nullptr || value.ptr == nullptr || value.length == 0) return false;
  map->append(lower(str(key)), str(value));
  return true;
}
ABI_HOST_EXPORT bool envoy_dynamic_module_callback_http_set_header(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr, envoy_dynamic_module_type_http_header_type header_type,
    envoy_dynamic_module_type_module_buffer key, envoy_dynamic_module_type_module_buffer value) {
  HeaderMap* map = headerMapOf(filterOf(filter_envoy_ptr), header_type);
  if (map == nullptr) return false;
  if (value.ptr == nullptr || value.length == 0) map->remove(lower(str(key)));
  else map->set(lower(str(key)), str(value));
  return true;
}

ABI_HOST_EXPORT void envoy_dynamic_module_callback_http_send_response(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr, uint32_t status_code,
    envoy_dynamic_module_type_module_http_header* headers_vector, size_t headers_vector_size,
    envoy_dynamic_module_type_module_buffer body, envoy_dynamic_module_type_module_buffer details) {
  EnvoyFilter* f = filterOf(filter_envoy_ptr);
  if (f->destroyed()) return;
  LocalReply reply;
  reply.status = static_cast<int>(status_code);
  reply.body = str(body);
  reply.details = str(details);
  if (reply.details.empty()) reply.details = "dynamic_module";
  for (size_t i = 0; i < headers_vector_size; i++) {
    const auto& h = headers_vector[i];
    reply.headers.emplace_back(lower(std::string_view(h.key_ptr, h.key_length)), std::string(h.value_ptr, h.value_length));
  }
  f->sentLocalReply();
  f->stream().sendLocalReply(reply);
}

// Bodies. Envoy hands out its buffer as slices; this stub cuts every body in two so that a
// module that reads only the first slice shows it.
ABI_HOST_EXPORT size_t envoy_dynamic_module_callback_http_get_body_size(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr, envoy_dynamic_module_type_http_body_type body_type) {
  BodyBuffer* b = bodyOf(filterOf(filter_envoy_ptr), body_type);
  return b ? b->length() : 0;
}
ABI_HOST_EXPORT size_t envoy_dynamic_module_callback_http_get_body_chunks_size(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr, envoy_dynamic_module_type_http_body_type body_type) {
  BodyBuffer* b = bodyOf(filterOf(filter_envoy_ptr), body_type);
  size_t n = b ? b->length() : 0;
  return n == 0 ? 0 : n == 1 ? 1 : 2;
}
ABI_HOST_EXPORT bool envoy_dynamic_module_callback_http_get_body_chunks(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr, envoy_dynamic_module_type_http_body_type body_type,
    envoy_dynamic_module_type_envoy_buffer* result_buffer_vector) {
  EnvoyFilter* f = filterOf(filter_envoy_ptr);
  BodyBuffer* b = bodyOf(f, body_type);
  if (b == nullptr) return false;
  std::string& bytes = f->scratch(static_cast<int>(body_type));
  bytes = readAll(b);
  if (bytes.empty()) return true;
  if (bytes.size() == 1) {
    result_buffer_vector[0] = {bytes.data(), 1};
  } else {
    size_t half = bytes.size() / 2;
    result_buffer_vector[0] = {bytes.data(), half};
    result_buffer_vector[1] = {bytes.data() + half, bytes.size() - half};
  }
  return true;
}
ABI_HOST_EXPORT bool envoy_dynamic_module_callback_http_append_body(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr, envoy_dynamic_module_type_http_body_type body_type,
    envoy_dynamic_module_type_module_buffer data) {
  BodyBuffer* b = bodyOf(filterOf(filter_envoy_ptr), body_type);
  if (b == nullptr) return false;
  b->append(str(data));
  return true;
}
ABI_HOST_EXPORT bool envoy_dynamic_module_callback_http_drain_body(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr, envoy_dynamic_module_type_http_body_type body_type,
    size_t number_of_bytes) {
  BodyBuffer* b = bodyOf(filterOf(filter_envoy_ptr), body_type);
  if (b == nullptr) return false;
  std::string all = readAll(b);
  b->replace(all.substr(std::min(number_of_bytes, all.size())));
  return true;
}
// The filter under test is first in the chain: what it receives is never an earlier filter's
// buffer.
ABI_HOST_EXPORT bool envoy_dynamic_module_callback_http_received_buffered_request_body(envoy_dynamic_module_type_http_filter_envoy_ptr) {
  return false;
}
ABI_HOST_EXPORT bool envoy_dynamic_module_callback_http_received_buffered_response_body(envoy_dynamic_module_type_http_filter_envoy_ptr) {
  return false;
}

// Dynamic metadata: the model keeps JSON texts; Envoy's Struct values are typed scalars.
ABI_HOST_EXPORT void envoy_dynamic_module_callback_http_set_dynamic_metadata_number(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr, envoy_dynamic_module_type_module_buffer ns,
    envoy_dynamic_module_type_module_buffer key, double value) {
  filterOf(filter_envoy_ptr)->stream().setMetadata(str(ns), str(key), numberJson(value));
}
ABI_HOST_EXPORT void envoy_dynamic_module_callback_http_set_dynamic_metadata_string(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr, envoy_dynamic_module_type_module_buffer ns,
    envoy_dynamic_module_type_module_buffer key, envoy_dynamic_module_type_module_buffer value) {
  filterOf(filter_envoy_ptr)->stream().setMetadata(str(ns), str(key), stringJson(str(value)));
}
ABI_HOST_EXPORT void envoy_dynamic_module_callback_http_set_dynamic_metadata_bool(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr, envoy_dynamic_module_type_module_buffer ns,
    envoy_dynamic_module_type_module_buffer key, bool value) {
  filterOf(filter_envoy_ptr)->stream().setMetadata(str(ns), str(key), value ? "true" : "false");
}
namespace {
MetadataValue metadataOf(envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr,
                         envoy_dynamic_module_type_metadata_source source, envoy_dynamic_module_type_module_buffer ns,
                         envoy_dynamic_module_type_module_buffer key) {
  // Route, cluster and host metadata: the scenario format has none.
  if (source != envoy_dynamic_module_type_metadata_source_Dynamic) return {};
  auto json = filterOf(filter_envoy_ptr)->stream().getMetadata(str(ns), str(key));
  return json ? readMetadataValue(*json) : MetadataValue{};
}
}  // namespace
ABI_HOST_EXPORT bool envoy_dynamic_module_callback_http_get_metadata_number(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr, envoy_dynamic_module_type_metadata_source source,
    envoy_dynamic_module_type_module_buffer ns, envoy_dynamic_module_type_module_buffer key, double* result) {
  MetadataValue v = metadataOf(filter_envoy_ptr, source, ns, key);
  if (v.kind != MetadataValue::Number) return false;
  *result = v.number;
  return true;
}
ABI_HOST_EXPORT bool envoy_dynamic_module_callback_http_get_metadata_string(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr, envoy_dynamic_module_type_metadata_source source,
    envoy_dynamic_module_type_module_buffer ns, envoy_dynamic_module_type_module_buffer key,
    envoy_dynamic_module_type_envoy_buffer* result) {
  MetadataValue v = metadataOf(filter_envoy_ptr, source, ns, key);
  if (v.kind != MetadataValue::String) return false;
  std::string& keep = filterOf(filter_envoy_ptr)->scratch(4);
  keep = v.string;
  *result = {keep.data(), keep.size()};
  return true;
}
ABI_HOST_EXPORT bool envoy_dynamic_module_callback_http_get_metadata_bool(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr, envoy_dynamic_module_type_metadata_source source,
    envoy_dynamic_module_type_module_buffer ns, envoy_dynamic_module_type_module_buffer key, bool* result) {
  MetadataValue v = metadataOf(filter_envoy_ptr, source, ns, key);
  if (v.kind != MetadataValue::Bool) return false;
  *result = v.boolean;
  return true;
}

// Filter state: Envoy stores these values read-only; setting a key twice is an Envoy bug
// (abort in debug builds).
ABI_HOST_EXPORT bool envoy_dynamic_module_callback_http_set_filter_state_bytes(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr, envoy_dynamic_module_type_module_buffer key,
    envoy_dynamic_module_type_module_buffer value) {
  EnvoyFilter* f = filterOf(filter_envoy_ptr);
  if (f->stream().getFilterState(str(key))) fatal("filter state `" + str(key) + "` set twice; Envoy keeps it read-only");
  f->stream().setFilterState(str(key), str(value));
  return true;
}
ABI_HOST_EXPORT bool envoy_dynamic_module_callback_http_get_filter_state_bytes(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr, envoy_dynamic_module_type_module_buffer key,
    envoy_dynamic_module_type_envoy_buffer* result) {
  EnvoyFilter* f = filterOf(filter_envoy_ptr);
  auto v = f->stream().getFilterState(str(key));
  if (!v) return false;
  std::string& keep = f->scratch(5);
  keep = *v;
  *result = {keep.data(), keep.size()};
  return true;
}

ABI_HOST_EXPORT envoy_dynamic_module_type_http_filter_scheduler_module_ptr envoy_dynamic_module_callback_http_filter_scheduler_new(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr) {
  EnvoyFilter* f = filterOf(filter_envoy_ptr);
  return new Scheduler{f, f->aliveToken()};
}
ABI_HOST_EXPORT void envoy_dynamic_module_callback_http_filter_scheduler_commit(
    envoy_dynamic_module_type_http_filter_scheduler_module_ptr scheduler_module_ptr, uint64_t event_id) {
  auto* s = static_cast<Scheduler*>(scheduler_module_ptr);
  EnvoyFilter::commitFrom(s->filter, s->alive, event_id);
}
ABI_HOST_EXPORT void envoy_dynamic_module_callback_http_filter_scheduler_delete(
    envoy_dynamic_module_type_http_filter_scheduler_module_ptr scheduler_module_ptr) {
  delete static_cast<Scheduler*>(scheduler_module_ptr);
}

ABI_HOST_EXPORT void envoy_dynamic_module_callback_http_clear_route_cache(envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr) {
  filterOf(filter_envoy_ptr)->stream().clearRouteCache();
}

ABI_HOST_EXPORT bool envoy_dynamic_module_callback_http_filter_get_attribute_string(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr, envoy_dynamic_module_type_attribute_id attribute_id,
    envoy_dynamic_module_type_envoy_buffer* result) {
  const StreamInfo& info = filterOf(filter_envoy_ptr)->info();
  const std::string* v = nullptr;
  switch (attribute_id) {
    case envoy_dynamic_module_type_attribute_id_RequestId: v = &info.id; break;
    case envoy_dynamic_module_type_attribute_id_RequestProtocol: v = &info.protocol; break;
    case envoy_dynamic_module_type_attribute_id_SourceAddress: v = &info.remoteAddress; break;
    case envoy_dynamic_module_type_attribute_id_DestinationAddress: v = &info.localAddress; break;
    case envoy_dynamic_module_type_attribute_id_XdsRouteName: v = &info.routeName; break;
    default: fatal("attribute id " + std::to_string(attribute_id) + " is not implemented by this stub");
  }
  *result = {v->data(), v->size()};
  return true;
}

ABI_HOST_EXPORT envoy_dynamic_module_type_http_callout_init_result envoy_dynamic_module_callback_http_filter_http_callout(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr, uint64_t* callout_id_out,
    envoy_dynamic_module_type_module_buffer cluster_name, envoy_dynamic_module_type_module_http_header* headers,
    size_t headers_size, envoy_dynamic_module_type_module_buffer body, uint64_t timeout_milliseconds) {
  EnvoyFilter* f = filterOf(filter_envoy_ptr);
  uint64_t id = gHost.nextCalloutId++;
  CalloutRequest request;
  request.cluster = str(cluster_name);
  bool path = false, method = false, host = false;
  for (size_t i = 0; i < headers_size; i++) {
    std::string k = lower(std::string_view(headers[i].key_ptr, headers[i].key_length));
    path = path || k == ":path";
    method = method || k == ":method";
    host = host || k == ":authority" || k == "host";
    request.headers.emplace_back(k, std::string(headers[i].value_ptr, headers[i].value_length));
  }
  if (!path || !method || !host) return envoy_dynamic_module_type_http_callout_init_result_MissingRequiredHeaders;
  request.body = str(body);
  if (!request.body.empty()) {
    // Envoy sets content-length from the body.
    std::erase_if(request.headers, [](auto& kv) { return kv.first == "content-length"; });
    request.headers.emplace_back("content-length", std::to_string(request.body.size()));
  }
  request.timeoutMs = static_cast<uint32_t>(std::min<uint64_t>(timeout_milliseconds, UINT32_MAX));
  switch (f->stream().startCallout(id, request)) {
    case CalloutStart::Started:
      f->addCallout(id);
      *callout_id_out = id;
      return envoy_dynamic_module_type_http_callout_init_result_Success;
    case CalloutStart::UnknownCluster: return envoy_dynamic_module_type_http_callout_init_result_ClusterNotFound;
    case CalloutStart::CannotCreate: break;
  }
  return envoy_dynamic_module_type_http_callout_init_result_CannotCreateRequest;
}

ABI_HOST_EXPORT void envoy_dynamic_module_callback_http_filter_continue_decoding(envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr) {
  filterOf(filter_envoy_ptr)->continueDirection(Direction::Request);
}
ABI_HOST_EXPORT void envoy_dynamic_module_callback_http_filter_continue_encoding(envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr) {
  filterOf(filter_envoy_ptr)->continueDirection(Direction::Response);
}

ABI_HOST_EXPORT envoy_dynamic_module_type_http_filter_per_route_config_module_ptr
envoy_dynamic_module_callback_get_most_specific_route_config(envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr) {
  RouteOverride route = filterOf(filter_envoy_ptr)->stream().routeOverride();
  if (!route.disabled && route.configJson.empty()) return nullptr;
  auto it = gHost.routes.find(routeConfigJson(route));
  if (it == gHost.routes.end()) fatal("a route config that was not loaded");
  return it->second;
}

ABI_HOST_EXPORT uint32_t envoy_dynamic_module_callback_http_filter_get_worker_index(envoy_dynamic_module_type_http_filter_envoy_ptr) {
  return 0;
}

ABI_HOST_EXPORT uint64_t envoy_dynamic_module_callback_http_get_buffer_limit(envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr) {
  return filterOf(filter_envoy_ptr)->bufferLimit;
}
ABI_HOST_EXPORT void envoy_dynamic_module_callback_http_set_buffer_limit(envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr,
                                                                         uint64_t limit) {
  filterOf(filter_envoy_ptr)->bufferLimit = limit;
}

ABI_HOST_EXPORT void envoy_dynamic_module_callback_http_filter_reset_stream(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr, envoy_dynamic_module_type_http_filter_stream_reset_reason,
    envoy_dynamic_module_type_module_buffer) {
  EnvoyFilter* f = filterOf(filter_envoy_ptr);
  if (!f->destroyed()) f->stream().resetStream();
}

// ---- main -------------------------------------------------------------------------------------

namespace {

bool readFile(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream ss;
  ss << in.rdbuf();
  *out = ss.str();
  return true;
}

[[noreturn]] void cannotLoad(const std::string& why) {
  std::fprintf(stderr, "%s\n", why.c_str());
  std::exit(1);
}

std::string absolute(const std::string& path) {
  char resolved[PATH_MAX];
  return realpath(path.c_str(), resolved) ? std::string(resolved) : path;
}

std::string besideSelf(const char* name) {
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) return name;
  std::string dir(self, static_cast<size_t>(n));
  return dir.substr(0, dir.find_last_of('/') + 1) + name;
}

template <typename F>
void resolve(void* handle, const char* symbol, F* out) {
  *out = reinterpret_cast<F>(dlsym(handle, symbol));
  if (*out == nullptr) cannotLoad(std::string("the module lacks ") + symbol + ": Envoy 1.38 would refuse it");
}

// The module's error lines from config time, without the module's own prefix.
std::string configError(const char* fallback) {
  std::string out;
  for (const std::string& line : gHost.configErrors) {
    size_t at = line.find("rejected: ");
    out += (out.empty() ? "" : "\n") + (at == std::string::npos ? line : line.substr(at + 10));
  }
  return out.empty() ? std::string(fallback) : out;
}

}  // namespace

int main(int argc, char** argv) {
  std::string modulePath = besideSelf("libenvoy_js.so");
  std::string bytecode, sourceMap;
  std::vector<std::string> positional;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--module" && i + 1 < argc) modulePath = argv[++i];
    else if (a == "--bytecode" && i + 1 < argc) bytecode = argv[++i];
    else if (a == "--source-map" && i + 1 < argc) sourceMap = argv[++i];
    else if (a == "--filter-name" && i + 1 < argc) gHost.filterName = argv[++i];
    else if (a == "--abi-version") positional.assign(1, "--abi-version");
    else if (a == "--real-time") gRealTime = true;
    else positional.push_back(a);
  }
  if (positional.size() == 1 && positional[0] == "--abi-version") {
    // What the module's on_program_init returns, and nothing else.
    void* handle = dlopen(modulePath.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) cannotLoad(std::string("cannot load the dynamic module: ") + dlerror());
    decltype(&envoy_dynamic_module_on_program_init) init = nullptr;
    resolve(handle, "envoy_dynamic_module_on_program_init", &init);
    const char* v = init();
    std::printf("%s\n", v ? v : "(null)");
    return v ? 0 : 1;
  }
  if (positional.size() != 2) {
    std::fprintf(stderr,
                 "usage: abi_host [--module libenvoy_js.so] [--bytecode file.qjsbc] [--source-map file.js.map] "
                 "[--filter-name name] [--real-time] "
                 "<bundle.js> <scenario.json>\n");
    return 2;
  }
  std::string bundle = absolute(positional[0]), scenarioText;
  if (!readFile(positional[1], &scenarioText)) cannotLoad("cannot read scenario " + positional[1]);
  Scenario scenario;
  std::string error;
  if (!parseScenario(scenarioText, &scenario, &error)) cannotLoad(error);

  // Envoy: dlopen(RTLD_LAZY | RTLD_LOCAL). RTLD_NOW here, so that a callback the module needs
  // and this stub lacks fails at load time, loudly.
  void* handle = dlopen(modulePath.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) cannotLoad(std::string("cannot load the dynamic module: ") + dlerror() + " (build it with `make module`)");
  Hooks& h = gHost.hooks;
  resolve(handle, "envoy_dynamic_module_on_program_init", &h.program_init);
  const char* version = h.program_init();
  if (version == nullptr) cannotLoad("on_program_init returned null: Envoy unloads the module");
  if (std::strcmp(version, ENVOY_JS_DYNAMIC_MODULES_ABI_VERSION) != 0) {
    std::fprintf(stderr, "abi_host: warning: the module's ABI version %s is not Envoy 1.38's %s\n", version,
                 ENVOY_JS_DYNAMIC_MODULES_ABI_VERSION);
  }
  resolve(handle, "envoy_dynamic_module_on_http_filter_config_new", &h.config_new);
  resolve(handle, "envoy_dynamic_module_on_http_filter_config_destroy", &h.config_destroy);
  resolve(handle, "envoy_dynamic_module_on_http_filter_new", &h.filter_new);
  resolve(handle, "envoy_dynamic_module_on_http_filter_request_headers", &h.request_headers);
  resolve(handle, "envoy_dynamic_module_on_http_filter_request_body", &h.request_body);
  resolve(handle, "envoy_dynamic_module_on_http_filter_request_trailers", &h.request_trailers);
  resolve(handle, "envoy_dynamic_module_on_http_filter_response_headers", &h.response_headers);
  resolve(handle, "envoy_dynamic_module_on_http_filter_response_body", &h.response_body);
  resolve(handle, "envoy_dynamic_module_on_http_filter_response_trailers", &h.response_trailers);
  resolve(handle, "envoy_dynamic_module_on_http_filter_stream_complete", &h.stream_complete);
  resolve(handle, "envoy_dynamic_module_on_http_filter_destroy", &h.destroy);
  resolve(handle, "envoy_dynamic_module_on_http_filter_http_callout_done", &h.http_callout_done);
  resolve(handle, "envoy_dynamic_module_on_http_filter_http_stream_headers", &h.http_stream_headers);
  resolve(handle, "envoy_dynamic_module_on_http_filter_http_stream_data", &h.http_stream_data);
  resolve(handle, "envoy_dynamic_module_on_http_filter_http_stream_trailers", &h.http_stream_trailers);
  resolve(handle, "envoy_dynamic_module_on_http_filter_http_stream_complete", &h.http_stream_complete);
  resolve(handle, "envoy_dynamic_module_on_http_filter_http_stream_reset", &h.http_stream_reset);
  resolve(handle, "envoy_dynamic_module_on_http_filter_scheduled", &h.scheduled);
  resolve(handle, "envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark", &h.above_high_watermark);
  resolve(handle, "envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark", &h.below_low_watermark);
  bool routed = std::any_of(scenario.streams.begin(), scenario.streams.end(),
                            [](const StreamScenario& s) { return s.route.disabled || !s.route.configJson.empty(); });
  if (routed) {
    resolve(handle, "envoy_dynamic_module_on_http_filter_per_route_config_new", &h.per_route_config_new);
    resolve(handle, "envoy_dynamic_module_on_http_filter_per_route_config_destroy", &h.per_route_config_destroy);
  }

  // The main thread: the filter config, then the routes' configs.
  std::string filterConfig = filterConfigJson(bundle, bytecode.empty() ? nullptr : &bytecode,
                                              sourceMap.empty() ? nullptr : &sourceMap, scenario.configJson,
                                              scenario.settingsJson);
  bool routesLoaded = false;
  std::thread([&] {
    gHost.inConfig = true;
    int envoyConfig = 0;  // Envoy passes its DynamicModuleHttpFilterConfig; the stub keeps no state there
    gHost.config = h.config_new(&envoyConfig, {gHost.filterName.data(), gHost.filterName.size()},
                                {filterConfig.data(), filterConfig.size()});
    gHost.metricsFrozen = true;
    if (gHost.config == nullptr) return;
    for (const StreamScenario& s : scenario.streams) {
      if (!s.route.disabled && s.route.configJson.empty()) continue;
      std::string json = routeConfigJson(s.route);
      if (gHost.routes.count(json)) continue;
      auto rc = h.per_route_config_new({gHost.filterName.data(), gHost.filterName.size()}, {json.data(), json.size()});
      if (rc == nullptr) return;
      gHost.routes[json] = rc;
    }
    routesLoaded = true;
  }).join();
  gHost.inConfig = false;
  if (gHost.config == nullptr) cannotLoad(configError("on_http_filter_config_new returned null"));
  if (!routesLoaded) cannotLoad(configError("on_http_filter_per_route_config_new returned null"));

  // A worker thread runs the streams.
  Transcript transcript;
  bool ok = false;
  std::thread([&] {
    gInbox.worker = std::this_thread::get_id();
    ok = runScenarioWith(
        [](HostWorker& worker, std::string*) -> std::unique_ptr<FilterEngine> {
          gHost.worker = &worker;
          if (gRealTime) worker.setIdleWait(waitForCommits);
          return std::make_unique<ModuleEngine>();
        },
        scenario, &transcript, &error);
    if (gHost.worker) gHost.lastNow = gHost.worker->now();
    gHost.worker = nullptr;
  }).join();
  if (!ok) cannotLoad(error);

  for (auto& [json, rc] : gHost.routes) h.per_route_config_destroy(rc);
  h.config_destroy(gHost.config);
  std::string out = transcriptJson(transcript);
  std::fwrite(out.data(), 1, out.size(), stdout);
  std::fputc('\n', stdout);
  return 0;
}
