// ModuleStream and the ABI's header maps and bodies (stream.h).
#include "stream.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace envoy_js::module {
namespace {

envoy_dynamic_module_type_http_header_type abiHeaderType(HeaderMapKind kind) {
  switch (kind) {
    case HeaderMapKind::RequestHeaders: return envoy_dynamic_module_type_http_header_type_RequestHeader;
    case HeaderMapKind::RequestTrailers: return envoy_dynamic_module_type_http_header_type_RequestTrailer;
    case HeaderMapKind::ResponseHeaders: return envoy_dynamic_module_type_http_header_type_ResponseHeader;
    case HeaderMapKind::ResponseTrailers: return envoy_dynamic_module_type_http_header_type_ResponseTrailer;
  }
  return envoy_dynamic_module_type_http_header_type_RequestHeader;
}

// A filter's grace on top of a callout's timeoutMs, so that the module's own deadline (which
// gives the runtime its Timeout) comes before Envoy's timeout (a 504 response).
constexpr uint64_t kCalloutGraceMs = 1000;

}  // namespace

void AbiHeaderMap::bind(FilterPtr filter, HeaderMapKind kind) {
  filter_ = filter;
  type_ = abiHeaderType(kind);
}

size_t AbiHeaderMap::get(std::string_view name, size_t index, std::string_view* value) const {
  envoy_dynamic_module_type_envoy_buffer result{nullptr, 0};
  size_t count = 0;
  if (envoy_dynamic_module_callback_http_get_header(filter_, type_, buf(name), &result, index, &count)) {
    *value = view(result);
  }
  return count;
}

void AbiHeaderMap::forEach(Visitor fn, void* opaque) const {
  size_t n = envoy_dynamic_module_callback_http_get_headers_size(filter_, type_);
  if (n == 0) return;
  std::vector<envoy_dynamic_module_type_envoy_http_header> all(n);
  if (!envoy_dynamic_module_callback_http_get_headers(filter_, type_, all.data())) return;
  for (const auto& h : all) {
    fn(opaque, std::string_view(h.key_ptr, h.key_length), std::string_view(h.value_ptr, h.value_length));
  }
}

void AbiHeaderMap::set(std::string_view name, std::string_view value) {
  envoy_dynamic_module_callback_http_set_header(filter_, type_, buf(name), buf(value));
}

void AbiHeaderMap::append(std::string_view name, std::string_view value) {
  envoy_dynamic_module_callback_http_add_header(filter_, type_, buf(name), buf(value));
}

void AbiHeaderMap::remove(std::string_view name) {
  envoy_dynamic_module_callback_http_set_header(filter_, type_, buf(name), {nullptr, 0});
}

void AbiBody::bind(FilterPtr filter, envoy_dynamic_module_type_http_body_type type, const bool* hidden) {
  filter_ = filter;
  type_ = type;
  hidden_ = hidden;
}

size_t AbiBody::length() const {
  return *hidden_ ? 0 : envoy_dynamic_module_callback_http_get_body_size(filter_, type_);
}

void AbiBody::copyOut(size_t offset, size_t len, uint8_t* dst) const {
  if (*hidden_ || len == 0) return;
  size_t n = envoy_dynamic_module_callback_http_get_body_chunks_size(filter_, type_);
  std::vector<envoy_dynamic_module_type_envoy_buffer> chunks(n);
  if (n == 0 || !envoy_dynamic_module_callback_http_get_body_chunks(filter_, type_, chunks.data())) return;
  size_t pos = 0;
  for (const auto& c : chunks) {
    size_t end = pos + c.length;
    if (end > offset && pos < offset + len) {
      size_t from = std::max(offset, pos), to = std::min(offset + len, end);
      std::memcpy(dst + (from - offset), c.ptr + (from - pos), to - from);
    }
    pos = end;
  }
}

void AbiBody::replace(std::string_view data) {
  if (!*hidden_) envoy_dynamic_module_callback_http_drain_body(filter_, type_, SIZE_MAX);
  append(data);
}

void AbiBody::append(std::string_view data) {
  if (!data.empty()) envoy_dynamic_module_callback_http_append_body(filter_, type_, buf(data));
}

void AbiBody::prepend(std::string_view data) {
  std::string all(length(), '\0');
  copyOut(0, all.size(), reinterpret_cast<uint8_t*>(all.data()));
  replace(std::string(data) + all);
}

ModuleStream::ModuleStream(WorkerEngine* worker, FilterPtr filter) : worker_(worker), filter_(filter) {
  static const bool kVisible = false;
  for (int k = 0; k < 4; k++) maps_[k].bind(filter, static_cast<HeaderMapKind>(k));
  received_[0].bind(filter, envoy_dynamic_module_type_http_body_type_ReceivedRequestBody, &kVisible);
  received_[1].bind(filter, envoy_dynamic_module_type_http_body_type_ReceivedResponseBody, &kVisible);
  buffered_[0].bind(filter, envoy_dynamic_module_type_http_body_type_BufferedRequestBody, &receivedIsBuffered_[0]);
  buffered_[1].bind(filter, envoy_dynamic_module_type_http_body_type_BufferedResponseBody, &receivedIsBuffered_[1]);
  scheduler_ = envoy_dynamic_module_callback_http_filter_scheduler_new(filter);
}

void ModuleStream::commit(uint64_t event) {
  std::lock_guard<std::mutex> lock(g.mutex);
  commitLocked(event);
}

void ModuleStream::enterData(Direction dir) {
  int d = static_cast<int>(dir);
  inData_[d] = true;
  receivedIsBuffered_[d] = dir == Direction::Request
                               ? envoy_dynamic_module_callback_http_received_buffered_request_body(filter_)
                               : envoy_dynamic_module_callback_http_received_buffered_response_body(filter_);
}

void ModuleStream::leaveData(Direction dir) {
  int d = static_cast<int>(dir);
  inData_[d] = false;
  receivedIsBuffered_[d] = false;
}

void ModuleStream::continueDecoding() {
  inDecodeContinue_ = true;
  envoy_dynamic_module_callback_http_filter_continue_decoding(filter_);
  inDecodeContinue_ = false;
}

void ModuleStream::encodeReturned(bool stopped, bool endOfStream) {
  if (stopped && inDecodeContinue_) encodeHeldInDecodeContinue_ = true;
  responseEnded_ = responseEnded_ || endOfStream;
}

void ModuleStream::continueEncoding() {
  bool dropped = gSingleContinueFlag && encodeHeldInDecodeContinue_;
  encodeHeldInDecodeContinue_ = false;
  if (dropped && responseEnded_) {
    sendHeldResponse();
    return;
  }
  envoy_dynamic_module_callback_http_filter_continue_encoding(filter_);
}

void ModuleStream::raiseBufferLimit(size_t limit) {
  uint64_t current = envoy_dynamic_module_callback_http_get_buffer_limit(filter_);
  if (current != 0 && current < limit) envoy_dynamic_module_callback_http_set_buffer_limit(filter_, limit);
}

void ModuleStream::calloutDone(uint64_t envoyId, envoy_dynamic_module_type_http_callout_result result,
                               envoy_dynamic_module_type_envoy_http_header* headers, size_t headersSize,
                               envoy_dynamic_module_type_envoy_buffer* chunks, size_t chunksSize) {
  auto it = callouts_.find(envoyId);
  if (it == callouts_.end()) return;  // cancelled, or already timed out
  Pending p = it->second;
  callouts_.erase(it);
  WorkerEngine::disarmTimer(p.deadline);
  deadlines_.erase(p.deadline);
  CalloutResponse response;
  if (result == envoy_dynamic_module_type_http_callout_result_Success) {
    for (size_t i = 0; i < headersSize; i++) {
      response.headers.emplace_back(std::string(headers[i].key_ptr, headers[i].key_length),
                                    std::string(headers[i].value_ptr, headers[i].value_length));
    }
    for (size_t i = 0; i < chunksSize; i++) response.body.append(chunks[i].ptr, chunks[i].length);
    // Envoy applies no response limit the module could set: the filter's buffer limit does.
    if (response.body.size() > worker_->engine()->settings().bufferLimitBytes) {
      response = CalloutResponse{};
      response.result = CalloutResponse::Result::ResponseTooLarge;
    }
  } else if (result == envoy_dynamic_module_type_http_callout_result_ExceedResponseBufferLimit) {
    response.result = CalloutResponse::Result::ResponseTooLarge;
  } else {
    response.result = CalloutResponse::Result::Reset;
  }
  stream_->onCalloutDone(p.runtimeId, response);
}

void ModuleStream::calloutDeadline(uint64_t key) {
  auto d = deadlines_.find(key);
  if (d == deadlines_.end()) return;
  uint64_t envoyId = d->second;
  deadlines_.erase(d);
  auto it = callouts_.find(envoyId);
  if (it == callouts_.end()) return;
  uint64_t runtimeId = it->second.runtimeId;
  callouts_.erase(it);  // Envoy's later answer (a 504) is dropped
  CalloutResponse response;
  response.result = CalloutResponse::Result::Timeout;
  stream_->onCalloutDone(runtimeId, response);
}

void ModuleStream::sendHeldResponse() {
  LocalReply reply;
  reply.details = "envoy_js_held_local_reply";
  reply.body.resize(buffered_[1].length());
  if (!reply.body.empty()) buffered_[1].copyOut(0, reply.body.size(), reinterpret_cast<uint8_t*>(reply.body.data()));
  maps_[static_cast<int>(HeaderMapKind::ResponseHeaders)].forEach(
      [](void* out, std::string_view k, std::string_view v) {
        auto* r = static_cast<LocalReply*>(out);
        // Envoy's local reply sets its own length, date, server and, with a body, content-type.
        if (k == ":status") {
          r->status = std::atoi(std::string(v).c_str());
        } else if (!k.empty() && k[0] != ':' && k != "content-length" && k != "date" && k != "server" &&
                   !(k == "content-type" && !r->body.empty())) {
          r->headers.emplace_back(std::string(k), std::string(v));
        }
      },
      &reply);
  if (reply.status <= 0) reply.status = 200;
  sendLocalReply(reply);
}

void ModuleStream::dropCallouts() {
  for (auto& [key, id] : deadlines_) WorkerEngine::disarmTimer(key);
  deadlines_.clear();
  callouts_.clear();
}

ModuleStream::~ModuleStream() {
  dropCallouts();
  envoy_dynamic_module_callback_http_filter_scheduler_delete(scheduler_);
}

HeaderMap* ModuleStream::headerMap(HeaderMapKind kind) {
  int k = static_cast<int>(kind);
  return seen_[k] ? &maps_[k] : nullptr;
}

BodyBuffer* ModuleStream::currentData(Direction dir) {
  int d = static_cast<int>(dir);
  return inData_[d] ? &received_[d] : nullptr;
}

void ModuleStream::schedule() {
  if (scheduled_) return;
  scheduled_ = true;
  commit(kScheduled);
}

void ModuleStream::continueStream(Direction dir) {
  if (dir == Direction::Request) {
    continueDecoding();
  } else {
    continueEncoding();
  }
}

void ModuleStream::sendLocalReply(const LocalReply& reply) {
  std::vector<envoy_dynamic_module_type_module_http_header> headers;
  for (const auto& [k, v] : reply.headers) headers.push_back({k.data(), k.size(), v.data(), v.size()});
  envoy_dynamic_module_callback_http_send_response(filter_, static_cast<uint32_t>(reply.status), headers.data(),
                                                   headers.size(), buf(reply.body), buf(reply.details));
}

void ModuleStream::resetStream() {
  envoy_dynamic_module_callback_http_filter_reset_stream(
      filter_, envoy_dynamic_module_type_http_filter_stream_reset_reason_LocalReset, buf("envoy_js_reset"));
}

void ModuleStream::log(LogLevel level, std::string_view message) {
  logLine(level, prefix() + ": " + std::string(message));
}

void ModuleStream::recordError(std::string_view message) {
  logLine(LogLevel::Debug, prefix() + " failed: " + std::string(message));
}

StreamInfo ModuleStream::streamInfo() {
  StreamInfo info;
  info.id = requestId();
  info.protocol = attribute(envoy_dynamic_module_type_attribute_id_RequestProtocol);
  info.remoteAddress = attribute(envoy_dynamic_module_type_attribute_id_SourceAddress);
  info.localAddress = attribute(envoy_dynamic_module_type_attribute_id_DestinationAddress);
  info.routeName = attribute(envoy_dynamic_module_type_attribute_id_XdsRouteName);
  return info;
}

std::optional<PropertyValue> ModuleStream::property(Property which) {
  using P = Property;
  envoy_dynamic_module_type_attribute_id id;
  bool number = false;
  switch (which) {
    case P::RequestId: return PropertyValue::of(requestId());
    case P::RequestProtocol: id = envoy_dynamic_module_type_attribute_id_RequestProtocol; break;
    case P::SourceAddress: id = envoy_dynamic_module_type_attribute_id_SourceAddress; break;
    case P::SourcePort: id = envoy_dynamic_module_type_attribute_id_SourcePort, number = true; break;
    case P::DestinationAddress: id = envoy_dynamic_module_type_attribute_id_DestinationAddress; break;
    case P::DestinationPort: id = envoy_dynamic_module_type_attribute_id_DestinationPort, number = true; break;
    case P::ConnectionId: id = envoy_dynamic_module_type_attribute_id_ConnectionId, number = true; break;
    case P::RequestedServerName: id = envoy_dynamic_module_type_attribute_id_ConnectionRequestedServerName; break;
    case P::UpstreamAddress: id = envoy_dynamic_module_type_attribute_id_UpstreamAddress; break;
    case P::UpstreamPort: id = envoy_dynamic_module_type_attribute_id_UpstreamPort, number = true; break;
    case P::UpstreamRequestAttemptCount:
      id = envoy_dynamic_module_type_attribute_id_UpstreamRequestAttemptCount, number = true;
      break;
    case P::ClusterName: {
      envoy_dynamic_module_type_envoy_buffer b{nullptr, 0};
      if (!envoy_dynamic_module_callback_http_get_cluster_name(filter_, &b) || b.length == 0) return std::nullopt;
      return PropertyValue::of(std::string(view(b)));
    }
    case P::RouteName: id = envoy_dynamic_module_type_attribute_id_XdsRouteName; break;
    case P::VirtualHostName:
      if (!gVirtualHostAttribute) return std::nullopt;  // 1.39 answers another name (worker.h)
      id = envoy_dynamic_module_type_attribute_id_XdsVirtualHostName;
      break;
    case P::VirtualClusterName: return std::nullopt;  // not in the ABI's attributes
    case P::FilterChainName: id = envoy_dynamic_module_type_attribute_id_XdsFilterChainName; break;
    case P::ResponseCode: id = envoy_dynamic_module_type_attribute_id_ResponseCode, number = true; break;
    case P::ResponseCodeDetails: id = envoy_dynamic_module_type_attribute_id_ResponseCodeDetails; break;
    case P::ResponseFlags: id = envoy_dynamic_module_type_attribute_id_ResponseFlags, number = true; break;
    default: return std::nullopt;
  }
  if (number) {
    uint64_t n = 0;
    if (!envoy_dynamic_module_callback_http_filter_get_attribute_int(filter_, id, &n)) return std::nullopt;
    return PropertyValue::of(static_cast<double>(n));
  }
  envoy_dynamic_module_type_envoy_buffer b{nullptr, 0};
  if (!envoy_dynamic_module_callback_http_filter_get_attribute_string(filter_, id, &b) || b.length == 0) {
    return std::nullopt;
  }
  return PropertyValue::of(std::string(view(b)));
}

// The ABI reads and writes strings, numbers and booleans: those round-trip. Null, lists and
// objects are stored as their JSON text (a string), and read back as that string.
std::optional<MetadataValue> ModuleStream::readMetadata(envoy_dynamic_module_type_metadata_source src,
                                                        std::string_view ns, std::string_view key) {
  MetadataValue v;
  envoy_dynamic_module_type_envoy_buffer s{nullptr, 0};
  if (envoy_dynamic_module_callback_http_get_metadata_string(filter_, src, buf(ns), buf(key), &s)) {
    v.kind = MetadataValue::Kind::String;
    v.string = view(s);
  } else if (envoy_dynamic_module_callback_http_get_metadata_number(filter_, src, buf(ns), buf(key), &v.number)) {
    v.kind = MetadataValue::Kind::Number;
  } else if (envoy_dynamic_module_callback_http_get_metadata_bool(filter_, src, buf(ns), buf(key), &v.boolean)) {
    v.kind = MetadataValue::Kind::Bool;
  } else {
    return std::nullopt;
  }
  return v;
}

void ModuleStream::setMetadata(std::string_view ns, std::string_view key, const MetadataValue& value) {
  switch (value.kind) {
    case MetadataValue::Kind::String:
      envoy_dynamic_module_callback_http_set_dynamic_metadata_string(filter_, buf(ns), buf(key), buf(value.string));
      break;
    case MetadataValue::Kind::Number:
      envoy_dynamic_module_callback_http_set_dynamic_metadata_number(filter_, buf(ns), buf(key), value.number);
      break;
    case MetadataValue::Kind::Bool:
      envoy_dynamic_module_callback_http_set_dynamic_metadata_bool(filter_, buf(ns), buf(key), value.boolean);
      break;
    case MetadataValue::Kind::Null:
    case MetadataValue::Kind::List:
    case MetadataValue::Kind::Object:
      envoy_dynamic_module_callback_http_set_dynamic_metadata_string(filter_, buf(ns), buf(key),
                                                                     buf(metadataToJson(value)));
      break;
  }
}

std::optional<std::string> ModuleStream::getFilterState(std::string_view key) {
  envoy_dynamic_module_type_envoy_buffer s{nullptr, 0};
  if (!envoy_dynamic_module_callback_http_get_filter_state_bytes(filter_, buf(key), &s)) return std::nullopt;
  return std::string(view(s));
}

void ModuleStream::setFilterState(std::string_view key, std::string_view value) {
  if (getFilterState(key)) {
    logLine(LogLevel::Warn, prefix() + ": filter state `" + std::string(key) +
                                "` is already set and Envoy keeps it read-only; the new value is dropped");
    return;
  }
  envoy_dynamic_module_callback_http_set_filter_state_bytes(filter_, buf(key), buf(value));
}

RouteOverride ModuleStream::routeOverride() {
  auto* rc = static_cast<const RouteConfig*>(envoy_dynamic_module_callback_get_most_specific_route_config(filter_));
  return rc ? rc->route : RouteOverride{};
}

CalloutStart ModuleStream::startCallout(uint64_t id, const CalloutRequest& request) {
  std::vector<envoy_dynamic_module_type_module_http_header> headers;
  for (const auto& [k, v] : request.headers) headers.push_back({k.data(), k.size(), v.data(), v.size()});
  uint64_t envoyId = 0;
  auto r = envoy_dynamic_module_callback_http_filter_http_callout(filter_, &envoyId, buf(request.cluster),
                                                                  headers.data(), headers.size(), buf(request.body),
                                                                  request.timeoutMs + kCalloutGraceMs);
  if (r == envoy_dynamic_module_type_http_callout_init_result_ClusterNotFound) return CalloutStart::UnknownCluster;
  if (r != envoy_dynamic_module_type_http_callout_init_result_Success) return CalloutStart::CannotCreate;
  uint64_t key = worker_->armTimer(kCalloutDeadline, this, request.timeoutMs);
  callouts_[envoyId] = Pending{id, key};
  deadlines_[key] = envoyId;
  return CalloutStart::Started;
}

void ModuleStream::cancelCallout(uint64_t id) {
  for (auto it = callouts_.begin(); it != callouts_.end(); ++it) {
    if (it->second.runtimeId != id) continue;
    WorkerEngine::disarmTimer(it->second.deadline);
    deadlines_.erase(it->second.deadline);
    callouts_.erase(it);
    return;
  }
}

std::string ModuleStream::attribute(envoy_dynamic_module_type_attribute_id id) {
  envoy_dynamic_module_type_envoy_buffer b{nullptr, 0};
  if (!envoy_dynamic_module_callback_http_filter_get_attribute_string(filter_, id, &b)) return "";
  return std::string(view(b));
}

const std::string& ModuleStream::requestId() {
  if (requestId_.empty()) requestId_ = attribute(envoy_dynamic_module_type_attribute_id_RequestId);
  if (requestId_.empty()) {
    requestId_ = "w" + std::to_string(worker_->index()) + "-" + std::to_string(worker_->nextStreamNumber());
  }
  return requestId_;
}

}  // namespace envoy_js::module
