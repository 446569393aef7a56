// The envoy-js HTTP filter: Envoy's decoder/encoder callbacks on one side, the runtime's
// envoy_js::StreamHost on the other. All stream logic lives in runtime/ (stream.cc); these files
// only translate. filter.cc has the stream callbacks and the StreamHost calls, filter_views.cc
// the header and body adapters (and the rule for held body bytes), filter_callout.cc `ctx.fetch`.
//
// Lifetime and threading rules:
//  - The runtime's Stream is told onDestroy() from Filter::onDestroy() and is freed only in
//    ~Filter (Envoy deletes filters deferred, on the worker), so a host call that makes Envoy
//    destroy the stream synchronously (resetStream) never frees code that is still running.
//  - Work posted to the dispatcher (StreamHost::schedule, inline callout answers) and timers
//    hold a weak reference to `alive_`, which dies in onDestroy(): after that nothing touches
//    the callbacks.
//  - Envoy is only called from this stream's own callbacks or from the post that schedule()
//    makes, never while the runtime runs another stream's code (host.h): continues, local
//    replies and resets happen at once because the runtime only asks for them there, and body
//    bytes that JS writes at other times stay in adapter memory (HeldBody) until then.
//  - Header views hold no map pointer: they look the map up at every access.
#pragma once

#include <cstdint>
#include <memory>

#include "envoy/buffer/buffer.h"
#include "envoy/event/deferred_deletable.h"
#include "envoy/http/async_client.h"
#include "envoy/http/filter.h"
#include "envoy/http/header_map.h"

#include "source/common/buffer/buffer_impl.h"
#include "source/common/common/logger.h"
#include "source/extensions/filters/http/common/pass_through_filter.h"

#include "absl/container/flat_hash_map.h"
#include "envoy_ext/filter/filter_config.h"
#include "runtime/engine.h"

namespace Envoy {
namespace Extensions {
namespace HttpFilters {
namespace QuickJs {

class Filter;

// envoy_js::HeaderMap over one of the stream's header maps. It keeps no pointer to the map:
// Envoy may replace a map while the runtime still uses the view (a local reply sent after the
// response headers arrived swaps the response headers in sendDirectLocalReply, and
// encodeHeaders never runs again), so every call looks the map up afresh.
class HeaderView : public envoy_js::HeaderMap {
public:
  HeaderView(Filter& filter, envoy_js::HeaderMapKind kind) : filter_(filter), kind_(kind) {}

  // The map as it is now; nullptr when the stream has none (yet), when this filter's callback
  // for it has not run, or after onDestroy().
  Http::HeaderMap* map() const;

  // envoy_js::HeaderMap. With no map (never the case while the runtime holds the view from
  // StreamHost::headerMap), reads find nothing and writes are dropped.
  size_t get(std::string_view name, size_t index, std::string_view* value) const override;
  void forEach(Visitor fn, void* opaque) const override;
  size_t size() const override;
  void set(std::string_view name, std::string_view value) override;
  void append(std::string_view name, std::string_view value) override;
  void remove(std::string_view name) override;

private:
  Filter& filter_;
  const envoy_js::HeaderMapKind kind_;
};

// envoy_js::BodyBuffer over the data of the decodeData/encodeData call now running.
class CurrentData : public envoy_js::BodyBuffer {
public:
  void reset(Buffer::Instance* data) { data_ = data; }
  bool empty() const { return data_ == nullptr; }

  // envoy_js::BodyBuffer
  size_t length() const override;
  void copyOut(size_t offset, size_t len, uint8_t* dst) const override;
  void replace(std::string_view data) override;
  void append(std::string_view data) override;
  void prepend(std::string_view data) override;

private:
  Buffer::Instance* data_{};
};

// envoy_js::BodyBuffer for StreamHost::bufferedData(): the body bytes this filter holds in one
// direction while the runtime keeps it stopped. The bytes live here, in adapter memory, and
// never in Envoy's filter buffer; filter_views.cc explains why and when they go to Envoy.
class HeldBody : public envoy_js::BodyBuffer {
public:
  Buffer::Instance& bytes() { return bytes_; }

  // envoy_js::BodyBuffer
  size_t length() const override;
  void copyOut(size_t offset, size_t len, uint8_t* dst) const override;
  void replace(std::string_view data) override;
  void append(std::string_view data) override;
  void prepend(std::string_view data) override;

private:
  Buffer::OwnedImpl bytes_;
};

// One `ctx.fetch` callout in flight.
class Callout : public Http::AsyncClient::Callbacks, public Event::DeferredDeletable {
public:
  Callout(Filter& filter, uint64_t id) : filter_(filter), id_(id) {}

  // Http::AsyncClient::Callbacks
  void onSuccess(const Http::AsyncClient::Request&, Http::ResponseMessagePtr&& response) override;
  void onFailure(const Http::AsyncClient::Request&,
                 Http::AsyncClient::FailureReason reason) override;
  void onBeforeFinalizeUpstreamSpan(Tracing::Span&, const Http::ResponseHeaderMap*) override {}

  Http::AsyncClient::Request* request_{};
  Event::TimerPtr timeout_;
  uint64_t body_limit_{};

private:
  Filter& filter_;
  const uint64_t id_;
};
using CalloutPtr = std::unique_ptr<Callout>;

class Filter : public Http::PassThroughFilter,
               public envoy_js::StreamHost,
               public Logger::Loggable<Logger::Id::filter> {
public:
  // `engine` is nullptr when this worker has no program (remote source not loaded).
  Filter(SharedStateConstSharedPtr shared, WorkerEngineSharedPtr engine);
  ~Filter() override;

  // Http::StreamDecoderFilter
  Http::FilterHeadersStatus decodeHeaders(Http::RequestHeaderMap& headers,
                                          bool end_stream) override;
  Http::FilterDataStatus decodeData(Buffer::Instance& data, bool end_stream) override;
  Http::FilterTrailersStatus decodeTrailers(Http::RequestTrailerMap& trailers) override;

  // Http::StreamEncoderFilter
  Http::FilterHeadersStatus encodeHeaders(Http::ResponseHeaderMap& headers,
                                          bool end_stream) override;
  Http::FilterDataStatus encodeData(Buffer::Instance& data, bool end_stream) override;
  Http::FilterTrailersStatus encodeTrailers(Http::ResponseTrailerMap& trailers) override;

  // Http::StreamFilterBase
  void onStreamComplete() override;
  void onDestroy() override;

  // envoy_js::StreamHost
  envoy_js::HeaderMap* headerMap(envoy_js::HeaderMapKind kind) override;
  envoy_js::BodyBuffer* currentData(envoy_js::Direction dir) override;
  envoy_js::BodyBuffer* bufferedData(envoy_js::Direction dir) override;
  void schedule() override;
  void continueStream(envoy_js::Direction dir) override;
  void sendLocalReply(const envoy_js::LocalReply& reply) override;
  void resetStream() override;
  void log(envoy_js::LogLevel level, std::string_view message) override;
  envoy_js::StreamInfo streamInfo() override;
  std::optional<envoy_js::MetadataValue> getMetadata(std::string_view ns,
                                                     std::string_view key) override;
  void setMetadata(std::string_view ns, std::string_view key,
                   const envoy_js::MetadataValue& value) override;
  std::optional<std::string> getFilterState(std::string_view key) override;
  void setFilterState(std::string_view key, std::string_view value) override;
  void clearRouteCache() override;
  envoy_js::RouteOverride routeOverride() override;
  envoy_js::CalloutStart startCallout(uint64_t id,
                                      const envoy_js::CalloutRequest& request) override;
  void cancelCallout(uint64_t id) override;

  envoy_js::HeaderMap* addTrailers(envoy_js::Direction dir, std::string* why_not) override;

private:
  friend class HeaderView;
  friend class Callout;

  // What this filter has seen and holds in one direction.
  struct Side {
    bool headers_seen{false};      // its headers callback ran
    bool trailers_seen{false};     // its trailers callback ran, or it added the trailers
    bool end_seen{false};          // end of stream: in headers or data, or trailers came
    bool headers_continued{false}; // the headers went on to the next filter
    bool in_end_data{false};       // inside the data callback that ends the stream
    bool above_high_watermark{false};
    HeldBody held;
  };

  static int index(envoy_js::Direction dir) { return dir == envoy_js::Direction::Request ? 0 : 1; }
  Side& side(envoy_js::Direction dir) { return sides_[index(dir)]; }
  // decodeHeaders without a usable engine: the failure policy, applied by the adapter.
  Http::FilterHeadersStatus failWithoutEngine();
  Http::FilterHeadersStatus afterHeaders(envoy_js::Direction dir, envoy_js::HeadersStatus status);
  Http::FilterDataStatus onData(envoy_js::Direction dir, Buffer::Instance& data, bool end_stream);
  Http::FilterTrailersStatus afterTrailers(envoy_js::Direction dir,
                                           envoy_js::TrailersStatus status);
  // filter_views.cc: moving held bytes to and from Envoy.
  Http::FilterDataStatus settleData(envoy_js::Direction dir, envoy_js::DataStatus status,
                                    Buffer::Instance& data);
  void handOver(envoy_js::Direction dir);
  void dropHeld();
  void updateWatermark(envoy_js::Direction dir);
  // filter_callout.cc
  void onCalloutDone(uint64_t id, envoy_js::CalloutResponse response);
  void finishCallout(uint64_t id, const envoy_js::CalloutResponse& response);

  const SharedStateConstSharedPtr shared_;
  const WorkerEngineSharedPtr engine_; // keeps the engine alive while this stream exists
  std::shared_ptr<bool> alive_{std::make_shared<bool>(true)};
  bool destroyed_{false};
  bool schedule_posted_{false}; // a schedule() post is pending: requests coalesce

  HeaderView headers_[4]{{*this, envoy_js::HeaderMapKind::RequestHeaders},
                         {*this, envoy_js::HeaderMapKind::RequestTrailers},
                         {*this, envoy_js::HeaderMapKind::ResponseHeaders},
                         {*this, envoy_js::HeaderMapKind::ResponseTrailers}}; // by HeaderMapKind
  CurrentData current_[2];
  Side sides_[2];

  absl::flat_hash_map<uint64_t, CalloutPtr> callouts_;
  bool starting_callout_{false};

  // Declared last: destroyed first, while everything it may call back into still exists.
  std::unique_ptr<envoy_js::Stream> stream_;
};

} // namespace QuickJs
} // namespace HttpFilters
} // namespace Extensions
} // namespace Envoy
