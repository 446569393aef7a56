// An Envoy-faithful scripted host for the runtime: plays the HTTP connection manager's filter
// manager around one envoy-js filter (request headers/data/trailers in, an upstream that
// answers, a downstream that receives), with a fake clock for timers. Used by the Node addon
// (replay, tests) and by the C++ drivers. No Node or Envoy header here.
//
// What it models from Envoy's filter manager, for a chain [envoy-js, router]:
//  - Continue passes the message on; StopIteration holds headers; StopIterationAndBuffer /
//    AndWatermark add the data to the filter's buffer; StopIterationNoBuffer drops it (the
//    filter took it); Continue from a data/trailers callback after a header stop sends the
//    held headers, the buffer plus the current data, then the trailers.
//  - Envoy's buffer limit (FilterUnderTest::envoyBufferLimit: Envoy's default 1 MiB, which the
//    adapters raise to buffer_limit_bytes when that is more) as Envoy's watermark buffer
//    applies it to the filter's buffer: over it after StopIterationAndWatermark, flow control
//    only (nothing fails); after StopIterationAndBuffer, Envoy's own 413 (request) or 500
//    (response; a reset once the response headers went downstream).
//  - continueDecoding/continueEncoding are posted (as the native adapter posts them) and run
//    after the current callback returns.
//  - sendLocalReply: the request stops, the reply runs through the encoder path (our filter's
//    encode callbacks see it), the client receives it.
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "../../runtime/engine.h"
#include "list_header_map.h"

namespace envoy_js::stub {


struct Message {
  HeaderList headers;
  std::vector<std::string> body;  // chunks as they arrive
  std::optional<HeaderList> trailers;
};

// How a scripted cluster answers callouts (`ctx.fetch`).
struct ClusterScript {
  Message response;       // headers (with :status) and body
  double delayMs = 0;
  bool reset = false;     // the callout is reset instead
  bool timeout = false;   // never answers: the callout times out after its timeoutMs
};

struct StreamScenario {
  Message request;
  std::map<std::string, ClusterScript> clusters;
  RouteOverride route;  // scenario "route": {"config": {...}, "disabled": bool}
  StreamInfo info;                                                 // scenario "stream"
  std::map<std::string, std::map<std::string, std::string>> metadata;  // ns -> key -> JSON text
  std::map<std::string, std::string> filterState;
  std::optional<Message> upstream;
  std::string reset = "none";  // none | afterRequestHeaders | afterRequestBody
};

struct Scenario {
  std::string configJson = "{}";
  std::string settingsJson = "{}";
  std::vector<StreamScenario> streams;
};

struct SentMessage {
  HeaderList headers;
  std::string body;
  std::optional<HeaderList> trailers;
};

struct StreamTranscript {
  std::optional<SentMessage> upstreamRequest;
  std::optional<LocalReply> localReply;
  std::optional<SentMessage> downstreamResponse;
  std::vector<std::string> logs;
  std::vector<std::string> errors;
  // What the host saw, in order: callback results, continues, buffering, replies, resets.
  std::vector<std::string> events;
  bool resetByFilter = false;
  std::map<std::string, std::map<std::string, std::string>> metadata;  // final, JSON texts
  std::map<std::string, std::string> filterState;
  int routeCacheClears = 0;
  std::vector<CalloutRequest> callouts;  // what the filter sent to clusters, in order
};

struct MetricValue {
  MetricKind kind;
  double value = 0;             // counter total or gauge's last value
  std::vector<double> samples;  // histogram
};

struct Transcript {
  std::deque<StreamTranscript> streams;  // a deque: live streams keep references into it
  std::map<std::string, uint64_t> counters;
  std::map<std::string, MetricValue> metrics;  // the filter's declared metrics
  std::vector<std::string> workerLogs;  // logs outside any stream (setup, worker timers)
};

// ---- The seam between Envoy's part and the filter under test --------------------------------
// The model above plays Envoy's filter manager. What it drives is a FilterUnderTest: the
// runtime's Stream for the native stub, or a dynamic module's exported hooks behind a model of
// Envoy's dynamic-module filter (test/abi_host). Both reach the same host-side state, so one
// scenario gives comparable transcripts on both.

// One stream's filter, called in Envoy's order; onDestroy() comes last, exactly once.
class FilterUnderTest {
 public:
  virtual ~FilterUnderTest() = default;
  virtual HeadersStatus onRequestHeaders(bool endStream) = 0;
  virtual DataStatus onRequestData(bool endStream) = 0;
  virtual TrailersStatus onRequestTrailers() = 0;
  virtual HeadersStatus onResponseHeaders(bool endStream) = 0;
  virtual DataStatus onResponseData(bool endStream) = 0;
  virtual TrailersStatus onResponseTrailers() = 0;
  // A callout started through HostStream::startCallout finished.
  virtual void onCalloutDone(uint64_t id, const CalloutResponse& response) = 0;
  // Envoy's onStreamComplete(); not called after the filter reset the stream itself.
  virtual void onComplete() = 0;
  virtual void onDestroy() = 0;
  // Envoy's buffer limit for this stream (the watermarks of the filter's buffered body).
  static constexpr uint64_t kEnvoyDefaultBufferLimit = 1 << 20;  // per_connection_buffer_limit_bytes
  virtual uint64_t envoyBufferLimit() const { return kEnvoyDefaultBufferLimit; }
};

// The host-side state of one stream. The runtime reaches it as a StreamHost; a filter that
// speaks another interface (the ABI host's callbacks) uses the extra methods too.
class HostStream : public StreamHost {
 public:
  // Envoy's continueDecoding()/continueEncoding(): resumes `dir` now. (StreamHost::continueStream
  // is what the native adapter does: post, then continue.)
  virtual void continueNow(Direction dir) = 0;
  // Appends to this stream's `events`.
  virtual void recordEvent(std::string event) = 0;
  virtual StreamTranscript& transcript() = 0;
  // Not replied to, not reset by the filter.
  virtual bool live() const = 0;
};

// The worker thread around the filter: a fake clock and a queue of posted tasks.
class HostWorker {
 public:
  virtual ~HostWorker() = default;
  virtual double now() const = 0;
  // Runs `task` on this worker after the current callback returns (Envoy's dispatcher post).
  virtual void post(std::function<void()> task) = 0;
  // Runs `task` after delayMs on the fake clock, in order with everything else due; returns a
  // handle for cancelAt.
  virtual uint64_t at(double delayMs, std::function<void()> task) = 0;
  virtual void cancelAt(uint64_t handle) = 0;
  virtual Transcript& transcript() = 0;
  // When a stream waits and nothing is due on the fake clock, the model calls `wait` before it
  // gives up: a host with work coming from other threads (a module's own timer thread) blocks
  // there for it, posts it and returns true; false means that nothing more will come.
  virtual void setIdleWait(std::function<bool()> wait) = 0;
};

// What one worker runs: one FilterUnderTest per stream.
class FilterEngine {
 public:
  virtual ~FilterEngine() = default;
  virtual std::unique_ptr<FilterUnderTest> newFilter(HostStream& stream) = 0;
  // A callout response larger than this fails with ResponseTooLarge (Envoy's async client
  // buffer limit as the adapter sets it).
  virtual size_t calloutResponseLimit() const = 0;
  // An engine timer started through EngineHost::startTimer is due (native engines only).
  virtual void fireTimer(uint64_t id) { (void)id; }
};

// Loads the filter for a worker; returns nullptr with *error when it cannot be loaded.
using FilterEngineFactory =
    std::function<std::unique_ptr<FilterEngine>(HostWorker& worker, std::string* error)>;

// runScenario with any filter engine (the ABI host runs a dynamic module through this).
bool runScenarioWith(const FilterEngineFactory& factory, const Scenario& scenario, Transcript* out,
                     std::string* error);

// Loads a program from source (or bytecode when given) and runs the scenario's streams on one
// worker engine. Returns false with *error when the filter or scenario cannot be loaded.
bool runScenario(const std::string& source, const std::string& filename,
                 const std::string* bytecodeFile, const Scenario& scenario, Transcript* out,
                 std::string* error);

// The same host, driven step by step (the addon's createHost, the dev server): one worker
// engine, streams created and fed by the caller, time advanced explicitly.
class ScriptedHost {
 public:
  static std::unique_ptr<ScriptedHost> create(const std::string& source, const std::string& filename,
                                              const std::string* bytecodeFile, const std::string& configJson,
                                              const std::string& settingsJson, std::string* error);
  ~ScriptedHost();
  // Uses the per-stream setup of `setup` (stream info, metadata, filter state, clusters,
  // route); its request/upstream messages are ignored. Returns the stream's index.
  size_t newStream(const StreamScenario& setup);
  void requestHeaders(size_t stream, const HeaderList& headers, bool endStream);
  void requestData(size_t stream, const std::string& chunk, bool endStream);
  void requestTrailers(size_t stream, const HeaderList& trailers);
  void responseHeaders(size_t stream, const HeaderList& headers, bool endStream);
  void responseData(size_t stream, const std::string& chunk, bool endStream);
  void responseTrailers(size_t stream, const HeaderList& trailers);
  void complete(size_t stream);
  void destroy(size_t stream, const char* why);
  bool requestSentUpstream(size_t stream);
  bool responseSentDownstream(size_t stream);
  bool live(size_t stream);  // not replied to, not reset, not destroyed
  // Fires every timer and callout answer due within `ms` on the fake clock. Returns false,
  // with the clock at the last one fired, when more than kMaxTimersPerAdvance are due (an
  // interval of 0 ms would otherwise fire forever at the same instant).
  static constexpr size_t kMaxTimersPerAdvance = 100000;
  bool advanceTime(double ms);
  double now() const;
  const Transcript& transcript() const;

 private:
  ScriptedHost() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

const char* logLevelName(LogLevel level);

}  // namespace envoy_js::stub
