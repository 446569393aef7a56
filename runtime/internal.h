// Internal state shared by the runtime's translation units. Not part of the public API.
//
// Ownership rules:
//  - Engine::Impl owns the JSRuntime/JSContext and every StreamState it created.
//  - A StreamState lives while the host has not destroyed it OR a JS wrapper still points to
//    it (jsRefs > 0). Wrappers hold plain pointers and count themselves in jsRefs; after the
//    host destroyed the stream, `host` is nullptr and every host-touching method throws
//    StreamGone instead of touching freed memory.
//  - Cached JSValues in StreamState (ctx, req, ...) are strong references from the stream to
//    its wrappers; they are freed when the host destroys the stream, which breaks the cycle.
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <deque>
#include <list>
#include <map>
#include <optional>
#include <unordered_map>
#include <string>
#include <vector>

#include "engine.h"
extern "C" {
#include "quickjs.h"
}

namespace envoy_js {

// The C stack a quickjs runtime may use before it throws "Maximum call stack size exceeded".
// In the wasm engine quickjs measures the module's own shadow stack, but each wasm call also
// takes a frame on the stack of the JS engine that runs the module (V8 gives Node's main
// thread about 1 MB), and that limit must never be the one reached: V8 would abort the whole
// module, not the filter's call. A smaller limit keeps quickjs's own check first there.
#if defined(__wasm__)
inline constexpr size_t kJsStackBytes = 96 * 1024;
#else
inline constexpr size_t kJsStackBytes = 512 * 1024;
#endif

// Every quickjs runtime of the engine (per worker, scratch runs, the source map reader).
inline void limitJsStack(JSRuntime* rt) { JS_SetMaxStackSize(rt, kJsStackBytes); }

enum HookId : uint8_t {
  kOnRequest = 0,
  kOnRequestData,
  kOnRequestTrailers,
  kOnResponse,
  kOnResponseData,
  kOnResponseTrailers,
  kOnDone,
  kHookCount,
};

// The hooks' names, as the filter's default export has them, by HookId.
inline constexpr const char* kHookNames[kHookCount] = {
    "onRequest", "onRequestData", "onRequestTrailers", "onResponse", "onResponseData", "onResponseTrailers", "onDone",
};

inline HookId headersHook(Direction d) { return d == Direction::Request ? kOnRequest : kOnResponse; }
inline HookId dataHook(Direction d) { return d == Direction::Request ? kOnRequestData : kOnResponseData; }
inline HookId trailersHook(Direction d) { return d == Direction::Request ? kOnRequestTrailers : kOnResponseTrailers; }
inline HeaderMapKind headersKind(Direction d) {
  return d == Direction::Request ? HeaderMapKind::RequestHeaders : HeaderMapKind::ResponseHeaders;
}
inline HeaderMapKind trailersKind(Direction d) {
  return d == Direction::Request ? HeaderMapKind::RequestTrailers : HeaderMapKind::ResponseTrailers;
}

// Class ids are per runtime in quickjs-ng: kept here, reached through the runtime opaque.
struct ClassIds {
  JSClassID context = 0, request = 0, response = 0, headers = 0, body = 0, chunk = 0, log = 0, reply = 0, bodyHold = 0,
            textEncoder = 0, textDecoder = 0, metadata = 0, filterState = 0, metric = 0, fetchResponse = 0,
            fetchHeaders = 0, shared = 0;
};

struct StreamState;
class SharedNamespace;  // process_state.h

// Where a streaming chunk's bytes live.
enum class ChunkTarget : uint8_t {
  Current,   // the host's data of the running data callback
  Buffered,  // a window of the host's buffered data: the hook went async, or the data arrived
             // while an earlier hook was pending and waited in the host's buffer
};

// A window [start, start + len) of the host's buffered body: a chunk that waits there behind
// data the hooks are already done with, and in front of data that arrived after it. Edits
// splice the window; the bytes around it stay as they are.
class BufferWindow : public BodyBuffer {
 public:
  BodyBuffer* base = nullptr;
  size_t start = 0;
  size_t len = 0;
  // Clamped to the buffer: a whole-body read or a local reply may have shrunk it meanwhile.
  size_t length() const override {
    size_t total = base->length();
    return start >= total ? 0 : std::min(len, total - start);
  }
  void copyOut(size_t offset, size_t n, uint8_t* dst) const override { base->copyOut(start + offset, n, dst); }
  void replace(std::string_view data) override { splice(0, len, data); }
  void append(std::string_view data) override { splice(len, 0, data); }
  void prepend(std::string_view data) override { splice(0, 0, data); }

 private:
  void splice(size_t at, size_t remove, std::string_view data);
};

struct ChunkRef {
  StreamState* stream;
  Direction dir;
  ChunkTarget target;
  bool endOfStream;
  bool dead = false;    // its hook settled: the chunk has moved on
  BufferWindow window;  // where a Buffered chunk is
};

struct HeadersRef {
  StreamState* stream;
  HeaderMapKind kind;
};

struct BodyRef {
  StreamState* stream;
  Direction dir;
};

enum class BodyFormat : uint8_t { Text, Json, Bytes };
struct BodyWaiter {
  JSValue resolve;
  JSValue reject;
  BodyFormat format;
};

enum class BodyRead : uint8_t { None, Waiting, Done };

// ---- the stream state machine (docs/architecture.md draws it) ---------------------------------
// One direction's state is four small enums, each with one job; a stream adds its outcome and
// its lifetime. Envoy's return codes are derived from them in one place (stream.cc, *Status).

// What the host delivered so far.
enum class Arrival : uint8_t {
  None,
  Headers,   // headers, more to come
  Ended,     // the end came with the headers or with data
  Trailers,  // the end came with trailers
};
// How far the message went on to the next filter: a write to a part already sent is late.
enum class Sent : uint8_t { Nothing, Headers, All };
// Whether the host waits for us.
enum class Flow : uint8_t {
  Passing,    // our last callback of this direction returned Continue (or none came yet)
  Stopped,    // a callback returned Stop*: a pending hook, a body read or held work holds it
  ResumeDue,  // nothing holds it any more: onScheduled() continues it
};
// The direction's hook that did not finish inside its callback.
enum class HookState : uint8_t {
  None,
  Pending,  // returned a promise that has not settled
  Settled,  // settled inside a job; streamHookSettled() runs after the job queue drains
};
// How the stream ended for the filter, if it did.
enum class Outcome : uint8_t {
  Open,
  Replied,        // a local reply: the filter's own, or the buffer limit's 413/500
  FailedReplied,  // the filter failed: a 500 local reply
  Reset,          // over the buffer limit after the response started: reset
  FailedReset,    // the filter failed after the response started: reset
};
// The stream's life on the host's side.
enum class Life : uint8_t {
  Live,
  Completed,  // onComplete came (onDone ran unless the route disabled the filter)
  Destroyed,  // onDestroy came: the host is gone, only JS references keep the state
};

struct DirectionState {
  Arrival arrival = Arrival::None;
  Sent sent = Sent::Nothing;
  Flow flow = Flow::Passing;
  HookState hook = HookState::None;
  BodyRead bodyRead = BodyRead::None;
  bool inCallback = false;    // a host callback of this direction is on the stack
  bool headersEnded = false;  // end of stream came with the headers: no body (req/res.endOfStream)
  bool settledRejected = false;
  JSValue settledValue = JS_UNDEFINED;
  uint32_t hookGeneration = 0;  // tells a stale promise reaction from the pending hook's
  HookId pendingHook = kHookCount;
  JSValue pendingPromise = JS_UNDEFINED;
  JSValue pendingChunk = JS_UNDEFINED;  // the chunk object of a pending data hook
  // What arrived while a hook was pending. Data waits in the host's buffer, under the host's
  // flow control (watermarks), behind `processedBytes` that the hooks are done with; trailers
  // wait for the data before them.
  std::vector<size_t> heldChunks;  // sizes, in arrival order
  bool heldTrailers = false;
  size_t processedBytes = 0;  // front of the host's buffered body the data hooks are done with
  // A data hook returned chunk.hold(): the body so far stays in the host's buffer
  // (StopIterationAndBuffer) and the next chunk goes to the data hook. Ends when a data hook
  // returns nothing, or at the end of the message (nothing more can come).
  bool bodyHeld = false;
  std::vector<BodyWaiter> bodyWaiters;
  // content-length (body_length.cc, streamSettleContentLength): whether the body kept its size decides it.
  size_t bytesArrived = 0;  // body bytes the host's data callbacks delivered
  bool lengthKept = false;  // content-length went on unchanged: a chunk may not change size

  bool headersSeen() const { return arrival >= Arrival::Headers; }
  bool endSeen() const { return arrival >= Arrival::Ended; }
  bool headersSent() const { return sent >= Sent::Headers; }
  bool allSent() const { return sent == Sent::All; }
  bool hookPending() const { return hook != HookState::None; }
  bool stopped() const { return flow != Flow::Passing; }
  bool holding() const { return bodyHeld && !endSeen(); }
};

struct StreamState {
  Engine::Impl* engine = nullptr;
  StreamHost* host = nullptr;  // nullptr once the host destroyed the stream
  uint64_t id = 0;
  int jsRefs = 0;
  Outcome outcome = Outcome::Open;
  Life life = Life::Live;
  bool aborted = false;   // ctx.aborted: the response did not reach its end
  bool disabled = false;  // the route disabled the filter: every callback continues
  int hooksRunning = 0;   // hook calls on the stack (a respond() inside one waits for it)
  // Host callbacks of this stream on the stack (onRequestHeaders... and onScheduled): only
  // inside one may the runtime call continueStream, sendLocalReply or resetStream.
  int hostCallbacks = 0;
  bool scheduleRequested = false;  // StreamHost::schedule() asked, onScheduled() not yet run
  // A local reply or reset decided outside this stream's callbacks, done from onScheduled().
  std::optional<LocalReply> replyDue;
  bool resetDue = false;
  // Our own local reply, decided before the response reached us, runs through our response
  // hooks before it goes to the host (own_reply.cc, streamDeliverReply); true while they run on it.
  bool replyThroughHooks = false;
  bool replyHooksRunning = false;
  JSValue routeConfig = JS_UNDEFINED;      // ctx.config when the route overrides it
  bool routeStale = false;                 // the route cache was cleared: routeConfig is re-read
  std::optional<LocalReply> pendingReply;  // ctx.respond() inside a hook: sent when it returns
  DirectionState dirs[2];
  JSValue ctx = JS_UNDEFINED, req = JS_UNDEFINED, res = JS_UNDEFINED, log = JS_UNDEFINED;
  JSValue info = JS_UNDEFINED, metadata = JS_UNDEFINED, filterState = JS_UNDEFINED;
  JSValue headers[4] = {JS_UNDEFINED, JS_UNDEFINED, JS_UNDEFINED, JS_UNDEFINED};
  // The opaques of the four Headers wrappers live here, not on the heap: a wrapper holds a
  // jsRefs reference, so this state outlives it.
  HeadersRef headerRefs[4] = {{this, HeaderMapKind::RequestHeaders},
                              {this, HeaderMapKind::RequestTrailers},
                              {this, HeaderMapKind::ResponseHeaders},
                              {this, HeaderMapKind::ResponseTrailers}};
  JSValue bodies[2] = {JS_UNDEFINED, JS_UNDEFINED};
  std::vector<uint64_t> timerIds;  // this stream's live timers: cancel them without a full scan

  DirectionState& dir(Direction d) { return dirs[static_cast<int>(d)]; }
  bool destroyed() const { return life == Life::Destroyed; }
  bool completed() const { return life != Life::Live; }
  bool responded() const { return outcome == Outcome::Replied || outcome == Outcome::FailedReplied; }
  bool failed() const { return outcome == Outcome::FailedReplied || outcome == Outcome::FailedReset; }
  bool reset() const { return outcome == Outcome::Reset || outcome == Outcome::FailedReset; }
  bool finished() const { return outcome != Outcome::Open || life == Life::Destroyed; }
};

struct Timer {
  JSValue callback;
  JSValue args;        // an array, or undefined
  StreamState* owner;  // nullptr for worker-level timers (created outside any stream)
  double intervalMs;   // < 0 for one-shot timers
};

struct PendingCallout {
  JSValue resolve;
  JSValue reject;
  StreamState* owner;
};

// One idle instance per per-stream wrapper class: keeps each class's initial shape in the
// shape hash, so a new wrapper reuses it instead of creating and freeing a shape per stream.
struct ShapeKeepers {
  JSValue context = JS_UNDEFINED, request = JS_UNDEFINED, response = JS_UNDEFINED, headers = JS_UNDEFINED,
          body = JS_UNDEFINED, chunk = JS_UNDEFINED, log = JS_UNDEFINED, reply = JS_UNDEFINED;
  // A Request and a Response that already have their own `headers` (see js_message_headers):
  // the shape a wrapper takes on the first `.headers` read.
  JSValue requestWithHeaders = JS_UNDEFINED, responseWithHeaders = JS_UNDEFINED;

  // bind_globals.cc: after registerClasses() and with Engine::Impl::headersAtom set.
  void create(Engine::Impl* e);
  void release(JSContext* ctx);
};

struct Engine::Impl {
  // Ordered by id, i.e. by creation: a destroyed stream cancels (and rejects) its callouts in
  // the order the filter made them, not in the hash table's order.
  std::map<uint64_t, PendingCallout> callouts;
  uint64_t nextCalloutId = 1;
  std::unordered_map<uint64_t, Timer> timers;
  uint64_t nextTimerId = 1;
  std::shared_ptr<const FilterProgram> program;
  EngineHost* host = nullptr;
  uint32_t workerIndex = 0;
  JSRuntime* rt = nullptr;
  JSContext* ctx = nullptr;
  ClassIds classes;
  JSValue hooks[kHookCount];
  bool hasHook[kHookCount] = {};
  // False for a hook declared with exactly one parameter, `onRequest(req)`: it never sees ctx,
  // so none is built for it (a whole object per stream on the sync path).
  bool hookTakesCtx[kHookCount] = {};
  // The default export's `rerouteOnHeaderChange`: a request-header write clears the route cache.
  bool rerouteOnHeaderChange = false;
  JSValue config = JS_UNDEFINED;
  JSValue worker = JS_UNDEFINED;
  // The default export's `background(config, bg)`, when it has one (background.cc).
  JSValue backgroundFn = JS_UNDEFINED;
  // Set for a background engine: its host, where `bg.fetch` starts callouts.
  BackgroundHost* backgroundHost = nullptr;
  JSValue streamGoneProto = JS_UNDEFINED;
  ShapeKeepers shapeKeepers;
  JSAtom headersAtom = JS_ATOM_NULL;
  JSValue metrics = JS_UNDEFINED;  // ctx.metrics: one object per engine
  // One metric series: a metric with one value per label it declares. The first
  // program->metrics().size() entries are the metrics themselves (the series of a metric
  // without labels); labels() appends one per label-value combination this engine used.
  struct MetricSeries {
    size_t metric;                    // index into program->metrics()
    std::vector<std::string> values;  // label values, in the declaration's label order
    std::string key;                  // process_state.h key: the name, then each value
    double gaugeShare = 0;            // this engine's share of a gauge: the process value
                                      // is the sum over every worker's engine
  };
  std::vector<MetricSeries> metricSeries;
  std::unordered_map<std::string, size_t> seriesByKey;  // key -> index into metricSeries
  JSValue shared = JS_UNDEFINED;                        // ctx.shared / worker.shared: one object per engine
  SharedNamespace* privateShared = nullptr;             // its store when the host is a dry run (owned)
  // Merged configs per route override text: routes are few and long-lived, streams many.
  std::unordered_map<std::string, JSValue> routeConfigs;
  JSValue configFor(const std::string& overrideJson, std::string* error);
  uint64_t nextStreamId = 1;
  size_t liveStreams = 0;

  // CPU limit: a real-time deadline per host event, checked by the interrupt handler.
  std::chrono::steady_clock::time_point deadline{};
  bool deadlineArmed = false;
  bool interrupted = false;
  uint64_t interruptedJobs = 0;  // jobs killed by the interrupt (drainJobQueue re-arms after each)
  // The stream whose event is being processed: blamed for uncatchable errors in jobs.
  StreamState* current = nullptr;
  std::vector<StreamState*> settledQueue;
  // Heap accounting of the custom allocator (engine.cc); heapLimitHit is sticky until a
  // failure is reported.
  size_t heapUsed = 0;
  size_t heapLimit = 0;
  bool heapLimitHit = false;
  int pumpDepth = 0;
  // Promises rejected with no handler yet (promise, reason), in order, as the rejection
  // tracker saw them: a handler attached before the job queue is drained takes one off again
  // (found through the index; the entry becomes undefined). What is left after the drain is
  // logged as unhandled (reportUnhandledRejections).
  std::vector<std::pair<JSValue, JSValue>> unhandledRejections;
  std::unordered_map<void*, size_t> unhandledIndex;

  void armDeadline(uint32_t budgetMs = 0);  // 0: max_cpu_ms_per_event
  void disarmDeadline() { deadlineArmed = false; }
  // Runs pending jobs; uncatchable errors fail the current stream. Then advances every
  // stream whose pending hook settled.
  void runJobs();
  void drainJobQueue();
  void processSettled();
  void forgetRejection(JSValueConst promise);  // the runtime handles this rejection itself
  void reportUnhandledRejections();
  // Formats an exception value as "Name: message\n    at ..." text.
  std::string describeException(JSValue exc);
  std::string takeException();
  void logEngine(LogLevel level, std::string_view message);
  // Counts a failure that no stream owns (a worker or background timer, a job, background
  // work): envoy_js.errors, plus cpu_limit when the deadline interrupted it and heap_limit when
  // max_heap_bytes was reached.
  void countFailure(const std::string& message, bool runaway);

  StreamState* newStreamState(StreamHost& host);
  void releaseStream(StreamState* s);  // drop one JS reference
  // Memory of a few freed StreamStates, reused by the next streams: a worker runs streams one
  // after another, and a malloc/free pair per stream is measurable on the sync path.
  // None under AddressSanitizer, which can only catch a use after free of freed memory.
#if defined(__SANITIZE_ADDRESS__)
  static constexpr size_t kSpareStates = 0;
#else
  static constexpr size_t kSpareStates = 16;
#endif
  std::array<void*, kSpareStates> spareStates{};
  size_t spareStateCount = 0;
  void freeStreamValues(StreamState* s);
};

// limits.cc: quickjs's allocator with the heap limit; the interrupt handler with the CPU limit.
extern const JSMallocFunctions kHeapFunctions;
int interruptHandler(JSRuntime* rt, void* opaque);

// engine.cc: a module loader that refuses every import (a filter is one bundle).
JSModuleDef* refuseImports(JSContext* ctx, const char* name, void* opaque);
// engine.cc: the scratch engine that validates a program (program.cc). Runs the module
// without setup(); the caller reads heapUsed before destroying it.
bool loadInScratchEngine(Engine::Impl* e, std::string* error, std::vector<MetricDeclaration>* metrics);
void destroyScratchEngine(Engine::Impl* e);

// engine.cc: a background engine's load: the module without setup() (background.cc).
bool loadForBackground(Engine::Impl* e, std::string* error);
void destroyEngineImpl(Engine::Impl* e);

// fetch.cc. `s` is nullptr for `bg.fetch` of a background engine: the callout goes to
// Engine::Impl::backgroundHost and has no owner.
JSValue jsFetch(JSContext* ctx, StreamState* s, int argc, JSValueConst* argv);
void deliverCallout(StreamState* s, uint64_t id, const CalloutResponse& response);
void cancelStreamCallouts(StreamState* s);
bool registerFetchClasses(Engine::Impl* e);
void freeAllCallouts(Engine::Impl* e);

// timers.cc
bool installTimers(JSContext* ctx);
void cancelStreamTimers(StreamState* s);
void freeAllTimers(Engine::Impl* e);

// The JS API, bind_*.cc (their shared helpers: bind_util.h)
bool installGlobals(JSContext* ctx, Engine::Impl* engine);  // bind_globals.cc
// A worker engine's context: JS_NewContext's intrinsics, but eval() and the Function
// constructors compile strings only when the settings allow it (bind_globals.cc).
JSContext* newFilterContext(JSRuntime* rt, bool allowCodeFromStrings);
bool registerClasses(Engine::Impl* engine);  // bind_globals.cc: every class
// Builds ctx.metrics from the declarations read at load time.
bool buildMetrics(Engine::Impl* engine, const std::vector<MetricDeclaration>& metrics);  // bind_metrics.cc
// bind_shared.cc: the engine's SharedData object (ctx.shared, worker.shared), a new reference.
JSValue sharedObject(Engine::Impl* e);
// Takes this engine's shares out of the process's gauges (the engine goes away).
void releaseGaugeShares(Engine::Impl* engine);   // bind_metrics.cc
bool registerMetricClass(Engine::Impl* engine);  // bind_metrics.cc
// bind_metrics.cc: one entry of the filter's `metrics`; what is wrong with it, or "".
std::string parseMetricDeclaration(JSContext* ctx, JSValueConst decl, MetricDeclaration* m);
JSValue makeRequest(StreamState* s);                        // bind_messages.cc
JSValue makeResponse(StreamState* s);                       // bind_messages.cc
JSValue makeContext(StreamState* s);                        // bind_context.cc
JSValue headersObject(StreamState* s, HeaderMapKind kind);  // bind_headers.cc
// bind_body.cc: a chunk of the running data callback's data (Current), or a window of the buffered body.
JSValue makeChunk(StreamState* s, Direction d, bool endOfStream, ChunkTarget target, size_t start = 0, size_t len = 0);
void killChunk(StreamState* s, JSValue chunk);
// Where a Buffered chunk ends in the host's buffered body now (after the filter's edits).
size_t chunkWindowEnd(StreamState* s, JSValue chunk);
// The running callback's data is about to go into the host's buffer at [start, start + len).
void retargetChunk(StreamState* s, JSValue chunk, size_t start, size_t len);
// bind_util.cc
JSValue throwStreamGone(JSContext* ctx);
JSValue newStreamGoneError(JSContext* ctx);

// stream.cc
// Which promise reaction of a pending hook ran (the `magic` of hookReaction).
enum class Reaction : int { RequestFulfilled, RequestRejected, ResponseFulfilled, ResponseRejected };
JSValue hookReaction(JSContext* ctx, JSValueConst thisVal, int argc, JSValueConst* argv, int magic, JSValueConst* data);
void streamHookSettled(StreamState* s, Direction d, bool runaway, bool rejected, JSValueConst value);
void streamFail(StreamState* s, Direction d, const std::string& message, bool runaway);
// The body of `dir` is over buffer_limit_bytes: 413 for a request, 500 for a response, a
// reset once the response started.
void streamOverLimit(StreamState* s, Direction dir);
// The host callbacks, for own_reply.cc to run the response callbacks on the own local reply.
HeadersStatus streamOnHeaders(StreamState* s, Direction dir, bool endStream);
DataStatus streamOnData(StreamState* s, Direction dir, bool endStream);
// own_reply.cc: runs the filter's response hooks on its own local reply (when that is due),
// then sends the reply as they left it.
void streamDeliverReply(StreamState* s, LocalReply reply);
// body_length.cc: the headers of `dir` have just gone on (`sent` says so) with a body or a data
// hook behind them: content-length is made to match what follows.
void streamSettleContentLength(StreamState* s, Direction dir);
// The headers of `dir` go on (content-length settled), the host's buffered body with them.
// Inline: every stream passes here on the hot path, and a header-only message (the common
// request) needs no call at all.
inline void streamRelease(StreamState* s, Direction dir) {
  DirectionState& d = s->dir(dir);
  if (!d.headersSent() && s->host != nullptr) {
    d.sent = Sent::Headers;
    // A message that ended with its headers and was given no body (only a whole-body replace
    // can give it one) has no length to settle.
    if (!d.headersEnded || d.bodyRead == BodyRead::Done) streamSettleContentLength(s, dir);
  }
  d.processedBytes = 0;  // the host passes its buffered body on
  // Trailers can exist only after a body (or added by chunk.addTrailers on its last chunk).
  if (d.endSeen() && !d.headersEnded && s->host && s->host->headerMap(trailersKind(dir)) != nullptr) {
    d.sent = Sent::All;
  }
}
// body_length.cc: a streamed body with a content-length and a data hook: the headers wait for
// the first data, so that content-length can stay when the data hooks keep the size.
bool streamHoldForLength(StreamState* s, Direction dir);
// route.cc: the route decides whether the filter runs and which config it sees.
void streamApplyRoute(StreamState* s);
// route.cc
// The filter cleared Envoy's route cache (ctx.clearRouteCache(), or a request-header write
// under `rerouteOnHeaderChange`): tell the host, and re-read the route on the next ctx.config.
void streamRouteCacheCleared(StreamState* s);
// Asks the host for the route's override again. False (with *error) when its config cannot be
// merged. A route that now disables the filter keeps the stream running it, with the filter's
// own config: the filter has already run on this stream.
bool streamRereadRoute(StreamState* s, std::string* error);
// body_read.cc
void streamCompleteBodyRead(StreamState* s, Direction d);
void streamStartBodyRead(StreamState* s, Direction d);  // throws into JS on misuse
bool streamBodyReadAllowed(StreamState* s, Direction d, std::string* why);
std::string streamWholeBody(StreamState* s, Direction d);
void streamReplaceWholeBody(StreamState* s, Direction d, std::string_view data);

inline Engine::Impl* engineOf(JSContext* ctx) { return static_cast<Engine::Impl*>(JS_GetContextOpaque(ctx)); }

}  // namespace envoy_js
