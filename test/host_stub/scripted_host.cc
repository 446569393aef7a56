#include "scripted_host.h"

#include "../../runtime/process_state.h"

#include <algorithm>
#include <cstring>
#include <deque>
#include <functional>
#include <limits>
#include <set>
#include <cstdio>
#include <cstdlib>

namespace envoy_js::stub {

const char* logLevelName(LogLevel level) {
  switch (level) {
    case LogLevel::Trace: return "trace";
    case LogLevel::Debug: return "debug";
    case LogLevel::Info: return "info";
    case LogLevel::Warn: return "warn";
    case LogLevel::Error: return "error";
  }
  return "info";
}

void hostContractViolated(const std::string& what) {
  fprintf(stderr, "host contract violated: %s\n", what.c_str());
  fflush(stderr);
  abort();
}

namespace {

// What a scripted cluster answers a callout (a stream's or the background's), and after how
// long on the fake clock.
CalloutResponse scriptedAnswer(const ClusterScript& script, const CalloutRequest& request, size_t limit,
                               double* delay) {
  CalloutResponse response;
  *delay = script.delayMs;
  if (script.timeout) {
    response.result = CalloutResponse::Result::Timeout;
    *delay = request.timeoutMs;
  } else if (script.reset) {
    response.result = CalloutResponse::Result::Reset;
  } else {
    response.headers = script.response.headers;
    for (const std::string& chunk : script.response.body) response.body += chunk;
    if (response.body.size() > limit) {
      response = CalloutResponse{};
      response.result = CalloutResponse::Result::ResponseTooLarge;
    }
  }
  return response;
}

const char* statusName(HeadersStatus s) {
  switch (s) {
    case HeadersStatus::Continue: return "Continue";
    case HeadersStatus::StopIteration: return "StopIteration";
    case HeadersStatus::ContinueAndDontEndStream: return "ContinueAndDontEndStream";
    case HeadersStatus::StopAllIterationAndBuffer: return "StopAllIterationAndBuffer";
    case HeadersStatus::StopAllIterationAndWatermark: return "StopAllIterationAndWatermark";
  }
  return "?";
}
const char* statusName(DataStatus s) {
  switch (s) {
    case DataStatus::Continue: return "Continue";
    case DataStatus::StopIterationAndBuffer: return "StopIterationAndBuffer";
    case DataStatus::StopIterationAndWatermark: return "StopIterationAndWatermark";
    case DataStatus::StopIterationNoBuffer: return "StopIterationNoBuffer";
  }
  return "?";
}
// The headers of a local reply as Envoy sends it (Utility::prepareLocalReply): :status, the
// filter's headers (the module's modify_headers adds them in order), then with a body
// content-length is set to its size (in place when the filter gave one; appended otherwise)
// and content-type: text/plain is appended when there is none; with no body both are removed.
HeaderList localReplyHeaders(const LocalReply& reply) {
  HeaderList h{{":status", std::to_string(reply.status)}};
  for (const auto& kv : reply.headers) h.push_back(kv);
  auto named = [](const char* name) { return [name](const auto& kv) { return kv.first == name; }; };
  if (reply.body.empty()) {
    h.erase(std::remove_if(h.begin(), h.end(), named("content-length")), h.end());
    h.erase(std::remove_if(h.begin(), h.end(), named("content-type")), h.end());
    return h;
  }
  auto length = std::find_if(h.begin(), h.end(), named("content-length"));
  if (length == h.end()) {
    h.emplace_back("content-length", std::to_string(reply.body.size()));
  } else {
    length->second = std::to_string(reply.body.size());
    h.erase(std::remove_if(length + 1, h.end(), named("content-length")), h.end());
  }
  if (std::none_of(h.begin(), h.end(), named("content-type"))) h.emplace_back("content-type", "text/plain");
  return h;
}

const char* statusName(TrailersStatus s) { return s == TrailersStatus::Continue ? "Continue" : "StopIteration"; }

class StringBuffer : public BodyBuffer {
 public:
  size_t length() const override { return data.size(); }
  void copyOut(size_t offset, size_t len, uint8_t* dst) const override {
    if (offset > data.size() || len > data.size() - offset) {
      hostContractViolated("copyOut(" + std::to_string(offset) + ", " + std::to_string(len) + ") past the end of a " +
                           std::to_string(data.size()) + "-byte buffer");
    }
    std::memcpy(dst, data.data() + offset, len);
  }
  void replace(std::string_view d) override { data.assign(d); }
  void append(std::string_view d) override { data.append(d); }
  void prepend(std::string_view d) override { data.insert(0, d); }
  std::string data;
};

class FakeWorker : public EngineHost, public HostWorker {
 public:
  void log(LogLevel level, std::string_view message) override {
    std::string line = std::string("[") + logLevelName(level) + "] " + std::string(message);
    if (trace) fprintf(stderr, "  [worker] %s\n", line.c_str());
    transcriptOut->workerLogs.push_back(line);
  }
  double nowMs() override { return clockMs; }
  bool replayOver = false;  // runScenarioWith frees the engine
  void incrementCounter(std::string_view name, uint64_t delta) override {
    transcriptOut->counters[std::string(name)] += delta;
  }
  void recordMetric(size_t index, MetricKind kind, const std::vector<std::string>& labelValues, double value) override {
    // The replay frees the engine at its end, which takes its gauge shares out; in Envoy the
    // engine lives on: the transcript keeps the values as they were while it lived.
    if (replayOver) return;
    const MetricDeclaration& decl = (*metricDecls)[index];
    if (labelValues.size() != decl.labels.size()) {
      hostContractViolated("metric " + decl.name + " recorded with " + std::to_string(labelValues.size()) +
                           " label values for " + std::to_string(decl.labels.size()) + " labels");
    }
    MetricValue& m = transcriptOut->metrics[metricSeriesName(decl.name, decl.labels, labelValues)];
    m.kind = kind;
    if (kind == MetricKind::Counter) m.value += value;
    else if (kind == MetricKind::Gauge) m.value = value;
    else m.samples.push_back(value);
  }
  // Only the runtime starts engine timers: its side of runtime/host.h.
  void startTimer(uint64_t id, double delayMs) override {
    if (byId.count(id)) hostContractViolated("timer " + std::to_string(id) + " started while already pending");
    if (!(delayMs >= 0 && delayMs <= 2147483647)) {
      hostContractViolated("timer delay " + std::to_string(delayMs) + " outside [0, 2^31-1]");
    }
    PendingTimer t{clockMs + delayMs, seq++, id, {}};
    timers.insert(t);
    byId[id] = t;
  }
  // By id, not by scanning: a filter may hold a hundred thousand timers.
  void cancelTimer(uint64_t id) override {
    auto it = byId.find(id);
    if (it == byId.end()) return;
    timers.erase(it->second);
    byId.erase(it);
  }
  // ---- HostWorker ----
  double now() const override { return clockMs; }
  void post(std::function<void()> task) override { posted.push_back(std::move(task)); }
  // Host-side work due later on the fake clock (callout answers, a module's timers); not an
  // engine timer.
  uint64_t at(double delayMs, std::function<void()> task) override {
    uint64_t handle = seq++;
    timers.insert({clockMs + delayMs, handle, 0, std::move(task)});
    return handle;
  }
  void cancelAt(uint64_t handle) override {
    for (auto it = timers.begin(); it != timers.end(); ++it) {
      if (it->seq == handle && it->task) {
        timers.erase(it);
        return;
      }
    }
  }
  Transcript& transcript() override { return *transcriptOut; }
  void setIdleWait(std::function<bool()> wait) override { idleWait = std::move(wait); }

  void drainPosted() {
    if (manualPosts) return;  // the driver runs them (ScriptedHost::runOnePosted)
    while (!posted.empty()) {
      auto task = std::move(posted.front());
      posted.pop_front();
      task();
    }
  }
  // Advances the fake clock to the next timer and fires it. False when none is due within
  // the horizon.
  bool fireNextTimer(double horizonMs) {
    if (timers.empty() || timers.begin()->due > horizonMs) {
      if (!idleWait || !idleWait()) return false;
      drainPosted();
      return true;
    }
    auto first = *timers.begin();
    timers.erase(timers.begin());
    clockMs = std::max(clockMs, first.due);
    if (first.task) {
      first.task();
    } else {
      byId.erase(first.id);
      engine->fireTimer(first.id);
    }
    drainPosted();
    return true;
  }
  bool hasDue(double horizonMs) const { return !timers.empty() && timers.begin()->due <= horizonMs; }

  struct PendingTimer {
    double due;
    uint64_t seq;
    uint64_t id;
    std::function<void()> task;
    bool operator<(const PendingTimer& o) const { return due != o.due ? due < o.due : seq < o.seq; }
  };
  std::set<PendingTimer> timers;
  std::map<uint64_t, PendingTimer> byId;
  uint64_t seq = 0;
  double clockMs = 0;
  std::deque<std::function<void()>> posted;
  std::function<bool()> idleWait;
  bool manualPosts = false;
  bool trace = false;
  uint64_t envoyBufferLimitAnswers = 0;
  Transcript* transcriptOut = nullptr;
  FilterEngine* engine = nullptr;
  const std::vector<MetricDeclaration>* metricDecls = nullptr;
};

// One side (request = decoding, response = encoding) of the filter manager around our filter.
struct Side {
  std::optional<ListHeaderMap> headers;
  std::optional<ListHeaderMap> trailers;
  StringBuffer buffered;
  StringBuffer* current = nullptr;
  bool stopped = false;  // our filter stopped iteration; nothing goes past it
  bool headersForwarded = false;
  bool trailersForwarded = false;
  bool endReceived = false;   // the last event (eos data or trailers) reached our filter
  bool endForwarded = false;  // ... and went past it
  // Envoy's watermark buffer around `buffered` (setWatermarks(buffer limit)): the high
  // watermark callback runs once when the buffer grows over the limit, again only after it
  // drained to half. `streaming` is the filter manager's *_filters_streaming_: set by the last
  // StopIterationAndWatermark (true) or StopIterationAndBuffer (false).
  bool aboveHighWatermark = false;
  bool streaming = true;
  // Envoy's buffered_request_data_/buffered_response_data_ exists: some filter buffered (the
  // filter manager creates it on the first buffering and keeps it, empty or not).
  bool created = false;
  // The running data callback's data is an earlier filter's buffer (scenario
  // "earlierFilterBuffers").
  bool receivedIsBuffered = false;
  std::optional<SentMessage>* sink = nullptr;
};

class FakeStream : public HostStream {
 public:
  FakeStream(FakeWorker& worker, StreamTranscript& t) : worker_(worker), t_(t) {
    sides_[0].sink = &t_.upstreamRequest;
    sides_[1].sink = &t_.downstreamResponse;
  }

  // ---- StreamHost ----
  HeaderMap* headerMap(HeaderMapKind kind) override {
    checkAlive("headerMap");
    Side& s = sides_[kind == HeaderMapKind::RequestHeaders || kind == HeaderMapKind::RequestTrailers ? 0 : 1];
    auto& m =
        (kind == HeaderMapKind::RequestHeaders || kind == HeaderMapKind::ResponseHeaders) ? s.headers : s.trailers;
    return m ? &*m : nullptr;
  }
  BodyBuffer* currentData(Direction dir) override {
    checkAlive("currentData");
    return side(dir).current;
  }
  BodyBuffer* bufferedData(Direction dir) override {
    checkAlive("bufferedData");
    return &side(dir).buffered;
  }
  // Envoy's add{De,En}codedTrailers: only in the data callback that ends the direction, once;
  // the filter manager then sends the data without end of stream and the trailers after it (at
  // once, or with the filter's continue).
  HeaderMap* addTrailers(Direction dir, std::string* whyNot) override {
    checkAlive("addTrailers");
    Side& s = side(dir);
    if (s.current == nullptr || !s.endReceived || s.trailers.has_value()) {
      if (contract_.on) hostContractViolated("addTrailers outside the data callback that ends the direction");
      *whyNot = "only inside the data callback that ends the message";
      return nullptr;
    }
    s.trailers.emplace(HeaderList{});
    event(std::string(dir == Direction::Request ? "request" : "response") + " trailers added by the filter");
    return &*s.trailers;
  }
  BodyBuffer* envoyBuffer(Direction dir) override {
    Side& s = side(dir);
    if (s.receivedIsBuffered) return s.current;
    return s.created ? &s.buffered : nullptr;
  }
  BodyBuffer* createEnvoyBuffer(Direction dir) override {
    side(dir).created = true;
    return envoyBuffer(dir);
  }
  bool receivedIsBuffered(Direction dir) const override { return sides_[static_cast<int>(dir)].receivedIsBuffered; }
  bool over() const override { return replied_ || reset_ || sides_[1].endForwarded; }
  void destroyInside() override {
    if (!filter_ || destroyedInside_) return;
    destroyedInside_ = true;
    *alive_ = false;
    if (!reset_) filter_->onComplete();
    filter_->onDestroy();
  }
  // Envoy's adapters post: the runtime's onScheduled() runs from the worker's loop, after the
  // call that asked for it returns (or when the driver runs it, with manual posts).
  void schedule() override {
    checkAlive("schedule");
    if (schedulePosted_) return;
    schedulePosted_ = true;
    auto token = alive_;
    worker_.post([this, token] {
      if (!*token) return;
      schedulePosted_ = false;
      if (!filter_ || destroyedInside_) return;
      contract_.inScheduled++;
      filter_->onScheduled();
      contract_.inScheduled--;
    });
  }
  // Only from onScheduled (checked by the contract): Envoy's continueDecoding/continueEncoding.
  void continueStream(Direction dir) override {
    checkAlive("continueStream");
    if (contract_.on) checkContinue(dir);
    event(std::string("continue ") + name(dir) + " (posted)");
    continueNow(dir);
  }
  void sendLocalReply(const LocalReply& reply) override {
    checkAlive("sendLocalReply");
    if (contract_.on) checkLocalReply(reply);
    // Envoy runs the reply through our encoder callbacks only when the response has not
    // started (otherwise it goes to the codec directly, which this model does not separate).
    bool viaChain = !side(Direction::Response).headers.has_value();
    event("localReply " + std::to_string(reply.status) + " " + reply.details);
    auto [hs, ds] = localReplyViaFilterChain(reply);
    if (contract_.on && viaChain && !contract_.destroyed) {
      if (hs != HeadersStatus::Continue)
        hostContractViolated("our own local reply's headers were stopped by the filter");
      if (ds != DataStatus::Continue) hostContractViolated("our own local reply's body was stopped by the filter");
    }
  }
  // The reply runs through the encoder filters, ours included (the response has not started):
  // its headers, then its body, as Envoy's sendLocalReplyViaFilterChain encodes them. (The
  // runtime already ran our response hooks on its own reply and passes it on untouched; an
  // earlier filter's or Envoy's reply gets them here.) What passes our filter is what the
  // client receives: the transcript's localReply.
  // Returns what our filter's callbacks said (data: Continue when the reply has no body).
  std::pair<HeadersStatus, DataStatus> localReplyViaFilterChain(const LocalReply& reply) {
    HeaderList h = localReplyHeaders(reply);
    responseCode_ = reply.status;
    responseDetails_ = reply.details;
    bool endStream = reply.body.empty();
    t_.localReply = reply;
    replied_ = true;
    sides_[1] = Side{};
    sides_[1].sink = &localSink_;
    sides_[1].headers.emplace(h);
    sides_[1].endReceived = true;
    localSink_.reset();
    Side& s = sides_[1];
    HeadersStatus hs;
    {
      InCallback scope(contract_, Direction::Response);
      hs = filter_->onResponseHeaders(endStream);
    }
    event(std::string("local reply onResponseHeaders -> ") + statusName(hs));
    if (hs == HeadersStatus::Continue) forwardHeaders(Direction::Response, endStream);
    DataStatus ds = DataStatus::Continue;
    if (!endStream) {
      StringBuffer body;
      body.data = reply.body;
      s.current = &body;
      {
        InCallback scope(contract_, Direction::Response);
        ds = filter_->onResponseData(true);
      }
      s.current = nullptr;
      event(std::string("local reply onResponseData -> ") + statusName(ds));
      if (ds == DataStatus::Continue) {
        forwardHeaders(Direction::Response, false);  // after a headers stop: now
        forwardData(Direction::Response, s.buffered.data + body.data, true);
        s.buffered.data.clear();
      }
    }
    if (localSink_) {
      // What the client gets, less :status and content-length (kept as the local reply's own).
      t_.localReply->headers.clear();
      t_.localReply->body = localSink_->body;
      for (const auto& kv : localSink_->headers) {
        if (kv.first == ":status") {
          t_.localReply->status = std::atoi(kv.second.c_str());
        } else if (kv.first != "content-length") {
          t_.localReply->headers.push_back(kv);
        }
      }
    } else {
      t_.localReply->headers.clear();
      for (const auto& kv : h)
        if (kv.first != ":status" && kv.first != "content-length") t_.localReply->headers.push_back(kv);
    }
    return {hs, ds};
  }
  void resetStream() override {
    checkAlive("resetStream");
    if (contract_.on) checkOwnTurn("resetStream");
    event("reset by filter");
    t_.resetByFilter = true;
    reset_ = true;
  }
  void log(LogLevel level, std::string_view message) override {
    checkAlive("log");
    t_.logs.push_back(std::string("[") + logLevelName(level) + "] " + std::string(message));
    if (worker_.trace) fprintf(stderr, "  [stream %s] log %s\n", info_.id.c_str(), t_.logs.back().c_str());
  }
  void recordError(std::string_view message) override {
    checkAlive("recordError");
    t_.errors.emplace_back(message);
    if (worker_.trace) fprintf(stderr, "  [stream %s] error %s\n", info_.id.c_str(), t_.errors.back().c_str());
  }
  StreamInfo streamInfo() override {
    checkAlive("streamInfo");
    return info_;
  }
  // Envoy's stream info, phase by phase: the router counts the attempt when it takes the
  // request headers; the upstream host, response code and details are known once a response
  // is decided ("via_upstream", a local reply's details, "direct_response").
  std::optional<PropertyValue> property(Property which) override {
    checkAlive("property");
    const StreamFacts& f = setup_.facts;
    auto text = [](const std::string& s) -> std::optional<PropertyValue> {
      if (s.empty()) return std::nullopt;
      return PropertyValue::of(s);
    };
    auto port = [](const std::string& addr) -> std::optional<PropertyValue> {
      size_t colon = addr.rfind(':');
      if (addr.empty() || colon == std::string::npos) return std::nullopt;
      return PropertyValue::of(std::strtod(addr.c_str() + colon + 1, nullptr));
    };
    std::string upstream = upstreamAnswered_ ? f.upstreamAddress : "";
    switch (which) {
      case Property::RequestId: return text(info_.id);
      case Property::RequestProtocol: return text(info_.protocol);
      case Property::SourceAddress: return text(info_.remoteAddress);
      case Property::SourcePort: return port(info_.remoteAddress);
      case Property::DestinationAddress: return text(info_.localAddress);
      case Property::DestinationPort: return port(info_.localAddress);
      case Property::ConnectionId: return PropertyValue::of(static_cast<double>(f.connectionId));
      case Property::RequestedServerName: return text(f.requestedServerName);
      case Property::UpstreamAddress: return text(upstream);
      case Property::UpstreamPort: return port(upstream);
      case Property::UpstreamRequestAttemptCount: return PropertyValue::of(static_cast<double>(attempts_));
      case Property::ClusterName: return setup_.directResponse ? std::nullopt : text(f.clusterName);
      case Property::RouteName: return text(info_.routeName);
      case Property::VirtualHostName: return text(f.virtualHostName);
      case Property::VirtualClusterName: return text(f.virtualClusterName);
      case Property::FilterChainName: return text(f.filterChainName);
      case Property::ResponseCode:
        if (responseCode_ == 0) return std::nullopt;
        return PropertyValue::of(static_cast<double>(responseCode_));
      case Property::ResponseCodeDetails: return text(responseDetails_);
      case Property::ResponseFlags: return PropertyValue::of(0.0);
    }
    return std::nullopt;
  }
  // A direct_response route has metadata too; the model has one route per stream.
  std::optional<MetadataValue> getRouteMetadata(std::string_view ns, std::string_view key) override {
    checkAlive("getRouteMetadata");
    auto n = setup_.routeMetadata.find(std::string(ns));
    if (n == setup_.routeMetadata.end()) return std::nullopt;
    auto k = n->second.find(std::string(key));
    if (k == n->second.end()) return std::nullopt;
    return k->second;
  }
  std::optional<MetadataValue> getMetadata(std::string_view ns, std::string_view key) override {
    checkAlive("getMetadata");
    auto n = t_.metadata.find(std::string(ns));
    if (n == t_.metadata.end()) return std::nullopt;
    auto k = n->second.find(std::string(key));
    if (k == n->second.end()) return std::nullopt;
    return k->second;
  }
  void setMetadata(std::string_view ns, std::string_view key, const MetadataValue& value) override {
    checkAlive("setMetadata");
    t_.metadata[std::string(ns)][std::string(key)] = value;
  }
  std::optional<std::string> getFilterState(std::string_view key) override {
    checkAlive("getFilterState");
    auto it = t_.filterState.find(std::string(key));
    if (it == t_.filterState.end()) return std::nullopt;
    return it->second;
  }
  void setFilterState(std::string_view key, std::string_view value) override {
    checkAlive("setFilterState");
    t_.filterState[std::string(key)] = std::string(value);
  }
  CalloutStart startCallout(uint64_t id, const CalloutRequest& request) override {
    checkAlive("startCallout");
    t_.callouts.push_back(request);
    auto it = clusters_->find(request.cluster);
    if (it == clusters_->end()) {
      event("callout " + request.cluster + ": unknown cluster");
      return CalloutStart::UnknownCluster;
    }
    const ClusterScript& script = it->second;
    event("callout " + request.cluster + " " + request.headers[0].second + " " + request.headers[1].second);
    double delay = 0;
    CalloutResponse response = scriptedAnswer(script, request, bufferLimit_, &delay);
    auto token = alive_;
    pendingCallouts_.insert(id);
    if (contract_.on) startedCallouts_.insert(id);
    worker_.at(delay, [this, id, token, response] {
      if (!*token || pendingCallouts_.erase(id) == 0) return;
      event("callout " + std::to_string(id) + " done");
      filter_->onCalloutDone(id, response);
    });
    return CalloutStart::Started;
  }
  void cancelCallout(uint64_t id) override {
    checkAlive("cancelCallout");
    if (contract_.on && !startedCallouts_.count(id)) {
      hostContractViolated("cancelCallout(" + std::to_string(id) + ") for a callout that never started");
    }
    if (pendingCallouts_.erase(id)) event("callout " + std::to_string(id) + " cancelled");
  }
  RouteOverride routeOverride() override {
    checkAlive("routeOverride");
    // Envoy matches the route again after a clear: the scenario says what it then finds.
    return t_.routeCacheClears > 0 && setup_.routeAfterClear ? *setup_.routeAfterClear : route_;
  }
  bool setUpstreamOverrideHost(std::string_view host, bool strict) override {
    checkAlive("setUpstreamOverrideHost");
    event("setUpstreamOverrideHost " + std::string(host) + (strict ? " strict" : ""));
    t_.upstreamOverrideHost.emplace(std::string(host), strict);
    return true;
  }
  void clearRouteCache() override {
    checkAlive("clearRouteCache");
    event("clearRouteCache");
    t_.routeCacheClears++;
  }

  // ---- HostStream ----
  void continueNow(Direction dir) override {
    event(std::string("continue ") + name(dir));
    doContinue(dir);
  }
  void recordEvent(std::string e) override { event(std::move(e)); }
  StreamTranscript& transcript() override { return t_; }

  // ---- driving ----
  // Per-stream setup (info, metadata, filter state, clusters, route); messages come later.
  void start(FilterEngine& engine, const StreamScenario& sc) {
    setup_ = sc;
    info_ = setup_.info;
    clusters_ = &setup_.clusters;
    route_ = setup_.route;
    bufferLimit_ = engine.calloutResponseLimit();
    t_.metadata = setup_.metadata;
    t_.filterState = setup_.filterState;
    filter_ = engine.newFilter(*this);
  }

  void run(FilterEngine& engine, const StreamScenario& sc) {
    start(engine, sc);
    const Message& rq = sc.request;
    bool body = !rq.body.empty(), trailers = rq.trailers.has_value();
    decodeHeaders(rq.headers, !body && !trailers);
    if (sc.reset == "afterRequestHeaders") return destroy("client reset after request headers");
    if (body && sc.earlierFilterBuffers[0] && live() && !over()) {
      decodeEarlierBuffer(rq.body, !trailers);
    } else {
      for (size_t i = 0; i < rq.body.size() && live() && !over(); i++) {
        decodeData(rq.body[i], i + 1 == rq.body.size() && !trailers);
      }
    }
    if (trailers && live() && !over()) decodeTrailers(*rq.trailers);
    if (sc.reset == "afterRequestBody") return destroy("client reset after request body");
    waitFor([&] { return sides_[0].endForwarded || over(); });
    if (directResponded_) {
      waitFor([&] { return sides_[1].endForwarded; });
    } else if (live() && !over() && sides_[0].endForwarded) {
      Message up = sc.upstream.value_or(Message{{{":status", "200"}}, {}, std::nullopt});
      bool ubody = !up.body.empty(), utrailers = up.trailers.has_value();
      encodeHeaders(up.headers, !ubody && !utrailers);
      if (ubody && sc.earlierFilterBuffers[1] && live()) {
        encodeEarlierBuffer(up.body, !utrailers);
      } else {
        for (size_t i = 0; i < up.body.size() && live(); i++)
          encodeData(up.body[i], i + 1 == up.body.size() && !utrailers);
      }
      if (utrailers && live()) encodeTrailers(*up.trailers);
      waitFor([&] { return sides_[1].endForwarded; });
    }
    if (live() && !(sides_[1].endForwarded || replied_)) event("stalled: the filter never let the stream finish");
    complete();
    destroy(nullptr);
  }

  bool live() const override { return !replied_ && !reset_ && !destroyedInside_; }
  bool destroyed() const { return !filter_; }
  bool requestSentUpstream() const { return sides_[0].endForwarded; }
  bool requestHeadersSentUpstream() const { return sides_[0].headersForwarded; }
  bool responseSentDownstream() const { return sides_[1].endForwarded || replied_; }

  void complete() {
    if (!filter_) return;
    contract_.finishing = true;
    if (!reset_) filter_->onComplete();
    worker_.drainPosted();
  }

  void destroy(const char* why) {
    if (!filter_) return;
    if (why) event(why);
    *alive_ = false;
    contract_.finishing = true;
    filter_->onDestroy();
    contract_.destroyed = true;
    worker_.drainPosted();
    filter_.reset();
  }

  // The native engine's streams: check the runtime's side of runtime/host.h.
  void checkRuntimeContract() { contract_.on = true; }

  void decodeHeaders(const HeaderList& h, bool endStream) { onHeaders(Direction::Request, h, endStream); }
  void encodeHeaders(const HeaderList& h, bool endStream) {
    if (!replied_ && !directResponded_) {  // the upstream's answer: the router records it first
      upstreamAnswered_ = true;
      responded(h, "via_upstream");
    }
    onHeaders(Direction::Response, h, endStream);
  }
  void decodeData(const std::string& chunk, bool endStream) { onData(Direction::Request, chunk, endStream); }
  void encodeData(const std::string& chunk, bool endStream) { onData(Direction::Response, chunk, endStream); }
  void decodeTrailers(const HeaderList& h) { onTrailers(Direction::Request, h); }
  void encodeTrailers(const HeaderList& h) { onTrailers(Direction::Response, h); }
  // An earlier filter buffered the whole body and continued: the body comes in one data
  // callback, and it is that filter's buffer (Envoy passes buffered_*_data_ itself on).
  void decodeEarlierBuffer(const std::vector<std::string>& chunks, bool endStream) {
    earlierBuffer(Direction::Request, chunks, endStream);
  }
  void encodeEarlierBuffer(const std::vector<std::string>& chunks, bool endStream) {
    earlierBuffer(Direction::Response, chunks, endStream);
  }

 private:
  Side& side(Direction d) { return sides_[static_cast<int>(d)]; }
  static const char* name(Direction d) { return d == Direction::Request ? "request" : "response"; }
  void event(std::string e) {
    if (worker_.trace) fprintf(stderr, "  [stream %s] %s\n", info_.id.c_str(), e.c_str());
    t_.events.push_back(std::move(e));
  }

  // ---- the runtime's side of runtime/host.h (checked when contract_.on) ----
  struct Contract {
    bool on = false;
    int inCallback[2] = {0, 0};          // inside a callback of that direction
    int inScheduled = 0;                 // inside onScheduled()
    bool finishing = false;              // onComplete/onDestroy started: no local reply any more
    bool destroyed = false;              // onDestroy returned: no host call at all
    bool replied = false;                // the runtime sent a local reply
    uint64_t continueAsked[2] = {0, 0};  // 1 + the stop epoch a continue was asked for
  };
  struct InCallback {
    InCallback(Contract& c, Direction d) : depth(c.inCallback[static_cast<int>(d)]) { depth++; }
    ~InCallback() { depth--; }
    int& depth;
  };
  void checkAlive(const char* call) {
    if (contract_.on && contract_.destroyed) hostContractViolated(std::string(call) + "() called after onDestroy");
  }
  void checkContinue(Direction d) {
    int i = static_cast<int>(d);
    std::string what = std::string("continueStream(") + name(d) + ") ";
    if (contract_.replied || t_.resetByFilter) hostContractViolated(what + "after its own local reply or reset");
    if (!side(d).stopped) hostContractViolated(what + "without a stop");
    if (contract_.inCallback[i] > 0) hostContractViolated(what + "from inside a callback of that direction");
    if (contract_.inScheduled == 0) hostContractViolated(what + "outside onScheduled()");
    if (contract_.continueAsked[i] == stopEpoch_[i] + 1) hostContractViolated(what + "twice for one stop");
    contract_.continueAsked[i] = stopEpoch_[i] + 1;
  }
  // Envoy takes these calls only from the stream's own callbacks (host.h).
  void checkOwnTurn(const char* call) {
    if (contract_.inCallback[0] + contract_.inCallback[1] + contract_.inScheduled == 0) {
      hostContractViolated(std::string(call) + "() outside the stream's own callbacks and onScheduled()");
    }
  }
  void checkLocalReply(const LocalReply& reply) {
    checkOwnTurn("sendLocalReply");
    if (contract_.finishing) hostContractViolated("a local reply from onComplete/onDestroy");
    if (contract_.replied) hostContractViolated("a second local reply");
    if (t_.resetByFilter) hostContractViolated("a local reply after the filter reset the stream");
    if (!replied_ && side(Direction::Response).headersForwarded) {
      hostContractViolated("a local reply after the response headers went downstream (must reset instead)");
    }
    if (reply.status < 200 || reply.status > 599)
      hostContractViolated("local reply status " + std::to_string(reply.status));
    contract_.replied = true;
  }

  // Fires timers (on the fake clock) until `done` or nothing more can happen. The cap stops a
  // filter whose interval never lets the stream finish; it is far above what a filter may
  // legitimately wait for (a hook may await a hundred thousand timers).
  void waitFor(const std::function<bool()>& done) {
    worker_.drainPosted();
    int fired = 0;
    while (live() && !done() && fired < 1000000 && worker_.fireNextTimer(worker_.clockMs + 3600 * 1000.0)) fired++;
  }

  void forwardHeaders(Direction d, bool endStream) {
    Side& s = side(d);
    if (s.headersForwarded) return;
    s.headersForwarded = true;
    if (d == Direction::Request && setup_.directResponse) {
      // The router answers from its decodeHeaders: a local reply that runs through the encode
      // path (our filter's encode hooks included) inside this call; nothing goes upstream.
      if (endStream) s.endForwarded = true;
      respondDirectly(*setup_.directResponse);
      return;
    }
    if (s.sink) *s.sink = SentMessage{s.headers->list(), "", std::nullopt};
    if (endStream) s.endForwarded = true;
    if (d == Direction::Request) attempts_ = 1;  // the router's first try
  }

  // Envoy's stream info learns the response code and its details.
  void responded(const HeaderList& h, const char* details) {
    for (const auto& [k, v] : h) {
      if (k == ":status") responseCode_ = std::atoi(v.c_str());
    }
    responseDetails_ = details;
  }

  void respondDirectly(const Message& m) {
    directResponded_ = true;
    responded(m.headers, "direct_response");
    std::string status = "200";
    for (const auto& [k, v] : m.headers) {
      if (k == ":status") status = v;
    }
    event("direct response " + status + " (the route answers)");
    nested_++;
    bool body = !m.body.empty(), trailers = m.trailers.has_value();
    encodeHeaders(m.headers, !body && !trailers);
    for (size_t i = 0; i < m.body.size() && live(); i++) encodeData(m.body[i], i + 1 == m.body.size() && !trailers);
    if (trailers && live()) encodeTrailers(*m.trailers);
    nested_--;
  }

  void earlierBuffer(Direction d, const std::vector<std::string>& chunks, bool endStream) {
    std::string all;
    for (const std::string& c : chunks) all += c;
    event(std::string(name(d)) + " body buffered by an earlier filter (" + std::to_string(all.size()) + " bytes)");
    side(d).created = true;
    onData(d, all, endStream, true);
  }
  void forwardData(Direction d, const std::string& bytes, bool endStream) {
    Side& s = side(d);
    if (s.sink && *s.sink) (*s.sink)->body += bytes;
    if (endStream) s.endForwarded = true;
  }
  void forwardTrailers(Direction d) {
    Side& s = side(d);
    s.trailersForwarded = true;
    if (s.sink && *s.sink) (*s.sink)->trailers = s.trailers->list();
    s.endForwarded = true;
  }

  // Data went into our filter's buffer (StopIterationAndBuffer/AndWatermark, or Continue after
  // a stop): Envoy's watermark callbacks. Over the limit, a streaming filter (the last status
  // was StopIterationAndWatermark) gets flow control: Envoy reads the connection more slowly
  // and nothing fails. A buffering one (StopIterationAndBuffer) cannot have its whole body:
  // 413 for a request (requestDataTooLarge), 500 for a response (responseDataTooLarge: straight
  // to the codec, or a reset once the response headers went downstream).
  void checkWatermarks(Direction d) {
    Side& s = side(d);
    uint64_t n = s.buffered.data.size();
    uint64_t limit = filter_->envoyBufferLimit();
    if (limit == 0) return;  // no limit
    if (s.aboveHighWatermark && n <= limit / 2) {
      s.aboveHighWatermark = false;
      event(std::string(name(d)) + " buffer below low watermark");
    }
    if (s.aboveHighWatermark || n <= limit) return;
    s.aboveHighWatermark = true;
    if (s.streaming) {
      event(std::string(name(d)) + " buffer above high watermark: flow control");
      return;
    }
    worker_.envoyBufferLimitAnswers++;
    LocalReply reply;
    if (d == Direction::Request) {
      reply.status = 413;
      reply.body = "Payload Too Large";
      reply.details = "request_payload_too_large";
      event("localReply 413 request_payload_too_large (by Envoy)");
      localReplyViaFilterChain(reply);
    } else if (side(Direction::Response).headersForwarded) {
      event("reset by Envoy: response_payload_too_large");
      reset_ = true;
    } else {
      reply.status = 500;
      reply.body = "Internal Server Error";
      reply.details = "response_payload_too_large";
      event("localReply 500 response_payload_too_large (by Envoy, to the codec)");
      reply.headers = {{"content-type", "text/plain"}};  // Utility::sendLocalReply's
      t_.localReply = reply;
      replied_ = true;
    }
  }

  // Envoy's commonContinue for our filter: held headers, then the buffer, then trailers.
  void doContinue(Direction d) {
    Side& s = side(d);
    if (!live() || !s.stopped) return;
    s.stopped = false;
    bool trailersIn = s.trailers.has_value();
    bool headersOnlyEnd = s.endReceived && !trailersIn && s.buffered.data.empty() && !s.headersForwarded &&
                          !hadData_[static_cast<int>(d)];
    forwardHeaders(d, headersOnlyEnd);
    if (!s.buffered.data.empty() || (s.endReceived && !trailersIn && !s.endForwarded)) {
      std::string bytes;
      bytes.swap(s.buffered.data);
      forwardData(d, bytes, s.endReceived && !trailersIn);
      checkWatermarks(d);  // drained
    }
    if (trailersIn && !s.trailersForwarded) forwardTrailers(d);
  }

  void afterHeaders(Direction d, HeadersStatus st, bool endStream) {
    Side& s = side(d);
    if (!live()) return;
    if (st == HeadersStatus::Continue && endStream && !s.buffered.data.empty()) {
      // A body the filter gave a message that came without one (addDecodedData/addEncodedData
      // in the headers callback): the headers go on without end of stream, then that body.
      forwardHeaders(d, false);
      std::string bytes;
      bytes.swap(s.buffered.data);
      forwardData(d, bytes, true);
    } else if (st == HeadersStatus::Continue) {
      forwardHeaders(d, endStream);
    } else {
      s.stopped = true;
      stopEpoch_[static_cast<int>(d)]++;
    }
  }

  void onHeaders(Direction d, const HeaderList& h, bool endStream) {
    Side& s = side(d);
    s.headers.emplace(h);
    s.endReceived = endStream;
    HeadersStatus st;
    {
      InCallback scope(contract_, d);
      st = d == Direction::Request ? filter_->onRequestHeaders(endStream) : filter_->onResponseHeaders(endStream);
    }
    if (contract_.on && st != HeadersStatus::Continue && st != HeadersStatus::StopIteration) {
      hostContractViolated(std::string("unexpected headers status ") + statusName(st));
    }
    event(std::string(d == Direction::Request ? "onRequestHeaders" : "onResponseHeaders") + " -> " + statusName(st));
    afterHeaders(d, st, endStream);
    if (nested_ == 0) worker_.drainPosted();
  }

  void onData(Direction d, const std::string& chunk, bool endStream, bool earlierBuffer = false) {
    Side& s = side(d);
    hadData_[static_cast<int>(d)] = true;
    StringBuffer current;
    current.data = chunk;
    s.current = &current;
    s.receivedIsBuffered = earlierBuffer;
    s.endReceived = endStream;
    DataStatus st;
    {
      InCallback scope(contract_, d);
      st = d == Direction::Request ? filter_->onRequestData(endStream) : filter_->onResponseData(endStream);
    }
    s.current = nullptr;
    s.receivedIsBuffered = false;
    event(std::string(d == Direction::Request ? "onRequestData" : "onResponseData") + " -> " + statusName(st));
    if (live()) {
      switch (st) {
        case DataStatus::Continue:
          if (s.stopped || !s.headersForwarded) {
            s.buffered.data += current.data;
            s.created = true;
            s.stopped = true;
            checkWatermarks(d);
            if (live()) doContinue(d);
          } else {
            // Trailers the filter added go after the data, which then does not end the stream.
            forwardData(d, current.data, endStream && !s.trailers.has_value());
            if (s.trailers.has_value() && !s.trailersForwarded) forwardTrailers(d);
          }
          break;
        case DataStatus::StopIterationAndBuffer:
        case DataStatus::StopIterationAndWatermark:
          s.buffered.data += current.data;
          s.created = true;
          s.stopped = true;
          s.streaming = st == DataStatus::StopIterationAndWatermark;
          stopEpoch_[static_cast<int>(d)]++;
          checkWatermarks(d);
          break;
        case DataStatus::StopIterationNoBuffer:
          // At the end of the stream the filter manager creates an empty buffer, so that a
          // continue still ends the stream with an empty data frame.
          if (endStream && !s.created) s.created = true;
          s.stopped = true;
          stopEpoch_[static_cast<int>(d)]++;
          break;
      }
    }
    if (nested_ == 0) worker_.drainPosted();
  }

  void onTrailers(Direction d, const HeaderList& h) {
    Side& s = side(d);
    s.trailers.emplace(h);
    s.endReceived = true;
    TrailersStatus st;
    {
      InCallback scope(contract_, d);
      st = d == Direction::Request ? filter_->onRequestTrailers() : filter_->onResponseTrailers();
    }
    event(std::string(d == Direction::Request ? "onRequestTrailers" : "onResponseTrailers") + " -> " + statusName(st));
    if (live()) {
      if (st == TrailersStatus::Continue) {
        if (s.stopped || !s.headersForwarded) {
          s.stopped = true;
          doContinue(d);
        } else {
          forwardTrailers(d);
        }
      } else {
        s.stopped = true;
        stopEpoch_[static_cast<int>(d)]++;
      }
    }
    if (nested_ == 0) worker_.drainPosted();
  }

  FakeWorker& worker_;
  StreamTranscript& t_;
  Side sides_[2];
  bool hadData_[2] = {false, false};
  std::optional<SentMessage> localSink_;
  bool replied_ = false;
  bool reset_ = false;
  bool directResponded_ = false;
  // Envoy's stream info (property()).
  bool upstreamAnswered_ = false;
  int attempts_ = 0;
  int responseCode_ = 0;
  std::string responseDetails_;
  bool destroyedInside_ = false;  // destroyInside() ran: Envoy's stream is gone
  int nested_ = 0;                // > 0: delivering inside another call (no posted work runs)
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  std::unique_ptr<FilterUnderTest> filter_;
  StreamInfo info_;
  StreamScenario setup_;
  const std::map<std::string, ClusterScript>* clusters_ = nullptr;
  RouteOverride route_;
  std::set<uint64_t> pendingCallouts_;
  size_t bufferLimit_ = 0;
  Contract contract_;
  // Stop* statuses our filter returned per direction; a posted continue resumes only the one
  // it was asked for. Kept outside Side, which a local reply replaces.
  uint64_t stopEpoch_[2] = {0, 0};
  bool schedulePosted_ = false;
  std::set<uint64_t> startedCallouts_;  // contract_.on only
};

StreamScenario withDefaults(StreamScenario sc, size_t index) {
  if (sc.info.id.empty()) sc.info.id = std::to_string(index + 1);
  if (sc.info.protocol.empty()) sc.info.protocol = "HTTP/1.1";
  if (sc.info.remoteAddress.empty()) sc.info.remoteAddress = "127.0.0.1:50000";
  if (sc.info.localAddress.empty()) sc.info.localAddress = "127.0.0.1:10000";
  return sc;
}

// The native stub's filter: the runtime's Stream, called directly.
class NativeFilter : public FilterUnderTest {
 public:
  NativeFilter(std::unique_ptr<Stream> stream, uint64_t bufferLimitBytes)
      : stream_(std::move(stream)), envoyLimit_(std::max(kEnvoyDefaultBufferLimit, bufferLimitBytes)) {}
  HeadersStatus onRequestHeaders(bool endStream) override { return stream_->onRequestHeaders(endStream); }
  DataStatus onRequestData(bool endStream) override { return stream_->onRequestData(endStream); }
  TrailersStatus onRequestTrailers() override { return stream_->onRequestTrailers(); }
  HeadersStatus onResponseHeaders(bool endStream) override { return stream_->onResponseHeaders(endStream); }
  DataStatus onResponseData(bool endStream) override { return stream_->onResponseData(endStream); }
  TrailersStatus onResponseTrailers() override { return stream_->onResponseTrailers(); }
  void onCalloutDone(uint64_t id, const CalloutResponse& response) override { stream_->onCalloutDone(id, response); }
  void onComplete() override { stream_->onComplete(); }
  void onDestroy() override { stream_->onDestroy(); }
  void onScheduled() override { stream_->onScheduled(); }
  // The adapter raises Envoy's limit to buffer_limit_bytes when that is more (decodeHeaders).
  uint64_t envoyBufferLimit() const override { return envoyLimit_; }

 private:
  std::unique_ptr<Stream> stream_;
  uint64_t envoyLimit_;
};

// The native stub's engine: the runtime's Engine with the fake worker as its EngineHost.
class NativeEngine : public FilterEngine {
 public:
  static std::unique_ptr<NativeEngine> create(std::shared_ptr<const FilterProgram> program, FakeWorker& worker,
                                              std::string* error, uint32_t workerIndex = 0) {
    std::unique_ptr<NativeEngine> e(new NativeEngine());
    e->metricDecls_ = program->metrics();
    worker.metricDecls = &e->metricDecls_;
    e->engine_ = Engine::create(program, worker, workerIndex, error);
    if (!e->engine_) return nullptr;
    return e;
  }
  // Only ever given this file's FakeStream.
  std::unique_ptr<FilterUnderTest> newFilter(HostStream& stream) override {
    static_cast<FakeStream&>(stream).checkRuntimeContract();
    return std::make_unique<NativeFilter>(engine_->newStream(stream), engine_->settings().bufferLimitBytes);
  }
  size_t calloutResponseLimit() const override { return engine_->settings().bufferLimitBytes; }
  void fireTimer(uint64_t id) override { engine_->fireTimer(id); }
  Engine& engine() { return *engine_; }

 private:
  NativeEngine() = default;
  std::vector<MetricDeclaration> metricDecls_;
  std::unique_ptr<Engine> engine_;
};

std::shared_ptr<const FilterProgram> loadProgram(const std::string& source, const std::string& filename,
                                                 const std::string* bytecodeFile, const std::string& configJson,
                                                 const std::string& settingsJson, std::string_view sourceMapJson,
                                                 std::string* error) {
  Settings settings;
  if (!Settings::fromJson(settingsJson, &settings, error)) return nullptr;
  return bytecodeFile
             ? FilterProgram::fromBytecodeFile(*bytecodeFile, filename, configJson, settings, error, sourceMapJson)
             : FilterProgram::compile(source, filename, configJson, settings, error, sourceMapJson);
}

// The background engine's host (runtime/host.h BackgroundHost): the worker's fake clock, and
// callouts answered by the scripted clusters the same way a stream's are.
class FakeBackground : public BackgroundHost {
 public:
  FakeBackground(FakeWorker& worker, std::map<std::string, ClusterScript> clusters, size_t responseLimit)
      : worker_(worker), clusters_(std::move(clusters)), responseLimit_(responseLimit) {}
  ~FakeBackground() override {
    engine.reset();  // cancels its timers (cancelTimer) and drops its callouts
    for (auto& [id, handle] : callouts_) worker_.cancelAt(handle);
  }
  void log(LogLevel level, std::string_view message) override {
    std::string line = std::string("[") + logLevelName(level) + "] " + std::string(message);
    if (worker_.trace) fprintf(stderr, "  [background] %s\n", line.c_str());
    worker_.transcriptOut->backgroundLogs.push_back(line);
  }
  double nowMs() override { return worker_.clockMs; }
  void incrementCounter(std::string_view name, uint64_t delta) override {
    worker_.transcriptOut->counters[std::string(name)] += delta;
  }
  void recordMetric(size_t index, MetricKind kind, const std::vector<std::string>& labelValues, double value) override {
    worker_.recordMetric(index, kind, labelValues, value);
  }
  void startTimer(uint64_t id, double delayMs) override {
    if (timers_.count(id)) hostContractViolated("background timer " + std::to_string(id) + " started twice");
    if (!(delayMs >= 0 && delayMs <= 2147483647)) {
      hostContractViolated("timer delay " + std::to_string(delayMs) + " outside [0, 2^31-1]");
    }
    timers_[id] = worker_.at(delayMs, [this, id] {
      timers_.erase(id);
      engine->fireTimer(id);
    });
  }
  void cancelTimer(uint64_t id) override {
    auto it = timers_.find(id);
    if (it == timers_.end()) return;
    worker_.cancelAt(it->second);
    timers_.erase(it);
  }
  CalloutStart startCallout(uint64_t id, const CalloutRequest& request) override {
    auto it = clusters_.find(request.cluster);
    if (it == clusters_.end()) return CalloutStart::UnknownCluster;
    const ClusterScript& script = it->second;
    double delay = 0;
    CalloutResponse response = scriptedAnswer(script, request, responseLimit_, &delay);
    callouts_[id] = worker_.at(delay, [this, id, response] {
      if (callouts_.erase(id) == 0) return;
      engine->onCalloutDone(id, response);
    });
    return CalloutStart::Started;
  }
  void cancelCallout(uint64_t id) override {
    auto it = callouts_.find(id);
    if (it == callouts_.end()) hostContractViolated("cancelCallout(" + std::to_string(id) + ") for no callout");
    worker_.cancelAt(it->second);
    callouts_.erase(it);
  }
  std::unique_ptr<Engine> engine;

 private:
  FakeWorker& worker_;
  std::map<std::string, ClusterScript> clusters_;
  size_t responseLimit_;
  std::map<uint64_t, uint64_t> timers_;    // engine timer id -> worker handle
  std::map<uint64_t, uint64_t> callouts_;  // callout id -> worker handle of its answer
};

}  // namespace

struct ScriptedHost::Impl {
  Transcript transcript;
  FakeWorker worker;
  std::unique_ptr<NativeEngine> engine;
  // Stream `first + k` is streams[k] (and transcript.streams[k]); null once released.
  std::deque<std::unique_ptr<FakeStream>> streams;
  size_t first = 0;
  std::shared_ptr<const FilterProgram> program;
  std::unique_ptr<FakeBackground> background;

  // Callers check the index against transcript().streams (no exceptions: the wasm build has none).
  FakeStream& at(size_t i) {
    if (i < first || i - first >= streams.size() || !streams[i - first]) {
      fprintf(stderr, "ScriptedHost: no stream %zu\n", i);
      abort();
    }
    return *streams[i - first];
  }
};

std::unique_ptr<ScriptedHost> ScriptedHost::create(const std::string& source, const std::string& filename,
                                                   const std::string* bytecodeFile, const std::string& configJson,
                                                   const std::string& settingsJson, std::string* error,
                                                   std::string_view sourceMapJson) {
  resetProcessState();  // a step host is one Envoy process (its program-based sibling is a worker)
  std::shared_ptr<const FilterProgram> program =
      loadProgram(source, filename, bytecodeFile, configJson, settingsJson, sourceMapJson, error);
  if (!program) return nullptr;
  return create(program, 0, error);
}

std::unique_ptr<ScriptedHost> ScriptedHost::create(std::shared_ptr<const FilterProgram> program, uint32_t workerIndex,
                                                   std::string* error) {
  std::unique_ptr<ScriptedHost> host(new ScriptedHost());
  host->impl_ = std::make_unique<Impl>();
  Impl& i = *host->impl_;
  i.worker.transcriptOut = &i.transcript;
  i.program = program;
  i.engine = NativeEngine::create(program, i.worker, error, workerIndex);
  if (!i.engine) return nullptr;
  i.worker.engine = i.engine.get();
  return host;
}

ScriptedHost::~ScriptedHost() {
  if (!impl_) return;
  impl_->background.reset();
  for (auto& s : impl_->streams) {
    if (s) s->destroy(nullptr);
  }
  impl_->engine.reset();
}

size_t ScriptedHost::newStream(const StreamScenario& setup) {
  Impl& i = *impl_;
  size_t index = i.first + i.streams.size();
  i.transcript.streams.emplace_back();
  i.streams.push_back(std::make_unique<FakeStream>(i.worker, i.transcript.streams.back()));
  i.streams.back()->start(*i.engine, withDefaults(setup, index));
  return index;
}

void ScriptedHost::requestHeaders(size_t s, const HeaderList& h, bool endStream) {
  impl_->at(s).decodeHeaders(h, endStream);
}
void ScriptedHost::requestData(size_t s, const std::string& chunk, bool endStream) {
  impl_->at(s).decodeData(chunk, endStream);
}
void ScriptedHost::requestTrailers(size_t s, const HeaderList& h) { impl_->at(s).decodeTrailers(h); }
void ScriptedHost::responseHeaders(size_t s, const HeaderList& h, bool endStream) {
  impl_->at(s).encodeHeaders(h, endStream);
}
void ScriptedHost::responseData(size_t s, const std::string& chunk, bool endStream) {
  impl_->at(s).encodeData(chunk, endStream);
}
void ScriptedHost::responseTrailers(size_t s, const HeaderList& h) { impl_->at(s).encodeTrailers(h); }
void ScriptedHost::complete(size_t s) { impl_->at(s).complete(); }
void ScriptedHost::destroy(size_t s, const char* why) { impl_->at(s).destroy(why); }
bool ScriptedHost::requestSentUpstream(size_t s) { return impl_->at(s).requestSentUpstream(); }
bool ScriptedHost::responseSentDownstream(size_t s) { return impl_->at(s).responseSentDownstream(); }
bool ScriptedHost::live(size_t s) { return impl_->at(s).live() && !impl_->at(s).destroyed(); }
bool ScriptedHost::requestHeadersSentUpstream(size_t s) { return impl_->at(s).requestHeadersSentUpstream(); }

bool ScriptedHost::advanceTime(double ms) {
  double until = impl_->worker.clockMs + ms;
  size_t fired = 0;
  while (impl_->worker.fireNextTimer(until)) {
    if (++fired >= kMaxTimersPerAdvance && impl_->worker.hasDue(until)) return false;
  }
  impl_->worker.clockMs = std::max(impl_->worker.clockMs, until);
  return true;
}

double ScriptedHost::now() const { return impl_->worker.clockMs; }

bool ScriptedHost::startBackground(const std::map<std::string, ClusterScript>& clusters, std::string* error) {
  Impl& i = *impl_;
  if (i.background) {
    *error = "the background engine runs already";
    return false;
  }
  if (!i.program->hasBackground()) {
    *error = i.program->filename() + ": the filter has no `background` function";
    return false;
  }
  auto bg = std::make_unique<FakeBackground>(i.worker, clusters, i.program->settings().bufferLimitBytes);
  // Owned before its engine starts: background() may start timers and callouts at once.
  FakeBackground* host = bg.get();
  i.background = std::move(bg);
  host->engine = Engine::createBackground(i.program, *host, error);
  if (!host->engine) {
    i.background.reset();
    return false;
  }
  i.worker.drainPosted();
  return true;
}

void ScriptedHost::stopBackground() { impl_->background.reset(); }

std::optional<std::string> ScriptedHost::sharedValue(std::string_view key) const {
  std::optional<SharedEntry> e = sharedGet(sharedNamespace(impl_->program->filename()), key);
  if (!e) return std::nullopt;
  return e->value;
}
const Transcript& ScriptedHost::transcript() const { return impl_->transcript; }

Engine& ScriptedHost::engine() { return impl_->engine->engine(); }
bool ScriptedHost::fireNextTimer() { return impl_->worker.fireNextTimer(std::numeric_limits<double>::infinity()); }
size_t ScriptedHost::pendingTimers() const { return impl_->worker.timers.size(); }
void ScriptedHost::setManualPosts(bool manual) { impl_->worker.manualPosts = manual; }
bool ScriptedHost::runOnePosted() {
  FakeWorker& w = impl_->worker;
  if (w.posted.empty()) return false;
  auto task = std::move(w.posted.front());
  w.posted.pop_front();
  task();
  return true;
}
size_t ScriptedHost::pendingPosts() const { return impl_->worker.posted.size(); }
uint64_t ScriptedHost::envoyBufferLimitAnswers() const { return impl_->worker.envoyBufferLimitAnswers; }
void ScriptedHost::setTrace(bool on) { impl_->worker.trace = on; }

void ScriptedHost::release(size_t s) {
  Impl& i = *impl_;
  i.at(s).destroy(nullptr);
  // Posted work and callout answers of the stream check its alive token before they touch it.
  i.streams[s - i.first].reset();
  i.transcript.streams[s - i.first] = StreamTranscript{};
  while (!i.streams.empty() && !i.streams.front()) {
    i.streams.pop_front();
    i.transcript.streams.pop_front();  // a deque: the other streams' references stay valid
    i.first++;
  }
}
size_t ScriptedHost::firstStream() const { return impl_->first; }
void ScriptedHost::clearWorkerLogs() { impl_->transcript.workerLogs.clear(); }

bool runScenarioWith(const FilterEngineFactory& factory, const Scenario& scenario, Transcript* out,
                     std::string* error) {
  resetProcessState();  // a scenario is one Envoy process: no shared data or metric values before it
  FakeWorker worker;
  worker.transcriptOut = out;
  std::unique_ptr<FilterEngine> engine = factory(worker, error);
  if (!engine) return false;
  worker.engine = engine.get();
  for (size_t i = 0; i < scenario.streams.size(); i++) {
    out->streams.emplace_back();
    FakeStream stream(worker, out->streams.back());
    stream.run(*engine, withDefaults(scenario.streams[i], i));
  }
  // Worker-level timers would keep firing in Envoy; a replay ends here.
  worker.replayOver = true;
  engine.reset();
  return true;
}

bool runScenario(const std::string& source, const std::string& filename, const std::string* bytecodeFile,
                 const Scenario& scenario, Transcript* out, std::string* error, std::string_view sourceMapJson) {
  std::shared_ptr<const FilterProgram> program =
      loadProgram(source, filename, bytecodeFile, scenario.configJson, scenario.settingsJson, sourceMapJson, error);
  if (!program) return false;
  return runScenarioWith(
      [&](HostWorker& worker, std::string* err) {
        return NativeEngine::create(program, static_cast<FakeWorker&>(worker), err);
      },
      scenario, out, error);
}

}  // namespace envoy_js::stub
