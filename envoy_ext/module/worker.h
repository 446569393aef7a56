// One engine per worker thread and filter config (WorkerEngine, the runtime's EngineHost), and
// the routing of timers: a due timer becomes a scheduler event of a stream of its worker.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "../../runtime/engine.h"
#include "abi_util.h"
#include "clock.h"
#include "config.h"

namespace envoy_js::module {

class ModuleBackground;
class ModuleStream;
class WorkerEngine;

// Scheduler event ids: the low two bits say what the event is for.
enum EventKind : uint64_t {
  kScheduled = 0,  // StreamHost::schedule(): run Stream::onScheduled()
  kUnusedEvent = 1,
  kTimerDue = 2,         // (key << 2): an engine timer
  kCalloutDeadline = 3,  // (key << 2): a callout's timeoutMs passed
};

// Where a due timer goes: a worker's stream, or a filter config's background engine.
struct TimerRoute {
  WorkerEngine* worker;  // nullptr for a background engine's timer
  ModuleStream* target;  // nullptr once that stream is gone
  EventKind kind;
  ModuleBackground* background = nullptr;  // the config scheduler commits it (background.h)
};

struct Globals {
  std::mutex mutex;
  std::unordered_map<uint64_t, TimerRoute> routes;  // by timer key
  std::atomic<uint64_t> nextKey{1};
  Clock* clock = nullptr;
};
// Never destroyed: worker threads may still use it while the process exits.
extern Globals& g;

// The start of the trace line logged when the number of worker engines in the process changes.
inline constexpr const char* kLiveEnginesLog = "envoy_js: worker engines alive: ";
// Sets kEnginesGauge through a new stream's filter when the count (or the config publishing it)
// changed since the last time; otherwise two relaxed loads. Engines come and go only when a
// worker starts one or frees a dropped config's at its next stream, so the gauge is current
// after every stream start.
void publishLiveEngines(const ConfigShared& config, FilterPtr filter);

// True on an Envoy with one "in continue" flag for both directions (1.38.x): such an Envoy
// lacks the callbacks that came with the fix in 1.39 (see ModuleStream::continueDecoding).
extern bool gSingleContinueFlag;

// True on an Envoy whose XdsVirtualHostName attribute is the virtual host's name. 1.39.x
// answers the matched virtual cluster's name there instead (null when none matched); 1.38.x
// has no such attribute. Told apart by a callback that came with 1.40.
extern bool gVirtualHostAttribute;

// Engine timer ids and the clock keys they are armed under, both ways (a worker's engine and a
// background engine keep one each).
class TimerKeys {
 public:
  void add(uint64_t key, uint64_t id) {
    idByKey_[key] = id;
    keyById_[id] = key;
  }
  // Timer `id` is cancelled: the key it was armed under, forgotten; false when it has none.
  bool removeId(uint64_t id, uint64_t* key) {
    auto it = keyById_.find(id);
    if (it == keyById_.end()) return false;
    *key = it->second;
    keyById_.erase(it);
    idByKey_.erase(*key);
    return true;
  }
  // The clock fired `key`: its timer, forgotten; false when it was cancelled meanwhile.
  bool takeKey(uint64_t key, uint64_t* id) {
    auto it = idByKey_.find(key);
    if (it == idByKey_.end()) return false;
    *id = it->second;
    idByKey_.erase(it);
    auto k = keyById_.find(*id);
    if (k != keyById_.end() && k->second == key) keyById_.erase(k);
    return true;
  }

 private:
  std::unordered_map<uint64_t, uint64_t> idByKey_;
  std::unordered_map<uint64_t, uint64_t> keyById_;
};

// One engine per worker thread and config.
class WorkerEngine : public EngineHost {
 public:
  WorkerEngine(std::shared_ptr<ConfigShared> config, uint32_t index) : config_(std::move(config)), index_(index) {}
  ~WorkerEngine() override;

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
  void log(LogLevel level, std::string_view message) override;
  double nowMs() override;
  void incrementCounter(std::string_view name, uint64_t delta) override;
  void recordMetric(size_t index, MetricKind kind, const std::vector<std::string>& labelValues, double value) override;
  void startTimer(uint64_t id, double delayMs) override;
  void cancelTimer(uint64_t id) override;

  // A kTimerDue event arrived: the engine timer behind `key`, unless it was cancelled.
  bool takeTimer(uint64_t key, uint64_t* id);

  uint64_t armTimer(EventKind kind, ModuleStream* target, double delayMs);
  static void disarmTimer(uint64_t key);

 private:
  std::shared_ptr<ConfigShared> config_;
  uint32_t index_;
  std::unique_ptr<Engine> engine_;
  std::string error_;
  uint64_t streams_ = 0;
  TimerKeys timers_;
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

// The engine of this worker thread for `config`, started on first use (its failure is logged;
// engine() is then nullptr).
WorkerEngine* workerFor(const std::shared_ptr<ConfigShared>& config, FilterPtr filter);

// The clock's callback: timer `key` is due (any thread).
void timerDue(uint64_t key);

// A stream that can carry scheduler events from now on; takes the events parked meanwhile.
void registerStream(ModuleStream* s);
void unregisterStream(ModuleStream* s);

}  // namespace envoy_js::module
