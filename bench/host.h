// A minimal in-process host for the benchmarks: just enough of Envoy's part to drive the
// runtime through whole stream lifecycles with as little host cost as possible, so that what
// the numbers show is the runtime (or the LuaJIT peer), not the host.
//
//  - BenchHeaderMap: a vector of (lower-case name, value) pairs, Envoy's order kept.
//  - BenchBuffer: a body buffer that starts as a view of bytes owned by the driver (so the
//    host never copies a chunk just to offer it), and owns its bytes once it is mutated.
//    Every byte copyOut() hands out is counted in gBytesCopied.
//  - BenchWorker: an EngineHost with a timer list on a fake clock that the driver advances.
//  - BenchStream: a StreamHost holding the two header maps and the data of the running data
//    callback; it records continues and local replies, nothing else.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "../runtime/engine.h"

namespace bench {

using envoy_js::BodyBuffer;
using envoy_js::Direction;
using envoy_js::HeaderMap;
using envoy_js::HeaderMapKind;
using envoy_js::LogLevel;

// Bytes handed out by BenchBuffer::copyOut since the last reset (body_passthrough.bytes_copied).
extern uint64_t gBytesCopied;
// > 0 while the host itself allocates inside a runtime call, so that the driver's allocation
// accounting (runtime C++ bytes per suspended stream) leaves the host's own bytes out.
extern int gHostAllocating;

using HeaderList = std::vector<std::pair<std::string, std::string>>;

class BenchHeaderMap : public HeaderMap {
 public:
  // Reuses the vector's capacity and the strings' buffers: refilling a map per request costs
  // no allocation once warm (Envoy parses a fresh map per request; this is the cheap analogue).
  void assign(const HeaderList& from) { entries_ = from; }
  const HeaderList& entries() const { return entries_; }

  size_t get(std::string_view name, size_t index, std::string_view* value) const override;
  void forEach(Visitor fn, void* opaque) const override;
  size_t size() const override { return entries_.size(); }
  void set(std::string_view name, std::string_view value) override;
  void append(std::string_view name, std::string_view value) override;
  void remove(std::string_view name) override;

 private:
  HeaderList entries_;
};

class BenchBuffer : public BodyBuffer {
 public:
  // Borrows [data, data+len): no copy until someone mutates the buffer.
  void view(const char* data, size_t len) {
    view_ = std::string_view(data, len);
    owned_ = false;
  }
  void clear() { view(nullptr, 0); }
  std::string_view bytes() const { return owned_ ? std::string_view(own_) : view_; }

  size_t length() const override { return owned_ ? own_.size() : view_.size(); }
  void copyOut(size_t offset, size_t len, uint8_t* dst) const override;
  void replace(std::string_view data) override;
  void append(std::string_view data) override;
  void prepend(std::string_view data) override;

 private:
  void own();
  std::string_view view_;
  std::string own_;
  bool owned_ = false;
};

class BenchWorker : public envoy_js::EngineHost {
 public:
  void log(LogLevel level, std::string_view message) override;
  double nowMs() override { return now_; }
  void incrementCounter(std::string_view name, uint64_t delta) override;
  void recordMetric(size_t, envoy_js::MetricKind, const std::vector<std::string>&, double) override { metricRecords++; }
  void startTimer(uint64_t id, double delayMs) override {
    gHostAllocating++;
    timers_[id] = now_ + delayMs;
    gHostAllocating--;
  }
  void cancelTimer(uint64_t id) override;

  // Advances the fake clock to the earliest timer and fires it; false when there is none.
  bool fireNextTimer();
  size_t pendingTimers() const { return timers_.size(); }
  void reserveTimers(size_t n) { timers_.reserve(n); }

  envoy_js::Engine* engine = nullptr;
  uint64_t metricRecords = 0;
  uint64_t errors = 0;  // "envoy_js.errors" and error logs: the driver refuses numbers with errors
  std::string lastError;

 private:
  // id -> due time. Hashed, so that cancelling one of 10,000 pending timers costs the host
  // O(1) and the suspended-stream teardown numbers show the runtime's cost, not ours.
  std::unordered_map<uint64_t, double> timers_;
  double now_ = 0;
};

class BenchStream : public envoy_js::StreamHost {
 public:
  // Starts a new request: request headers from `request`, no response yet.
  void begin(const HeaderList& request);
  void setResponse(const HeaderList& response);

  HeaderMap* headerMap(HeaderMapKind kind) override;
  BodyBuffer* currentData(Direction dir) override { return current_[static_cast<int>(dir)]; }
  BodyBuffer* bufferedData(Direction dir) override { return &buffered_[static_cast<int>(dir)]; }
  HeaderMap* addTrailers(Direction, std::string* whyNot) override {
    *whyNot = "the benchmark host does not add trailers";
    return nullptr;
  }
  // The worker's event loop runs the scheduled turn: the driver calls Stream::onScheduled().
  void schedule() override { scheduled = true; }
  void continueStream(Direction dir) override { continues[static_cast<int>(dir)]++; }
  void sendLocalReply(const envoy_js::LocalReply& reply) override;
  void resetStream() override { resets++; }
  void log(LogLevel level, std::string_view message) override;
  void recordError(std::string_view message) override;

  // Stream services the benchmark filters do not use: plain answers, no allocation on the
  // paths the runtime takes per stream (routeOverride is asked once per request).
  envoy_js::StreamInfo streamInfo() override;
  // No benchmark reads a property: answered as by a host that has none.
  std::optional<envoy_js::PropertyValue> property(envoy_js::Property) override { return std::nullopt; }
  std::optional<envoy_js::MetadataValue> getRouteMetadata(std::string_view, std::string_view) override {
    return std::nullopt;
  }
  std::optional<envoy_js::MetadataValue> getMetadata(std::string_view, std::string_view) override {
    return std::nullopt;
  }
  void setMetadata(std::string_view, std::string_view, const envoy_js::MetadataValue&) override {}
  std::optional<std::string> getFilterState(std::string_view) override { return std::nullopt; }
  void setFilterState(std::string_view, std::string_view) override {}
  void clearRouteCache() override {}
  envoy_js::RouteOverride routeOverride() override { return {}; }
  bool setUpstreamOverrideHost(std::string_view, bool) override { return true; }
  // No benchmark filter calls ctx.fetch: a callout is refused, and counted as an error.
  envoy_js::CalloutStart startCallout(uint64_t id, const envoy_js::CalloutRequest& request) override;
  void cancelCallout(uint64_t) override {}

  // The data callback about to run sees `buf` as its current data (nullptr after it).
  void setCurrent(Direction dir, BenchBuffer* buf) { current_[static_cast<int>(dir)] = buf; }

  BenchHeaderMap requestHeaders, responseHeaders;
  bool hasRequest = false, hasResponse = false;
  int continues[2] = {0, 0};
  bool scheduled = false;  // schedule() asked for a turn of the event loop
  int localReplies = 0;
  int resets = 0;
  int errors = 0;
  std::string lastError;

 private:
  BenchBuffer* current_[2] = {nullptr, nullptr};
  BenchBuffer buffered_[2];
};

}  // namespace bench
