// An Envoy-faithful scripted host for the runtime: plays the HTTP connection manager's filter
// manager around one envoy-js filter (request headers/data/trailers in, an upstream that
// answers, a downstream that receives), with a fake clock for timers. Used by the wasm engine
// (wasm/exports.cc: @envoy-js/sdk/testing, replay), the ABI host stub and the C++ drivers. No
// Node or Envoy header here.
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
//  - A route that answers itself (scenario "directResponse"): the router's local reply runs
//    through our encode callbacks inside the call that passed the request headers on (our
//    continue, for a stopped request).
//  - An earlier filter that buffered a whole body (scenario "earlierFilterBuffers"): one data
//    callback whose data is Envoy's buffered body itself.
//  - Envoy's own view for the ABI host: the buffered body is null until some filter buffered;
//    the stream can be destroyed inside a filter's call (HostStream::destroyInside).
//
// It also checks the runtime's side of the contract in runtime/host.h on every call the
// runtime makes (the native engine's streams; a dynamic module behind the ABI host speaks
// Envoy's ABI and test/abi_host checks that). A broken rule aborts with "host contract
// violated: <what>", a crash that the sanitizer runs and the fuzzer report:
//  - no host call after onDestroy returned;
//  - continueStream only for a direction the model sees stopped, at most once per stop (a
//    Stop* returned while a stop is held starts a new one), never from inside a callback of
//    that direction, never after the runtime's own local reply or reset;
//  - no local reply after another one of its own, after resetting the stream, once the
//    response headers went downstream (reset instead), or from onComplete/onDestroy; status
//    200..599; its own reply, when it runs through our encoder callbacks, is not held by them;
//  - headers callbacks return Continue or StopIteration; copyOut stays within the buffer;
//  - timers are not started twice under one id while pending, delays are in [0, 2^31-1];
//    cancelCallout only for a callout that was started.
// Not checked here: a StopIterationAndBuffer that leaves the buffer over Envoy's limit. Envoy
// answers that itself (413/500, modelled below) and a filter that inflates its held body can
// legitimately get there; a driver whose filters cannot (the runtime answers bodies over
// buffer_limit_bytes first) checks ScriptedHost::envoyBufferLimitAnswers() itself.
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
  Message response;  // headers (with :status) and body
  double delayMs = 0;
  bool reset = false;    // the callout is reset instead
  bool timeout = false;  // never answers: the callout times out after its timeoutMs
};

// What Envoy's stream info knows beyond StreamInfo (ctx.property), scenario "stream" keys
// of the same names. Empty strings: Envoy has no value (null in JS).
struct StreamFacts {
  std::string clusterName = "upstream";            // the route's cluster (none for a direct response)
  std::string upstreamAddress = "127.0.0.1:8080";  // the host picked, known once it answered
  std::string virtualHostName;
  std::string virtualClusterName;
  std::string filterChainName;
  std::string requestedServerName;
  uint64_t connectionId = 1;
};

struct StreamScenario {
  Message request;
  std::map<std::string, ClusterScript> clusters;
  RouteOverride route;  // scenario "route": {"config": {...}, "disabled": bool}
  // scenario "routeAfterClear" (same shape): the route Envoy picks again once the filter
  // cleared the route cache (its changed headers now match another route).
  std::optional<RouteOverride> routeAfterClear;
  StreamInfo info;                                                       // scenario "stream"
  StreamFacts facts;                                                     // scenario "stream" too
  std::map<std::string, std::map<std::string, MetadataValue>> metadata;  // ns -> key -> value
  // scenario "routeMetadata": the selected route's filter_metadata, ns -> key -> value
  std::map<std::string, std::map<std::string, MetadataValue>> routeMetadata;
  std::map<std::string, std::string> filterState;
  std::optional<Message> upstream;
  std::string reset = "none";  // none | afterRequestHeaders | afterRequestBody
  // scenario "directResponse": the route answers itself (Envoy's router with a direct_response,
  // a local reply) as soon as the request headers pass the filter, instead of an upstream. The
  // reply runs through the filter's encode hooks like an upstream response; nothing goes
  // upstream.
  std::optional<Message> directResponse;
  // scenario "earlierFilterBuffers": ["request", "response"]: a filter before ours (in that
  // direction's order) buffers the whole body and then continues: ours sees the headers without
  // end of stream, then the whole body in one data callback, and that data IS Envoy's buffered
  // body (decodingBuffer() == the data; received_buffered_*_body() is true).
  bool earlierFilterBuffers[2] = {false, false};  // by Direction
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
  std::map<std::string, std::map<std::string, MetadataValue>> metadata;  // final
  std::map<std::string, std::string> filterState;
  int routeCacheClears = 0;
  std::optional<std::pair<std::string, bool>> upstreamOverrideHost;  // host, strict: the last asked
  std::vector<CalloutRequest> callouts;                              // what the filter sent to clusters, in order
};

struct MetricValue {
  MetricKind kind;
  double value = 0;             // counter total or gauge's last value
  std::vector<double> samples;  // histogram
};

// The transcript's key of a metric series: the name alone without labels, else
// `name{label="value",...}` in the declaration's label order (Prometheus' notation).
inline std::string metricSeriesName(const std::string& name, const std::vector<std::string>& labels,
                                    const std::vector<std::string>& values) {
  if (values.empty()) return name;
  std::string out = name + "{";
  for (size_t i = 0; i < values.size(); i++) {
    out += (i ? "," : "") + (i < labels.size() ? labels[i] : "?") + "=\"" + values[i] + "\"";
  }
  return out + "}";
}

struct Transcript {
  std::deque<StreamTranscript> streams;  // a deque: live streams keep references into it
  std::map<std::string, uint64_t> counters;
  std::map<std::string, MetricValue> metrics;  // the filter's declared metrics, by metricSeriesName
  std::vector<std::string> workerLogs;         // logs outside any stream (setup, worker timers)
  std::vector<std::string> backgroundLogs;     // the background engine's logs (ScriptedHost::startBackground)
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
  // What StreamHost::schedule() asked for (the runtime's filter only).
  virtual void onScheduled() {}
  // Envoy's buffer limit for this stream (the watermarks of the filter's buffered body).
  static constexpr uint64_t kEnvoyDefaultBufferLimit = 1 << 20;  // per_connection_buffer_limit_bytes
  virtual uint64_t envoyBufferLimit() const { return kEnvoyDefaultBufferLimit; }
};

// The host-side state of one stream. The runtime reaches it as a StreamHost; a filter that
// speaks another interface (the ABI host's callbacks) uses the extra methods too.
class HostStream : public StreamHost {
 public:
  // Envoy's continueDecoding()/continueEncoding(): resumes `dir` now (what
  // StreamHost::continueStream does from inside onScheduled).
  virtual void continueNow(Direction dir) = 0;
  // Appends to this stream's `events`.
  virtual void recordEvent(std::string event) = 0;
  virtual StreamTranscript& transcript() = 0;
  // Not replied to, not reset by the filter.
  virtual bool live() const = 0;

  // ---- Envoy's view, for the ABI host (the native stub's runtime sees bufferedData()) ----
  // decodingBuffer()/encodingBuffer(): null until some filter buffered data of `dir` (the
  // filter manager creates it lazily, then keeps it); during a data callback whose data is an
  // earlier filter's buffer, that data itself.
  virtual BodyBuffer* envoyBuffer(Direction dir) = 0;
  // addDecodedData()/addEncodedData() when that buffer is null: creates it, returns it.
  virtual BodyBuffer* createEnvoyBuffer(Direction dir) = 0;
  // The running data callback's data is the buffered body of an earlier filter.
  virtual bool receivedIsBuffered(Direction dir) const = 0;
  // Envoy's stream is over: the response went downstream to its end, a local reply was sent,
  // or the stream was reset. Envoy then destroys it (doDeferredStreamDestroy).
  virtual bool over() const = 0;
  // Envoy 1.38/1.39 destroy the stream synchronously when it ends inside a filter's call
  // (send_response, reset_stream, continue_*): onComplete() then onDestroy() of the filter,
  // now, before that call returns. The FilterUnderTest object itself lives on until the
  // replay lets go of the stream (Envoy defers the deletion of its filter objects).
  virtual void destroyInside() = 0;
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
using FilterEngineFactory = std::function<std::unique_ptr<FilterEngine>(HostWorker& worker, std::string* error)>;

// runScenario with any filter engine (the ABI host runs a dynamic module through this).
bool runScenarioWith(const FilterEngineFactory& factory, const Scenario& scenario, Transcript* out, std::string* error);

// Loads a program from source (or bytecode when given) and runs the scenario's streams on one
// worker engine. Returns false with *error when the filter or scenario cannot be loaded.
// `sourceMapJson`: the bundle's source map, for errors that name the TypeScript source.
bool runScenario(const std::string& source, const std::string& filename, const std::string* bytecodeFile,
                 const Scenario& scenario, Transcript* out, std::string* error, std::string_view sourceMapJson = {});

// The same host, driven step by step (createHost of @envoy-js/sdk/testing, the dev server): one worker
// engine, streams created and fed by the caller, time advanced explicitly.
class ScriptedHost {
 public:
  static std::unique_ptr<ScriptedHost> create(const std::string& source, const std::string& filename,
                                              const std::string* bytecodeFile, const std::string& configJson,
                                              const std::string& settingsJson, std::string* error,
                                              std::string_view sourceMapJson = {});
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

  // ---- the filter config's background engine (`background(config, bg)`, host.h BackgroundHost)
  // Starts it on this host's fake clock, as Envoy starts it once per filter config: its timers
  // fire on advanceTime() with or without streams, its `bg.fetch` is answered by `clusters` as
  // a stream's ctx.fetch is by the stream's. Its logs go to Transcript::backgroundLogs, its
  // counters to Transcript::counters. False with *error when the filter has no `background`,
  // the module cannot load, or one runs already.
  bool startBackground(const std::map<std::string, ClusterScript>& clusters, std::string* error);
  // The filter config goes away (a reload): the background engine is destroyed, its timers and
  // callouts with it; nothing of it runs afterwards. No-op when none runs.
  void stopBackground();
  // The process's shared store (ctx.shared, bg.shared) of this filter: the value under `key`.
  std::optional<std::string> sharedValue(std::string_view key) const;

  // ---- for the C++ drivers (fuzz, soak, tsan): one step at a time, for long runs ----------
  // Runs a program compiled once (shared by several hosts, on several threads) as worker
  // `workerIndex`.
  static std::unique_ptr<ScriptedHost> create(std::shared_ptr<const FilterProgram> program, uint32_t workerIndex,
                                              std::string* error);
  // The worker's engine: stats() and collectGarbage().
  Engine& engine();
  // The request headers went past the filter to the router (the upstream may answer now).
  bool requestHeadersSentUpstream(size_t stream);
  // Fires the earliest timer or callout answer, whenever it is due, with the clock moved to
  // it; false when nothing is pending.
  bool fireNextTimer();
  size_t pendingTimers() const;  // timers and callout answers
  // Work posted to the worker (what StreamHost::schedule() asks for) runs by default as soon
  // as the call that posted it returns. With manual posts it waits for runOnePosted(), so that
  // a driver can deliver events, fire timers and run posts in any order Envoy's dispatcher
  // could; the runtime then decides in onScheduled() whether a resume is still due.
  void setManualPosts(bool manual);
  bool runOnePosted();  // false when nothing is posted
  size_t pendingPosts() const;
  // How often Envoy answered (413/500) or reset a stream because a StopIterationAndBuffer left
  // the filter's buffer over Envoy's limit.
  uint64_t envoyBufferLimitAnswers() const;
  // Prints every stream's events, logs and errors, and the worker's logs, on stderr as they
  // happen.
  void setTrace(bool on);
  // Lets go of a stream's host state and transcript (destroying it first if need be), so that
  // millions of streams fit in one host. Its index is not reused; using it again aborts.
  // Released streams leave transcript().streams from the front: its first entry is then
  // stream firstStream().
  void release(size_t stream);
  size_t firstStream() const;
  void clearWorkerLogs();

 private:
  ScriptedHost() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

const char* logLevelName(LogLevel level);

// Prints "host contract violated: <what>" on stderr and aborts (drivers report their own
// checks the same way).
[[noreturn]] void hostContractViolated(const std::string& what);

}  // namespace envoy_js::stub
