// A minimal Envoy-like host for the fuzzer, the soak and the thread-sanitizer run: header maps,
// body buffers, a fake clock, posted callbacks, and the filter manager's iteration rules around
// one envoy-js filter. Unlike the scripted host (test/host_stub) it is driven one event at a
// time, so a caller can interleave streams, timers and posted continues in any order Envoy
// could, and it checks the runtime's side of the contract in runtime/host.h as it goes: a
// broken rule aborts with "host contract violated: ..." (a crash the fuzzer reports).
//
// Rules checked: no host call after onDestroy; continueStream only for a direction the host
// sees stopped, at most once per stop, never from inside a callback of that direction; no
// local reply after another one, after a reset, once the response started downstream, or
// from onComplete/onDestroy; a local reply that runs through our encoder callbacks is not held
// by them; timers are not started twice under one id; StopIterationAndBuffer never leaves the
// filter's buffer over Envoy's buffer limit.
//
// Envoy's buffer limit (its default 1 MiB, which the adapters raise to buffer_limit_bytes when
// that is more) as its watermark buffer applies it: data held under StopIterationAndWatermark
// is appended whatever its size (flow control: Envoy reads the connection more slowly, nothing
// fails; counted in watermarkStops). Over the limit under StopIterationAndBuffer Envoy would
// answer 413 (request) / 500 (response) itself; the runtime answers bodies over
// buffer_limit_bytes itself before that can happen, so here it is a contract violation.
//
// The adapter side is modelled as DESIGN.md section 8 says: a continue is posted to the
// worker and, when it runs, only resumes the stop it was asked for: if the filter returned a
// newer Stop* for that direction meanwhile (data that arrived before the post ran, now held
// by a pending data hook), or Continue, the post is stale and dropped (counted), as a weak
// pointer plus a stop-generation guard in the adapter would do. Resuming anyway would send on
// data that a pending hook still works on.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "../../runtime/engine.h"
#include "../host_stub/list_header_map.h"

namespace envoy_js::reliability {

// Set (e.g. from an environment variable) to print every host-visible step on stderr.
inline bool gTrace = false;
#define RELIABILITY_TRACE(...)        \
  do {                                \
    if (::envoy_js::reliability::gTrace) fprintf(stderr, __VA_ARGS__); \
  } while (0)

[[noreturn]] inline void contractViolation(const std::string& what) {
  fprintf(stderr, "host contract violated: %s\n", what.c_str());
  fflush(stderr);
  abort();
}

using HeaderList = stub::HeaderList;

// Envoy's header maps: the stub hosts' implementation.
using Headers = stub::ListHeaderMap;

class Bytes final : public BodyBuffer {
 public:
  size_t length() const override { return data.size(); }
  void copyOut(size_t offset, size_t len, uint8_t* dst) const override {
    if (offset + len > data.size()) contractViolation("copyOut past the end of a buffer");
    std::copy_n(data.data() + offset, len, dst);
  }
  void replace(std::string_view d) override { data.assign(d); }
  void append(std::string_view d) override { data.append(d); }
  void prepend(std::string_view d) override { data.insert(0, d); }
  std::string data;
};

// The worker: clock, timers, posted callbacks, counters.
class Worker final : public EngineHost {
 public:
  void log(LogLevel level, std::string_view message) override {
    logLines++;
    if (echoLogs) fprintf(stderr, "[worker %d] %.*s\n", static_cast<int>(level), static_cast<int>(message.size()), message.data());
  }
  double nowMs() override { return now; }
  void incrementCounter(std::string_view name, uint64_t delta) override { counters[std::string(name)] += delta; }
  void recordMetric(size_t, MetricKind, double) override { metricRecords++; }
  void startTimer(uint64_t id, double delayMs) override {
    if (due_.count(id)) contractViolation("timer " + std::to_string(id) + " started while already pending");
    if (!(delayMs >= 0 && delayMs <= 2147483647)) contractViolation("timer delay " + std::to_string(delayMs) + " outside [0, 2^31-1]");
    Entry e{now + delayMs, seq_++, id};
    due_[id] = e;
    queue_.insert(e);
  }
  void cancelTimer(uint64_t id) override {
    auto it = due_.find(id);
    if (it == due_.end()) return;  // already fired: the runtime may cancel what it no longer tracks
    queue_.erase(it->second);
    due_.erase(it);
  }

  void post(std::function<void()> task) { posted_.push_back(std::move(task)); }
  bool drainOnePosted() {
    if (posted_.empty()) return false;
    auto task = std::move(posted_.front());
    posted_.pop_front();
    task();
    return true;
  }
  void drainPosted() {
    while (drainOnePosted()) {
    }
  }
  // Advances the clock to the earliest timer and fires it; false when there is none.
  bool fireNextTimer() {
    if (queue_.empty()) return false;
    Entry e = *queue_.begin();
    queue_.erase(queue_.begin());
    due_.erase(e.id);
    now = std::max(now, e.due);
    engine->fireTimer(e.id);
    return true;
  }
  size_t pendingTimers() const { return queue_.size(); }
  size_t pendingPosts() const { return posted_.size(); }

  Engine* engine = nullptr;
  double now = 0;
  uint64_t logLines = 0;
  bool echoLogs = false;
  std::map<std::string, uint64_t> counters;
  uint64_t metricRecords = 0;

 private:
  struct Entry {
    double due;
    uint64_t seq;
    uint64_t id;
    bool operator<(const Entry& o) const { return due != o.due ? due < o.due : seq < o.seq; }
  };
  std::map<uint64_t, Entry> due_;
  std::set<Entry> queue_;
  std::deque<std::function<void()>> posted_;
  uint64_t seq_ = 0;
};

// One HTTP stream around our filter: [client] -> envoy-js -> [router/upstream], and back.
class HostStream final : public StreamHost {
 public:
  enum class Phase : uint8_t { NotStarted, Body, Ended };

  static constexpr uint64_t kEnvoyDefaultBufferLimit = 1 << 20;  // per_connection_buffer_limit_bytes
  HostStream(Worker& worker, Engine& engine)
      : worker_(worker), envoyLimit_(std::max<uint64_t>(kEnvoyDefaultBufferLimit, engine.settings().bufferLimitBytes)) {
    stream_ = engine.newStream(*this);
  }
  ~HostStream() override {
    if (!destroyed_) destroy(true);
  }
  HostStream(const HostStream&) = delete;
  HostStream& operator=(const HostStream&) = delete;

  // ---- what may happen next --------------------------------------------------------------
  bool live() const { return !destroyed_ && !replied_ && !reset_; }
  bool destroyed() const { return destroyed_; }
  bool replied() const { return replied_; }
  bool resetByFilter() const { return reset_; }
  Phase phase(Direction d) const { return side(d).phase; }
  // Envoy delivers a direction's events in order; the upstream answers only once the request
  // headers went past our filter to the router.
  bool canSend(Direction d) const {
    if (!live() || side(d).phase == Phase::Ended) return false;
    return d == Direction::Request || side(Direction::Request).headersForwarded;
  }
  // The client has everything: the response ended downstream, or a local reply went out.
  bool responseComplete() const { return replied_ || side(Direction::Response).endForwarded; }
  const std::string& forwardedBody(Direction d) const { return side(d).forwardedBody; }
  const Headers* forwardedHeaders(Direction d) const {
    const Side& s = side(d);
    return s.headersForwarded && s.headers ? &*s.headers : nullptr;
  }
  uint64_t staleContinues() const { return staleContinues_; }

  // ---- events (the caller checks canSend first) ------------------------------------------
  void sendHeaders(Direction d, HeaderList headers, bool endStream) {
    Side& s = expectPhase(d, Phase::NotStarted, "headers");
    s.headers.emplace(std::move(headers));
    s.phase = endStream ? Phase::Ended : Phase::Body;
    s.headersOnly = endStream;
    HeadersStatus st;
    {
      InCallback scope(s);
      st = d == Direction::Request ? stream_->onRequestHeaders(endStream) : stream_->onResponseHeaders(endStream);
    }
    RELIABILITY_TRACE("  %p %s headers end=%d -> %d\n", (void*)this, dn(d), endStream, static_cast<int>(st));
    if (!live()) return;
    if (st == HeadersStatus::Continue) {
      forwardHeaders(d);
    } else if (st == HeadersStatus::StopIteration) {
      stop(s);
    } else {
      contractViolation("unexpected headers status " + std::to_string(static_cast<int>(st)));
    }
  }

  void sendData(Direction d, std::string bytes, bool endStream) {
    Side& s = expectPhase(d, Phase::Body, "data");
    if (bytes.empty() && !endStream) contractViolation("test driver bug: empty data without end_stream");
    Bytes current;
    current.data = std::move(bytes);
    if (endStream) s.phase = Phase::Ended;
    DataStatus st;
    {
      InCallback scope(s);
      s.current = &current;
      st = d == Direction::Request ? stream_->onRequestData(endStream) : stream_->onResponseData(endStream);
      s.current = nullptr;
    }
    RELIABILITY_TRACE("  %p %s data %zu end=%d -> %d\n", (void*)this, dn(d), current.data.size(), endStream, static_cast<int>(st));
    if (!live()) return;
    switch (st) {
      case DataStatus::Continue:
        if (s.stopped) {
          // Continue after a stop: the filter manager resumes now (commonContinue).
          s.buffered.data += current.data;
          resume(d);
        } else {
          forwardData(d, current.data, endStream);
        }
        break;
      case DataStatus::StopIterationAndBuffer:
        s.buffered.data += current.data;
        if (s.buffered.data.size() > envoyLimit_) {
          contractViolation(std::string("StopIterationAndBuffer with the ") + dn(d) + " buffer at " +
                            std::to_string(s.buffered.data.size()) + " bytes, over Envoy's limit " +
                            std::to_string(envoyLimit_) + ": Envoy would answer " +
                            (d == Direction::Request ? "413" : "500") + " itself");
        }
        stop(s);
        break;
      case DataStatus::StopIterationAndWatermark:
        s.buffered.data += current.data;  // flow control, never a failure
        if (s.buffered.data.size() > envoyLimit_) watermarkStops++;
        stop(s);
        break;
      case DataStatus::StopIterationNoBuffer:
        stop(s);
        break;
      default:
        contractViolation("unexpected data status " + std::to_string(static_cast<int>(st)));
    }
  }

  void sendTrailers(Direction d, HeaderList trailers) {
    Side& s = expectPhase(d, Phase::Body, "trailers");
    s.trailers.emplace(std::move(trailers));
    s.phase = Phase::Ended;
    TrailersStatus st;
    {
      InCallback scope(s);
      st = d == Direction::Request ? stream_->onRequestTrailers() : stream_->onResponseTrailers();
    }
    RELIABILITY_TRACE("  %p %s trailers -> %d\n", (void*)this, dn(d), static_cast<int>(st));
    if (!live()) return;
    if (st == TrailersStatus::Continue) {
      if (s.stopped) resume(d);
      else forwardTrailers(d);
    } else {
      stop(s);
    }
  }

  // Envoy's onStreamComplete: at most once, before onDestroy.
  void complete() {
    if (destroyed_) contractViolation("test driver bug: complete after destroy");
    if (completed_) return;
    completed_ = true;
    finishing_ = true;
    stream_->onComplete();
  }

  void destroy(bool complete = false) {
    if (destroyed_) return;
    RELIABILITY_TRACE("  %p destroy%s\n", (void*)this, complete ? " (with onComplete)" : "");
    if (complete) this->complete();
    Stream* s = stream_.get();
    finishing_ = true;
    *alive_ = false;
    s->onDestroy();
    destroyed_ = true;  // from now on every host call is a contract violation
    stream_.reset();
  }

  // ---- StreamHost --------------------------------------------------------------------------
  HeaderMap* headerMap(HeaderMapKind kind) override {
    checkAlive("headerMap");
    Side& s = sides_[kind == HeaderMapKind::RequestHeaders || kind == HeaderMapKind::RequestTrailers ? 0 : 1];
    bool trailers = kind == HeaderMapKind::RequestTrailers || kind == HeaderMapKind::ResponseTrailers;
    auto& m = trailers ? s.trailers : s.headers;
    return m ? &*m : nullptr;
  }
  BodyBuffer* currentData(Direction d) override {
    checkAlive("currentData");
    return side(d).current;
  }
  BodyBuffer* bufferedData(Direction d) override {
    checkAlive("bufferedData");
    return &side(d).buffered;
  }
  void continueStream(Direction d) override {
    checkAlive("continueStream");
    Side& s = side(d);
    const char* n = d == Direction::Request ? "request" : "response";
    if (!live()) contractViolation(std::string("continueStream(") + n + ") after a local reply or reset");
    if (!s.stopped) contractViolation(std::string("continueStream(") + n + ") without a stop");
    if (s.inCallback) contractViolation(std::string("continueStream(") + n + ") from inside a callback of that direction");
    if (s.continueAsked == s.stopGeneration) contractViolation(std::string("continueStream(") + n + ") twice for one stop");
    RELIABILITY_TRACE("  %p %s continueStream (stop %llu)\n", (void*)this, n, static_cast<unsigned long long>(s.stopGeneration));
    s.continueAsked = s.stopGeneration;
    uint64_t generation = s.stopGeneration;
    std::shared_ptr<bool> alive = alive_;
    worker_.post([this, d, generation, alive] {
      if (!*alive) return;
      Side& side = this->side(d);
      if (!live() || !side.stopped || side.stopGeneration != generation) {
        RELIABILITY_TRACE("  %p %s posted continue: stale\n", (void*)this, dn(d));
        staleContinues_++;
        return;
      }
      RELIABILITY_TRACE("  %p %s posted continue: resume\n", (void*)this, dn(d));
      resume(d);
    });
  }
  void sendLocalReply(const LocalReply& reply) override {
    checkAlive("sendLocalReply");
    if (finishing_) contractViolation("a local reply from onComplete/onDestroy");
    if (replied_) contractViolation("a second local reply");
    if (reset_) contractViolation("a local reply after the filter reset the stream");
    Side& res = side(Direction::Response);
    if (res.headersForwarded) contractViolation("a local reply after the response headers went downstream (must reset instead)");
    if (reply.status < 200 || reply.status > 599) contractViolation("local reply status " + std::to_string(reply.status));
    RELIABILITY_TRACE("  %p local reply %d\n", (void*)this, reply.status);
    replied_ = true;
    localReplyStatus = reply.status;
    if (res.phase != Phase::NotStarted) return;  // Envoy sends it straight to the codec
    // The response has not entered the filter chain: Envoy runs the reply through it.
    HeaderList h{{":status", std::to_string(reply.status)}};
    for (const auto& kv : reply.headers) h.push_back(kv);
    res.headers.emplace(std::move(h));
    res.phase = reply.body.empty() ? Phase::Ended : Phase::Body;
    HeadersStatus hs;
    {
      InCallback scope(res);
      hs = stream_->onResponseHeaders(reply.body.empty());
    }
    if (hs != HeadersStatus::Continue) contractViolation("our own local reply's headers were stopped by the filter");
    if (destroyed_ || reply.body.empty()) return;
    Bytes body;
    body.data = reply.body;
    res.phase = Phase::Ended;
    DataStatus ds;
    {
      InCallback scope(res);
      res.current = &body;
      ds = stream_->onResponseData(true);
      res.current = nullptr;
    }
    if (ds != DataStatus::Continue) contractViolation("our own local reply's body was stopped by the filter");
  }
  void resetStream() override {
    checkAlive("resetStream");
    RELIABILITY_TRACE("  %p reset by filter\n", (void*)this);
    reset_ = true;
  }
  void log(LogLevel, std::string_view) override {
    checkAlive("log");
    logLines++;
  }
  void recordError(std::string_view) override {
    checkAlive("recordError");
    errors++;
  }
  StreamInfo streamInfo() override {
    checkAlive("streamInfo");
    return StreamInfo{"mini", "HTTP/1.1", "127.0.0.1:50000", "127.0.0.1:10000", ""};
  }
  std::optional<std::string> getMetadata(std::string_view ns, std::string_view key) override {
    checkAlive("getMetadata");
    auto it = metadata_.find(std::string(ns) + "/" + std::string(key));
    if (it == metadata_.end()) return std::nullopt;
    return it->second;
  }
  void setMetadata(std::string_view ns, std::string_view key, std::string_view json) override {
    checkAlive("setMetadata");
    metadata_[std::string(ns) + "/" + std::string(key)] = std::string(json);
  }
  std::optional<std::string> getFilterState(std::string_view key) override {
    checkAlive("getFilterState");
    auto it = filterState_.find(std::string(key));
    if (it == filterState_.end()) return std::nullopt;
    return it->second;
  }
  void setFilterState(std::string_view key, std::string_view value) override {
    checkAlive("setFilterState");
    filterState_[std::string(key)] = std::string(value);
  }
  void clearRouteCache() override { checkAlive("clearRouteCache"); }
  RouteOverride routeOverride() override {
    checkAlive("routeOverride");
    return RouteOverride{};
  }
  // This host has no clusters: every callout is refused the way Envoy refuses an unknown one.
  CalloutStart startCallout(uint64_t, const CalloutRequest&) override {
    checkAlive("startCallout");
    return CalloutStart::UnknownCluster;
  }
  void cancelCallout(uint64_t) override { contractViolation("cancelCallout for a callout that never started"); }

  std::optional<int> localReplyStatus;
  std::map<std::string, std::string> metadata_, filterState_;
  uint64_t logLines = 0;
  uint64_t errors = 0;
  uint64_t watermarkStops = 0;  // StopIterationAndWatermark with the buffer over Envoy's limit

 private:
  struct Side {
    std::optional<Headers> headers;
    std::optional<Headers> trailers;
    Bytes buffered;
    Bytes* current = nullptr;
    Phase phase = Phase::NotStarted;
    bool headersOnly = false;
    bool stopped = false;
    bool inCallback = false;
    bool headersForwarded = false;
    bool trailersForwarded = false;
    bool endForwarded = false;
    uint64_t stopGeneration = 0;
    uint64_t continueAsked = 0;
    std::string forwardedBody;
  };
  struct InCallback {
    explicit InCallback(Side& s) : s_(s), saved_(s.inCallback) { s.inCallback = true; }
    ~InCallback() { s_.inCallback = saved_; }
    Side& s_;
    bool saved_;
  };

  static const char* dn(Direction d) { return d == Direction::Request ? "request" : "response"; }
  Side& side(Direction d) { return sides_[static_cast<int>(d)]; }
  const Side& side(Direction d) const { return sides_[static_cast<int>(d)]; }
  void checkAlive(const char* what) {
    if (destroyed_) contractViolation(std::string(what) + "() called after onDestroy");
  }
  Side& expectPhase(Direction d, Phase p, const char* what) {
    if (!canSend(d) || side(d).phase != p) contractViolation(std::string("test driver bug: ") + what + " out of order");
    return side(d);
  }
  // Every Stop* return starts a stop of its own, also while an earlier one is still held: a
  // continue the runtime asked for the earlier one is then superseded (see continueStream).
  void stop(Side& s) {
    s.stopped = true;
    s.stopGeneration++;
  }
  void forwardHeaders(Direction d) {
    Side& s = side(d);
    if (s.headersForwarded) return;
    s.headersForwarded = true;
    if (s.headersOnly) s.endForwarded = true;
  }
  void forwardData(Direction d, const std::string& bytes, bool endStream) {
    Side& s = side(d);
    s.forwardedBody += bytes;
    if (endStream) s.endForwarded = true;
  }
  void forwardTrailers(Direction d) {
    Side& s = side(d);
    s.trailersForwarded = true;
    s.endForwarded = true;
  }
  // The filter manager's commonContinue: held headers, then the buffer, then trailers.
  void resume(Direction d) {
    Side& s = side(d);
    s.stopped = false;
    forwardHeaders(d);
    bool ended = s.phase == Phase::Ended;
    bool trailers = s.trailers.has_value();
    if (!s.buffered.data.empty() || (ended && !trailers && !s.endForwarded)) {
      std::string bytes;
      bytes.swap(s.buffered.data);
      forwardData(d, bytes, ended && !trailers);
    }
    if (trailers && !s.trailersForwarded) forwardTrailers(d);
  }

  Worker& worker_;
  uint64_t envoyLimit_;
  Side sides_[2];
  std::unique_ptr<Stream> stream_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  bool destroyed_ = false;
  bool completed_ = false;
  bool finishing_ = false;  // inside or after onComplete/onDestroy: no more replies
  bool replied_ = false;
  bool reset_ = false;
  uint64_t staleContinues_ = 0;
};

}  // namespace envoy_js::reliability
