// Configuration side of the envoy-js native filter: the program compiled once on the main
// thread, the per-worker engines held in a thread-local slot, and the stats.
//
// Ownership and threads:
//  - FilterConfig lives on the main thread (captured by the filter factory callback) and owns
//    the thread-local slot. Nothing on a worker holds it.
//  - SharedState and LoadedProgram are immutable once built and shared by everyone.
//  - A WorkerEngine belongs to one worker. The slot holds it, and so does every Filter created
//    on that worker: after a config update the slot lets go and streams still running keep the
//    old engine until they are destroyed, on that same worker.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "envoy/config/core/v3/base.pb.h"
#include "envoy/event/dispatcher.h"
#include "envoy/event/timer.h"
#include "envoy/init/manager.h"
#include "envoy/router/router.h"
#include "envoy/server/factory_context.h"
#include "envoy/stats/scope.h"
#include "envoy/stats/stats.h"
#include "envoy/thread_local/thread_local.h"
#include "envoy/upstream/cluster_manager.h"

#include "source/common/common/logger.h"
#include "source/common/config/remote_data_fetcher.h"
#include "source/common/init/target_impl.h"
#include "source/common/stats/symbol_table.h"

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "envoy_ext/filter/quickjs.pb.h"
#include "runtime/engine.h"

namespace Envoy {
namespace Extensions {
namespace HttpFilters {
namespace QuickJs {

using ProtoConfig = envoyjs::filters::http::quickjs::v1::QuickJs;
using ProtoPerRoute = envoyjs::filters::http::quickjs::v1::QuickJsPerRoute;

// Response code details of every local reply the adapter itself sends (same as the runtime's).
inline constexpr absl::string_view kErrorDetails = "envoy_js_error";

// The engine's own counters, under <stats_prefix>quickjs.
struct EngineCounters {
  Stats::Counter& errors;
  Stats::Counter& cpu_limit;
  Stats::Counter& heap_limit;
};

// What every thread shares for one filter config; immutable.
struct SharedState {
  Stats::ScopeSharedPtr scope; // <stats_prefix>quickjs.
  EngineCounters counters;     // in `scope`
  envoy_js::FailureMode failure_mode;
  Upstream::ClusterManager& cluster_manager; // lives as long as the server
};
using SharedStateConstSharedPtr = std::shared_ptr<const SharedState>;

// One metric the bundle declared in its static `metrics`, created at config time. A metric
// with labels has no stat of its own: each series is a stat tagged label=value, found (or
// created) in the scope when it is recorded.
struct MetricSink {
  envoy_js::MetricKind kind;
  Stats::Counter* counter = nullptr;
  Stats::Gauge* gauge = nullptr;
  Stats::Histogram* histogram = nullptr;
  Stats::StatName name;           // in LoadedProgram::stat_names; set for labelled metrics
  Stats::StatNameVec label_names; // ditto; empty for a metric without labels
};

// The compiled bundle and its metrics; immutable.
struct LoadedProgram {
  std::shared_ptr<const envoy_js::FilterProgram> program;
  std::vector<MetricSink> metrics;                 // index = FilterProgram::metrics() index
  std::unique_ptr<Stats::StatNamePool> stat_names; // the labelled metrics' names and label names
};
using LoadedProgramConstSharedPtr = std::shared_ptr<const LoadedProgram>;

// One engine per worker thread and per filter config, and the EngineHost it talks to.
class WorkerEngine : public envoy_js::EngineHost, public Logger::Loggable<Logger::Id::filter> {
public:
  WorkerEngine(SharedStateConstSharedPtr shared, LoadedProgramConstSharedPtr program,
               Event::Dispatcher& dispatcher);
  ~WorkerEngine() override;

  // The engine; created here on first use unless the worker created it at start. nullptr when
  // creating it failed (logged and counted once; every stream then gets the failure policy).
  envoy_js::Engine* engine();
  const SharedState& shared() const { return *shared_; }
  Event::Dispatcher& dispatcher() { return dispatcher_; }

  // envoy_js::EngineHost
  void log(envoy_js::LogLevel level, std::string_view message) override;
  double nowMs() override;
  void incrementCounter(std::string_view name, uint64_t delta) override;
  // Gauges: `value` is already the sum over the engines of every worker (the runtime keeps
  // the shares), set as it comes.
  void recordMetric(size_t index, envoy_js::MetricKind kind,
                    const std::vector<std::string>& label_values, double value) override;
  void startTimer(uint64_t id, double delay_ms) override;
  void cancelTimer(uint64_t id) override;

  // "worker_3" -> 3; anything else (the main thread, test threads) -> nullopt.
  static absl::optional<uint32_t> workerIndex(absl::string_view dispatcher_name);

private:
  void onTimer(uint64_t id);

  const SharedStateConstSharedPtr shared_;
  const LoadedProgramConstSharedPtr program_;
  Event::Dispatcher& dispatcher_;
  absl::flat_hash_map<uint64_t, Event::TimerPtr> timers_;
  bool create_failed_{false};
  // Declared last so that it goes first: the engine may cancel timers while it is destroyed.
  std::unique_ptr<envoy_js::Engine> engine_;
};
using WorkerEngineSharedPtr = std::shared_ptr<WorkerEngine>;

// What the thread-local slot stores on each thread.
struct WorkerSlot : public ThreadLocal::ThreadLocalObject {
  explicit WorkerSlot(WorkerEngineSharedPtr e) : engine(std::move(e)) {}
  WorkerEngineSharedPtr engine;
};

// Fetches a remote `source` (http_uri checked against sha256) while the listener warms up.
// Retries retry_policy.num_retries times (default 1) after retry_back_off.base_interval
// (default 1s); on final failure the listener starts anyway and the filter has no program.
// A config built after its init manager finished (extension config discovery, or any update
// after the listener warmed up) fetches at once, and nothing waits for it: until the source
// arrives, streams get the failure policy.
class RemoteSource : public Config::DataFetcher::RemoteDataFetcherCallback,
                     public Logger::Loggable<Logger::Id::config> {
public:
  using DoneCb = std::function<void(const std::string& data)>;
  RemoteSource(Upstream::ClusterManager& cm, Init::Manager& init_manager,
               Event::Dispatcher& main_dispatcher,
               const envoy::config::core::v3::RemoteDataSource& source, DoneCb done);
  // Gone while still fetching (the config was replaced or dropped while warming up): stops
  // the retry timer and the request, and releases the init manager, which would otherwise wait
  // for this target forever.
  ~RemoteSource() override;

  // Config::DataFetcher::RemoteDataFetcherCallback
  void onSuccess(const std::string& data) override;
  void onFailure(Config::DataFetcher::FailureReason reason) override;

private:
  const std::string uri_;
  DoneCb done_;
  Config::DataFetcher::RemoteDataFetcher fetcher_;
  Init::TargetImpl init_target_;
  Event::TimerPtr retry_timer_;
  uint32_t retries_left_;
  std::chrono::milliseconds retry_interval_;
};

class BackgroundEngine; // background.h

// One filter config, built on the main thread by the factory.
class FilterConfig : public Logger::Loggable<Logger::Id::filter> {
public:
  // Throws EnvoyException for an invalid configuration, including a bundle that does not
  // compile (the message starts with "file:line:col: ") or bytecode from another engine.
  FilterConfig(const ProtoConfig& proto, const std::string& stats_prefix,
               Server::Configuration::ServerFactoryContext& server, Stats::Scope& scope,
               Init::Manager& init_manager, ThreadLocal::SlotAllocator& tls);
  ~FilterConfig();

  // The calling worker's engine, or nullptr while no program is loaded (remote source not
  // fetched, or it failed).
  WorkerEngineSharedPtr workerEngine();
  const SharedStateConstSharedPtr& shared() const { return shared_; }

private:
  // Compiles or loads the program and hands it to every thread. Main thread only.
  absl::Status load(absl::string_view data, const std::string& filename, bool bytecode);

  std::string config_json_;
  std::string source_map_; // the bundle's source map JSON, or empty
  envoy_js::Settings settings_;
  SharedStateConstSharedPtr shared_;
  ThreadLocal::TypedSlotPtr<WorkerSlot> slot_;
  std::unique_ptr<RemoteSource> remote_;
  Event::Dispatcher& main_dispatcher_;
  // The program's `background` engine (main thread), when it has one. Declared last: it goes
  // first, before the state it uses.
  std::unique_ptr<BackgroundEngine> background_;
};
using FilterConfigSharedPtr = std::shared_ptr<FilterConfig>;

// Per-route configuration.
class RouteConfig : public Router::RouteSpecificFilterConfig {
public:
  explicit RouteConfig(envoy_js::RouteOverride route) : route_(std::move(route)) {}
  const envoy_js::RouteOverride& routeOverride() const { return route_; }

private:
  const envoy_js::RouteOverride route_;
};

// The settings of DESIGN.md section 5 as the JSON object Settings::fromJson reads; only the
// fields present in the proto are written, so the runtime's defaults apply to the rest.
std::string settingsJson(const ProtoConfig& proto);

} // namespace QuickJs
} // namespace HttpFilters
} // namespace Extensions
} // namespace Envoy
