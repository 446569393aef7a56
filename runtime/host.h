// The narrow host interface between the envoy-js runtime and whatever plays Envoy's part:
// the native Envoy filter, the dynamic-module adapter, the Node host stub, the C++ drivers.
//
// Ownership and lifetime:
//  - The host owns a StreamHost for as long as the stream exists and calls
//    Stream::onDestroy() before it goes away; after that the runtime never touches it.
//  - HeaderMap / BodyBuffer pointers returned by a StreamHost are borrowed: the runtime uses
//    them only inside the call that produced them (it asks again every time).
//  - Every method is called on the worker thread that owns the engine.
// No Envoy header is included here: the adapters translate.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace envoy_js {

// Return codes share Envoy's numeric values (envoy/http/filter.h and the dynamic-module ABI).
enum class HeadersStatus : int {
  Continue = 0,
  StopIteration = 1,
  ContinueAndDontEndStream = 2,
  StopAllIterationAndBuffer = 3,
  StopAllIterationAndWatermark = 4,
};
enum class DataStatus : int {
  Continue = 0,
  StopIterationAndBuffer = 1,
  StopIterationAndWatermark = 2,
  StopIterationNoBuffer = 3,
};
enum class TrailersStatus : int { Continue = 0, StopIteration = 1 };

enum class Direction : uint8_t { Request = 0, Response = 1 };

enum class HeaderMapKind : uint8_t {
  RequestHeaders = 0,
  RequestTrailers = 1,
  ResponseHeaders = 2,
  ResponseTrailers = 3,
};

enum class LogLevel : uint8_t { Trace = 0, Debug = 1, Info = 2, Warn = 3, Error = 4 };

// A live header map owned by the host. Names given to it are already lower-case.
class HeaderMap {
 public:
  virtual ~HeaderMap() = default;
  // Stores the index-th value of `name` in *value and returns how many values `name` has.
  virtual size_t get(std::string_view name, size_t index, std::string_view* value) const = 0;
  // Calls fn(opaque, name, value) for every entry in order.
  using Visitor = void (*)(void* opaque, std::string_view name, std::string_view value);
  virtual void forEach(Visitor fn, void* opaque) const = 0;
  virtual size_t size() const = 0;
  // Replaces every value of `name` with one value.
  virtual void set(std::string_view name, std::string_view value) = 0;
  virtual void append(std::string_view name, std::string_view value) = 0;
  virtual void remove(std::string_view name) = 0;
};

// Body bytes owned by the host: either the data of the current data callback, or what the
// host buffered for this filter while it was stopped.
class BodyBuffer {
 public:
  virtual ~BodyBuffer() = default;
  virtual size_t length() const = 0;
  // Copies [offset, offset+len) into dst; the range is within length().
  virtual void copyOut(size_t offset, size_t len, uint8_t* dst) const = 0;
  virtual void replace(std::string_view data) = 0;
  virtual void append(std::string_view data) = 0;
  virtual void prepend(std::string_view data) = 0;
};

// What `ctx.stream` shows.
struct StreamInfo {
  std::string id;
  std::string protocol;       // "HTTP/1.1", "HTTP/2", "HTTP/3"
  std::string remoteAddress;  // "ip:port"
  std::string localAddress;
  std::string routeName;
};

// Facts the host keeps about a stream, read one at a time by `ctx.property(name)` (the
// runtime maps Envoy's attribute names to these; kPropertyNames in bind_property.cc). A value
// that the host does not have, or not yet in this phase, is std::nullopt.
enum class Property : uint8_t {
  RequestId,                    // string
  RequestProtocol,              // string: "HTTP/1.1", "HTTP/2", ...
  SourceAddress,                // string "ip:port": the downstream client
  SourcePort,                   // number
  DestinationAddress,           // string "ip:port": the listener side of the connection
  DestinationPort,              // number
  ConnectionId,                 // number: the downstream connection's id
  RequestedServerName,          // string: the TLS SNI
  UpstreamAddress,              // string "ip:port" of the upstream host picked, once picked
  UpstreamPort,                 // number
  UpstreamRequestAttemptCount,  // number: upstream attempts so far (0 before the first)
  ClusterName,                  // string: the cluster of the selected route
  RouteName,                    // string: the selected route's name
  VirtualHostName,              // string
  VirtualClusterName,           // string: the matched virtual cluster of the route's host
  FilterChainName,              // string: the listener filter chain's name
  ResponseCode,                 // number, once a response (or a local reply) is decided
  ResponseCodeDetails,          // string: "via_upstream", a local reply's details, ...
  ResponseFlags,                // number: Envoy's legacy response flags bit set
};
inline constexpr size_t kPropertyCount = static_cast<size_t>(Property::ResponseFlags) + 1;

// A property's value: a string or a number (`isNumber`).
struct PropertyValue {
  bool isNumber = false;
  std::string string;
  double number = 0;
  static PropertyValue of(std::string s) { return PropertyValue{false, std::move(s), 0}; }
  static PropertyValue of(double n) { return PropertyValue{true, {}, n}; }
};

enum class MetricKind : uint8_t { Counter, Gauge, Histogram };

struct LocalReply {
  int status = 200;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string details;
};

// The per-route configuration of the stream's route (Envoy: typed_per_filter_config).
struct RouteOverride {
  bool disabled = false;   // skip the filter for this route
  std::string configJson;  // merged over the filter's config; empty when the route has none
};

// A dynamic-metadata value: JSON's data model, handed over typed so that no host parses or
// prints JSON (Envoy: a google.protobuf.Value; the dynamic-module ABI: string, number, bool).
// Numbers from the runtime are finite; objects have unique keys.
struct MetadataField;
struct MetadataValue {
  enum class Kind : uint8_t { Null, Bool, Number, String, List, Object };
  Kind kind = Kind::Null;
  bool boolean = false;
  double number = 0;
  std::string string;
  std::vector<MetadataValue> list;
  std::vector<MetadataField> object;  // insertion order, unique keys
};
// An object's member. Not a std::pair: a pair of an incomplete type does not compile with
// every standard library (clang with libstdc++ 12).
struct MetadataField {
  MetadataField(std::string key, MetadataValue value) : first(std::move(key)), second(std::move(value)) {}
  std::string first;
  MetadataValue second;
};

// `value` as JSON text, as JSON.stringify prints it (for a host that can only store text: the
// dynamic-module ABI has no lists or objects). A non-finite number prints as null.
std::string metadataToJson(const MetadataValue& value);

// An HTTP callout (`ctx.fetch`) to an upstream cluster.
struct CalloutRequest {
  std::string cluster;
  std::vector<std::pair<std::string, std::string>> headers;  // with :method, :path, :authority
  std::string body;
  uint32_t timeoutMs = 5000;  // 1 to 300000: the runtime refuses other values from JS (fetch.cc)
};

enum class CalloutStart : uint8_t { Started, UnknownCluster, CannotCreate };

struct CalloutResponse {
  enum class Result : uint8_t { Success, Reset, Timeout, ResponseTooLarge } result = Result::Success;
  std::vector<std::pair<std::string, std::string>> headers;  // with :status
  std::string body;
};

// One HTTP stream as the host sees it.
class StreamHost {
 public:
  virtual ~StreamHost() = default;
  // nullptr when that map does not exist (yet): e.g. trailers that never came.
  virtual HeaderMap* headerMap(HeaderMapKind kind) = 0;
  // The data of the data callback now running for `dir`; nullptr outside one.
  virtual BodyBuffer* currentData(Direction dir) = 0;
  // What the host holds for this filter in `dir` (Envoy's decodingBuffer/encodingBuffer);
  // created on demand, never nullptr.
  virtual BodyBuffer* bufferedData(Direction dir) = 0;
  // Gives a message that ends without trailers an empty trailers map for the filter to fill
  // (Envoy: addDecodedTrailers / addEncodedTrailers). The runtime calls it only inside the data
  // callback that ends `dir` (end of stream on data, no trailers yet). From then on
  // headerMap() returns the new map, the data goes on without end of stream and the trailers
  // follow it, now or when the direction resumes; the filter's own trailers callback does not
  // run for them. A host that cannot add trailers returns nullptr with *whyNot set.
  virtual HeaderMap* addTrailers(Direction dir, std::string* whyNot) = 0;
  // Asks the host to call Stream::onScheduled() soon on this worker, from its event loop and
  // outside every call into the runtime (Envoy: a dispatcher post, or the ABI's scheduler).
  // Requests may coalesce into one onScheduled(). Never called after Stream::onDestroy().
  // Why: a hook of this stream may settle while the runtime runs another stream's callback, a
  // timer or a callout; what that settle does to this stream (continue, local reply, reset)
  // is done from onScheduled(), where Envoy allows it.
  virtual void schedule() = 0;
  // The three calls below come only from inside a callback of this stream (onRequestHeaders,
  // ..., onScheduled), never from another stream's: the runtime guarantees it, so a host
  // performs them at once (Envoy: continueDecoding(), sendLocalReply(), resetStream()).
  // Resume a direction that a callback stopped: at most once per stop, only from
  // onScheduled(), never from a callback of the same direction. Whether a resume is still due
  // is the runtime's decision; the host keeps no rule about stale resumes.
  virtual void continueStream(Direction dir) = 0;
  virtual void sendLocalReply(const LocalReply& reply) = 0;
  // Used when a response has already started and cannot be replaced by a local reply.
  virtual void resetStream() = 0;
  // ctx.log.* and console.* while this stream's code runs.
  virtual void log(LogLevel level, std::string_view message) = 0;
  // The filter failed this stream (the message includes the JS stack); the runtime has already
  // logged it through EngineHost::log and counted it.
  virtual void recordError(std::string_view message) { (void)message; }

  virtual StreamInfo streamInfo() = 0;
  // One fact about the stream (ctx.property), asked each time it is read: it may change as the
  // stream goes on (the upstream host, the response code). std::nullopt when the host does
  // not have it (now).
  virtual std::optional<PropertyValue> property(Property which) = 0;
  // Dynamic metadata (Envoy: a Struct under filter namespace `ns`). A host that cannot store
  // a kind (the ABI has no lists or objects) documents what it stores instead.
  virtual std::optional<MetadataValue> getMetadata(std::string_view ns, std::string_view key) = 0;
  virtual void setMetadata(std::string_view ns, std::string_view key, const MetadataValue& value) = 0;
  // The selected route's metadata (Envoy: the route's `metadata.filter_metadata`), read-only;
  // std::nullopt without a route or without that key. Same kinds as getMetadata.
  virtual std::optional<MetadataValue> getRouteMetadata(std::string_view ns, std::string_view key) = 0;
  // Filter state: string values readable by other filters and access logs.
  virtual std::optional<std::string> getFilterState(std::string_view key) = 0;
  virtual void setFilterState(std::string_view key, std::string_view value) = 0;
  // Envoy picks the route again on its next lookup, from the request headers as they are then.
  virtual void clearRouteCache() = 0;
  // Asked when the request headers arrive, and again on the first ctx.config read after each
  // clearRouteCache(): answer from the route Envoy selects now (never cached by the host).
  virtual RouteOverride routeOverride() = 0;
  // Asks the load balancer for this upstream host (Envoy: setUpstreamOverrideHost). `host` is
  // an IP address with an optional port, checked by the runtime ("10.0.0.7", "10.0.0.7:80",
  // "[::1]:80"). strict: no other host when this one is not in the cluster or not usable
  // (Envoy answers 503); otherwise the load balancer picks as usual. Only before the request
  // headers went on. False when the host refuses it.
  virtual bool setUpstreamOverrideHost(std::string_view host, bool strict) = 0;
  // Starts callout `id` (unique per engine). Unless it fails at once, the host later calls
  // Stream::onCalloutDone(id, ...) on this worker exactly once, or never after cancelCallout.
  virtual CalloutStart startCallout(uint64_t id, const CalloutRequest& request) = 0;
  virtual void cancelCallout(uint64_t id) = 0;
};

// Process-facing services of one worker engine.
class EngineHost {
 public:
  virtual ~EngineHost() = default;
  virtual void log(LogLevel level, std::string_view message) = 0;
  // Monotonic milliseconds; stubs return a fake clock.
  virtual double nowMs() = 0;
  // Counters of the engine itself: one of kEngineCounters (engine.h), "envoy_js.errors", ...
  virtual void incrementCounter(std::string_view name, uint64_t delta) = 0;
  // A metric declared in the filter's static `metrics` (index into FilterProgram::metrics()):
  // counters add `value`, histograms record it, gauges are set to it: for a gauge `value` is
  // already the process-wide value (the sum over every worker's engine, process_state.h),
  // and calls for one gauge series come in the order of those values (under a process lock).
  // `labelValues` picks the series: one value per label the declaration names, in its order
  // (MetricDeclaration::labels); empty for a metric without labels. A metric has at most
  // kMetricSeriesMax distinct series (engine.h) for the whole process.
  virtual void recordMetric(size_t index, MetricKind kind, const std::vector<std::string>& labelValues,
                            double value) = 0;
  // One-shot timer: after delayMs the host calls Engine::fireTimer(id) on this worker.
  // Ids are chosen by the runtime and unique per engine; delayMs is finite, in [0, 2^31-1].
  virtual void startTimer(uint64_t id, double delayMs) = 0;
  virtual void cancelTimer(uint64_t id) = 0;
  // True for an engine that only checks the program (setup() tried at config load): what it
  // writes to process-wide state (ctx.shared / worker.shared, metric values) stays its own.
  virtual bool dryRun() const { return false; }
};

// The host of a filter config's background engine (`background(config, bg)` of the filter
// definition): one per filter config, on a thread of the host's choosing that is never a
// worker's (Envoy: the main thread), with no stream. Timers (EngineHost::startTimer) fire with
// no stream live; `bg.fetch` starts callouts here.
//  - Every method, and every call into the background Engine, is on that one thread.
//  - Unless startCallout fails at once, the host later calls Engine::onCalloutDone(id, ...)
//    exactly once, or never after cancelCallout or after the engine is destroyed.
//  - The host destroys the engine before it goes away itself (Envoy: the filter config is
//    destroyed); from then on no timer fires and no callout is delivered.
class BackgroundHost : public EngineHost {
 public:
  virtual CalloutStart startCallout(uint64_t id, const CalloutRequest& request) = 0;
  virtual void cancelCallout(uint64_t id) = 0;
};

// An EngineHost for dry runs (validating a program at config load): logs, counters and
// metrics go nowhere and timers never fire.
class DiscardingEngineHost : public EngineHost {
 public:
  void log(LogLevel, std::string_view) override {}
  double nowMs() override { return 0; }
  void incrementCounter(std::string_view, uint64_t) override {}
  void recordMetric(size_t, MetricKind, const std::vector<std::string>&, double) override {}
  void startTimer(uint64_t, double) override {}
  void cancelTimer(uint64_t) override {}
  bool dryRun() const override { return true; }
};

}  // namespace envoy_js
