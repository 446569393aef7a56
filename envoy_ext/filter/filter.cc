#include "envoy_ext/filter/filter.h"

#include <algorithm>

#include "envoy/router/string_accessor.h"
#include "envoy/stream_info/filter_state.h"

#include "source/common/http/header_map_impl.h"
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
#define QUICKJS_SAME_VALUE(ENVOY, RUNTIME)                                                         \
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

// Filter state objects written by ctx.filterState.set: plain strings that other filters,
// header formatters (%FILTER_STATE(key:PLAIN)%) and access logs read as StringAccessor. The
// subclass only lets us recognise our own entries, which we may overwrite.
class JsFilterStateValue : public Router::StringAccessorImpl {
public:
  using Router::StringAccessorImpl::StringAccessorImpl;
};

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

Filter::Filter(SharedStateConstSharedPtr shared, WorkerEngineSharedPtr engine)
    : shared_(std::move(shared)), engine_(std::move(engine)) {}

Filter::~Filter() {
  // Envoy always calls onDestroy() first; this only frees.
  stream_.reset();
}

Http::FilterHeadersStatus Filter::failWithoutEngine() {
  shared_->counters.errors.inc();
  if (shared_->failure_mode == envoy_js::FailureMode::Open) {
    ENVOY_STREAM_LOG(debug, "envoy_js: no engine on this worker, failure_mode open: passing",
                     *decoder_callbacks_);
    return Http::FilterHeadersStatus::Continue;
  }
  ENVOY_STREAM_LOG(debug, "envoy_js: no engine on this worker, failure_mode closed: 500",
                   *decoder_callbacks_);
  decoder_callbacks_->sendLocalReply(Http::Code::InternalServerError, "", nullptr, std::nullopt,
                                     kErrorDetails);
  return Http::FilterHeadersStatus::StopIteration;
}

// ---- Envoy's stream callbacks ------------------------------------------------------------------

Http::FilterHeadersStatus Filter::decodeHeaders(Http::RequestHeaderMap&, bool end_stream) {
  // The map itself is looked up on every access (HeaderView).
  sides_[0].headers_seen = true;
  sides_[0].end_seen = end_stream;
  envoy_js::Engine* js = engine_ != nullptr ? engine_->engine() : nullptr;
  if (js == nullptr) {
    return failWithoutEngine();
  }
  // Whole-body reads and held data may reach buffer_limit_bytes: make sure Envoy's own limit
  // (0 = none), which also sets the held bytes' watermarks, is not lower. Filters only ever
  // raise it.
  const uint64_t limit = js->settings().bufferLimitBytes;
  const uint64_t current = decoder_callbacks_->bufferLimit();
  if (current != 0 && current < limit) {
    decoder_callbacks_->setBufferLimit(limit);
  }
  stream_ = js->newStream(*this);
  return afterHeaders(kRequest, stream_->onRequestHeaders(end_stream));
}

Http::FilterHeadersStatus Filter::encodeHeaders(Http::ResponseHeaderMap&, bool end_stream) {
  // After a local reply sent once the response had started, Envoy replaces the response
  // headers without calling this again: HeaderView finds the new map.
  sides_[1].headers_seen = true;
  sides_[1].end_seen = end_stream;
  if (stream_ == nullptr) {
    return Http::FilterHeadersStatus::Continue;
  }
  return afterHeaders(kResponse, stream_->onResponseHeaders(end_stream));
}

Http::FilterHeadersStatus Filter::afterHeaders(envoy_js::Direction dir,
                                               envoy_js::HeadersStatus status) {
  if (status == envoy_js::HeadersStatus::Continue ||
      status == envoy_js::HeadersStatus::ContinueAndDontEndStream) {
    // A body the filter gave a headers-only message goes with the headers (add*Data in a
    // headers callback: Envoy sends headers without end of stream, then the body).
    handOver(dir);
    side(dir).headers_continued = true;
  }
  return static_cast<Http::FilterHeadersStatus>(status);
}

Http::FilterDataStatus Filter::decodeData(Buffer::Instance& data, bool end_stream) {
  return onData(kRequest, data, end_stream);
}

Http::FilterDataStatus Filter::encodeData(Buffer::Instance& data, bool end_stream) {
  return onData(kResponse, data, end_stream);
}

Http::FilterDataStatus Filter::onData(envoy_js::Direction dir, Buffer::Instance& data,
                                      bool end_stream) {
  if (stream_ == nullptr) {
    return Http::FilterDataStatus::Continue;
  }
  Side& s = side(dir);
  s.end_seen = s.end_seen || end_stream;
  s.in_end_data = end_stream;
  CurrentData& current = current_[index(dir)];
  current.reset(&data);
  const envoy_js::DataStatus status =
      dir == kRequest ? stream_->onRequestData(end_stream) : stream_->onResponseData(end_stream);
  current.reset(nullptr);
  s.in_end_data = false;
  const Http::FilterDataStatus result = settleData(dir, status, data);
  if (result == Http::FilterDataStatus::Continue) {
    s.headers_continued = true;
  }
  return result;
}

Http::FilterTrailersStatus Filter::decodeTrailers(Http::RequestTrailerMap&) {
  sides_[0].trailers_seen = true;
  sides_[0].end_seen = true;
  if (stream_ == nullptr) {
    return Http::FilterTrailersStatus::Continue;
  }
  return afterTrailers(kRequest, stream_->onRequestTrailers());
}

Http::FilterTrailersStatus Filter::encodeTrailers(Http::ResponseTrailerMap&) {
  sides_[1].trailers_seen = true;
  sides_[1].end_seen = true;
  if (stream_ == nullptr) {
    return Http::FilterTrailersStatus::Continue;
  }
  return afterTrailers(kResponse, stream_->onResponseTrailers());
}

Http::FilterTrailersStatus Filter::afterTrailers(envoy_js::Direction dir,
                                                 envoy_js::TrailersStatus status) {
  if (status == envoy_js::TrailersStatus::Continue) {
    // Held bytes go before the trailers: add*Data in a trailers callback buffers them while
    // this filter is stopped, and Envoy's continue sends data, then trailers.
    handOver(dir);
    side(dir).headers_continued = true;
  }
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
  destroyed_ = true; // from here on the callbacks are not ours to use
  for (auto& entry : callouts_) {
    Callout& callout = *entry.second;
    if (callout.request_ != nullptr) {
      callout.request_->cancel();
      callout.request_ = nullptr;
    }
    callout.timeout_.reset();
  }
  callouts_.clear();
  for (Side& s : sides_) {
    s.held.bytes().drain(s.held.bytes().length());
  }
}

// ---- envoy_js::StreamHost ----------------------------------------------------------------------

envoy_js::HeaderMap* Filter::headerMap(envoy_js::HeaderMapKind kind) {
  HeaderView& view = headers_[static_cast<int>(kind)];
  return view.map() == nullptr ? nullptr : &view;
}

envoy_js::BodyBuffer* Filter::currentData(envoy_js::Direction dir) {
  CurrentData& data = current_[index(dir)];
  return data.empty() ? nullptr : &data;
}

envoy_js::BodyBuffer* Filter::bufferedData(envoy_js::Direction dir) { return &side(dir).held; }

void Filter::schedule() {
  // One post at a time: the runtime does everything that is due in one onScheduled().
  if (schedule_posted_ || alive_ == nullptr) {
    return;
  }
  schedule_posted_ = true;
  std::weak_ptr<bool> alive = alive_;
  decoder_callbacks_->dispatcher().post([this, alive]() {
    if (alive.expired()) {
      return; // the stream went away first
    }
    schedule_posted_ = false;
    if (stream_ != nullptr) {
      stream_->onScheduled();
    }
  });
}

void Filter::continueStream(envoy_js::Direction dir) {
  // The runtime asks only from onScheduled(), our own post, where no callback of this stream is
  // running and Envoy accepts add*Data and a continue (host.h). Whether the resume is still due
  // is the runtime's decision: the adapter keeps no rule of its own about it.
  handOver(dir);
  side(dir).headers_continued = true;
  if (dir == kRequest) {
    decoder_callbacks_->continueDecoding();
  } else {
    encoder_callbacks_->continueEncoding();
  }
}

void Filter::sendLocalReply(const envoy_js::LocalReply& reply) {
  // The reply replaces whatever the filter still held in either direction.
  dropHeld();
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

void Filter::resetStream() {
  dropHeld();
  decoder_callbacks_->resetStream();
}

void Filter::log(envoy_js::LogLevel level, std::string_view message) {
  switch (level) {
  case envoy_js::LogLevel::Trace:
    ENVOY_STREAM_LOG(trace, "envoy_js: {}", *decoder_callbacks_, message);
    break;
  case envoy_js::LogLevel::Debug:
    ENVOY_STREAM_LOG(debug, "envoy_js: {}", *decoder_callbacks_, message);
    break;
  case envoy_js::LogLevel::Info:
    ENVOY_STREAM_LOG(info, "envoy_js: {}", *decoder_callbacks_, message);
    break;
  case envoy_js::LogLevel::Warn:
    ENVOY_STREAM_LOG(warn, "envoy_js: {}", *decoder_callbacks_, message);
    break;
  case envoy_js::LogLevel::Error:
    ENVOY_STREAM_LOG(error, "envoy_js: {}", *decoder_callbacks_, message);
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
  const auto& filter_metadata =
      decoder_callbacks_->streamInfo().dynamicMetadata().filter_metadata();
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
    ENVOY_STREAM_LOG(warn, "envoy_js: filter state '{}' belongs to another filter; not changed",
                     *decoder_callbacks_, name);
    return;
  }
  state->setData(
      name, std::make_shared<JsFilterStateValue>(absl::string_view(value.data(), value.size())),
      StreamInfo::FilterState::StateType::Mutable, StreamInfo::FilterState::LifeSpan::FilterChain);
}

void Filter::clearRouteCache() {
  OptRef<Http::DownstreamStreamFilterCallbacks> downstream =
      decoder_callbacks_->downstreamCallbacks();
  if (downstream.has_value()) {
    downstream->clearRouteCache();
  }
}

envoy_js::RouteOverride Filter::routeOverride() {
  // Not cached: after clearRouteCache() Envoy picks the route again on the next lookup, and the
  // per-route config is the new route's.
  const auto* route =
      dynamic_cast<const RouteConfig*>(decoder_callbacks_->mostSpecificPerFilterConfig());
  return route != nullptr ? route->routeOverride() : envoy_js::RouteOverride{};
}

} // namespace QuickJs
} // namespace HttpFilters
} // namespace Extensions
} // namespace Envoy
