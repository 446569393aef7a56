// The filter config's background engine (`background(config, bg)`, runtime/host.h
// BackgroundHost) in the native extension: on the main thread, with timers on the main
// dispatcher and `bg.fetch` through the cluster manager's async client there (as the remote
// source fetch and Envoy's own JWKS fetcher do).
//
// Ownership and threads: FilterConfig owns it (main thread) and creates it only for a program
// with `background`. The engine starts from a post to the main dispatcher, so that a config
// that is only built (a config check, `--mode validate`) never runs it; it is destroyed with the
// config: the engine first (its timers go through cancelTimer), then callouts still in flight
// are cancelled. Nothing of it runs afterwards.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "envoy/event/deferred_deletable.h"
#include "envoy/event/dispatcher.h"
#include "envoy/event/timer.h"
#include "envoy/http/async_client.h"

#include "source/common/common/logger.h"

#include "absl/container/flat_hash_map.h"
#include "envoy_ext/filter/filter_config.h"
#include "runtime/engine.h"

namespace Envoy {
namespace Extensions {
namespace HttpFilters {
namespace QuickJs {

class BackgroundEngine : public envoy_js::BackgroundHost,
                         public Logger::Loggable<Logger::Id::filter> {
public:
  BackgroundEngine(SharedStateConstSharedPtr shared,
                   std::shared_ptr<const envoy_js::FilterProgram> program,
                   Event::Dispatcher& main_dispatcher);
  ~BackgroundEngine() override;

  // Posts the engine's start (Engine::createBackground) to the main dispatcher.
  void start();

  // envoy_js::EngineHost
  void log(envoy_js::LogLevel level, std::string_view message) override;
  double nowMs() override;
  void incrementCounter(std::string_view name, uint64_t delta) override;
  // `bg` has no metrics.
  void recordMetric(size_t, envoy_js::MetricKind, const std::vector<std::string>&,
                    double) override {}
  void startTimer(uint64_t id, double delay_ms) override;
  void cancelTimer(uint64_t id) override;
  // envoy_js::BackgroundHost
  envoy_js::CalloutStart startCallout(uint64_t id,
                                      const envoy_js::CalloutRequest& request) override;
  void cancelCallout(uint64_t id) override;

private:
  class Callout : public Http::AsyncClient::Callbacks, public Event::DeferredDeletable {
  public:
    Callout(BackgroundEngine& owner, uint64_t id) : owner_(owner), id_(id) {}
    // Http::AsyncClient::Callbacks
    void onSuccess(const Http::AsyncClient::Request&, Http::ResponseMessagePtr&& response) override;
    void onFailure(const Http::AsyncClient::Request&,
                   Http::AsyncClient::FailureReason reason) override;
    void onBeforeFinalizeUpstreamSpan(Tracing::Span&, const Http::ResponseHeaderMap*) override {}

    Http::AsyncClient::Request* request_{};
    Event::TimerPtr timeout_;
    uint64_t body_limit_{};

  private:
    BackgroundEngine& owner_;
    const uint64_t id_;
  };

  void onTimer(uint64_t id);
  // The callout's answer, from its callback (or posted when it came inside send()).
  void onCalloutDone(uint64_t id, envoy_js::CalloutResponse response);
  void finishCallout(uint64_t id, const envoy_js::CalloutResponse& response);

  const SharedStateConstSharedPtr shared_;
  const std::shared_ptr<const envoy_js::FilterProgram> program_;
  Event::Dispatcher& dispatcher_;
  // Posted work checks it: nothing runs once this object is gone.
  std::shared_ptr<bool> alive_{std::make_shared<bool>(true)};
  absl::flat_hash_map<uint64_t, Event::TimerPtr> timers_;
  absl::flat_hash_map<uint64_t, std::unique_ptr<Callout>> callouts_;
  bool starting_callout_{false};
  // Declared last so that it goes first: the engine cancels its timers while it is destroyed.
  std::unique_ptr<envoy_js::Engine> engine_;
};

} // namespace QuickJs
} // namespace HttpFilters
} // namespace Extensions
} // namespace Envoy
