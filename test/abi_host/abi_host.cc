// The ABI host stub (DESIGN.md section 7): a program that plays Envoy >= 1.38 around
// libenvoy_js.so through the dynamic-module C ABI, and replays a scenario.
//
//   abi_host [--module libenvoy_js.so] [--bytecode filter.qjsbc] [--source-map filter.js.map]
//            [--envoy 1.38|1.39|1.40] [--workers N] [--config-destroy main|worker]
//            <bundle.js> <scenario.json>
//   abi_host [--module libenvoy_js.so] --abi-version    (prints what on_program_init returns)
//   --real-time: offer no clock, so that the module keeps time with its own timer thread (as
//   in Envoy); scheduler commits then arrive from that thread. Scripted clusters still answer
//   on the fake clock, so use it for scenarios without callouts.
//   --envoy: which Envoy's dynamic-module filter to play (default 1.39); see "Envoy versions".
//   --workers N: N worker threads share the one filter config, as Envoy's workers do; stream i
//   runs on worker i % N, the workers run at the same time, each on its own fake clock. The
//   transcripts are merged back in scenario order.
//   --config-destroy: the thread that destroys the filter and route configs after the streams
//   (default: a worker for 1.38 and 1.39, the main thread for 1.40).
//
// prints the transcript (the shape of `envoy-js replay`) on stdout; exits 1 with the reason on
// stderr when the module, the filter or the scenario cannot be loaded, 3 when the module does
// something Envoy would not accept (or that would crash Envoy).
//
// What plays which part of Envoy:
//  - test/host_stub/scripted_host.cc: the filter manager (stop/continue, buffering, local
//    replies, upstream and downstream, scripted clusters, the fake clock). The native stub runs
//    the runtime directly on the same model, so both give comparable transcripts.
//  - EnvoyFilter below: Envoy's dynamic-module HTTP filter around the module (the filter
//    object behind filter_envoy_ptr, its config, schedulers, callouts), as Envoy's
//    source/extensions/filters/http/dynamic_modules/ behaves.
//  - The envoy_dynamic_module_callback_* functions: exported from this executable (-rdynamic)
//    and bound by the dynamic loader, as Envoy's are; each maps onto the model's stream state.
//  - Threads: on_program_init and the configs run on the main thread, the streams on worker
//    threads, as in Envoy. Time is the model's fake clock, offered to the module through
//    host_clock.h.
// The stub fails loudly on what it does not implement instead of pretending. What a release
// Envoy accepts but a debug Envoy ASSERTs is recorded as a stream event instead (see
// EnvoyFilter::modifiesBuffer).
//
// Envoy versions: the differences the module can see, from Envoy's
// source/extensions/filters/http/dynamic_modules/{filter.cc,abi_impl.cc} at v1.38.3 and v1.39.0
// and from the 1.40.0 changelog:
//  - 1.38: one "in continue" flag for both directions. 1.39+: one per direction. In all, each
//    decode/encode hook sets it to (status == Continue), continue_decoding/continue_encoding
//    are ignored while it is true, and it is set to true after continueDecoding() /
//    continueEncoding() RETURNS: a hook of ours that stopped inside that continue is
//    overwritten.
//  - 1.38 lacks the callbacks added in 1.39: this binary exports
//    envoy_dynamic_module_callback_http_get_header_values (envoy_1_39.cc) and plays 1.39 and
//    1.40; abi_host_1_38, linked without it, plays 1.38 (the module's hooks.cc detects a 1.38 Envoy by
//    that symbol's absence). Each one execs the other when asked for the other's version.
//  - 1.38/1.39: when the stream ends inside the module's own send_response, reset_stream or
//    continue_* call, Envoy runs stream_complete and destroy before that call returns. 1.40
//    defers destroy (here: to the end of the stream's replay).
//  - 1.38: setting a filter-state key twice is an ENVOY_BUG (the value is kept, true is
//    returned). 1.39+: the value is replaced.
//  - 1.38/1.39: the filter config may be destroyed on a worker; 1.40 destroys route configs on
//    the main thread.
#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
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
#include "../host_stub/scenario_json.h"

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
  std::vector<std::string> labels;  // a metric vector's label names (Envoy: its tag names)
};

// Envoy's gauges: one value per gauge for the whole process, whichever worker moves it.
struct GaugeValues {
  std::mutex mutex;
  std::map<std::string, uint64_t> values;
  // Applies `op` to the gauge under the lock; returns its new value.
  template <typename Op>
  uint64_t update(const std::string& name, Op op) {
    std::lock_guard<std::mutex> lock(mutex);
    uint64_t& v = values[name];
    v = op(v);
    return v;
  }
};
GaugeValues gGauges;

// What Envoy holds for one process and one filter config (shared by the workers; written only
// on the main thread before they start).
struct AbiHost {
  Hooks hooks{};
  std::string filterName = "envoy-js";
  int envoy = 139;  // 138, 139 or 140
  // DynamicModuleHttpFilterConfig: metric definitions (one id space per kind, as in Envoy),
  // frozen once on_http_filter_config_new returned.
  std::vector<MetricDef> counters, gauges, histograms;
  bool metricsFrozen = false;
  envoy_dynamic_module_type_http_filter_config_module_ptr config = nullptr;
  std::map<std::string, envoy_dynamic_module_type_http_filter_per_route_config_module_ptr> routes;
  // Error lines the module logged while its config was being created.
  bool inConfig = false;
  std::vector<std::string> configErrors;
};
AbiHost gHost;

struct Inbox;

// What Envoy holds for one worker: its thread's own.
struct WorkerState {
  HostWorker* worker = nullptr;  // while a replay runs
  uint32_t index = 0;
  double lastNow = 0;
  std::map<uint64_t, uint64_t> clockTimers;  // module timer key -> fake-clock handle
  std::map<std::string, StreamTranscript*> streamsById;
  // Callout ids are Envoy's to choose ("arbitrary" in the ABI); one counter per worker, counted
  // per attempt, reads the same as the runtime's own numbering in events.
  uint64_t nextCalloutId = 1;
  uint64_t nextCommit = 1;
  Inbox* inbox = nullptr;
};
thread_local WorkerState tWorker;

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

const char* dirName(Direction d) { return d == Direction::Request ? "request" : "response"; }

// Envoy's DynamicModuleHttpFilter: one per stream, the filter_envoy_ptr the module sees.
class EnvoyFilter : public FilterUnderTest {
 public:
  explicit EnvoyFilter(HostStream& stream) : s_(stream), info_(stream.streamInfo()) {
    tWorker.streamsById[info_.id] = &stream.transcript();
    module_ = gHost.hooks.filter_new(gHost.config, this);
    if (module_ == nullptr) fatal("on_http_filter_new returned null");
  }
  // A commit is a post to this worker; one from another thread waits in the inbox.
  static void commitFrom(EnvoyFilter* f, Inbox* inbox, const std::weak_ptr<bool>& alive, uint64_t event);
  ~EnvoyFilter() override { *alive_ = false; }

  HostStream& stream() { return s_; }
  const StreamInfo& info() const { return info_; }
  // Envoy ran the module's destroy hook (in_module_filter_ is null, the callbacks are gone).
  bool destroyed() const { return module_ == nullptr; }
  // Inside the module's destroy hook.
  bool inDestroyHook() const { return inDestroyHook_; }
  std::string& scratch(int slot) { return scratch_[slot]; }
  uint64_t bufferLimit = kEnvoyDefaultBufferLimit;  // Envoy's per-stream buffer limit; the module may raise it
  uint64_t envoyBufferLimit() const override { return bufferLimit; }

  // ---- FilterUnderTest: Envoy's decode*/encode* ----
  HeadersStatus onRequestHeaders(bool endStream) override {
    return track<HeadersStatus>(Direction::Request,
                                [&] { return gHost.hooks.request_headers(this, module_, endStream); });
  }
  DataStatus onRequestData(bool endStream) override {
    return passes(Direction::Request, track<DataStatus>(Direction::Request, [&] {
                    return gHost.hooks.request_body(this, module_, endStream);
                  }));
  }
  TrailersStatus onRequestTrailers() override {
    return track<TrailersStatus>(Direction::Request, [&] { return gHost.hooks.request_trailers(this, module_); });
  }
  // After the filter's own local reply Envoy passes the reply's headers and body through
  // without calling the module (sent_local_reply_).
  HeadersStatus onResponseHeaders(bool endStream) override {
    if (sentLocalReply_) return HeadersStatus::Continue;
    return track<HeadersStatus>(Direction::Response,
                                [&] { return gHost.hooks.response_headers(this, module_, endStream); });
  }
  DataStatus onResponseData(bool endStream) override {
    if (sentLocalReply_) return DataStatus::Continue;
    return passes(Direction::Response, track<DataStatus>(Direction::Response, [&] {
                    return gHost.hooks.response_body(this, module_, endStream);
                  }));
  }
  TrailersStatus onResponseTrailers() override {
    if (sentLocalReply_) return TrailersStatus::Continue;
    return track<TrailersStatus>(Direction::Response, [&] { return gHost.hooks.response_trailers(this, module_); });
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
  // Envoy's onStreamComplete(): once, before destroy (reset streams included).
  void onComplete() override {
    if (completed_ || destroyed()) return;
    completed_ = true;
    gHost.hooks.stream_complete(this, module_);
  }
  // Envoy's deferred stream destroy: onStreamComplete (reset streams too), then the filter's
  // onDestroy: the module's destroy hook, then the pending callouts are cancelled.
  void onDestroy() override {
    if (destroyed()) return;
    if (!completed_) onComplete();
    if (destroyed()) return;  // a call of the module's in stream_complete ended it already
    auto module = module_;
    inDestroyHook_ = true;
    gHost.hooks.destroy(module);
    inDestroyHook_ = false;
    module_ = nullptr;
    for (uint64_t id : std::set<uint64_t>(callouts_)) s_.cancelCallout(id);
    callouts_.clear();
  }

  // ---- what the callbacks need ----
  void sentLocalReply() { sentLocalReply_ = true; }
  void addCallout(uint64_t id) { callouts_.insert(id); }

  // A call of the module's (send_response, reset_stream, continue_*) ended the stream: Envoy
  // 1.38/1.39 destroy it before that call returns (doDeferredStreamDestroy runs
  // onStreamComplete and the filters' onDestroy synchronously). 1.40 defers the destroy.
  void endIfOverInside() {
    if (gHost.envoy >= 140 || destroyed() || !s_.over()) return;
    s_.destroyInside();
  }

  // continueDecoding()/continueEncoding() as Envoy's DynamicModuleHttpFilter does them: only
  // when the flag says the last hook stopped; the flag is set after the continue returned.
  void continueDirection(Direction dir) {
    if (destroyed()) return;  // decoder_callbacks_ is null
    if (inHook_ > 0) fatal("continue_decoding/continue_encoding called inside a filter callback of the same stream");
    if (inContinue(dir)) {
      s_.recordEvent(std::string("continue ") + dirName(dir) + " ignored: Envoy's in-continue flag is set" +
                     (gHost.envoy == 138 ? " (one flag for both directions)" : ""));
      return;
    }
    if (!postedContinues_.empty()) postedContinues_.back().push_back(dir);
    // commonContinue() passes the buffered data on (doData) when there is a buffer.
    if (s_.envoyBuffer(dir) != nullptr) dataPassed_[static_cast<int>(dir)] = true;
    s_.continueNow(dir);
    if (!destroyed()) inContinue(dir) = true;
    endIfOverInside();
  }

  // A scheduler commit: Envoy posts on_http_filter_scheduled to the worker. The commit is
  // recorded where it happened and labelled when it ran by the continue it carried ("continue
  // request (posted)", as the native stub records its posts); a commit that carried none (a
  // timer) leaves no event.
  void commit(uint64_t event) {
    if (destroyed() || inDestroyHook_) return;  // Envoy marks the filter destroyed before the hook
    std::string token = "\x01posted " + std::to_string(tWorker.nextCommit++);
    s_.recordEvent(token);
    StreamTranscript* t = &s_.transcript();
    std::weak_ptr<bool> alive = alive_;
    tWorker.worker->post([this, alive, t, token, event] {
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
        it = events.insert(it, std::string("continue ") + dirName(d) + " (posted)");
        ++it;
      }
    });
  }
  std::weak_ptr<bool> aliveToken() const { return alive_; }

  // Envoy's ASSERT(latest_data_decoding_filter_ == this) in modifyDecodingBuffer (and the
  // encoding one): once data of `dir` went past this filter, a later filter is the latest data
  // filter for good, and append_body/drain_body on an existing Buffered body (which call
  // modify*Buffer) abort a debug or ASan Envoy. A release Envoy compiles the ASSERT out.
  void modifiesBuffer(Direction dir, const char* callback) {
    if (!dataPassed_[static_cast<int>(dir)]) return;
    s_.recordEvent(std::string(callback) + " on the buffered " + dirName(dir) +
                   " body after data went past this filter (modify" +
                   (dir == Direction::Request ? "Decoding" : "Encoding") + "Buffer: ASSERT in a debug Envoy)");
  }

 private:
  DataStatus passes(Direction dir, DataStatus status) {
    if (status == DataStatus::Continue) dataPassed_[static_cast<int>(dir)] = true;
    return status;
  }
  // Envoy 1.38's in_continue_, or 1.39's decode_in_continue_ / encode_in_continue_.
  bool& inContinue(Direction dir) { return inContinue_[gHost.envoy == 138 ? 0 : static_cast<int>(dir)]; }
  // Runs a decode/encode hook: marks it (a continue from inside one is an error in Envoy) and
  // keeps Envoy's in-continue flag (a later continue only acts after a hook that stopped).
  template <typename Status, typename Hook>
  Status track(Direction dir, Hook hook) {
    if (destroyed()) return static_cast<Status>(0);  // Envoy calls no hook of a destroyed stream
    inHook_++;
    auto status = hook();
    inHook_--;
    inContinue(dir) = static_cast<int>(status) == 0;
    return static_cast<Status>(status);
  }
  HostStream& s_;
  StreamInfo info_;
  envoy_dynamic_module_type_http_filter_module_ptr module_ = nullptr;
  bool inContinue_[2] = {false, false};  // Envoy initialises them false
  bool dataPassed_[2] = {false, false};  // data of that direction went on past this filter
  bool sentLocalReply_ = false;
  bool completed_ = false;
  bool inDestroyHook_ = false;
  int inHook_ = 0;
  std::set<uint64_t> callouts_;
  std::vector<std::vector<Direction>> postedContinues_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  // Storage behind pointers handed to the module, valid until the next call of that kind:
  // [0..3] body slices by body type, [4] metadata strings, [5] filter state.
  std::string scratch_[7];  // 6: an attribute answered from the model
};

EnvoyFilter* filterOf(envoy_dynamic_module_type_http_filter_envoy_ptr p) { return static_cast<EnvoyFilter*>(p); }

// What a callback that needs the stream does once Envoy destroyed it. `crashes`: Envoy 1.38/1.39
// dereference the null decoder_callbacks_ there (a crash), so the stub stops. Otherwise true
// means: answer "nothing" (false, 0, no-op), as Envoy does.
bool streamGone(EnvoyFilter* f, const char* callback, bool crashes) {
  if (f->inDestroyHook()) {
    fatal(std::string(callback) + " inside on_http_filter_destroy: the ABI forbids filter_envoy_ptr there, and " +
          "Envoy 1.40 (which tears the stream down first) makes it a no-op");
  }
  if (!f->destroyed()) return false;
  if (crashes) {
    fatal(std::string(callback) + " after Envoy destroyed the stream (inside the module's own call): Envoy " +
          "1.38/1.39 dereference the null decoder_callbacks_ there");
  }
  return true;
}

// Envoy's scheduler: a weak reference to the filter, and (here) the worker it posts to.
struct Scheduler {
  EnvoyFilter* filter;
  std::weak_ptr<bool> alive;
  Inbox* inbox;
};

// Commits made on other threads (the module's timer thread with --real-time), for a worker.
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
};

void EnvoyFilter::commitFrom(EnvoyFilter* f, Inbox* inbox, const std::weak_ptr<bool>& alive, uint64_t event) {
  if (std::this_thread::get_id() != inbox->worker) {
    std::lock_guard<std::mutex> lock(inbox->mutex);
    inbox->items.push_back({f, alive, event});
    inbox->ready.notify_one();
    return;
  }
  auto a = alive.lock();
  if (a && *a) f->commit(event);
}

// The worker's idle wait with --real-time: the next commits from other threads.
bool waitForCommits() {
  Inbox& inbox = *tWorker.inbox;
  std::vector<Inbox::Item> items;
  {
    std::unique_lock<std::mutex> lock(inbox.mutex);
    inbox.ready.wait_for(lock, std::chrono::seconds(10), [&] { return !inbox.items.empty(); });
    items.swap(inbox.items);
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

// ---- Envoy's header maps (source/common/http/header_map_impl.cc) ----
// Request header maps map the legacy "host" to ":authority" for get, add, set and remove. The
// O(1) "inline" headers (envoy/http/header_map.h: INLINE_REQ_HEADERS, INLINE_RESP_HEADERS,
// INLINE_REQ_RESP_HEADERS, INLINE_RESP_HEADERS_TRAILERS) hold one entry each: adding to one
// that is present appends ",value" to it (appendToHeader). Codecs build the maps with the
// same calls, so a message never holds two entries of an inline header. Headers that an Envoy
// build's extensions register as inline on top of these (authorization, cache-control, ...)
// depend on the build and are not modelled.
const std::set<std::string, std::less<>> kInlineRequestOnly = {"x-client-trace-id",
                                                               "x-envoy-downstream-service-cluster",
                                                               "x-envoy-downstream-service-node",
                                                               "x-envoy-external-address",
                                                               "x-envoy-force-trace",
                                                               "x-envoy-hedge-on-per-try-timeout",
                                                               "x-envoy-internal",
                                                               "x-envoy-ip-tags",
                                                               "x-envoy-retry-on",
                                                               "x-envoy-retry-grpc-on",
                                                               "x-envoy-retriable-status-codes",
                                                               "x-envoy-retriable-header-names",
                                                               "x-envoy-is-timeout-retry",
                                                               "x-envoy-original-path",
                                                               "x-envoy-original-host",
                                                               "x-envoy-original-url",
                                                               "x-envoy-upstream-alt-stat-name",
                                                               "x-envoy-upstream-rq-timeout-alt-response",
                                                               "expect",
                                                               "x-forwarded-client-cert",
                                                               "x-forwarded-for",
                                                               "x-forwarded-host",
                                                               "x-forwarded-proto",
                                                               "grpc-timeout",
                                                               ":authority",
                                                               ":method",
                                                               ":path",
                                                               ":protocol",
                                                               ":scheme",
                                                               "te",
                                                               "user-agent",
                                                               "x-envoy-expected-rq-timeout-ms",
                                                               "x-envoy-max-retries",
                                                               "x-envoy-upstream-rq-timeout-ms",
                                                               "x-envoy-upstream-rq-per-try-timeout-ms",
                                                               "x-envoy-upstream-stream-duration-ms",
                                                               "x-forwarded-port"};
const std::set<std::string, std::less<>> kInlineResponseOnly = {"date",
                                                                "x-envoy-degraded",
                                                                "x-envoy-immediate-health-check-fail",
                                                                "x-envoy-ratelimited",
                                                                "x-envoy-upstream-canary",
                                                                "x-envoy-upstream-healthchecked-cluster",
                                                                "location",
                                                                "server",
                                                                "x-envoy-upstream-service-time",
                                                                ":status",
                                                                "grpc-message",
                                                                "grpc-status"};
const std::set<std::string, std::less<>> kInlineBoth = {
    "connection",     "content-type",         "x-envoy-decorator-operation", "keep-alive", "proxy-connection",
    "proxy-status",   "x-request-id",         "transfer-encoding",           "upgrade",    "via",
    "content-length", "x-envoy-attempt-count"};

bool isInline(envoy_dynamic_module_type_http_header_type type, std::string_view key) {
  switch (type) {
    case envoy_dynamic_module_type_http_header_type_RequestHeader:
      return kInlineRequestOnly.count(key) > 0 || kInlineBoth.count(key) > 0;
    case envoy_dynamic_module_type_http_header_type_ResponseHeader:
      return kInlineResponseOnly.count(key) > 0 || kInlineBoth.count(key) > 0;
    case envoy_dynamic_module_type_http_header_type_ResponseTrailer:
      return key == "grpc-message" || key == "grpc-status";
    case envoy_dynamic_module_type_http_header_type_RequestTrailer: return false;
  }
  return false;
}

// The key as Envoy's map looks it up: lower case; "host" is ":authority" in request headers.
std::string envoyKey(envoy_dynamic_module_type_http_header_type type, envoy_dynamic_module_type_module_buffer key) {
  std::string k = lower(str(key));
  if (type == envoy_dynamic_module_type_http_header_type_RequestHeader && k == "host") return ":authority";
  return k;
}

// Every header map of the scripted host is a ListHeaderMap (its Side's headers and trailers).
ListHeaderMap* inPlace(HeaderMap* map) { return static_cast<ListHeaderMap*>(map); }

// What Envoy's codec would have made of the scenario's message: "host" becomes ":authority" in
// request headers, repeated inline headers become one entry joined with ",".
void asEnvoyBuiltIt(envoy_dynamic_module_type_http_header_type type, HeaderMap* map) {
  struct Seen {
    envoy_dynamic_module_type_http_header_type type;
    std::map<std::string, size_t> counts;
    bool host = false;
  } seen{type, {}, false};
  map->forEach(
      [](void* opaque, std::string_view k, std::string_view) {
        auto* s = static_cast<Seen*>(opaque);
        if (s->type == envoy_dynamic_module_type_http_header_type_RequestHeader && k == "host") s->host = true;
        if (isInline(s->type, k)) s->counts[std::string(k)]++;
      },
      &seen);
  auto merged = [](const std::vector<std::string>& values) {
    std::string joined;
    for (const std::string& v : values) joined += (joined.empty() ? "" : ",") + v;
    return joined;
  };
  auto all = [&](const std::string& name) {
    std::vector<std::string> values;
    std::string_view v;
    size_t n = map->get(name, 0, &v);
    for (size_t i = 0; i < n; i++) {
      map->get(name, i, &v);
      values.emplace_back(v);
    }
    return values;
  };
  if (seen.host) {
    std::vector<std::string> values = all(":authority");
    for (const std::string& v : all("host")) values.push_back(v);
    map->remove("host");
    inPlace(map)->replaceInPlace(":authority", merged(values));
    seen.counts.erase(":authority");
  }
  for (const auto& [name, n] : seen.counts) {
    if (n > 1) inPlace(map)->replaceInPlace(name, merged(all(name)));
  }
}

HeaderMap* headerMapOf(EnvoyFilter* f, envoy_dynamic_module_type_http_header_type type, const char* callback) {
  if (static_cast<int>(type) < 0 || static_cast<int>(type) > 3) fatal("bad header map type " + std::to_string(type));
  if (streamGone(f, callback, false)) return nullptr;  // Envoy: the callbacks are gone, no map
  HeaderMap* map = f->stream().headerMap(static_cast<HeaderMapKind>(type));
  if (map != nullptr) asEnvoyBuiltIt(type, map);
  return map;
}

// Bodies: Received* is the data of the running body hook (valid in that hook even after a
// nested destroy); Buffered* is Envoy's decodingBuffer()/encodingBuffer(), null until some
// filter buffered, and out of reach once the stream is destroyed.
Direction bodyDir(envoy_dynamic_module_type_http_body_type type) {
  return type == envoy_dynamic_module_type_http_body_type_ReceivedRequestBody ||
                 type == envoy_dynamic_module_type_http_body_type_BufferedRequestBody
             ? Direction::Request
             : Direction::Response;
}
bool isBuffered(envoy_dynamic_module_type_http_body_type type) {
  return type == envoy_dynamic_module_type_http_body_type_BufferedRequestBody ||
         type == envoy_dynamic_module_type_http_body_type_BufferedResponseBody;
}
BodyBuffer* bodyOf(EnvoyFilter* f, envoy_dynamic_module_type_http_body_type type, const char* callback) {
  if (static_cast<int>(type) < 0 || static_cast<int>(type) > 3) fatal("bad body type " + std::to_string(type));
  Direction dir = bodyDir(type);
  if (!isBuffered(type)) {
    if (f->inDestroyHook()) streamGone(f, callback, false);
    return f->stream().currentData(dir);
  }
  streamGone(f, callback, true);
  return f->stream().envoyBuffer(dir);
}

// The module's log lines (the format in its hooks.cc) go where the native stub puts them.
void attributeLog(envoy_dynamic_module_type_log_level level, const std::string& line) {
  std::string lead = "envoy_js(" + gHost.filterName + ")";
  std::string tag = std::string("[") + levelName(level) + "] ";
  if (tWorker.worker == nullptr) {
    std::fprintf(stderr, "abi_host: module log outside a replay: %s\n", line.c_str());
    return;
  }
  Transcript& t = tWorker.worker->transcript();
  // The module's count of worker engines (process-wide bookkeeping at trace level, which the
  // Envoy of test/envoy does not print and the wasm engine has no counterpart of).
  if (line.rfind("envoy_js: worker engines alive: ", 0) == 0) return;  // kLiveEnginesLog, module/worker.h
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
    for (const auto& [id, st] : tWorker.streamsById) {
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

// ---- the fake clock, offered to the module (each worker's own) ----

double clockNow() { return tWorker.worker ? tWorker.worker->now() : tWorker.lastNow; }
void clockArm(uint64_t key, double delayMs, void (*fire)(uint64_t)) {
  if (tWorker.worker == nullptr) return;  // the replay is over
  tWorker.clockTimers[key] = tWorker.worker->at(delayMs, [key, fire] {
    tWorker.clockTimers.erase(key);
    fire(key);
  });
}
void clockDisarm(uint64_t key) {
  auto it = tWorker.clockTimers.find(key);
  if (it == tWorker.clockTimers.end()) return;
  if (tWorker.worker) tWorker.worker->cancelAt(it->second);
  tWorker.clockTimers.erase(it);
}
const envoy_js_host_clock kFakeClock = {clockNow, clockArm, clockDisarm};

}  // namespace

// envoy_dynamic_module_callback_http_get_header_values (1.39+), for envoy_1_39.cc.
bool getHeaderValues(envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr,
                     envoy_dynamic_module_type_http_header_type header_type,
                     envoy_dynamic_module_type_module_buffer key,
                     envoy_dynamic_module_type_envoy_buffer* result_buffer) {
  HeaderMap* map = headerMapOf(filterOf(filter_envoy_ptr), header_type, "get_header_values");
  if (map == nullptr) return false;
  std::string k = envoyKey(header_type, key);
  std::string_view v;
  size_t n = map->get(k, 0, &v);
  for (size_t i = 0; i < n; i++) {
    map->get(k, i, &v);
    result_buffer[i] = {v.data(), v.size()};
  }
  return true;
}

}  // namespace envoy_js::abi_host

using namespace envoy_js;
using namespace envoy_js::abi_host;
using namespace envoy_js::stub;

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
                                                envoy_dynamic_module_type_module_buffer name,
                                                const envoy_dynamic_module_type_module_buffer* labels,
                                                size_t labelCount, size_t* id) {
  if (gHost.metricsFrozen) return envoy_dynamic_module_type_metrics_result_Frozen;
  MetricDef def{str(name), kind, {}};
  for (size_t i = 0; i < labelCount; i++) def.labels.push_back(str(labels[i]));
  *id = defs.size();
  defs.push_back(std::move(def));
  return envoy_dynamic_module_type_metrics_result_Success;
}
// Envoy refuses label values that do not match the definition's label names in number.
bool labelValues(const MetricDef& m, const envoy_dynamic_module_type_module_buffer* values, size_t count,
                 std::vector<std::string>* out) {
  if (count != m.labels.size() || (count > 0 && values == nullptr)) return false;
  for (size_t i = 0; i < count; i++) out->push_back(str(values[i]));
  return true;
}
// The runtime's own counters (envoy_js.*) go to `counters`, the filter's metrics to `metrics`.
// The module's own gauge (envoy_js.engines) is no part of a filter's transcript (the wasm engine
// has no such stat); test/envoy/workers.test.mjs checks it in a real Envoy.
void record(MetricDef& m, const std::vector<std::string>& values, uint64_t value) {
  if (tWorker.worker == nullptr) fatal("metric " + m.name + " recorded outside a worker's replay");
  Transcript& t = tWorker.worker->transcript();
  if (m.name.rfind("envoy_js.", 0) == 0) {
    if (m.kind == MetricKind::Counter) t.counters[m.name] += value;
    return;
  }
  MetricValue& v = t.metrics[metricSeriesName(m.name, m.labels, values)];
  v.kind = m.kind;
  if (m.kind == MetricKind::Counter) v.value += static_cast<double>(value);
  else if (m.kind == MetricKind::Gauge) v.value = static_cast<double>(value);  // the process-wide value
  else v.samples.push_back(static_cast<double>(value));
}
envoy_dynamic_module_type_metrics_result moveGauge(size_t id, const envoy_dynamic_module_type_module_buffer* labels,
                                                   size_t labelCount, int sign, uint64_t value) {
  MetricDef* m = metricDef(gHost.gauges, id);
  if (m == nullptr) return envoy_dynamic_module_type_metrics_result_MetricNotFound;
  std::vector<std::string> values;
  if (!labelValues(*m, labels, labelCount, &values)) return envoy_dynamic_module_type_metrics_result_InvalidLabels;
  // Envoy's gauge is a uint64_t that adds and subtracts with wrap-around; one per series.
  uint64_t now = gGauges.update(metricSeriesName(m->name, m->labels, values), [&](uint64_t v) {
    return sign > 0 ? v + value : sign < 0 ? v - value : value;
  });
  record(*m, values, now);
  return envoy_dynamic_module_type_metrics_result_Success;
}
}  // namespace

ABI_HOST_EXPORT envoy_dynamic_module_type_metrics_result
envoy_dynamic_module_callback_http_filter_config_define_counter(envoy_dynamic_module_type_http_filter_config_envoy_ptr,
                                                                envoy_dynamic_module_type_module_buffer name,
                                                                envoy_dynamic_module_type_module_buffer* label_names,
                                                                size_t label_names_length, size_t* counter_id_ptr) {
  return define(gHost.counters, MetricKind::Counter, name, label_names, label_names_length, counter_id_ptr);
}
ABI_HOST_EXPORT envoy_dynamic_module_type_metrics_result envoy_dynamic_module_callback_http_filter_config_define_gauge(
    envoy_dynamic_module_type_http_filter_config_envoy_ptr, envoy_dynamic_module_type_module_buffer name,
    envoy_dynamic_module_type_module_buffer* label_names, size_t label_names_length, size_t* gauge_id_ptr) {
  return define(gHost.gauges, MetricKind::Gauge, name, label_names, label_names_length, gauge_id_ptr);
}
ABI_HOST_EXPORT envoy_dynamic_module_type_metrics_result
envoy_dynamic_module_callback_http_filter_config_define_histogram(
    envoy_dynamic_module_type_http_filter_config_envoy_ptr, envoy_dynamic_module_type_module_buffer name,
    envoy_dynamic_module_type_module_buffer* label_names, size_t label_names_length, size_t* histogram_id_ptr) {
  return define(gHost.histograms, MetricKind::Histogram, name, label_names, label_names_length, histogram_id_ptr);
}
ABI_HOST_EXPORT envoy_dynamic_module_type_metrics_result envoy_dynamic_module_callback_http_filter_increment_counter(
    envoy_dynamic_module_type_http_filter_envoy_ptr, size_t id, envoy_dynamic_module_type_module_buffer* label_values,
    size_t labels, uint64_t value) {
  MetricDef* m = metricDef(gHost.counters, id);
  if (m == nullptr) return envoy_dynamic_module_type_metrics_result_MetricNotFound;
  std::vector<std::string> values;
  if (!labelValues(*m, label_values, labels, &values)) return envoy_dynamic_module_type_metrics_result_InvalidLabels;
  record(*m, values, value);
  return envoy_dynamic_module_type_metrics_result_Success;
}
ABI_HOST_EXPORT envoy_dynamic_module_type_metrics_result envoy_dynamic_module_callback_http_filter_set_gauge(
    envoy_dynamic_module_type_http_filter_envoy_ptr, size_t id, envoy_dynamic_module_type_module_buffer* label_values,
    size_t labels, uint64_t value) {
  return moveGauge(id, label_values, labels, 0, value);
}
ABI_HOST_EXPORT envoy_dynamic_module_type_metrics_result envoy_dynamic_module_callback_http_filter_increment_gauge(
    envoy_dynamic_module_type_http_filter_envoy_ptr, size_t id, envoy_dynamic_module_type_module_buffer* label_values,
    size_t labels, uint64_t value) {
  return moveGauge(id, label_values, labels, 1, value);
}
ABI_HOST_EXPORT envoy_dynamic_module_type_metrics_result envoy_dynamic_module_callback_http_filter_decrement_gauge(
    envoy_dynamic_module_type_http_filter_envoy_ptr, size_t id, envoy_dynamic_module_type_module_buffer* label_values,
    size_t labels, uint64_t value) {
  return moveGauge(id, label_values, labels, -1, value);
}
ABI_HOST_EXPORT envoy_dynamic_module_type_metrics_result
envoy_dynamic_module_callback_http_filter_record_histogram_value(envoy_dynamic_module_type_http_filter_envoy_ptr,
                                                                 size_t id,
                                                                 envoy_dynamic_module_type_module_buffer* label_values,
                                                                 size_t labels, uint64_t value) {
  MetricDef* m = metricDef(gHost.histograms, id);
  if (m == nullptr) return envoy_dynamic_module_type_metrics_result_MetricNotFound;
  std::vector<std::string> values;
  if (!labelValues(*m, label_values, labels, &values)) return envoy_dynamic_module_type_metrics_result_InvalidLabels;
  record(*m, values, value);
  return envoy_dynamic_module_type_metrics_result_Success;
}

// Header maps: Envoy lower-cases every name it is given; see asEnvoyBuiltIt and envoyKey.
ABI_HOST_EXPORT bool envoy_dynamic_module_callback_http_get_header(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr,
    envoy_dynamic_module_type_http_header_type header_type, envoy_dynamic_module_type_module_buffer key,
    envoy_dynamic_module_type_envoy_buffer* result_buffer, size_t index, size_t* optional_size) {
  HeaderMap* map = headerMapOf(filterOf(filter_envoy_ptr), header_type, "get_header");
  *result_buffer = {nullptr, 0};
  if (optional_size) *optional_size = 0;
  if (map == nullptr) return false;
  std::string_view value;
  size_t n = map->get(envoyKey(header_type, key), index, &value);
  if (optional_size) *optional_size = n;
  if (index >= n) return false;
  *result_buffer = {value.data(), value.size()};
  return true;
}
ABI_HOST_EXPORT size_t
envoy_dynamic_module_callback_http_get_headers_size(envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr,
                                                    envoy_dynamic_module_type_http_header_type header_type) {
  HeaderMap* map = headerMapOf(filterOf(filter_envoy_ptr), header_type, "get_headers_size");
  return map ? map->size() : 0;
}
ABI_HOST_EXPORT bool envoy_dynamic_module_callback_http_get_headers(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr,
    envoy_dynamic_module_type_http_header_type header_type,
    envoy_dynamic_module_type_envoy_http_header* result_headers) {
  HeaderMap* map = headerMapOf(filterOf(filter_envoy_ptr), header_type, "get_headers");
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
// addCopy: a new entry, except for an inline header that is present: ",value" is appended to it.
ABI_HOST_EXPORT bool envoy_dynamic_module_callback_http_add_header(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr,
    envoy_dynamic_module_type_http_header_type header_type, envoy_dynamic_module_type_module_buffer key,
    envoy_dynamic_module_type_module_buffer value) {
  HeaderMap* map = headerMapOf(filterOf(filter_envoy_ptr), header_type, "add_header");
  if (map == nullptr || value.ptr == nullptr || value.length == 0) return false;
  std::string k = envoyKey(header_type, key);
  std::string_view existing;
  if (isInline(header_type, k) && map->get(k, 0, &existing) > 0) {
    inPlace(map)->replaceInPlace(k, std::string(existing) + "," + str(value));
  } else {
    map->append(k, str(value));
  }
  return true;
}
// setCopy, or remove for an empty value.
ABI_HOST_EXPORT bool envoy_dynamic_module_callback_http_set_header(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr,
    envoy_dynamic_module_type_http_header_type header_type, envoy_dynamic_module_type_module_buffer key,
    envoy_dynamic_module_type_module_buffer value) {
  HeaderMap* map = headerMapOf(filterOf(filter_envoy_ptr), header_type, "set_header");
  if (map == nullptr) return false;
  std::string k = envoyKey(header_type, key);
  if (value.ptr == nullptr || value.length == 0) map->remove(k);
  else map->set(k, str(value));
  return true;
}

ABI_HOST_EXPORT void envoy_dynamic_module_callback_http_send_response(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr, uint32_t status_code,
    envoy_dynamic_module_type_module_http_header* headers_vector, size_t headers_vector_size,
    envoy_dynamic_module_type_module_buffer body, envoy_dynamic_module_type_module_buffer details) {
  EnvoyFilter* f = filterOf(filter_envoy_ptr);
  if (streamGone(f, "send_response", false)) return;
  LocalReply reply;
  reply.status = static_cast<int>(status_code);
  reply.body = str(body);
  reply.details = str(details);
  if (reply.details.empty()) reply.details = "dynamic_module";
  for (size_t i = 0; i < headers_vector_size; i++) {
    const auto& h = headers_vector[i];
    reply.headers.emplace_back(lower(std::string_view(h.key_ptr, h.key_length)),
                               std::string(h.value_ptr, h.value_length));
  }
  f->sentLocalReply();
  f->stream().sendLocalReply(reply);
  f->endIfOverInside();
}

// Bodies. Envoy hands out its buffer as slices; this stub cuts every body in two so that a
// module that reads only the first slice shows it.
ABI_HOST_EXPORT size_t
envoy_dynamic_module_callback_http_get_body_size(envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr,
                                                 envoy_dynamic_module_type_http_body_type body_type) {
  BodyBuffer* b = bodyOf(filterOf(filter_envoy_ptr), body_type, "get_body_size");
  return b ? b->length() : 0;
}
ABI_HOST_EXPORT size_t envoy_dynamic_module_callback_http_get_body_chunks_size(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr,
    envoy_dynamic_module_type_http_body_type body_type) {
  BodyBuffer* b = bodyOf(filterOf(filter_envoy_ptr), body_type, "get_body_chunks_size");
  size_t n = b ? b->length() : 0;
  return n == 0 ? 0 : n == 1 ? 1 : 2;
}
ABI_HOST_EXPORT bool envoy_dynamic_module_callback_http_get_body_chunks(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr,
    envoy_dynamic_module_type_http_body_type body_type, envoy_dynamic_module_type_envoy_buffer* result_buffer_vector) {
  EnvoyFilter* f = filterOf(filter_envoy_ptr);
  BodyBuffer* b = bodyOf(f, body_type, "get_body_chunks");
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
// Received*: false outside a body hook. Buffered*: a null buffer is created
// (addDecodedData/addEncodedData).
ABI_HOST_EXPORT bool envoy_dynamic_module_callback_http_append_body(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr,
    envoy_dynamic_module_type_http_body_type body_type, envoy_dynamic_module_type_module_buffer data) {
  EnvoyFilter* f = filterOf(filter_envoy_ptr);
  BodyBuffer* b = bodyOf(f, body_type, "append_body");
  if (b != nullptr && isBuffered(body_type)) f->modifiesBuffer(bodyDir(body_type), "append_body");
  if (b == nullptr && isBuffered(body_type)) b = f->stream().createEnvoyBuffer(bodyDir(body_type));
  if (b == nullptr) return false;
  b->append(str(data));
  return true;
}
ABI_HOST_EXPORT bool envoy_dynamic_module_callback_http_drain_body(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr,
    envoy_dynamic_module_type_http_body_type body_type, size_t number_of_bytes) {
  EnvoyFilter* f = filterOf(filter_envoy_ptr);
  BodyBuffer* b = bodyOf(f, body_type, "drain_body");
  if (b == nullptr) return false;
  if (isBuffered(body_type)) f->modifiesBuffer(bodyDir(body_type), "drain_body");
  std::string all = readAll(b);
  b->replace(all.substr(std::min(number_of_bytes, all.size())));
  return true;
}
// current_*_body_ == decodingBuffer()/encodingBuffer(): the data of the running body hook is
// an earlier filter's buffer (scenario "earlierFilterBuffers").
ABI_HOST_EXPORT bool envoy_dynamic_module_callback_http_received_buffered_request_body(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr) {
  EnvoyFilter* f = filterOf(filter_envoy_ptr);
  if (f->stream().currentData(Direction::Request) == nullptr) return false;
  streamGone(f, "received_buffered_request_body", true);
  return f->stream().receivedIsBuffered(Direction::Request);
}
ABI_HOST_EXPORT bool envoy_dynamic_module_callback_http_received_buffered_response_body(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr) {
  EnvoyFilter* f = filterOf(filter_envoy_ptr);
  if (f->stream().currentData(Direction::Response) == nullptr) return false;
  streamGone(f, "received_buffered_response_body", true);
  return f->stream().receivedIsBuffered(Direction::Response);
}

// Dynamic metadata: the model keeps typed values (MetadataValue, Envoy's Struct values); the ABI
// reads and writes the scalars. Without a stream (destroyed) setting is a silent no-op and
// getting finds nothing.
namespace {
MetadataValue numberValue(double d) {
  MetadataValue v;
  v.kind = MetadataValue::Kind::Number;
  v.number = d;
  return v;
}
MetadataValue stringValue(std::string s) {
  MetadataValue v;
  v.kind = MetadataValue::Kind::String;
  v.string = std::move(s);
  return v;
}
MetadataValue boolValue(bool b) {
  MetadataValue v;
  v.kind = MetadataValue::Kind::Bool;
  v.boolean = b;
  return v;
}
}  // namespace
ABI_HOST_EXPORT void envoy_dynamic_module_callback_http_set_dynamic_metadata_number(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr, envoy_dynamic_module_type_module_buffer ns,
    envoy_dynamic_module_type_module_buffer key, double value) {
  EnvoyFilter* f = filterOf(filter_envoy_ptr);
  if (streamGone(f, "set_dynamic_metadata_number", false)) return;
  f->stream().setMetadata(str(ns), str(key), numberValue(value));
}
ABI_HOST_EXPORT void envoy_dynamic_module_callback_http_set_dynamic_metadata_string(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr, envoy_dynamic_module_type_module_buffer ns,
    envoy_dynamic_module_type_module_buffer key, envoy_dynamic_module_type_module_buffer value) {
  EnvoyFilter* f = filterOf(filter_envoy_ptr);
  if (streamGone(f, "set_dynamic_metadata_string", false)) return;
  f->stream().setMetadata(str(ns), str(key), stringValue(str(value)));
}
ABI_HOST_EXPORT void envoy_dynamic_module_callback_http_set_dynamic_metadata_bool(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr, envoy_dynamic_module_type_module_buffer ns,
    envoy_dynamic_module_type_module_buffer key, bool value) {
  EnvoyFilter* f = filterOf(filter_envoy_ptr);
  if (streamGone(f, "set_dynamic_metadata_bool", false)) return;
  f->stream().setMetadata(str(ns), str(key), boolValue(value));
}
namespace {
MetadataValue metadataOf(envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr,
                         envoy_dynamic_module_type_metadata_source source, envoy_dynamic_module_type_module_buffer ns,
                         envoy_dynamic_module_type_module_buffer key) {
  EnvoyFilter* f = filterOf(filter_envoy_ptr);
  if (streamGone(f, "get_metadata", false)) return {};
  if (source == envoy_dynamic_module_type_metadata_source_Route) {
    return f->stream().getRouteMetadata(str(ns), str(key)).value_or(MetadataValue{});
  }
  // Cluster and host metadata: the scenario format has none.
  if (source != envoy_dynamic_module_type_metadata_source_Dynamic) return {};
  return f->stream().getMetadata(str(ns), str(key)).value_or(MetadataValue{});
}
}  // namespace
ABI_HOST_EXPORT bool envoy_dynamic_module_callback_http_get_metadata_number(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr, envoy_dynamic_module_type_metadata_source source,
    envoy_dynamic_module_type_module_buffer ns, envoy_dynamic_module_type_module_buffer key, double* result) {
  MetadataValue v = metadataOf(filter_envoy_ptr, source, ns, key);
  if (v.kind != MetadataValue::Kind::Number) return false;
  *result = v.number;
  return true;
}
ABI_HOST_EXPORT bool envoy_dynamic_module_callback_http_get_metadata_string(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr, envoy_dynamic_module_type_metadata_source source,
    envoy_dynamic_module_type_module_buffer ns, envoy_dynamic_module_type_module_buffer key,
    envoy_dynamic_module_type_envoy_buffer* result) {
  MetadataValue v = metadataOf(filter_envoy_ptr, source, ns, key);
  if (v.kind != MetadataValue::Kind::String) return false;
  std::string& keep = filterOf(filter_envoy_ptr)->scratch(4);
  keep = v.string;
  *result = {keep.data(), keep.size()};
  return true;
}
ABI_HOST_EXPORT bool envoy_dynamic_module_callback_http_get_metadata_bool(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr, envoy_dynamic_module_type_metadata_source source,
    envoy_dynamic_module_type_module_buffer ns, envoy_dynamic_module_type_module_buffer key, bool* result) {
  MetadataValue v = metadataOf(filter_envoy_ptr, source, ns, key);
  if (v.kind != MetadataValue::Kind::Bool) return false;
  *result = v.boolean;
  return true;
}

// Filter state. 1.38 stores values ReadOnly: a second set of a key is an IS_ENVOY_BUG (an error
// log and the envoy_bug counter in release builds, an abort in debug builds); the first value
// stays and the callback still returns true. 1.39 replaces the value.
ABI_HOST_EXPORT bool envoy_dynamic_module_callback_http_set_filter_state_bytes(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr, envoy_dynamic_module_type_module_buffer key,
    envoy_dynamic_module_type_module_buffer value) {
  EnvoyFilter* f = filterOf(filter_envoy_ptr);
  if (streamGone(f, "set_filter_state_bytes", false)) return false;
  if (gHost.envoy == 138 && f->stream().getFilterState(str(key))) {
    f->stream().recordEvent("ENVOY_BUG: filter state `" + str(key) + "` set twice (ReadOnly); the first value is kept");
    return true;
  }
  f->stream().setFilterState(str(key), str(value));
  return true;
}
ABI_HOST_EXPORT bool envoy_dynamic_module_callback_http_get_filter_state_bytes(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr, envoy_dynamic_module_type_module_buffer key,
    envoy_dynamic_module_type_envoy_buffer* result) {
  EnvoyFilter* f = filterOf(filter_envoy_ptr);
  if (streamGone(f, "get_filter_state_bytes", false)) return false;
  auto v = f->stream().getFilterState(str(key));
  if (!v) return false;
  std::string& keep = f->scratch(5);
  keep = *v;
  *result = {keep.data(), keep.size()};
  return true;
}

ABI_HOST_EXPORT envoy_dynamic_module_type_http_filter_scheduler_module_ptr
envoy_dynamic_module_callback_http_filter_scheduler_new(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr) {
  EnvoyFilter* f = filterOf(filter_envoy_ptr);
  if (tWorker.inbox == nullptr) fatal("scheduler_new outside a worker thread");
  return new Scheduler{f, f->aliveToken(), tWorker.inbox};
}
ABI_HOST_EXPORT void envoy_dynamic_module_callback_http_filter_scheduler_commit(
    envoy_dynamic_module_type_http_filter_scheduler_module_ptr scheduler_module_ptr, uint64_t event_id) {
  auto* s = static_cast<Scheduler*>(scheduler_module_ptr);
  EnvoyFilter::commitFrom(s->filter, s->inbox, s->alive, event_id);
}
ABI_HOST_EXPORT void envoy_dynamic_module_callback_http_filter_scheduler_delete(
    envoy_dynamic_module_type_http_filter_scheduler_module_ptr scheduler_module_ptr) {
  delete static_cast<Scheduler*>(scheduler_module_ptr);
}

// 1.38 reaches decoder_callbacks_->downstreamCallbacks() unchecked; 1.39 checks.
ABI_HOST_EXPORT void envoy_dynamic_module_callback_http_clear_route_cache(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr) {
  EnvoyFilter* f = filterOf(filter_envoy_ptr);
  if (streamGone(f, "clear_route_cache", gHost.envoy == 138)) return;
  f->stream().clearRouteCache();
}

// Envoy accepts an IP address with an optional port only (the runtime checked that already).
ABI_HOST_EXPORT bool envoy_dynamic_module_callback_http_set_upstream_override_host(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr, envoy_dynamic_module_type_module_buffer host,
    bool strict) {
  EnvoyFilter* f = filterOf(filter_envoy_ptr);
  if (streamGone(f, "set_upstream_override_host", false)) return false;
  if (host.ptr == nullptr || host.length == 0) return false;
  return f->stream().setUpstreamOverrideHost(std::string_view(host.ptr, host.length), strict);
}

// The attributes beyond StreamInfo, from the scripted model's stream info (HostStream::property),
// typed as Envoy types them: a string asked as an int (or the reverse) is not found. As the
// Envoy played (checked in test/envoy/stream_properties.test.mjs): 1.38 has no attempt count,
// details, flags, virtual host or filter chain attribute; 1.39 none for the filter chain, and
// its virtual host attribute answers the matched virtual cluster's name.
bool modelAttribute(EnvoyFilter* f, envoy_dynamic_module_type_attribute_id id, bool asInt,
                    envoy_dynamic_module_type_envoy_buffer* str, uint64_t* num) {
  // This binary plays 1.38 when it was linked without the callbacks 1.39 added (envoy_1_39.cc).
  static const bool is138 = dlsym(RTLD_DEFAULT, "envoy_dynamic_module_callback_http_get_header_values") == nullptr;
  switch (id) {
    case envoy_dynamic_module_type_attribute_id_ResponseCodeDetails:
    case envoy_dynamic_module_type_attribute_id_ResponseFlags:
    case envoy_dynamic_module_type_attribute_id_UpstreamRequestAttemptCount:
    case envoy_dynamic_module_type_attribute_id_XdsVirtualHostName:
      if (is138) return false;
      break;
    case envoy_dynamic_module_type_attribute_id_XdsFilterChainName: return false;
    default: break;
  }
  Property p;
  switch (id) {
    case envoy_dynamic_module_type_attribute_id_ResponseCode: p = Property::ResponseCode; break;
    case envoy_dynamic_module_type_attribute_id_ResponseCodeDetails: p = Property::ResponseCodeDetails; break;
    case envoy_dynamic_module_type_attribute_id_ResponseFlags: p = Property::ResponseFlags; break;
    case envoy_dynamic_module_type_attribute_id_SourcePort: p = Property::SourcePort; break;
    case envoy_dynamic_module_type_attribute_id_DestinationPort: p = Property::DestinationPort; break;
    case envoy_dynamic_module_type_attribute_id_ConnectionId: p = Property::ConnectionId; break;
    case envoy_dynamic_module_type_attribute_id_ConnectionRequestedServerName: p = Property::RequestedServerName; break;
    case envoy_dynamic_module_type_attribute_id_UpstreamAddress: p = Property::UpstreamAddress; break;
    case envoy_dynamic_module_type_attribute_id_UpstreamPort: p = Property::UpstreamPort; break;
    case envoy_dynamic_module_type_attribute_id_UpstreamRequestAttemptCount:
      p = Property::UpstreamRequestAttemptCount;
      break;
    case envoy_dynamic_module_type_attribute_id_XdsVirtualHostName: p = Property::VirtualClusterName; break;
    default: fatal("attribute id " + std::to_string(id) + " is not implemented by this stub");
  }
  std::optional<PropertyValue> v = f->stream().property(p);
  if (!v || v->isNumber != asInt) return false;
  if (asInt) {
    *num = static_cast<uint64_t>(v->number);
  } else {
    std::string& keep = f->scratch(6);
    keep = v->string;
    *str = {keep.data(), keep.size()};
  }
  return true;
}

ABI_HOST_EXPORT bool envoy_dynamic_module_callback_http_filter_get_attribute_string(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr,
    envoy_dynamic_module_type_attribute_id attribute_id, envoy_dynamic_module_type_envoy_buffer* result) {
  EnvoyFilter* f = filterOf(filter_envoy_ptr);
  if (streamGone(f, "get_attribute_string", false)) return false;  // no stream info
  const StreamInfo& info = f->info();
  const std::string* v = nullptr;
  switch (attribute_id) {
    case envoy_dynamic_module_type_attribute_id_RequestId: v = &info.id; break;
    case envoy_dynamic_module_type_attribute_id_RequestProtocol: v = &info.protocol; break;
    case envoy_dynamic_module_type_attribute_id_SourceAddress: v = &info.remoteAddress; break;
    case envoy_dynamic_module_type_attribute_id_DestinationAddress: v = &info.localAddress; break;
    case envoy_dynamic_module_type_attribute_id_XdsRouteName: v = &info.routeName; break;
    default: return modelAttribute(f, attribute_id, false, result, nullptr);
  }
  *result = {v->data(), v->size()};
  return true;
}

ABI_HOST_EXPORT bool envoy_dynamic_module_callback_http_filter_get_attribute_int(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr,
    envoy_dynamic_module_type_attribute_id attribute_id, uint64_t* result) {
  EnvoyFilter* f = filterOf(filter_envoy_ptr);
  if (streamGone(f, "get_attribute_int", false)) return false;
  return modelAttribute(f, attribute_id, true, nullptr, result);
}

ABI_HOST_EXPORT bool envoy_dynamic_module_callback_http_get_cluster_name(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr, envoy_dynamic_module_type_envoy_buffer* result) {
  EnvoyFilter* f = filterOf(filter_envoy_ptr);
  if (streamGone(f, "get_cluster_name", false)) return false;
  std::optional<PropertyValue> v = f->stream().property(Property::ClusterName);
  if (!v) return false;
  std::string& keep = f->scratch(6);
  keep = v->string;
  *result = {keep.data(), keep.size()};
  return true;
}

ABI_HOST_EXPORT envoy_dynamic_module_type_http_callout_init_result
envoy_dynamic_module_callback_http_filter_http_callout(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr, uint64_t* callout_id_out,
    envoy_dynamic_module_type_module_buffer cluster_name, envoy_dynamic_module_type_module_http_header* headers,
    size_t headers_size, envoy_dynamic_module_type_module_buffer body, uint64_t timeout_milliseconds) {
  EnvoyFilter* f = filterOf(filter_envoy_ptr);
  // 1.38/1.39 accept a callout after destroy and never cancel it (1.40 refuses it): a leak and
  // an answer for a filter that is gone.
  if (streamGone(f, "http_callout", true))
    return envoy_dynamic_module_type_http_callout_init_result_CannotCreateRequest;
  uint64_t id = tWorker.nextCalloutId++;
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

ABI_HOST_EXPORT void envoy_dynamic_module_callback_http_filter_continue_decoding(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr) {
  EnvoyFilter* f = filterOf(filter_envoy_ptr);
  if (streamGone(f, "continue_decoding", false)) return;
  f->continueDirection(Direction::Request);
}
ABI_HOST_EXPORT void envoy_dynamic_module_callback_http_filter_continue_encoding(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr) {
  EnvoyFilter* f = filterOf(filter_envoy_ptr);
  if (streamGone(f, "continue_encoding", false)) return;
  f->continueDirection(Direction::Response);
}

// resolveMostSpecificPerFilterConfig ASSERTs non-null callbacks (and dereferences them).
ABI_HOST_EXPORT envoy_dynamic_module_type_http_filter_per_route_config_module_ptr
envoy_dynamic_module_callback_get_most_specific_route_config(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr) {
  EnvoyFilter* f = filterOf(filter_envoy_ptr);
  streamGone(f, "get_most_specific_route_config", true);
  RouteOverride route = f->stream().routeOverride();
  if (!route.disabled && route.configJson.empty()) return nullptr;
  auto it = gHost.routes.find(routeConfigJson(route));
  if (it == gHost.routes.end()) fatal("a route config that was not loaded");
  return it->second;
}

ABI_HOST_EXPORT uint32_t
envoy_dynamic_module_callback_http_filter_get_worker_index(envoy_dynamic_module_type_http_filter_envoy_ptr) {
  return tWorker.index;
}

ABI_HOST_EXPORT uint64_t
envoy_dynamic_module_callback_http_get_buffer_limit(envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr) {
  EnvoyFilter* f = filterOf(filter_envoy_ptr);
  if (streamGone(f, "get_buffer_limit", false)) return 0;
  return f->bufferLimit;
}
ABI_HOST_EXPORT void envoy_dynamic_module_callback_http_set_buffer_limit(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr, uint64_t limit) {
  EnvoyFilter* f = filterOf(filter_envoy_ptr);
  if (streamGone(f, "set_buffer_limit", false)) return;
  f->bufferLimit = limit;
}

ABI_HOST_EXPORT void envoy_dynamic_module_callback_http_filter_reset_stream(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr,
    envoy_dynamic_module_type_http_filter_stream_reset_reason, envoy_dynamic_module_type_module_buffer) {
  EnvoyFilter* f = filterOf(filter_envoy_ptr);
  if (streamGone(f, "reset_stream", false)) return;
  f->stream().resetStream();
  f->endIfOverInside();
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

// The per-route configs, then the filter config: Envoy drops them once no worker holds them.
void destroyConfigs() {
  for (auto& [json, rc] : gHost.routes) gHost.hooks.per_route_config_destroy(rc);
  gHost.routes.clear();
  gHost.hooks.config_destroy(gHost.config);
  gHost.config = nullptr;
}

// One worker's engine for the model: the stub's side of the module's filters.
class WorkerModuleEngine : public ModuleEngine {
 public:
  ~WorkerModuleEngine() override {
    // The replay's worker ends with this engine (runScenarioWith): keep its clock for later
    // module calls on this thread (thread_local engines are destroyed at thread exit).
    if (tWorker.worker) tWorker.lastNow = tWorker.worker->now();
    tWorker.worker = nullptr;
  }
};

// Streams i, i + N, i + 2N, ... of the scenario back together from N workers' transcripts.
Transcript merge(std::vector<Transcript>& parts, size_t streams) {
  Transcript out;
  size_t n = parts.size();
  for (size_t i = 0; i < streams; i++) out.streams.push_back(std::move(parts[i % n].streams[i / n]));
  for (Transcript& t : parts) {
    for (const auto& [k, v] : t.counters) out.counters[k] += v;
    for (const auto& [name, m] : t.metrics) {
      MetricValue& to = out.metrics[name];
      to.kind = m.kind;
      if (m.kind == MetricKind::Counter) to.value += m.value;
      else if (m.kind == MetricKind::Gauge)
        to.value = static_cast<double>(gGauges.values[name]);  // as Envoy's stats show it
      else to.samples.insert(to.samples.end(), m.samples.begin(), m.samples.end());
    }
    out.workerLogs.insert(out.workerLogs.end(), t.workerLogs.begin(), t.workerLogs.end());
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  // This binary plays 1.39/1.40 when it exports the callback 1.39 added, 1.38 otherwise.
  const bool has139Symbols = dlsym(RTLD_DEFAULT, "envoy_dynamic_module_callback_http_get_header_values") != nullptr;
  gHost.envoy = has139Symbols ? 139 : 138;
  std::string modulePath = besideSelf("libenvoy_js.so");
  std::string bytecode, sourceMap, configDestroy;
  size_t workers = 1;
  std::vector<std::string> positional;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--module" && i + 1 < argc) modulePath = argv[++i];
    else if (a == "--bytecode" && i + 1 < argc) bytecode = argv[++i];
    else if (a == "--source-map" && i + 1 < argc) sourceMap = argv[++i];
    else if (a == "--filter-name" && i + 1 < argc) gHost.filterName = argv[++i];
    else if (a == "--abi-version") positional.assign(1, "--abi-version");
    else if (a == "--real-time") gRealTime = true;
    else if (a == "--envoy" && i + 1 < argc) {
      std::string v = argv[++i];
      if (v == "1.38") gHost.envoy = 138;
      else if (v == "1.39") gHost.envoy = 139;
      else if (v == "1.40") gHost.envoy = 140;
      else cannotLoad("--envoy must be 1.38, 1.39 or 1.40");
    } else if (a == "--workers" && i + 1 < argc) {
      workers = static_cast<size_t>(std::atoi(argv[++i]));
      if (workers < 1 || workers > 64) cannotLoad("--workers must be 1..64");
    } else if (a == "--config-destroy" && i + 1 < argc) {
      configDestroy = argv[++i];
      if (configDestroy != "main" && configDestroy != "worker") cannotLoad("--config-destroy must be main or worker");
    } else {
      positional.push_back(a);
    }
  }
  if ((gHost.envoy == 138) == has139Symbols) {
    // The other binary plays that Envoy: the callbacks a process exports are fixed at link time.
    std::string other = besideSelf(gHost.envoy == 138 ? "abi_host_1_38" : "abi_host");
    execv(other.c_str(), argv);
    cannotLoad("cannot run " + other + " for --envoy " + (gHost.envoy == 138 ? "1.38" : "1.39/1.40") + ": " +
               std::strerror(errno) + " (build it with `make module`)");
  }
  // 1.38 and 1.39 may destroy a filter config on the worker that held it last; 1.40 destroys
  // route configs on the main thread.
  bool destroyOnWorker = configDestroy.empty() ? gHost.envoy < 140 : configDestroy == "worker";
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
    std::fprintf(stderr, "usage: abi_host [--module libenvoy_js.so] [--bytecode file.qjsbc] [--source-map file.js.map] "
                         "[--filter-name name] [--real-time] [--envoy 1.38|1.39|1.40] [--workers N] "
                         "[--config-destroy main|worker] <bundle.js> <scenario.json>\n");
    return 2;
  }
  std::string bundle = absolute(positional[0]), scenarioText;
  if (!readFile(positional[1], &scenarioText)) cannotLoad("cannot read scenario " + positional[1]);
  Scenario scenario;
  std::string error;
  if (!parseScenario(scenarioText, &scenario, &error)) cannotLoad(error);

  // Envoy: dlopen(RTLD_LAZY | RTLD_LOCAL) before 1.40, RTLD_NOW from 1.40. RTLD_NOW here, so
  // that a callback the module needs and this stub lacks fails at load time, loudly.
  void* handle = dlopen(modulePath.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr)
    cannotLoad(std::string("cannot load the dynamic module: ") + dlerror() + " (build it with `make module`)");
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
  resolve(handle, "envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark",
          &h.above_high_watermark);
  resolve(handle, "envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark",
          &h.below_low_watermark);
  bool routed = std::any_of(scenario.streams.begin(), scenario.streams.end(),
                            [](const StreamScenario& s) { return s.route.disabled || !s.route.configJson.empty(); });
  if (routed) {
    resolve(handle, "envoy_dynamic_module_on_http_filter_per_route_config_new", &h.per_route_config_new);
    resolve(handle, "envoy_dynamic_module_on_http_filter_per_route_config_destroy", &h.per_route_config_destroy);
  }

  // The main thread: the filter config, then the routes' configs.
  std::string filterConfig =
      filterConfigJson(bundle, bytecode.empty() ? nullptr : &bytecode, sourceMap.empty() ? nullptr : &sourceMap,
                       scenario.configJson, scenario.settingsJson);
  bool routesLoaded = false;
  std::thread([&] {
    gHost.inConfig = true;
    int envoyConfig = 0;  // Envoy passes its DynamicModuleHttpFilterConfig; the stub keeps no state there
    gHost.config = h.config_new(&envoyConfig, {gHost.filterName.data(), gHost.filterName.size()},
                                {filterConfig.data(), filterConfig.size()});
    gHost.metricsFrozen = true;
    if (gHost.config == nullptr) return;
    for (const StreamScenario& s : scenario.streams) {
      // The stream's route, and the one it picks after a route cache clear.
      for (const RouteOverride* route : {&s.route, s.routeAfterClear ? &*s.routeAfterClear : nullptr}) {
        if (route == nullptr || (!route->disabled && route->configJson.empty())) continue;
        std::string json = routeConfigJson(*route);
        if (gHost.routes.count(json)) continue;
        auto rc =
            h.per_route_config_new({gHost.filterName.data(), gHost.filterName.size()}, {json.data(), json.size()});
        if (rc == nullptr) return;
        gHost.routes[json] = rc;
      }
    }
    routesLoaded = true;
  }).join();
  gHost.inConfig = false;
  if (gHost.config == nullptr) cannotLoad(configError("on_http_filter_config_new returned null"));
  if (!routesLoaded) cannotLoad(configError("on_http_filter_per_route_config_new returned null"));

  // The workers: stream i runs on worker i % N. Request ids are the scenario's position (as a
  // single worker numbers them), so that streams on different workers never share one.
  for (size_t i = 0; i < scenario.streams.size(); i++) {
    if (scenario.streams[i].info.id.empty()) scenario.streams[i].info.id = std::to_string(i + 1);
  }
  std::vector<Scenario> parts(workers);
  for (size_t w = 0; w < workers; w++) {
    parts[w].configJson = scenario.configJson;
    parts[w].settingsJson = scenario.settingsJson;
  }
  for (size_t i = 0; i < scenario.streams.size(); i++) parts[i % workers].streams.push_back(scenario.streams[i]);
  std::vector<Transcript> transcripts(workers);
  std::vector<std::string> errors(workers);
  std::unique_ptr<bool[]> ok(new bool[workers]());
  std::vector<std::unique_ptr<Inbox>> inboxes;
  for (size_t w = 0; w < workers; w++) inboxes.push_back(std::make_unique<Inbox>());
  // The configs outlive every stream; on a worker, the last one to finish drops them while the
  // others still run (their thread_local engines die with their threads, after that).
  std::mutex doneMutex;
  std::condition_variable doneCv;
  size_t running = workers;
  bool configsGone = false;
  std::vector<std::thread> threads;
  for (size_t w = 0; w < workers; w++) {
    threads.emplace_back([&, w] {
      tWorker.index = static_cast<uint32_t>(w);
      tWorker.inbox = inboxes[w].get();
      inboxes[w]->worker = std::this_thread::get_id();
      ok[w] = runScenarioWith(
          [](HostWorker& worker, std::string*) -> std::unique_ptr<FilterEngine> {
            tWorker.worker = &worker;
            if (gRealTime) worker.setIdleWait(waitForCommits);
            return std::make_unique<WorkerModuleEngine>();
          },
          parts[w], &transcripts[w], &errors[w]);
      tWorker.worker = nullptr;
      std::unique_lock<std::mutex> lock(doneMutex);
      if (--running == 0) {
        if (destroyOnWorker) destroyConfigs();
        configsGone = true;
        doneCv.notify_all();
      } else {
        doneCv.wait(lock, [&] { return configsGone; });
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (size_t w = 0; w < workers; w++) {
    if (!ok[w]) cannotLoad(errors[w]);
  }
  if (!destroyOnWorker) destroyConfigs();

  Transcript transcript = merge(transcripts, scenario.streams.size());
  std::string out = transcriptJson(transcript);
  std::fwrite(out.data(), 1, out.size(), stdout);
  std::fputc('\n', stdout);
  return 0;
}
