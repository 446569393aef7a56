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
//  - continueDecoding/continueEncoding are posted (as the native adapter posts them) and run
//    after the current callback returns.
//  - sendLocalReply: the request stops, the reply runs through the encoder path (our filter's
//    encode callbacks see it), the client receives it.
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "../../runtime/engine.h"

namespace envoy_js::stub {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

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
