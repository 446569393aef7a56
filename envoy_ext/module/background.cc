// The filter config's background engine on Envoy's main thread (background.h).
#include "background.h"

#include <mutex>

#include "abi_util.h"

namespace envoy_js::module {

BackgroundAbi gBackgroundAbi;

namespace {
// The start event: `background(config, bg)` runs from Envoy's event loop, not inside config_new.
constexpr uint64_t kStartEvent = kScheduled;
// Envoy's own callout timeout comes later than the module's deadline (as for ctx.fetch): the
// filter sees "timeout", never Envoy's 504.
constexpr uint64_t kCalloutGraceMs = 1000;
}  // namespace

ModuleBackground::ModuleBackground(std::shared_ptr<ConfigShared> config,
                                   envoy_dynamic_module_type_http_filter_config_envoy_ptr envoy)
    : config_(std::move(config)), envoy_(envoy) {}

ModuleBackground::~ModuleBackground() {
  if (engine_) {
    engine_.reset();  // cancels its timers through cancelTimer
    log(LogLevel::Info, "stopped: the filter config is gone");
  }
  std::lock_guard<std::mutex> lock(g.mutex);
  for (auto it = g.routes.begin(); it != g.routes.end();) {
    if (it->second.background == this) {
      g.clock->disarm(it->first);
      it = g.routes.erase(it);
    } else {
      ++it;
    }
  }
  // Under g.mutex: the clock thread commits only while it holds it and finds a route of ours.
  if (scheduler_ != nullptr) gBackgroundAbi.schedulerDelete(scheduler_);
  scheduler_ = nullptr;
}

bool ModuleBackground::begin(std::string* error) {
  if (!gBackgroundAbi.complete()) {
    *error = "this host has no config-level scheduler and callout in its dynamic-module ABI, which `background` "
             "needs (Envoy has them from 1.38)";
    return false;
  }
  scheduler_ = gBackgroundAbi.schedulerNew(envoy_);
  if (scheduler_ == nullptr) {
    *error = "Envoy gave no config scheduler for `background`";
    return false;
  }
  gBackgroundAbi.schedulerCommit(scheduler_, kStartEvent);
  return true;
}

void ModuleBackground::commitLocked(uint64_t event) {
  if (scheduler_ != nullptr) gBackgroundAbi.schedulerCommit(scheduler_, event);
}

void ModuleBackground::onScheduled(uint64_t event) {
  uint64_t key = event >> 2;
  switch (static_cast<EventKind>(event & 3)) {
    case kScheduled: {
      if (key != 0 || engine_) return;
      std::string error;
      engine_ = Engine::createBackground(config_->program, *this, &error);
      if (!engine_) log(LogLevel::Error, "the background engine cannot start: " + error);
      break;
    }
    case kUnusedEvent: break;
    case kTimerDue: {
      uint64_t id = 0;
      if (!engine_ || !timers_.takeKey(key, &id)) return;  // cancelled meanwhile
      engine_->fireTimer(id);
      break;
    }
    case kCalloutDeadline: {
      auto d = deadlines_.find(key);
      if (d == deadlines_.end()) return;
      uint64_t envoyId = d->second;
      deadlines_.erase(d);
      auto it = callouts_.find(envoyId);
      if (it == callouts_.end()) return;
      uint64_t runtimeId = it->second.runtimeId;
      // Kept until Envoy's own answer (its timeout comes kCalloutGraceMs later), then dropped.
      it->second = Pending{0, 0};
      CalloutResponse response;
      response.result = CalloutResponse::Result::Timeout;
      if (engine_) engine_->onCalloutDone(runtimeId, response);
      break;
    }
  }
}

void ModuleBackground::calloutDone(uint64_t envoyId, envoy_dynamic_module_type_http_callout_result result,
                                   envoy_dynamic_module_type_envoy_http_header* headers, size_t headersSize,
                                   envoy_dynamic_module_type_envoy_buffer* chunks, size_t chunksSize) {
  auto it = callouts_.find(envoyId);
  if (it == callouts_.end()) return;  // cancelled, or already timed out
  Pending p = it->second;
  callouts_.erase(it);
  if (p.runtimeId == 0) return;  // timed out or cancelled: the filter has its answer
  WorkerEngine::disarmTimer(p.deadline);
  deadlines_.erase(p.deadline);
  if (!engine_) return;
  CalloutResponse response;
  if (result == envoy_dynamic_module_type_http_callout_result_Success) {
    for (size_t i = 0; i < headersSize; i++) {
      response.headers.emplace_back(std::string(headers[i].key_ptr, headers[i].key_length),
                                    std::string(headers[i].value_ptr, headers[i].value_length));
    }
    for (size_t i = 0; i < chunksSize; i++) response.body.append(chunks[i].ptr, chunks[i].length);
    if (response.body.size() > config_->program->settings().bufferLimitBytes) {
      response = CalloutResponse{};
      response.result = CalloutResponse::Result::ResponseTooLarge;
    }
  } else if (result == envoy_dynamic_module_type_http_callout_result_ExceedResponseBufferLimit) {
    response.result = CalloutResponse::Result::ResponseTooLarge;
  } else {
    response.result = CalloutResponse::Result::Reset;
  }
  engine_->onCalloutDone(p.runtimeId, response);
}

void ModuleBackground::log(LogLevel level, std::string_view message) {
  logLine(level, "envoy_js(" + config_->name + ") background: " + std::string(message));
}

double ModuleBackground::nowMs() { return g.clock->nowMs(); }

// The ABI of 1.38/1.39 counts only through a stream's filter: the counts wait in the config
// until a worker's next stream of it adds them (hooks.cc, on_http_filter_new).
void ModuleBackground::incrementCounter(std::string_view name, uint64_t delta) {
  for (size_t i = 0; i < std::size(kEngineCounters); i++) {
    if (name == kEngineCounters[i]) config_->backgroundCounts[i] += delta;
  }
}

uint64_t ModuleBackground::arm(EventKind kind, double delayMs) {
  uint64_t key = g.nextKey++;
  {
    std::lock_guard<std::mutex> lock(g.mutex);
    g.routes[key] = TimerRoute{nullptr, nullptr, kind, this};
  }
  g.clock->arm(key, delayMs);
  return key;
}

void ModuleBackground::startTimer(uint64_t id, double delayMs) { timers_.add(arm(kTimerDue, delayMs), id); }

void ModuleBackground::cancelTimer(uint64_t id) {
  uint64_t key = 0;
  if (timers_.removeId(id, &key)) WorkerEngine::disarmTimer(key);
}

CalloutStart ModuleBackground::startCallout(uint64_t id, const CalloutRequest& request) {
  std::vector<envoy_dynamic_module_type_module_http_header> headers;
  for (const auto& [k, v] : request.headers) headers.push_back({k.data(), k.size(), v.data(), v.size()});
  uint64_t envoyId = 0;
  auto r = gBackgroundAbi.httpCallout(envoy_, &envoyId, buf(request.cluster), headers.data(), headers.size(),
                                      buf(request.body), request.timeoutMs + kCalloutGraceMs);
  if (r == envoy_dynamic_module_type_http_callout_init_result_ClusterNotFound) return CalloutStart::UnknownCluster;
  if (r != envoy_dynamic_module_type_http_callout_init_result_Success) return CalloutStart::CannotCreate;
  uint64_t key = arm(kCalloutDeadline, request.timeoutMs);
  callouts_[envoyId] = Pending{id, key};
  deadlines_[key] = envoyId;
  return CalloutStart::Started;
}

// The ABI has no cancel for a config callout: its answer is dropped when it comes.
void ModuleBackground::cancelCallout(uint64_t id) {
  for (auto it = callouts_.begin(); it != callouts_.end(); ++it) {
    if (it->second.runtimeId != id) continue;
    WorkerEngine::disarmTimer(it->second.deadline);
    deadlines_.erase(it->second.deadline);
    it->second = Pending{0, 0};  // kept: Envoy still answers it (calloutsInFlight)
    return;
  }
}

}  // namespace envoy_js::module
