#include "envoy_ext/filter/filter_config.h"

#include "envoy_ext/filter/background.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "envoy/common/exception.h"

#include "source/common/config/datasource.h"
#include "source/common/protobuf/utility.h"
#include "source/common/stats/utility.h"

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace Envoy {
namespace Extensions {
namespace HttpFilters {
namespace QuickJs {

namespace {

// The engine's counters (envoy_js::kEngineCounters) as Envoy shows them, under envoy_js.
constexpr absl::string_view kReservedStatNames[] = {"errors", "cpu_limit", "heap_limit"};

uint64_t nonNegative(double value) {
  if (!(value > 0)) { // also NaN
    return 0;
  }
  return value >= 1.8e19 ? UINT64_MAX : static_cast<uint64_t>(std::llround(value));
}

} // namespace

std::string settingsJson(const ProtoConfig& proto) {
  std::vector<std::string> fields;
  fields.push_back(absl::StrCat(
      "\"failure_mode\":\"", proto.failure_mode() == ProtoConfig::OPEN ? "open" : "closed", "\""));
  if (proto.has_max_heap_bytes()) {
    fields.push_back(absl::StrCat("\"max_heap_bytes\":", proto.max_heap_bytes().value()));
  }
  if (proto.has_max_cpu_ms_per_event()) {
    fields.push_back(
        absl::StrCat("\"max_cpu_ms_per_event\":", proto.max_cpu_ms_per_event().value()));
  }
  if (proto.has_buffer_limit_bytes()) {
    fields.push_back(absl::StrCat("\"buffer_limit_bytes\":", proto.buffer_limit_bytes().value()));
  }
  if (proto.allow_code_from_strings()) {
    fields.push_back("\"allow_code_from_strings\":true");
  }
  return absl::StrCat("{", absl::StrJoin(fields, ","), "}");
}

// ---- WorkerEngine ------------------------------------------------------------------------------

WorkerEngine::WorkerEngine(SharedStateConstSharedPtr shared, LoadedProgramConstSharedPtr program,
                           Event::Dispatcher& dispatcher)
    : shared_(std::move(shared)), program_(std::move(program)), dispatcher_(dispatcher) {
  // Workers load the module and run setup() as soon as they get the program, so that setup
  // errors show at start rather than on the first request. Other threads (the main thread,
  // which runs no HTTP filters) create the engine only if something asks for it.
  if (workerIndex(dispatcher_.name()).has_value()) {
    engine();
  }
}

WorkerEngine::~WorkerEngine() {
  // Explicit order: the engine may still cancel timers while it goes.
  engine_.reset();
  timers_.clear();
}

absl::optional<uint32_t> WorkerEngine::workerIndex(absl::string_view dispatcher_name) {
  constexpr absl::string_view prefix = "worker_";
  uint32_t index;
  if (absl::StartsWith(dispatcher_name, prefix) &&
      absl::SimpleAtoi(dispatcher_name.substr(prefix.size()), &index)) {
    return index;
  }
  return absl::nullopt;
}

envoy_js::Engine* WorkerEngine::engine() {
  if (engine_ == nullptr && !create_failed_) {
    std::string error;
    engine_ = envoy_js::Engine::create(program_->program, *this,
                                       workerIndex(dispatcher_.name()).value_or(0), &error);
    if (engine_ == nullptr) {
      create_failed_ = true;
      shared_->counters.errors.inc();
      ENVOY_LOG(error, "envoy_js: could not start the filter on {}: {}", dispatcher_.name(), error);
    }
  }
  return engine_.get();
}

void WorkerEngine::log(envoy_js::LogLevel level, std::string_view message) {
  switch (level) {
  case envoy_js::LogLevel::Trace:
    ENVOY_LOG(trace, "envoy_js[{}]: {}", dispatcher_.name(), message);
    break;
  case envoy_js::LogLevel::Debug:
    ENVOY_LOG(debug, "envoy_js[{}]: {}", dispatcher_.name(), message);
    break;
  case envoy_js::LogLevel::Info:
    ENVOY_LOG(info, "envoy_js[{}]: {}", dispatcher_.name(), message);
    break;
  case envoy_js::LogLevel::Warn:
    ENVOY_LOG(warn, "envoy_js[{}]: {}", dispatcher_.name(), message);
    break;
  case envoy_js::LogLevel::Error:
    ENVOY_LOG(error, "envoy_js[{}]: {}", dispatcher_.name(), message);
    break;
  }
}

double WorkerEngine::nowMs() {
  return std::chrono::duration<double, std::milli>(
             dispatcher_.timeSource().monotonicTime().time_since_epoch())
      .count();
}

void WorkerEngine::incrementCounter(std::string_view name, uint64_t delta) {
  if (name == envoy_js::kCounterErrors) {
    shared_->counters.errors.add(delta);
  } else if (name == envoy_js::kCounterCpuLimit) {
    shared_->counters.cpu_limit.add(delta);
  } else if (name == envoy_js::kCounterHeapLimit) {
    shared_->counters.heap_limit.add(delta);
  } else {
    ENVOY_LOG(debug, "envoy_js: ignoring unknown engine counter {}", name);
  }
}

void WorkerEngine::recordMetric(size_t index, envoy_js::MetricKind kind,
                                const std::vector<std::string>& label_values, double value) {
  if (index >= program_->metrics.size()) {
    return;
  }
  const MetricSink& sink = program_->metrics[index];
  if (sink.kind != kind || label_values.size() != sink.label_names.size()) {
    return; // the runtime checks the kind and the labels before calling; never reached
  }
  Stats::Counter* counter = sink.counter;
  Stats::Gauge* gauge = sink.gauge;
  Stats::Histogram* histogram = sink.histogram;
  if (!label_values.empty()) {
    // One tagged stat per label-value combination (the runtime bounds them per metric). The
    // values' stat names live in a pool for this call; the scope keeps its own copy.
    Stats::Scope& scope = *shared_->scope;
    Stats::StatNameDynamicPool values(scope.symbolTable());
    Stats::StatNameTagVector tags;
    tags.reserve(label_values.size());
    for (size_t i = 0; i < label_values.size(); i++) {
      tags.emplace_back(sink.label_names[i], values.add(label_values[i]));
    }
    switch (kind) {
    case envoy_js::MetricKind::Counter:
      counter = &Stats::Utility::counterFromStatNames(scope, {sink.name}, tags);
      break;
    case envoy_js::MetricKind::Gauge:
      gauge = &Stats::Utility::gaugeFromStatNames(scope, {sink.name},
                                                  Stats::Gauge::ImportMode::NeverImport, tags);
      break;
    case envoy_js::MetricKind::Histogram:
      histogram = &Stats::Utility::histogramFromStatNames(
          scope, {sink.name}, Stats::Histogram::Unit::Unspecified, tags);
      break;
    }
  }
  switch (kind) {
  case envoy_js::MetricKind::Counter:
    counter->add(nonNegative(value));
    break;
  case envoy_js::MetricKind::Gauge:
    // The process's value: the runtime sums every worker engine's share (and takes an
    // engine's share out, with a call here, when the engine goes away).
    gauge->set(nonNegative(value));
    break;
  case envoy_js::MetricKind::Histogram:
    histogram->recordValue(nonNegative(value));
    break;
  }
}

void WorkerEngine::startTimer(uint64_t id, double delay_ms) {
  // Negative or NaN delays fire on the next loop pass, as in browsers.
  const double ms = delay_ms > 0 ? std::min(delay_ms, 2147483647.0) : 0.0;
  const auto delay = std::chrono::milliseconds(static_cast<int64_t>(std::ceil(ms)));
  Event::TimerPtr timer = dispatcher_.createTimer([this, id]() { onTimer(id); });
  timer->enableTimer(delay);
  timers_[id] = std::move(timer);
}

void WorkerEngine::cancelTimer(uint64_t id) { timers_.erase(id); }

void WorkerEngine::onTimer(uint64_t id) {
  auto it = timers_.find(id);
  if (it == timers_.end()) {
    return;
  }
  // One-shot: forget it before the engine runs, which may start new timers.
  Event::TimerPtr fired = std::move(it->second);
  timers_.erase(it);
  if (engine_ != nullptr) {
    engine_->fireTimer(id);
  }
}

// ---- RemoteSource ------------------------------------------------------------------------------

RemoteSource::RemoteSource(Upstream::ClusterManager& cm, Init::Manager& init_manager,
                           Event::Dispatcher& main_dispatcher,
                           const envoy::config::core::v3::RemoteDataSource& source, DoneCb done)
    : uri_(source.http_uri().uri()), done_(std::move(done)),
      fetcher_(cm, source.http_uri(), source.sha256(), *this),
      init_target_("envoy_js remote source " + uri_, [this]() { fetcher_.fetch(); }),
      retries_left_(PROTOBUF_GET_WRAPPED_OR_DEFAULT(source.retry_policy(), num_retries, 1)),
      retry_interval_(
          PROTOBUF_GET_MS_OR_DEFAULT(source.retry_policy().retry_back_off(), base_interval, 1000)) {
  retry_timer_ = main_dispatcher.createTimer([this]() { fetcher_.fetch(); });
  if (init_manager.state() == Init::Manager::State::Initialized) {
    // An initialized manager takes no targets (ManagerImpl::add treats that as a programming
    // error). Envoy's own late subscriptions (RDS/SRDS after warming) start at once and
    // nothing waits for them; so does this fetch. It may fail inline (no such cluster): the
    // timer above already exists for the retry.
    ENVOY_LOG(debug, "envoy_js: init manager already initialized; fetching {} without waiting",
              uri_);
    fetcher_.fetch();
    return;
  }
  init_manager.add(init_target_);
}

RemoteSource::~RemoteSource() {
  // No retry and no answer may reach a half-destroyed object; then let the init manager go on
  // (ready() does nothing when the target already reported, or was never initialized).
  retry_timer_->disableTimer();
  fetcher_.cancel();
  init_target_.ready();
}

void RemoteSource::onSuccess(const std::string& data) {
  done_(data);
  init_target_.ready();
}

void RemoteSource::onFailure(Config::DataFetcher::FailureReason reason) {
  if (retries_left_ > 0) {
    retries_left_--;
    ENVOY_LOG(debug, "envoy_js: fetching {} failed ({}), retrying in {} ms", uri_,
              static_cast<int>(reason), retry_interval_.count());
    retry_timer_->enableTimer(retry_interval_);
    return;
  }
  ENVOY_LOG(error, "envoy_js: could not fetch the filter source {} ({}); the filter has no program",
            uri_,
            reason == Config::DataFetcher::FailureReason::InvalidData ? "sha256 mismatch"
                                                                      : "network error");
  init_target_.ready();
}

// ---- FilterConfig ------------------------------------------------------------------------------

FilterConfig::FilterConfig(const ProtoConfig& proto, const std::string& stats_prefix,
                           Server::Configuration::ServerFactoryContext& server, Stats::Scope& scope,
                           Init::Manager& init_manager, ThreadLocal::SlotAllocator& tls)
    : main_dispatcher_(server.mainThreadDispatcher()) {
  std::string error;
  if (!envoy_js::Settings::fromJson(settingsJson(proto), &settings_, &error)) {
    throw EnvoyException(absl::StrCat("envoy_js: ", error));
  }
  if (proto.has_config()) {
    absl::StatusOr<std::string> json = MessageUtil::getJsonStringFromMessage(proto.config());
    if (!json.ok()) {
      throw EnvoyException(absl::StrCat("envoy_js: config: ", json.status().message()));
    }
    config_json_ = std::move(json.value());
  } else {
    config_json_ = "{}";
  }

  Stats::ScopeSharedPtr stats = scope.createScope(absl::StrCat(stats_prefix, "envoy_js."));
  EngineCounters counters{stats->counterFromString("errors"), stats->counterFromString("cpu_limit"),
                          stats->counterFromString("heap_limit")};
  shared_ = std::make_shared<const SharedState>(
      SharedState{stats, counters, settings_.failureMode, server.clusterManager()});
  slot_ = ThreadLocal::TypedSlot<WorkerSlot>::makeUnique(tls);

  if (proto.has_source_map()) {
    absl::StatusOr<std::string> map =
        Config::DataSource::read(proto.source_map(), /*allow_empty=*/true, server.api());
    if (map.ok()) {
      source_map_ = std::move(map.value());
    } else {
      ENVOY_LOG(warn, "envoy_js: source_map not read, stacks stay unmapped: {}",
                map.status().message());
    }
  }

  if (proto.has_bytecode()) {
    absl::StatusOr<std::string> data =
        Config::DataSource::read(proto.bytecode(), /*allow_empty=*/false, server.api());
    if (!data.ok()) {
      throw EnvoyException(absl::StrCat("envoy_js: bytecode: ", data.status().message()));
    }
    const std::string filename =
        Config::DataSource::getPath(proto.bytecode()).value_or("<inline bytecode>");
    absl::Status status = load(data.value(), filename, /*bytecode=*/true);
    if (!status.ok()) {
      throw EnvoyException(std::string(status.message()));
    }
    return;
  }

  const envoy::config::core::v3::AsyncDataSource& source = proto.source();
  switch (source.specifier_case()) {
  case envoy::config::core::v3::AsyncDataSource::kLocal: {
    absl::StatusOr<std::string> data =
        Config::DataSource::read(source.local(), /*allow_empty=*/false, server.api());
    if (!data.ok()) {
      throw EnvoyException(absl::StrCat("envoy_js: source: ", data.status().message()));
    }
    const std::string filename =
        Config::DataSource::getPath(source.local()).value_or("<inline source>");
    absl::Status status = load(data.value(), filename, /*bytecode=*/false);
    if (!status.ok()) {
      throw EnvoyException(std::string(status.message()));
    }
    break;
  }
  case envoy::config::core::v3::AsyncDataSource::kRemote: {
    // Compiled when it arrives; until then (and for good if it never does) workerEngine()
    // is nullptr and streams get the failure policy.
    const std::string uri = source.remote().http_uri().uri();
    remote_ = std::make_unique<RemoteSource>(
        server.clusterManager(), init_manager, server.mainThreadDispatcher(), source.remote(),
        [this, uri](const std::string& data) {
          absl::Status status = load(data, uri, /*bytecode=*/false);
          if (!status.ok()) {
            shared_->counters.errors.inc();
            ENVOY_LOG(error, "envoy_js: the filter from {} was not loaded: {}", uri,
                      status.message());
          }
        });
    break;
  }
  case envoy::config::core::v3::AsyncDataSource::SPECIFIER_NOT_SET:
    throw EnvoyException("envoy_js: either `source` or `bytecode` must be set");
  }
}

absl::Status FilterConfig::load(absl::string_view data, const std::string& filename,
                                bool bytecode) {
  std::string error;
  std::shared_ptr<const envoy_js::FilterProgram> program =
      bytecode ? envoy_js::FilterProgram::fromBytecodeFile(data, filename, config_json_, settings_,
                                                           &error, source_map_)
               : envoy_js::FilterProgram::compile(data, filename, config_json_, settings_, &error,
                                                  source_map_);
  if (program == nullptr) {
    return absl::InvalidArgumentError(error);
  }
  if (!program->sourceMapError().empty()) {
    ENVOY_LOG(warn, "envoy_js: source_map not used, stacks stay unmapped: {}",
              program->sourceMapError());
  }

  auto loaded = std::make_shared<LoadedProgram>();
  loaded->program = program;
  Stats::Scope& scope = *shared_->scope;
  for (const envoy_js::MetricDeclaration& metric : program->metrics()) {
    for (absl::string_view reserved : kReservedStatNames) {
      if (metric.name == reserved) {
        return absl::InvalidArgumentError(absl::StrCat(filename, ": metric `", metric.name,
                                                       "` clashes with the engine's own envoy_js.",
                                                       reserved, " counter"));
      }
    }
    MetricSink sink{metric.kind};
    if (!metric.labels.empty()) {
      // Tagged series are made when recorded (recordMetric); only the names are kept here.
      if (loaded->stat_names == nullptr) {
        loaded->stat_names = std::make_unique<Stats::StatNamePool>(scope.symbolTable());
      }
      sink.name = loaded->stat_names->add(metric.name);
      for (const std::string& label : metric.labels) {
        sink.label_names.push_back(loaded->stat_names->add(label));
      }
      loaded->metrics.push_back(sink);
      continue;
    }
    switch (metric.kind) {
    case envoy_js::MetricKind::Counter:
      sink.counter = &scope.counterFromString(metric.name);
      break;
    case envoy_js::MetricKind::Gauge:
      sink.gauge = &scope.gaugeFromString(metric.name, Stats::Gauge::ImportMode::NeverImport);
      break;
    case envoy_js::MetricKind::Histogram:
      sink.histogram = &scope.histogramFromString(metric.name, Stats::Histogram::Unit::Unspecified);
      break;
    }
    loaded->metrics.push_back(sink);
  }

  // The callback runs on every thread; it must not capture `this` or the slot.
  SharedStateConstSharedPtr shared = shared_;
  LoadedProgramConstSharedPtr program_state = std::move(loaded);
  slot_->set([shared, program_state](Event::Dispatcher& dispatcher) {
    return std::make_shared<WorkerSlot>(
        std::make_shared<WorkerEngine>(shared, program_state, dispatcher));
  });
  // `background`: one engine for this config on the main thread; none without it.
  if (program->hasBackground()) {
    background_ = std::make_unique<BackgroundEngine>(shared_, program, main_dispatcher_);
    background_->start();
  }
  return absl::OkStatus();
}

FilterConfig::~FilterConfig() = default;

WorkerEngineSharedPtr FilterConfig::workerEngine() {
  // Before set() has run for this thread the slot has no entry here; asking for it would trip
  // an assertion.
  if (!slot_->currentThreadRegistered()) {
    return nullptr;
  }
  OptRef<WorkerSlot> slot = slot_->get();
  return slot.has_value() ? slot->engine : nullptr;
}

} // namespace QuickJs
} // namespace HttpFilters
} // namespace Extensions
} // namespace Envoy
