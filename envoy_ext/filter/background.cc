// The filter config's background engine on the main thread (background.h).
#include "envoy_ext/filter/background.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>

#include "envoy/upstream/thread_local_cluster.h"

#include "source/common/http/message_impl.h"

#include "absl/strings/str_cat.h"

namespace Envoy {
namespace Extensions {
namespace HttpFilters {
namespace QuickJs {

namespace {

// As for ctx.fetch (filter_callout.cc): the async client's own timeout (a 504) comes later
// than the script's timeoutMs, which our timer reports as a timeout.
constexpr std::chrono::milliseconds kCalloutClientTimeoutSlack{1000};

envoy_js::CalloutResponse failedCallout(envoy_js::CalloutResponse::Result result) {
  envoy_js::CalloutResponse response;
  response.result = result;
  return response;
}

} // namespace

BackgroundEngine::BackgroundEngine(SharedStateConstSharedPtr shared,
                                   std::shared_ptr<const envoy_js::FilterProgram> program,
                                   Event::Dispatcher& main_dispatcher)
    : shared_(std::move(shared)), program_(std::move(program)), dispatcher_(main_dispatcher) {}

BackgroundEngine::~BackgroundEngine() {
  *alive_ = false;
  for (auto& [id, callout] : callouts_) {
    if (callout->request_ != nullptr) {
      callout->request_->cancel();
      callout->request_ = nullptr;
    }
  }
  callouts_.clear();
  if (engine_ != nullptr) {
    ENVOY_LOG(info, "envoy_js background: stopped: the filter config is gone");
  }
  // engine_ goes next (declared last), cancelling its timers through cancelTimer.
}

void BackgroundEngine::start() {
  std::weak_ptr<bool> alive = alive_;
  dispatcher_.post([this, alive]() {
    if (alive.expired() || engine_ != nullptr) {
      return;
    }
    std::string error;
    engine_ = envoy_js::Engine::createBackground(program_, *this, &error);
    if (engine_ == nullptr) {
      shared_->counters.errors.inc();
      ENVOY_LOG(error, "envoy_js background: the background engine cannot start: {}", error);
    }
  });
}

void BackgroundEngine::log(envoy_js::LogLevel level, std::string_view message) {
  switch (level) {
  case envoy_js::LogLevel::Trace:
    ENVOY_LOG(trace, "envoy_js background: {}", message);
    break;
  case envoy_js::LogLevel::Debug:
    ENVOY_LOG(debug, "envoy_js background: {}", message);
    break;
  case envoy_js::LogLevel::Info:
    ENVOY_LOG(info, "envoy_js background: {}", message);
    break;
  case envoy_js::LogLevel::Warn:
    ENVOY_LOG(warn, "envoy_js background: {}", message);
    break;
  case envoy_js::LogLevel::Error:
    ENVOY_LOG(error, "envoy_js background: {}", message);
    break;
  }
}

double BackgroundEngine::nowMs() {
  return std::chrono::duration<double, std::milli>(
             dispatcher_.timeSource().monotonicTime().time_since_epoch())
      .count();
}

void BackgroundEngine::incrementCounter(std::string_view name, uint64_t delta) {
  if (name == envoy_js::kCounterErrors) {
    shared_->counters.errors.add(delta);
  } else if (name == envoy_js::kCounterCpuLimit) {
    shared_->counters.cpu_limit.add(delta);
  } else if (name == envoy_js::kCounterHeapLimit) {
    shared_->counters.heap_limit.add(delta);
  }
}

void BackgroundEngine::startTimer(uint64_t id, double delay_ms) {
  const double ms = delay_ms > 0 ? std::min(delay_ms, 2147483647.0) : 0.0;
  const auto delay = std::chrono::milliseconds(static_cast<int64_t>(std::ceil(ms)));
  Event::TimerPtr timer = dispatcher_.createTimer([this, id]() { onTimer(id); });
  timer->enableTimer(delay);
  timers_[id] = std::move(timer);
}

void BackgroundEngine::cancelTimer(uint64_t id) { timers_.erase(id); }

void BackgroundEngine::onTimer(uint64_t id) {
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

// ---- bg.fetch ----------------------------------------------------------------------------------

void BackgroundEngine::Callout::onSuccess(const Http::AsyncClient::Request&,
                                          Http::ResponseMessagePtr&& response) {
  request_ = nullptr;
  if (response->body().length() > body_limit_) {
    owner_.onCalloutDone(id_, failedCallout(envoy_js::CalloutResponse::Result::ResponseTooLarge));
    return;
  }
  envoy_js::CalloutResponse result;
  response->headers().iterate([&result](const Http::HeaderEntry& entry) {
    result.headers.emplace_back(std::string(entry.key().getStringView()),
                                std::string(entry.value().getStringView()));
    return Http::HeaderMap::Iterate::Continue;
  });
  result.body = response->bodyAsString();
  owner_.onCalloutDone(id_, std::move(result));
}

void BackgroundEngine::Callout::onFailure(const Http::AsyncClient::Request&,
                                          Http::AsyncClient::FailureReason reason) {
  request_ = nullptr;
  owner_.onCalloutDone(id_,
                       failedCallout(reason == Http::AsyncClient::FailureReason::Reset
                                         ? envoy_js::CalloutResponse::Result::Reset
                                         : envoy_js::CalloutResponse::Result::ResponseTooLarge));
}

envoy_js::CalloutStart BackgroundEngine::startCallout(uint64_t id,
                                                      const envoy_js::CalloutRequest& request) {
  Upstream::ThreadLocalCluster* cluster =
      shared_->cluster_manager.getThreadLocalCluster(request.cluster);
  if (cluster == nullptr) {
    return envoy_js::CalloutStart::UnknownCluster;
  }
  auto message = std::make_unique<Http::RequestMessageImpl>();
  for (const auto& [name, value] : request.headers) {
    message->headers().addCopy(Http::LowerCaseString(name), value);
  }
  if (!request.body.empty()) {
    message->body().add(request.body);
    if (message->headers().ContentLength() == nullptr) {
      message->headers().setContentLength(request.body.size());
    }
  }
  const uint64_t limit = program_->settings().bufferLimitBytes;
  const bool deadline = request.timeoutMs > 0;
  const auto timeout = std::chrono::milliseconds(request.timeoutMs);
  auto options = Http::AsyncClient::RequestOptions()
                     .setTimeout(deadline ? absl::optional<std::chrono::milliseconds>(
                                                timeout + kCalloutClientTimeoutSlack)
                                          : absl::nullopt)
                     .setBufferLimit(static_cast<uint32_t>(
                         std::min<uint64_t>(limit, std::numeric_limits<uint32_t>::max())));

  auto owned = std::make_unique<Callout>(*this, id);
  Callout& callout = *owned;
  callout.body_limit_ = limit;
  callouts_.emplace(id, std::move(owned));
  starting_callout_ = true;
  callout.request_ = cluster->httpAsyncClient().send(std::move(message), callout, options);
  starting_callout_ = false;
  auto it = callouts_.find(id);
  if (it == callouts_.end()) {
    return envoy_js::CalloutStart::Started; // answered inline, delivery posted
  }
  if (callout.request_ == nullptr) {
    callouts_.erase(it);
    return envoy_js::CalloutStart::CannotCreate;
  }
  if (deadline) {
    callout.timeout_ = dispatcher_.createTimer([this, id]() {
      auto found = callouts_.find(id);
      if (found == callouts_.end()) {
        return;
      }
      if (found->second->request_ != nullptr) {
        found->second->request_->cancel();
        found->second->request_ = nullptr;
      }
      finishCallout(id, failedCallout(envoy_js::CalloutResponse::Result::Timeout));
    });
    callout.timeout_->enableTimer(timeout);
  }
  return envoy_js::CalloutStart::Started;
}

void BackgroundEngine::cancelCallout(uint64_t id) {
  auto it = callouts_.find(id);
  if (it == callouts_.end()) {
    return;
  }
  if (it->second->request_ != nullptr) {
    it->second->request_->cancel();
    it->second->request_ = nullptr;
  }
  it->second->timeout_.reset();
  dispatcher_.deferredDelete(std::move(it->second));
  callouts_.erase(it);
}

void BackgroundEngine::onCalloutDone(uint64_t id, envoy_js::CalloutResponse response) {
  if (!starting_callout_) {
    finishCallout(id, response);
    return;
  }
  // Answered from inside send(): hand it over once startCallout has returned.
  auto it = callouts_.find(id);
  if (it != callouts_.end()) {
    dispatcher_.deferredDelete(std::move(it->second));
    callouts_.erase(it);
  }
  std::weak_ptr<bool> alive = alive_;
  dispatcher_.post([this, alive, id, response = std::move(response)]() {
    if (!alive.expired() && engine_ != nullptr) {
      engine_->onCalloutDone(id, response);
    }
  });
}

void BackgroundEngine::finishCallout(uint64_t id, const envoy_js::CalloutResponse& response) {
  auto it = callouts_.find(id);
  if (it == callouts_.end()) {
    return;
  }
  it->second->timeout_.reset();
  dispatcher_.deferredDelete(std::move(it->second));
  callouts_.erase(it);
  if (engine_ != nullptr) {
    engine_->onCalloutDone(id, response);
  }
}

} // namespace QuickJs
} // namespace HttpFilters
} // namespace Extensions
} // namespace Envoy
