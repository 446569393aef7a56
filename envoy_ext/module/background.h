// The filter config's background engine (`background(config, bg)`, runtime/host.h
// BackgroundHost) over the ABI's config-level calls, on Envoy's MAIN thread: the only thread the
// dynamic-module ABI reaches without a stream (docs/limits.md "Work outside a request").
//  - Started by a config scheduler event committed in on_http_filter_config_new, so that the
//    engine starts from Envoy's event loop once the config is in place (never for Envoy's
//    config check, which only constructs it), and only for a filter that has `background`.
//  - Timers: the module's clock (clock.h) commits a config scheduler event when one is due;
//    on_http_filter_config_scheduled fires it.
//  - bg.fetch: the config-level callout; on_http_filter_config_http_callout_done answers it.
//    Its timeoutMs is the module's own deadline, as for ctx.fetch (stream.cc).
//  - Destroyed with the config (on_http_filter_config_destroy): the engine goes first, its
//    timer routes and scheduler with it; callout answers that Envoy still delivers afterwards
//    are dropped (hooks.cc keeps such a config's address out of reuse).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>

#include "../../runtime/engine.h"
#include "abi.h"
#include "config.h"
#include "worker.h"

namespace envoy_js::module {

// The config-level callbacks, resolved once when the module loads (hooks.cc); any null means
// this host cannot run background work.
struct BackgroundAbi {
  envoy_js_http_filter_config_scheduler_new_fn schedulerNew = nullptr;
  envoy_js_http_filter_config_scheduler_commit_fn schedulerCommit = nullptr;
  envoy_js_http_filter_config_scheduler_delete_fn schedulerDelete = nullptr;
  envoy_js_http_filter_config_http_callout_fn httpCallout = nullptr;
  bool complete() const { return schedulerNew && schedulerCommit && schedulerDelete && httpCallout; }
};
extern BackgroundAbi gBackgroundAbi;

class ModuleBackground : public BackgroundHost {
 public:
  ModuleBackground(std::shared_ptr<ConfigShared> config, envoy_dynamic_module_type_http_filter_config_envoy_ptr envoy);
  ~ModuleBackground() override;

  // In on_http_filter_config_new: takes a config scheduler and commits the start event.
  bool begin(std::string* error);
  // on_http_filter_config_scheduled (main thread).
  void onScheduled(uint64_t event);
  // on_http_filter_config_http_callout_done (main thread).
  void calloutDone(uint64_t envoyId, envoy_dynamic_module_type_http_callout_result result,
                   envoy_dynamic_module_type_envoy_http_header* headers, size_t headersSize,
                   envoy_dynamic_module_type_envoy_buffer* chunks, size_t chunksSize);
  // Callouts Envoy may still answer.
  bool calloutsInFlight() const { return !callouts_.empty(); }
  // The clock thread, with g.mutex held: a timer of this engine is due.
  void commitLocked(uint64_t event);

  // ---- BackgroundHost ----
  void log(LogLevel level, std::string_view message) override;
  double nowMs() override;
  void incrementCounter(std::string_view name, uint64_t delta) override;
  void recordMetric(size_t, MetricKind, const std::vector<std::string>&, double) override {}
  void startTimer(uint64_t id, double delayMs) override;
  void cancelTimer(uint64_t id) override;
  CalloutStart startCallout(uint64_t id, const CalloutRequest& request) override;
  void cancelCallout(uint64_t id) override;

 private:
  uint64_t arm(EventKind kind, double delayMs);
  std::shared_ptr<ConfigShared> config_;
  envoy_dynamic_module_type_http_filter_config_envoy_ptr envoy_;
  envoy_dynamic_module_type_http_filter_config_scheduler_module_ptr scheduler_ = nullptr;
  std::unique_ptr<Engine> engine_;
  TimerKeys timers_;
  struct Pending {
    uint64_t runtimeId;
    uint64_t deadline;  // clock key of its timeoutMs
  };
  std::unordered_map<uint64_t, Pending> callouts_;    // Envoy's callout id ->
  std::unordered_map<uint64_t, uint64_t> deadlines_;  // clock key -> Envoy's callout id
};

}  // namespace envoy_js::module
