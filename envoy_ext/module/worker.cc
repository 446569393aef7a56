// Worker engines and timer routing (worker.h).
#include "worker.h"

#include <algorithm>
#include <atomic>
#include <cmath>

#include "background.h"
#include "stream.h"

namespace envoy_js::module {

Globals& g = *new Globals();
bool gSingleContinueFlag = false;
bool gVirtualHostAttribute = false;

namespace {
// Worker engines alive in the process, every config's. Logged at trace level when it changes
// ("envoy_js: worker engines alive: N (...)"): after a filter reload the old config's engines
// go once Envoy drops that config, and test/reliability/chaos reads the drain from these lines.
std::atomic<int64_t> gLiveEngines{0};
// What the gauge was last set to, and through which config (a reload may give the gauge a new
// Envoy stat: the new config sets it again).
std::atomic<int64_t> gPublishedEngines{-1};
std::atomic<const ConfigShared*> gPublishedBy{nullptr};
void logLiveEngines(const std::string& what, const std::string& name) {
  logLine(LogLevel::Trace,
          std::string(kLiveEnginesLog) + std::to_string(gLiveEngines.load()) + " (" + name + ": " + what + ")");
}
}  // namespace

WorkerEngine::~WorkerEngine() {
  if (engine_) {
    engine_.reset();  // cancels its timers through cancelTimer; sets its gauges without its shares
    gLiveEngines--;
    logLiveEngines("an engine of a dropped config freed", config_->name);
  }
  std::lock_guard<std::mutex> lock(g.mutex);
  for (auto it = g.routes.begin(); it != g.routes.end();) {
    it = it->second.worker == this ? g.routes.erase(it) : std::next(it);
  }
}

void WorkerEngine::log(LogLevel level, std::string_view message) {
  logLine(level, "envoy_js(" + config_->name + "): " + std::string(message));
}

double WorkerEngine::nowMs() { return g.clock->nowMs(); }

void WorkerEngine::incrementCounter(std::string_view name, uint64_t delta) {
  auto it = config_->counterIds.find(std::string(name));
  if (it == config_->counterIds.end() || vehicle == nullptr) return;
  envoy_dynamic_module_callback_http_filter_increment_counter(vehicle, it->second, nullptr, 0, delta);
}

void WorkerEngine::recordMetric(size_t index, MetricKind kind, const std::vector<std::string>& labelValues,
                                double value) {
  if (index >= config_->metricIds.size() || vehicle == nullptr) return;
  size_t id = config_->metricIds[index];
  // Envoy's metrics hold unsigned integers.
  uint64_t v = value > 0 ? static_cast<uint64_t>(std::llround(value)) : 0;
  // The ABI's metric vectors: one value per label name given to define_*, in that order.
  envoy_dynamic_module_type_module_buffer labels[kMetricLabelsMax];
  size_t n = std::min(labelValues.size(), kMetricLabelsMax);
  for (size_t i = 0; i < n; i++) labels[i] = buf(labelValues[i]);
  envoy_dynamic_module_type_module_buffer* l = n == 0 ? nullptr : labels;
  if (kind == MetricKind::Counter) {
    envoy_dynamic_module_callback_http_filter_increment_counter(vehicle, id, l, n, v);
  } else if (kind == MetricKind::Gauge) {
    // The runtime sums every worker's share: `value` is the process's value.
    envoy_dynamic_module_callback_http_filter_set_gauge(vehicle, id, l, n, v);
  } else {
    envoy_dynamic_module_callback_http_filter_record_histogram_value(vehicle, id, l, n, v);
  }
}

void WorkerEngine::startTimer(uint64_t id, double delayMs) { timers_.add(armTimer(kTimerDue, current, delayMs), id); }

void WorkerEngine::cancelTimer(uint64_t id) {
  uint64_t key = 0;
  if (timers_.removeId(id, &key)) disarmTimer(key);
}

bool WorkerEngine::takeTimer(uint64_t key, uint64_t* id) { return timers_.takeKey(key, id); }

uint64_t WorkerEngine::armTimer(EventKind kind, ModuleStream* target, double delayMs) {
  uint64_t key = g.nextKey++;
  {
    std::lock_guard<std::mutex> lock(g.mutex);
    g.routes[key] = TimerRoute{this, target, kind};
  }
  g.clock->arm(key, delayMs);
  return key;
}

void WorkerEngine::disarmTimer(uint64_t key) {
  {
    std::lock_guard<std::mutex> lock(g.mutex);
    g.routes.erase(key);
  }
  g.clock->disarm(key);
}

bool WorkerEngine::start(FilterPtr filter) {
  HookScope scope(this, filter, nullptr);
  engine_ = Engine::create(config_->program, *this, index_, &error_);
  if (!engine_) {
    log(LogLevel::Error, "the engine of worker " + std::to_string(index_) + " cannot start: " + error_);
    return false;
  }
  gLiveEngines++;
  logLiveEngines("worker " + std::to_string(index_) + " engine started", config_->name);
  return true;
}

namespace {
// The worker engines of this thread, by config serial.
thread_local std::unordered_map<uint64_t, std::unique_ptr<WorkerEngine>> tWorkers;
}  // namespace

void publishLiveEngines(const ConfigShared& config, FilterPtr filter) {
  int64_t now = gLiveEngines.load(std::memory_order_relaxed);
  if (gPublishedEngines.load(std::memory_order_relaxed) == now &&
      gPublishedBy.load(std::memory_order_relaxed) == &config) {
    return;
  }
  gPublishedEngines.store(now, std::memory_order_relaxed);
  gPublishedBy.store(&config, std::memory_order_relaxed);
  envoy_dynamic_module_callback_http_filter_set_gauge(filter, config.enginesGaugeId, nullptr, 0,
                                                      static_cast<uint64_t>(std::max<int64_t>(now, 0)));
}

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
  if (route.background != nullptr) {
    // Under g.mutex: the background's destructor removes its routes under it before it
    // deletes its scheduler.
    route.background->commitLocked(event);
    return;
  }
  ModuleStream* to = route.target;
  if (to == nullptr && route.kind == kTimerDue && !route.worker->live.empty()) to = route.worker->live.back();
  if (to != nullptr) {
    to->commitLocked(event);
  } else if (route.kind == kTimerDue) {
    route.worker->parked.push_back(event);  // the next stream of this worker carries it
  }
}

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

}  // namespace envoy_js::module
