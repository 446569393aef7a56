// The envoy-js HTTP filter: Envoy's decoder/encoder callbacks on one side, the runtime's
// envoy_js::StreamHost on the other. All stream logic lives in runtime/ (stream.cc); this file
// only translates.
//
// Lifetime rules:
//  - The runtime's Stream is told onDestroy() from Filter::onDestroy() and is freed only in
//    ~Filter (Envoy deletes filters deferred, on the worker), so a host call that makes Envoy
//    destroy the stream synchronously (resetStream) never frees code that is still running.
//  - Posted continues and callout completions hold a weak reference to `alive_`, which dies in
//    onDestroy(): after that nothing touches the callbacks.
//  - The adapters below are views: they are valid only during the Envoy callback that set
//    them, which is also the only time the runtime asks for them (host.h).
#pragma once

#include <cstdint>
#include <memory>

#include "envoy/buffer/buffer.h"
#include "envoy/event/deferred_deletable.h"
#include "envoy/http/async_client.h"
#include "envoy/http/filter.h"
#include "envoy/http/header_map.h"

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

// envoy_js::HeaderMap over one of the stream's Envoy header maps.
class HeaderView : public envoy_js::HeaderMap {
public:
  void reset(Http::HeaderMap* map) { map_ = map; }
  bool empty() const { return map_ == nullptr; }

  // envoy_js::HeaderMap
  size_t get(std::string_view name, size_t index, std::string_view* value) const override;
  void forEach(Visitor fn, void* opaque) const override;
  size_t size() const override;
  void set(std::string_view name, std::string_view value) override;
  void append(std::string_view name, std::string_view value) override;
  void remove(std::string_view name) override;

private:
  Http::HeaderMap* map_{};
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

// envoy_js::BodyBuffer over what Envoy buffered for this filter in one direction
// (decodingBuffer()/encodingBuffer()). Envoy creates that buffer lazily: while it does not
// exist, writes go through addDecodedData/addEncodedData, afterwards through
// modifyDecodingBuffer/modifyEncodingBuffer.
class BufferedData : public envoy_js::BodyBuffer {
public:
  BufferedData(Filter& filter, envoy_js::Direction dir) : filter_(filter), dir_(dir) {}

  // envoy_js::BodyBuffer
  size_t length() const override;
  void copyOut(size_t offset, size_t len, uint8_t* dst) const override;
  void replace(std::string_view data) override;
  void append(std::string_view data) override;
  void prepend(std::string_view data) override;

private:
  const Buffer::Instance* buffer() const;
  void modify(std::function<void(Buffer::Instance&)> fn);
  void add(std::string_view data);

  Filter& filter_;
  const envoy_js::Direction dir_;
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
  envoy_js::CalloutStart startCallout(uint64_t id, const envoy_js::CalloutRequest& request) override;
  void cancelCallout(uint64_t id) override;

private:
  friend class BufferedData;
  friend class Callout;

  static int index(envoy_js::Direction dir) { return dir == envoy_js::Direction::Request ? 0 : 1; }
  // Records whether Envoy now holds `dir` for us, so that a posted continue that is no longer
  // wanted (Envoy resumed on its own, or a newer stop followed) is dropped.
  void noteStatus(envoy_js::Direction dir, bool stopped);
  // decodeHeaders without a usable engine: the failure policy, applied by the adapter.
  Http::FilterHeadersStatus failWithoutEngine();
  void onCalloutDone(uint64_t id, envoy_js::CalloutResponse response);
  void finishCallout(uint64_t id, const envoy_js::CalloutResponse& response);

  const SharedStateConstSharedPtr shared_;
  const WorkerEngineSharedPtr engine_; // keeps the engine alive while this stream exists
  std::shared_ptr<bool> alive_{std::make_shared<bool>(true)};

  HeaderView headers_[4]; // indexed by envoy_js::HeaderMapKind
  CurrentData current_[2];
  BufferedData buffered_[2]{{*this, envoy_js::Direction::Request},
                            {*this, envoy_js::Direction::Response}};
  bool stopped_[2]{false, false};
  uint64_t stop_epoch_[2]{0, 0};
  bool local_reply_sent_{false};

  absl::flat_hash_map<uint64_t, CalloutPtr> callouts_;
  bool starting_callout_{false};

  // Declared last: destroyed first, while everything it may call back into still exists.
  std::unique_ptr<envoy_js::Stream> stream_;
};

} // namespace QuickJs
} // namespace HttpFilters
} // namespace Extensions
} // namespace Envoy
