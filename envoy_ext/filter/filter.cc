#include "envoy_ext/filter/filter.h"

#include <algorithm>
#include <chrono>
#include <limits>

#include "envoy/router/string_accessor.h"
#include "envoy/stream_info/filter_state.h"
#include "envoy/upstream/thread_local_cluster.h"

#include "source/common/buffer/buffer_impl.h"
#include "source/common/http/header_map_impl.h"
#include "source/common/http/message_impl.h"
#include "source/common/http/utility.h"
#include "source/common/protobuf/utility.h"
#include "source/common/router/string_accessor_impl.h"

#include "absl/container/flat_hash_set.h"

namespace Envoy {
namespace Extensions {
namespace HttpFilters {
namespace QuickJs {

namespace {

// The runtime's status codes are Envoy's (host.h); these pin that down at compile time so the
// casts below stay 1:1.
#define QUICKJS_SAME_VALUE(ENVOY, RUNTIME)                                                        \
  static_assert(static_cast<int>(ENVOY) == static_cast<int>(RUNTIME), #ENVOY " != " #RUNTIME)
QUICKJS_SAME_VALUE(Http::FilterHeadersStatus::Continue, envoy_js::HeadersStatus::Continue);
QUICKJS_SAME_VALUE(Http::FilterHeadersStatus::StopIteration,
                   envoy_js::HeadersStatus::StopIteration);
QUICKJS_SAME_VALUE(Http::FilterHeadersStatus::ContinueAndDontEndStream,
                   envoy_js::HeadersStatus::ContinueAndDontEndStream);
QUICKJS_SAME_VALUE(Http::FilterHeadersStatus::StopAllIterationAndBuffer,
                   envoy_js::HeadersStatus::StopAllIterationAndBuffer);
QUICKJS_SAME_VALUE(Http::FilterHeadersStatus::StopAllIterationAndWatermark,
                   envoy_js::HeadersStatus::StopAllIterationAndWatermark);
QUICKJS_SAME_VALUE(Http::FilterDataStatus::Continue, envoy_js::DataStatus::Continue);
QUICKJS_SAME_VALUE(Http::FilterDataStatus::StopIterationAndBuffer,
                   envoy_js::DataStatus::StopIterationAndBuffer);
QUICKJS_SAME_VALUE(Http::FilterDataStatus::StopIterationAndWatermark,
                   envoy_js::DataStatus::StopIterationAndWatermark);
QUICKJS_SAME_VALUE(Http::FilterDataStatus::StopIterationNoBuffer,
                   envoy_js::DataStatus::StopIterationNoBuffer);
QUICKJS_SAME_VALUE(Http::FilterTrailersStatus::Continue, envoy_js::TrailersStatus::Continue);
QUICKJS_SAME_VALUE(Http::FilterTrailersStatus::StopIteration,
                   envoy_js::TrailersStatus::StopIteration);
#undef QUICKJS_SAME_VALUE

constexpr envoy_js::Direction kRequest = envoy_js::Direction::Request;
constexpr envoy_js::Direction kResponse = envoy_js::Direction::Response;

// Callouts get this long beyond the script's timeoutMs before the async client's own timeout
// (which answers 504 instead of failing) could fire; our timer reports the timeout first.
constexpr std::chrono::milliseconds kCalloutClientTimeoutSlack{1000};

// Filter state objects written by ctx.filterState.set: plain strings that other filters,
// header formatters (%FILTER_STATE(key:PLAIN)%) and access logs read as StringAccessor. The
// subclass only lets us recognise our own entries, which we may overwrite.
class JsFilterStateValue : public Router::StringAccessorImpl {
public:
  using Router::StringAccessorImpl::StringAccessorImpl;
};

Http::LowerCaseString headerName(std::string_view name) {
  return Http::LowerCaseString(absl::string_view(name.data(), name.size()));
}

envoy_js::CalloutResponse failedCallout(envoy_js::CalloutResponse::Result result) {
  envoy_js::CalloutResponse response;
  response.result = result;
  return response;
}

// Dynamic metadata crosses typed, with no JSON in between: a Protobuf::Value is a
// MetadataValue. A Struct has no key order: its fields come in key order.
envoy_js::MetadataValue metadataFromProto(const Protobuf::Value& value) {
  using Kind = envoy_js::MetadataValue::Kind;
  envoy_js::MetadataValue out;
  switch (value.kind_case()) {
  case Protobuf::Value::kBoolValue:
    out.kind = Kind::Bool;
    out.boolean = value.bool_value();
    break;
  case Protobuf::Value::kNumberValue:
    out.kind = Kind::Number;
    out.number = value.number_value();
    break;
  case Protobuf::Value::kStringValue:
    out.kind = Kind::String;
    out.string = std::string(value.string_value());
    break;
  case Protobuf::Value::kListValue:
    out.kind = Kind::List;
    out.list.reserve(value.list_value().values_size());
    for (const Protobuf::Value& item : value.list_value().values()) {
      out.list.push_back(metadataFromProto(item));
    }
    break;
  case Protobuf::Value::kStructValue:
    out.kind = Kind::Object;
    for (const auto& field : value.struct_value().fields()) {
      out.object.emplace_back(std::string(field.first), metadataFromProto(field.second));
    }
    std::sort(out.object.begin(), out.object.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    break;
  case Protobuf::Value::kNullValue:
  case Protobuf::Value::KIND_NOT_SET:
    break; // Kind::Null
  }
  return out;
}

void metadataToProto(const envoy_js::MetadataValue& value, Protobuf::Value& out) {
  using Kind = envoy_js::MetadataValue::Kind;
  switch (value.kind) {
  case Kind::Null:
    out.set_null_value(Protobuf::NULL_VALUE);
    break;
  case Kind::Bool:
    out.set_bool_value(value.boolean);
    break;
  case Kind::Number:
    out.set_number_value(value.number);
    break;
  case Kind::String:
    out.set_string_value(value.string);
    break;
  case Kind::List: {
    Protobuf::ListValue* list = out.mutable_list_value();
    for (const envoy_js::MetadataValue& item : value.list) {
      metadataToProto(item, *list->add_values());
    }
    break;
  }
  case Kind::Object: {
    auto& fields = *out.mutable_struct_value()->mutable_fields();
    for (const auto& [key, item] : value.object) {
      metadataToProto(item, fields[key]);
    }
    break;
  }
  }
}

} // namespace

// ---- HeaderView --------------------------------------------------------------------------------

size_t HeaderView::get(std::string_view name, size_t index, std::string_view* value) const {
  const Http::HeaderMap::GetResult result = map_->get(headerName(name));
  if (index < result.size()) {
    const absl::string_view v = result[index]->value().getStringView();
    *value = std::string_view(v.data(), v.size());
  }
  return result.size();
}

void HeaderView::forEach(Visitor fn, void* opaque) const {
  map_->iterate([fn, opaque](const Http::HeaderEntry& entry) -> Http::HeaderMap::Iterate {
    const absl::string_view key = entry.key().getStringView();
    const absl::string_view value = entry.value().getStringView();
    fn(opaque, std::string_view(key.data(), key.size()),
       std::string_view(value.data(), value.size()));
    return Http::HeaderMap::Iterate::Continue;
  });
}

size_t HeaderView::size() const { return map_->size(); }

void HeaderView::set(std::string_view name, std::string_view value) {
  map_->setCopy(headerName(name), absl::string_view(value.data(), value.size()));
}

void HeaderView::append(std::string_view name, std::string_view value) {
  map_->addCopy(headerName(name), absl::string_view(value.data(), value.size()));
}

void HeaderView::remove(std::string_view name) { map_->remove(headerName(name)); }

// ---- CurrentData -------------------------------------------------------------------------------

size_t CurrentData::length() const { return data_->length(); }

void CurrentData::copyOut(size_t offset, size_t len, uint8_t* dst) const {
  data_->copyOut(offset, len, dst);
}

void CurrentData::replace(std::string_view data) {
  data_->drain(data_->length());
  data_->add(absl::string_view(data.data(), data.size()));
}

void CurrentData::append(std::string_view data) {
  data_->add(absl::string_view(data.data(), data.size()));
}

void CurrentData::prepend(std::string_view data) {
  data_->prepend(absl::string_view(data.data(), data.size()));
}

// ---- BufferedData ------------------------------------------------------------------------------

const Buffer::Instance* BufferedData::buffer() const {
  return dir_ == kRequest ? filter_.decoder_callbacks_->decodingBuffer()
                          : filter_.encoder_callbacks_->encodingBuffer();
}

void BufferedData::modify(std::function<void(Buffer::Instance&)> fn) {
  if (dir_ == kRequest) {
    filter_.decoder_callbacks_->modifyDecodingBuffer(std::move(fn));
  } else {
    filter_.encoder_callbacks_->modifyEncodingBuffer(std::move(fn));
  }
}

// Creates the buffer with `data` in it. The streaming flag is true: over Envoy's limit the
// connection is read-disabled rather than answered by Envoy; the runtime enforces
// buffer_limit_bytes itself and the filter raised Envoy's limit to at least that.
void BufferedData::add(std::string_view data) {
  Buffer::OwnedImpl chunk(absl::string_view(data.data(), data.size()));
  if (dir_ == kRequest) {
    filter_.decoder_callbacks_->addDecodedData(chunk, /*streaming_filter=*/true);
  } else {
    filter_.encoder_callbacks_->addEncodedData(chunk, /*streaming_filter=*/true);
  }
}

size_t BufferedData::length() const {
  const Buffer::Instance* b = buffer();
  return b == nullptr ? 0 : b->length();
}

void BufferedData::copyOut(size_t offset, size_t len, uint8_t* dst) const {
  if (len > 0) {
    buffer()->copyOut(offset, len, dst);
  }
}

void BufferedData::replace(std::string_view data) {
  if (buffer() == nullptr) {
    if (!data.empty()) {
      add(data);
    }
    return;
  }
  modify([data](Buffer::Instance& b) {
    b.drain(b.length());
    b.add(absl::string_view(data.data(), data.size()));
  });
}

void BufferedData::append(std::string_view data) {
  if (data.empty()) {
    return;
  }
  if (buffer() == nullptr) {
    add(data);
    return;
  }
  modify([data](Buffer::Instance& b) { b.add(absl::string_view(data.data(), data.size())); });
}

void BufferedData::prepend(std::string_view data) {
  if (data.empty()) {
    return;
  }
  if (buffer() == nullptr) {
    add(data);
    return;
  }
  modify(
      [data](Buffer::Instance& b) { b.prepend(absl::string_view(data.data(), data.size())); });
}

// ---- Callout -----------------------------------------------------------------------------------

void Callout::onSuccess(const Http::AsyncClient::Request&, Http::ResponseMessagePtr&& response) {
  request_ = nullptr;
  if (response->body().length() > body_limit_) {
    filter_.onCalloutDone(id_,
                          failedCallout(envoy_js::CalloutResponse::Result::ResponseTooLarge));
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
  filter_.onCalloutDone(id_, failedCallout(reason == Http::AsyncClient::FailureReason::Reset
                                               ? envoy_js::CalloutResponse::Result::Reset
                                               : envoy_js::CalloutResponse::Result::ResponseTooLarge));
}

// ---- Filter ------------------------------------------------------------------------------------

Filter::Filter(SharedStateConstSharedPtr shared, WorkerEngineSharedPtr engine)
    : shared_(std::move(shared)), engine_(std::move(engine)) {}

Filter::~Filter() {
  // Envoy always calls onDestroy() first; this only frees.
  stream_.reset();
}

void Filter::noteStatus(envoy_js::Direction dir, bool stopped) {
  stopped_[index(dir)] = stopped;
  if (stopped) {
    stop_epoch_[index(dir)]++;
  }
}

Http::FilterHeadersStatus Filter::failWithoutEngine() {
  shared_->counters.errors.inc();
  if (shared_->failure_mode == envoy_js::FailureMode::Open) {
    ENVOY_STREAM_LOG(debug, "quickjs: no engine on this worker, failure_mode open: passing",
                     *decoder_callbacks_);
    return Http::FilterHeadersStatus::Continue;
  }
  ENVOY_STREAM_LOG(debug, "quickjs: no engine on this worker, failure_mode closed: 500",
                   *decoder_callbacks_);
  local_reply_sent_ = true;
  decoder_callbacks_->sendLocalReply(Http::Code::InternalServerError, "", nullptr, std::nullopt,
                                     kErrorDetails);
  return Http::FilterHeadersStatus::StopIteration;
}

Http::FilterHeadersStatus Filter::decodeHeaders(Http::RequestHeaderMap& headers, bool end_stream) {
  headers_[static_cast<int>(envoy_js::HeaderMapKind::RequestHeaders)].reset(&headers);
  envoy_js::Engine* js = engine_ != nullptr ? engine_->engine() : nullptr;
  if (js == nullptr) {
    return failWithoutEngine();
  }
  // Whole-body reads buffer up to buffer_limit_bytes in Envoy's buffer: make sure Envoy's own
  // limit (0 = none) does not answer first. Filters only ever raise it.
  const uint64_t limit = js->settings().bufferLimitBytes;
  const uint64_t current = decoder_callbacks_->bufferLimit();
  if (current != 0 && current < limit) {
    decoder_callbacks_->setBufferLimit(limit);
  }
  stream_ = js->newStream(*this);
  const auto status = stream_->onRequestHeaders(end_stream);
  noteStatus(kRequest, status != envoy_js::HeadersStatus::Continue);
  return static_cast<Http::FilterHeadersStatus>(status);
}

Http::FilterDataStatus Filter::decodeData(Buffer::Instance& data, bool end_stream) {
  if (stream_ == nullptr) {
    return Http::FilterDataStatus::Continue;
  }
  current_[0].reset(&data);
  const auto status = stream_->onRequestData(end_stream);
  current_[0].reset(nullptr);
  noteStatus(kRequest, status != envoy_js::DataStatus::Continue);
  return static_cast<Http::FilterDataStatus>(status);
}

Http::FilterTrailersStatus Filter::decodeTrailers(Http::RequestTrailerMap& trailers) {
  headers_[static_cast<int>(envoy_js::HeaderMapKind::RequestTrailers)].reset(&trailers);
  if (stream_ == nullptr) {
    return Http::FilterTrailersStatus::Continue;
  }
  const auto status = stream_->onRequestTrailers();
  noteStatus(kRequest, status != envoy_js::TrailersStatus::Continue);
  return static_cast<Http::FilterTrailersStatus>(status);
}

Http::FilterHeadersStatus Filter::encodeHeaders(Http::ResponseHeaderMap& headers, bool end_stream) {
  // A local reply sent after an upstream response started replaces the headers: always use
  // the map of this call.
  headers_[static_cast<int>(envoy_js::HeaderMapKind::ResponseHeaders)].reset(&headers);
  headers_[static_cast<int>(envoy_js::HeaderMapKind::ResponseTrailers)].reset(nullptr);
  if (stream_ == nullptr) {
    return Http::FilterHeadersStatus::Continue;
  }
  const auto status = stream_->onResponseHeaders(end_stream);
  noteStatus(kResponse, status != envoy_js::HeadersStatus::Continue);
  return static_cast<Http::FilterHeadersStatus>(status);
}

Http::FilterDataStatus Filter::encodeData(Buffer::Instance& data, bool end_stream) {
  if (stream_ == nullptr) {
    return Http::FilterDataStatus::Continue;
  }
  current_[1].reset(&data);
  const auto status = stream_->onResponseData(end_stream);
  current_[1].reset(nullptr);
  noteStatus(kResponse, status != envoy_js::DataStatus::Continue);
  return static_cast<Http::FilterDataStatus>(status);
}

Http::FilterTrailersStatus Filter::encodeTrailers(Http::ResponseTrailerMap& trailers) {
  headers_[static_cast<int>(envoy_js::HeaderMapKind::ResponseTrailers)].reset(&trailers);
  if (stream_ == nullptr) {
    return Http::FilterTrailersStatus::Continue;
  }
  const auto status = stream_->onResponseTrailers();
  noteStatus(kResponse, status != envoy_js::TrailersStatus::Continue);
  return static_cast<Http::FilterTrailersStatus>(status);
}

void Filter::onStreamComplete() {
  if (stream_ != nullptr) {
    stream_->onComplete();
  }
}

void Filter::onDestroy() {
  alive_.reset();
  if (stream_ != nullptr) {
    stream_->onDestroy(); // the runtime cancels its callouts and timers first
  }
  for (auto& entry : callouts_) {
    Callout& callout = *entry.second;
    if (callout.request_ != nullptr) {
      callout.request_->cancel();
      callout.request_ = nullptr;
    }
    callout.timeout_.reset();
  }
  callouts_.clear();
  for (HeaderView& view : headers_) {
    view.reset(nullptr);
  }
}

// ---- envoy_js::StreamHost ----------------------------------------------------------------------

envoy_js::HeaderMap* Filter::headerMap(envoy_js::HeaderMapKind kind) {
  HeaderView& view = headers_[static_cast<int>(kind)];
  return view.empty() ? nullptr : &view;
}

envoy_js::BodyBuffer* Filter::currentData(envoy_js::Direction dir) {
  CurrentData& data = current_[index(dir)];
  return data.empty() ? nullptr : &data;
}

envoy_js::BodyBuffer* Filter::bufferedData(envoy_js::Direction dir) {
  return &buffered_[index(dir)];
}

void Filter::continueStream(envoy_js::Direction dir) {
  // Never continue from inside the runtime's call stack: post to this worker's dispatcher. By
  // the time the post runs the stream may be gone, answered, or stopped again for a newer
  // reason (the runtime will continue that one separately): then this continue is dropped.
  const uint64_t epoch = stop_epoch_[index(dir)];
  std::weak_ptr<bool> alive = alive_;
  decoder_callbacks_->dispatcher().post([this, alive, dir, epoch]() {
    if (alive.expired() || local_reply_sent_) {
      return;
    }
    const int i = index(dir);
    if (!stopped_[i] || stop_epoch_[i] != epoch) {
      ENVOY_STREAM_LOG(trace, "quickjs: dropping a stale continue", *decoder_callbacks_);
      return;
    }
    stopped_[i] = false;
    if (dir == kRequest) {
      decoder_callbacks_->continueDecoding();
    } else {
      encoder_callbacks_->continueEncoding();
    }
  });
}

void Filter::sendLocalReply(const envoy_js::LocalReply& reply) {
  local_reply_sent_ = true;
  std::vector<std::pair<std::string, std::string>> headers = reply.headers;
  auto modify_headers = [headers = std::move(headers)](Http::ResponseHeaderMap& map) {
    // The first value of a name replaces what Envoy set (e.g. content-type), later values of
    // the same name are added.
    absl::flat_hash_set<std::string> seen;
    for (const auto& [name, value] : headers) {
      const Http::LowerCaseString key(name);
      if (seen.insert(name).second) {
        map.setCopy(key, value);
      } else {
        map.addCopy(key, value);
      }
    }
  };
  decoder_callbacks_->sendLocalReply(static_cast<Http::Code>(reply.status), reply.body,
                                     std::move(modify_headers), std::nullopt, reply.details);
}

void Filter::resetStream() { decoder_callbacks_->resetStream(); }

void Filter::log(envoy_js::LogLevel level, std::string_view message) {
  switch (level) {
  case envoy_js::LogLevel::Trace:
    ENVOY_STREAM_LOG(trace, "quickjs: {}", *decoder_callbacks_, message);
    break;
  case envoy_js::LogLevel::Debug:
    ENVOY_STREAM_LOG(debug, "quickjs: {}", *decoder_callbacks_, message);
    break;
  case envoy_js::LogLevel::Info:
    ENVOY_STREAM_LOG(info, "quickjs: {}", *decoder_callbacks_, message);
    break;
  case envoy_js::LogLevel::Warn:
    ENVOY_STREAM_LOG(warn, "quickjs: {}", *decoder_callbacks_, message);
    break;
  case envoy_js::LogLevel::Error:
    ENVOY_STREAM_LOG(error, "quickjs: {}", *decoder_callbacks_, message);
    break;
  }
}

envoy_js::StreamInfo Filter::streamInfo() {
  StreamInfo::StreamInfo& info = decoder_callbacks_->streamInfo();
  envoy_js::StreamInfo out;
  OptRef<const StreamInfo::StreamIdProvider> ids = info.getStreamIdProvider();
  absl::optional<absl::string_view> request_id =
      ids.has_value() ? ids->toStringView() : absl::nullopt;
  out.id = request_id.has_value() ? std::string(request_id.value())
                                  : std::to_string(decoder_callbacks_->streamId());
  if (info.protocol().has_value()) {
    out.protocol = Http::Utility::getProtocolString(info.protocol().value());
  }
  const Network::ConnectionInfoProvider& addresses = info.downstreamAddressProvider();
  if (addresses.remoteAddress() != nullptr) {
    out.remoteAddress = addresses.remoteAddress()->asString();
  }
  if (addresses.localAddress() != nullptr) {
    out.localAddress = addresses.localAddress()->asString();
  }
  out.routeName = info.getRouteName();
  return out;
}

std::optional<envoy_js::MetadataValue> Filter::getMetadata(std::string_view ns,
                                                           std::string_view key) {
  const auto& filter_metadata = decoder_callbacks_->streamInfo().dynamicMetadata().filter_metadata();
  const auto by_ns = filter_metadata.find(std::string(ns));
  if (by_ns == filter_metadata.end()) {
    return std::nullopt;
  }
  const auto& fields = by_ns->second.fields();
  const auto by_key = fields.find(std::string(key));
  if (by_key == fields.end()) {
    return std::nullopt;
  }
  return metadataFromProto(by_key->second);
}

void Filter::setMetadata(std::string_view ns, std::string_view key,
                         const envoy_js::MetadataValue& value) {
  Protobuf::Struct update;
  metadataToProto(value, (*update.mutable_fields())[std::string(key)]);
  decoder_callbacks_->streamInfo().setDynamicMetadata(std::string(ns), update);
}

std::optional<std::string> Filter::getFilterState(std::string_view key) {
  const StreamInfo::FilterState::Object* object =
      decoder_callbacks_->streamInfo().filterState()->getDataReadOnlyGeneric(
          absl::string_view(key.data(), key.size()));
  if (object == nullptr) {
    return std::nullopt;
  }
  if (const auto* accessor = dynamic_cast<const Router::StringAccessor*>(object)) {
    return std::string(accessor->asString());
  }
  absl::optional<std::string> serialized = object->serializeAsString();
  if (!serialized.has_value()) {
    return std::nullopt;
  }
  return std::move(serialized.value());
}

void Filter::setFilterState(std::string_view key, std::string_view value) {
  const StreamInfo::FilterStateSharedPtr& state = decoder_callbacks_->streamInfo().filterState();
  const absl::string_view name(key.data(), key.size());
  // Envoy throws when an entry it does not own as mutable is overwritten; only entries this
  // filter wrote (mutable, same life span) may be replaced.
  if (state->hasDataWithName(name) &&
      dynamic_cast<const JsFilterStateValue*>(state->getDataReadOnlyGeneric(name)) == nullptr) {
    ENVOY_STREAM_LOG(warn, "quickjs: filter state '{}' belongs to another filter; not changed",
                     *decoder_callbacks_, name);
    return;
  }
  state->setData(name,
                 std::make_shared<JsFilterStateValue>(absl::string_view(value.data(), value.size())),
                 StreamInfo::FilterState::StateType::Mutable,
                 StreamInfo::FilterState::LifeSpan::FilterChain);
}

void Filter::clearRouteCache() {
  OptRef<Http::DownstreamStreamFilterCallbacks> downstream =
      decoder_callbacks_->downstreamCallbacks();
  if (downstream.has_value()) {
    downstream->clearRouteCache();
  }
}

envoy_js::RouteOverride Filter::routeOverride() {
  const auto* route =
      dynamic_cast<const RouteConfig*>(decoder_callbacks_->mostSpecificPerFilterConfig());
  return route != nullptr ? route->routeOverride() : envoy_js::RouteOverride{};
}

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
  const auto timeout = std::chrono::milliseconds(request.timeoutMs);
  auto options =
      Http::AsyncClient::RequestOptions()
          .setTimeout(timeout + kCalloutClientTimeoutSlack)
          .setParentContext(Http::AsyncClient::ParentContext{&decoder_callbacks_->streamInfo()})
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
