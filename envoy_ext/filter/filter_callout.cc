// `ctx.fetch`: StreamHost::startCallout/cancelCallout through the cluster's async client on the
// worker, with our own timer for the script's timeoutMs and the stream's tracing span as the
// parent of the callout's span.
#include <algorithm>
#include <chrono>
#include <limits>

#include "envoy/upstream/thread_local_cluster.h"

#include "source/common/http/message_impl.h"

#include "absl/strings/str_cat.h"
#include "envoy_ext/filter/filter.h"

namespace Envoy {
namespace Extensions {
namespace HttpFilters {
namespace QuickJs {

namespace {

// Callouts get this long beyond the script's timeoutMs before the async client's own timeout
// (which answers 504 instead of failing) could fire; our timer reports the timeout first.
constexpr std::chrono::milliseconds kCalloutClientTimeoutSlack{1000};

envoy_js::CalloutResponse failedCallout(envoy_js::CalloutResponse::Result result) {
  envoy_js::CalloutResponse response;
  response.result = result;
  return response;
}

} // namespace

// ---- Callout -----------------------------------------------------------------------------------

void Callout::onSuccess(const Http::AsyncClient::Request&, Http::ResponseMessagePtr&& response) {
  request_ = nullptr;
  if (response->body().length() > body_limit_) {
    filter_.onCalloutDone(id_, failedCallout(envoy_js::CalloutResponse::Result::ResponseTooLarge));
    return;
  }
  envoy_js::CalloutResponse result;
  response->headers().iterate([&result](const Http::HeaderEntry& entry) {
    result.headers.emplace_back(std::string(entry.key().getStringView()),
                                std::string(entry.value().getStringView()));
    return Http::HeaderMap::Iterate::Continue;
  });
  result.body = response->bodyAsString();
  filter_.onCalloutDone(id_, std::move(result));
}

void Callout::onFailure(const Http::AsyncClient::Request&,
                        Http::AsyncClient::FailureReason reason) {
  request_ = nullptr;
  // Reset, or the response went over the client's buffer limit.
  filter_.onCalloutDone(id_,
                        failedCallout(reason == Http::AsyncClient::FailureReason::Reset
                                          ? envoy_js::CalloutResponse::Result::Reset
                                          : envoy_js::CalloutResponse::Result::ResponseTooLarge));
}

// ---- Filter ------------------------------------------------------------------------------------

envoy_js::CalloutStart Filter::startCallout(uint64_t id, const envoy_js::CalloutRequest& request) {
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

  const uint64_t limit = engine_->engine()->settings().bufferLimitBytes;
  // timeoutMs 0 is no deadline, as for Envoy's own callouts (an unset or zero timeout). The
  // runtime refuses 0 from JS (docs/api.md, FetchInit), so today every callout has one.
  const bool deadline = request.timeoutMs > 0;
  const auto timeout = std::chrono::milliseconds(request.timeoutMs);
  auto options =
      Http::AsyncClient::RequestOptions()
          .setTimeout(deadline ? absl::optional<std::chrono::milliseconds>(
                                     timeout + kCalloutClientTimeoutSlack)
                               : absl::nullopt)
          .setParentContext(Http::AsyncClient::ParentContext{&decoder_callbacks_->streamInfo()})
          // The callout is a child span of the stream's span, as Envoy's Lua filter and ext_authz
          // trace theirs.
          .setParentSpan(decoder_callbacks_->activeSpan())
          .setChildSpanName(absl::StrCat("envoy_js fetch ", request.cluster))
          .setBufferLimit(static_cast<uint32_t>(
              std::min<uint64_t>(limit, std::numeric_limits<uint32_t>::max())));

  auto owned = std::make_unique<Callout>(*this, id);
  Callout& callout = *owned;
  callout.body_limit_ = limit;
  callouts_.emplace(id, std::move(owned));
  // The client may answer inline (e.g. no healthy upstream); onCalloutDone then defers the
  // delivery, because the runtime registers the callout only after this returns Started.
  starting_callout_ = true;
  callout.request_ = cluster->httpAsyncClient().send(std::move(message), callout, options);
  starting_callout_ = false;
  auto it = callouts_.find(id);
  if (it == callouts_.end()) {
    return envoy_js::CalloutStart::Started; // answered inline, delivery posted
  }
  if (callout.request_ == nullptr) {
    // No request and no answer: nothing will ever complete this callout.
    callouts_.erase(it);
    return envoy_js::CalloutStart::CannotCreate;
  }
  if (!deadline) {
    return envoy_js::CalloutStart::Started;
  }
  std::weak_ptr<bool> alive = alive_;
  callout.timeout_ = engine_->dispatcher().createTimer([this, alive, id]() {
    if (alive.expired()) {
      return;
    }
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
  return envoy_js::CalloutStart::Started;
}

void Filter::cancelCallout(uint64_t id) {
  auto it = callouts_.find(id);
  if (it == callouts_.end()) {
    return;
  }
  if (it->second->request_ != nullptr) {
    it->second->request_->cancel();
    it->second->request_ = nullptr;
  }
  it->second->timeout_.reset();
  engine_->dispatcher().deferredDelete(std::move(it->second));
  callouts_.erase(it);
}

void Filter::onCalloutDone(uint64_t id, envoy_js::CalloutResponse response) {
  if (!starting_callout_) {
    finishCallout(id, response);
    return;
  }
  // Answered from inside send(): hand it over once startCallout has returned.
  auto it = callouts_.find(id);
  if (it != callouts_.end()) {
    engine_->dispatcher().deferredDelete(std::move(it->second));
    callouts_.erase(it);
  }
  std::weak_ptr<bool> alive = alive_;
  engine_->dispatcher().post([this, alive, id, response = std::move(response)]() {
    if (!alive.expired() && stream_ != nullptr) {
      stream_->onCalloutDone(id, response);
    }
  });
}

void Filter::finishCallout(uint64_t id, const envoy_js::CalloutResponse& response) {
  auto it = callouts_.find(id);
  if (it == callouts_.end()) {
    return; // cancelled meanwhile
  }
  it->second->timeout_.reset();
  // Called from the callout's own callback: free it after the callback returned.
  engine_->dispatcher().deferredDelete(std::move(it->second));
  callouts_.erase(it);
  if (stream_ != nullptr) {
    stream_->onCalloutDone(id, response);
  }
}

} // namespace QuickJs
} // namespace HttpFilters
} // namespace Extensions
} // namespace Envoy
