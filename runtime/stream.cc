// The per-stream state machine (DESIGN.md section 4): calls hooks, keeps the stream stopped
// while a hook is pending, queues what arrives meanwhile, resumes exactly once, applies the
// failure policy and the buffer limit. `*Status()` functions are the one place where state
// becomes an Envoy return code.
#include <cstdlib>
#include <cstring>

#include "internal.h"

namespace envoy_js {
namespace {

constexpr const char* kFilterErrorDetails = "envoy_js_error";

bool isFree(const DirectionState& d) {
  return !d.hookPending() && d.bodyRead != BodyRead::Waiting && d.heldChunks.empty() && !d.heldTrailers;
}

void performDue(StreamState* s);

// Marks the entry of a host callback for one direction; restores on exit.
class CallbackScope {
 public:
  CallbackScope(StreamState* s, Direction dir) : s_(s), d_(s->dir(dir)) {
    savedCurrent_ = s->engine->current;
    savedInCallback_ = d_.inCallback;  // callbacks nest when a local reply runs the encoder path
    s->engine->current = s;
    d_.inCallback = true;
    s->hostCallbacks++;
    s->jsRefs++;  // keep the state alive even if the host destroys it from inside
    performDue(s);
  }
  ~CallbackScope() {
    s_->hostCallbacks--;
    d_.inCallback = savedInCallback_;
    s_->engine->current = savedCurrent_;
    s_->engine->releaseStream(s_);
  }

 private:
  StreamState* s_;
  DirectionState& d_;
  StreamState* savedCurrent_;
  bool savedInCallback_;
};

void setContentLength(HeaderMap* headers, size_t length) {
  char buf[24];
  int n = snprintf(buf, sizeof buf, "%zu", length);
  headers->set("content-length", std::string_view(buf, static_cast<size_t>(n)));
}

// The body bytes of `dir` that the host holds for us now, the running callback's data included.
size_t heldBodyLength(StreamState* s, Direction dir) {
  size_t length = s->host->bufferedData(dir)->length();
  if (s->dir(dir).inCallback) {
    if (BodyBuffer* current = s->host->currentData(dir)) length += current->length();
  }
  return length;
}

bool hasContentLength(HeaderMap* headers, std::string_view* value = nullptr) {
  std::string_view ignored;
  return headers != nullptr && headers->get("content-length", 0, value ? value : &ignored) != 0;
}

// The headers of `dir` go on to the next filter: from now on writes are late. content-length
// must match what follows them:
//  - the whole body went through the host's buffer while the headers were held: its length is
//    known exactly (a body given to a message that had none gets one too);
//  - a streamed body with a data hook: the headers left together with the first data, after
//    the data hooks saw it (holdForLength). When that data is all content-length announced,
//    content-length is set to its size now; when it kept its size, content-length stays; in
//    both cases later chunks may not change size (bind_body.cc). Otherwise it is removed.
// The common cases (no body, or a body no hook can change) cost no header lookup.
void releaseHeaders(StreamState* s, Direction dir) {
  DirectionState& d = s->dir(dir);
  if (d.headersSent() || s->host == nullptr) return;
  d.sent = Sent::Headers;
  size_t length = 0;
  if (d.endSeen()) {
    length = heldBodyLength(s, dir);
    if (length == 0 && d.bodyRead != BodyRead::Done) return;
  } else if (!s->engine->hasHook[dataHook(dir)]) {
    return;
  }
  HeaderMap* headers = s->host->headerMap(headersKind(dir));
  if (headers == nullptr) return;
  bool present = hasContentLength(headers);
  if (d.endSeen()) {
    if (present || (d.headersEnded && length > 0)) setContentLength(headers, length);
    return;
  }
  std::string_view declared;
  if (!hasContentLength(headers, &declared)) return;
  size_t now = heldBodyLength(s, dir);
  if (d.bytesArrived > 0 && std::to_string(d.bytesArrived) == declared) {
    // Every byte content-length announced is here; only the end is still to come (HTTP/1.1
    // delivers it as an empty last chunk): the length is known exactly.
    if (now != d.bytesArrived) setContentLength(headers, now);
    d.lengthKept = true;
  } else if (d.bytesArrived > 0 && now == d.bytesArrived) {
    d.lengthKept = true;
  } else {
    headers->remove("content-length");
  }
}

// A streamed body with a content-length and a data hook: the headers wait for the first data
// (or the end), so that releaseHeaders knows whether the data hooks keep the body's size.
// Nothing else holds them: that data callback (or trailers) lets them go, no continue needed.
bool holdForLength(StreamState* s, Direction dir) {
  DirectionState& d = s->dir(dir);
  if (d.endSeen() || d.headersSent() || d.bytesArrived > 0 || d.bodyRead != BodyRead::None ||
      !s->engine->hasHook[dataHook(dir)] || s->host == nullptr) {
    return false;
  }
  std::string_view value;
  return hasContentLength(s->host->headerMap(headersKind(dir)), &value) && value != "0";
}

void release(StreamState* s, Direction dir) {
  DirectionState& d = s->dir(dir);
  releaseHeaders(s, dir);
  d.processedBytes = 0;  // the host passes its buffered body on
  if (d.endSeen() && s->host && s->host->headerMap(trailersKind(dir)) != nullptr) d.sent = Sent::All;
}

// ---- our own local reply through our own response hooks ---------------------------------------
// Envoy sends a local reply through every encoder filter, the sender included. The
// dynamic-module ABI skips the sender's encode hooks for its own reply (Envoy's
// sent_local_reply_), so the runtime runs them itself, on every host alike, before the reply
// goes to the host: the response callbacks run on the reply as on any response, with its
// headers and body in a ReplyHost; the host's later callbacks for it pass it on untouched.

// A header map of the runtime's own (names lower-case, in order).
class ListMap : public HeaderMap {
 public:
  std::vector<std::pair<std::string, std::string>> entries;
  size_t get(std::string_view name, size_t index, std::string_view* value) const override {
    size_t n = 0;
    for (const auto& [k, v] : entries) {
      if (k != name) continue;
      if (n == index) *value = v;
      n++;
    }
    return n;
  }
  void forEach(Visitor fn, void* opaque) const override {
    for (const auto& [k, v] : entries) fn(opaque, k, v);
  }
  size_t size() const override { return entries.size(); }
  void set(std::string_view name, std::string_view value) override {
    auto it = std::find_if(entries.begin(), entries.end(), [&](const auto& e) { return e.first == name; });
    if (it == entries.end()) {
      append(name, value);
      return;
    }
    it->second.assign(value);
    entries.erase(std::remove_if(it + 1, entries.end(), [&](const auto& e) { return e.first == name; }), entries.end());
  }
  void append(std::string_view name, std::string_view value) override {
    entries.emplace_back(std::string(name), std::string(value));
  }
  void remove(std::string_view name) override {
    entries.erase(std::remove_if(entries.begin(), entries.end(), [&](const auto& e) { return e.first == name; }),
                  entries.end());
  }
};

class StringBody : public BodyBuffer {
 public:
  std::string data;
  size_t length() const override { return data.size(); }
  void copyOut(size_t offset, size_t len, uint8_t* dst) const override { std::memcpy(dst, data.data() + offset, len); }
  void replace(std::string_view d) override { data.assign(d); }
  void append(std::string_view d) override { data.append(d); }
  void prepend(std::string_view d) override { data.insert(0, d); }
};

// The real host, with the response played by the reply.
class ReplyHost : public StreamHost {
 public:
  ReplyHost(StreamHost* real, const LocalReply& reply) : real_(real) {
    headers_.append(":status", std::to_string(reply.status));
    for (const auto& [k, v] : reply.headers) headers_.append(k, v);
    body_.data = reply.body;
  }
  // Delivers the reply's body as one data callback's data.
  void startData() { current_ = &body_; }
  void endData() { current_ = nullptr; }
  // The reply as the hooks left it (Envoy sets content-length from the body itself).
  void result(LocalReply* reply) {
    for (const auto& [k, v] : headers_.entries) {
      if (k == ":status") {
        int status = std::atoi(v.c_str());
        if (status >= 200 && status <= 599) reply->status = status;
      }
    }
    reply->headers.clear();
    for (const auto& kv : headers_.entries) {
      if (!kv.first.empty() && kv.first[0] != ':' && kv.first != "content-length") reply->headers.push_back(kv);
    }
    reply->body = buffered_.data + body_.data;
  }

  HeaderMap* headerMap(HeaderMapKind kind) override {
    if (kind == HeaderMapKind::ResponseHeaders) return &headers_;
    if (kind == HeaderMapKind::ResponseTrailers) return nullptr;
    return real_->headerMap(kind);
  }
  BodyBuffer* currentData(Direction dir) override {
    return dir == Direction::Response ? current_ : real_->currentData(dir);
  }
  BodyBuffer* bufferedData(Direction dir) override {
    return dir == Direction::Response ? &buffered_ : real_->bufferedData(dir);
  }
  HeaderMap* addTrailers(Direction dir, std::string* whyNot) override {
    if (dir == Direction::Request) return real_->addTrailers(dir, whyNot);
    *whyNot = "a local reply (Envoy's sendLocalReply) ends with its body: it has no trailers";
    return nullptr;
  }
  void schedule() override { real_->schedule(); }
  void continueStream(Direction dir) override { real_->continueStream(dir); }
  void sendLocalReply(const LocalReply& reply) override { real_->sendLocalReply(reply); }
  void resetStream() override { real_->resetStream(); }
  void log(LogLevel level, std::string_view message) override { real_->log(level, message); }
  void recordError(std::string_view message) override { real_->recordError(message); }
  StreamInfo streamInfo() override { return real_->streamInfo(); }
  std::optional<PropertyValue> property(Property which) override { return real_->property(which); }
  std::optional<MetadataValue> getRouteMetadata(std::string_view ns, std::string_view key) override {
    return real_->getRouteMetadata(ns, key);
  }
  bool setUpstreamOverrideHost(std::string_view host, bool strict) override {
    return real_->setUpstreamOverrideHost(host, strict);
  }
  std::optional<MetadataValue> getMetadata(std::string_view ns, std::string_view key) override {
    return real_->getMetadata(ns, key);
  }
  void setMetadata(std::string_view ns, std::string_view key, const MetadataValue& value) override {
    real_->setMetadata(ns, key, value);
  }
  std::optional<std::string> getFilterState(std::string_view key) override { return real_->getFilterState(key); }
  void setFilterState(std::string_view key, std::string_view value) override { real_->setFilterState(key, value); }
  void clearRouteCache() override { real_->clearRouteCache(); }
  RouteOverride routeOverride() override { return real_->routeOverride(); }
  CalloutStart startCallout(uint64_t id, const CalloutRequest& request) override {
    return real_->startCallout(id, request);
  }
  void cancelCallout(uint64_t id) override { real_->cancelCallout(id); }

 private:
  StreamHost* real_;
  ListMap headers_;
  StringBody body_, buffered_;
  BodyBuffer* current_ = nullptr;
};

HeadersStatus onHeaders(StreamState* s, Direction dir, bool endStream);
DataStatus onData(StreamState* s, Direction dir, bool endStream);

// Runs our response hooks on our own reply (when it is due), then sends it.
void deliverReply(StreamState* s, LocalReply reply) {
  if (s->replyThroughHooks && !s->destroyed()) {
    s->replyThroughHooks = false;
    StreamHost* real = s->host;
    ReplyHost replyHost(real, reply);
    s->host = &replyHost;
    s->replyHooksRunning = true;
    onHeaders(s, Direction::Response, reply.body.empty());
    if (!reply.body.empty() && s->host == &replyHost) {
      replyHost.startData();
      onData(s, Direction::Response, true);
      replyHost.endData();
    }
    s->replyHooksRunning = false;
    if (s->host == &replyHost) s->host = real;  // (onDestroy inside sets it to nullptr)
    replyHost.result(&reply);
  }
  if (s->host != nullptr) s->host->sendLocalReply(reply);
}

void requestSchedule(StreamState* s) {
  if (s->scheduleRequested || s->host == nullptr) return;
  s->scheduleRequested = true;
  s->host->schedule();
}

// A local reply or reset decided outside this stream's callbacks, now that one runs.
void performDue(StreamState* s) {
  if (s->host == nullptr) return;
  if (s->replyDue) {
    LocalReply reply = std::move(*s->replyDue);
    s->replyDue.reset();
    deliverReply(s, std::move(reply));
  } else if (s->resetDue) {
    s->resetDue = false;
    s->host->resetStream();
  }
}

void sendReply(StreamState* s, LocalReply reply, Outcome outcome = Outcome::Replied) {
  s->outcome = outcome;
  s->pendingReply.reset();
  // Before the response reached us, Envoy sends the reply through the whole encoder chain, our
  // filter included; after that, straight to the codec.
  Engine::Impl* e = s->engine;
  s->replyThroughHooks = outcome == Outcome::Replied && !s->dir(Direction::Response).headersSeen() &&
                         (e->hasHook[kOnResponse] || e->hasHook[kOnResponseData]);
  for (auto& d : s->dirs) {
    d.heldChunks.clear();
    d.heldTrailers = false;
    d.flow = Flow::Passing;
  }
  if (s->host == nullptr) return;
  if (s->hostCallbacks > 0) {
    deliverReply(s, std::move(reply));
  } else {
    // Decided in another stream's callback, a timer or a callout: Envoy takes it from this
    // stream's own turn of the event loop.
    s->replyDue = std::move(reply);
    requestSchedule(s);
  }
}

// The response already went downstream: reset instead of replying.
void resetStream(StreamState* s, Outcome outcome) {
  s->outcome = outcome;
  if (s->host == nullptr) return;
  if (s->hostCallbacks > 0) {
    s->host->resetStream();
  } else {
    s->resetDue = true;
    requestSchedule(s);
  }
}

// The response already started downstream: a local reply is impossible, reset instead.
bool responseStarted(StreamState* s) { return s->dir(Direction::Response).headersSent(); }

void runQueued(StreamState* s, Direction dir);

// A held body counts against buffer_limit_bytes, as a whole-body read does (`arriving`: bytes
// the host is about to append). Over it, the stream gets the limit's 413/500.
bool holdWithinLimit(StreamState* s, Direction dir, size_t arriving) {
  if (s->host == nullptr || s->finished()) return true;
  if (s->host->bufferedData(dir)->length() + arriving <= s->engine->program->settings().bufferLimitBytes) return true;
  s->dir(dir).bodyHeld = false;
  streamOverLimit(s, dir);
  return false;
}

// Calls hook `id` with (arg, ctx). Settles at once when it can (sync fast path): the caller
// looks at d.hookPending() afterwards.
void startHook(StreamState* s, Direction dir, HookId id, JSValue arg, JSValue chunk) {
  Engine::Impl* e = s->engine;
  JSContext* ctx = e->ctx;
  DirectionState& d = s->dir(dir);
  bool takesCtx = e->hookTakesCtx[id];
  if (takesCtx && JS_IsUndefined(s->ctx)) s->ctx = makeContext(s);
  JSValueConst args[2] = {arg, s->ctx};
  StreamState* savedCurrent = e->current;
  e->current = s;
  e->armDeadline();
  uint64_t interruptedJobsBefore = e->interruptedJobs;
  s->hooksRunning++;
  JSValue ret = JS_Call(ctx, e->hooks[id], JS_UNDEFINED, takesCtx ? 2 : 1, args);
  bool rejected = false;
  JSValue value = JS_UNDEFINED;
  bool pending = false;
  if (JS_IsException(ret)) {
    rejected = true;
    value = JS_GetException(ctx);
  } else if (JS_IsPromise(ret)) {
    e->drainJobQueue();
    switch (JS_PromiseState(ctx, ret)) {
      case JS_PROMISE_FULFILLED: value = JS_PromiseResult(ctx, ret); break;
      case JS_PROMISE_REJECTED:
        rejected = true;
        value = JS_PromiseResult(ctx, ret);
        e->forgetRejection(ret);  // the failure policy handles it
        break;
      default: pending = true;
    }
  } else {
    value = JS_DupValue(ctx, ret);
  }
  bool runaway = e->interrupted;
  s->hooksRunning--;
  e->disarmDeadline();
  e->current = savedCurrent;
  JS_FreeValue(ctx, arg);
  // The interrupt killed a job of this event: a promise still pending now will never settle.
  // Under failure_mode closed the stream has already failed; under open it goes on as if the
  // hook had returned nothing, instead of waiting forever.
  if (pending && (runaway || e->interruptedJobs != interruptedJobsBefore)) pending = false;

  if (pending && !s->finished()) {
    d.hook = HookState::Pending;
    d.pendingHook = id;
    d.hookGeneration++;
    d.pendingPromise = ret;
    d.pendingChunk = chunk;
    if (JS_IsUndefined(s->ctx)) s->ctx = makeContext(s);
    // A reaction learns its stream from the ctx object, its direction and outcome from its
    // Reaction, and whether it is still the pending hook's from the generation.
    JSValue data[2] = {s->ctx, JS_NewUint32(ctx, d.hookGeneration)};
    bool request = dir == Direction::Request;
    JSValue onFulfilled = JS_NewCFunctionData(
        ctx, hookReaction, 1, static_cast<int>(request ? Reaction::RequestFulfilled : Reaction::ResponseFulfilled), 2,
        data);
    JSValue onRejected = JS_NewCFunctionData(
        ctx, hookReaction, 1, static_cast<int>(request ? Reaction::RequestRejected : Reaction::ResponseRejected), 2,
        data);
    JSValue chained = JS_PromiseThen(ctx, ret, onFulfilled, onRejected);
    JS_FreeValue(ctx, chained);
    JS_FreeValue(ctx, onFulfilled);
    JS_FreeValue(ctx, onRejected);
    return;
  }
  JS_FreeValue(ctx, ret);
  if (pending) {  // finished meanwhile (e.g. a runaway job failed the stream)
    JS_FreeValue(ctx, chunk);
    return;
  }
  d.pendingHook = id;
  d.pendingChunk = chunk;
  streamHookSettled(s, dir, runaway, rejected, value);
  JS_FreeValue(ctx, value);
}

// Delivers what arrived while a hook was pending, in order: each held chunk (a window of the
// host's buffer, behind the bytes already processed), then the trailers.
void runQueued(StreamState* s, Direction dir) {
  DirectionState& d = s->dir(dir);
  Engine::Impl* e = s->engine;
  while (!s->finished() && !d.hookPending() && d.bodyRead != BodyRead::Waiting) {
    if (!d.heldChunks.empty()) {
      size_t size = d.heldChunks.front();
      d.heldChunks.erase(d.heldChunks.begin());
      bool last = d.heldChunks.empty() && d.arrival == Arrival::Ended;
      JSValue chunk = makeChunk(s, dir, last, ChunkTarget::Buffered, d.processedBytes, size);
      startHook(s, dir, dataHook(dir), JS_DupValue(e->ctx, chunk), chunk);
    } else if (d.heldTrailers) {
      d.heldTrailers = false;
      if (e->hasHook[trailersHook(dir)] && s->host->headerMap(trailersKind(dir)) != nullptr) {
        startHook(s, dir, trailersHook(dir), headersObject(s, trailersKind(dir)), JS_UNDEFINED);
      }
    } else {
      break;
    }
  }
}

// After a hook settled or queued work ran: if nothing holds `dir` any more and it was stopped
// outside of its own callback, continue it (exactly once per stop).
void resumeIfFree(StreamState* s, Direction dir) {
  DirectionState& d = s->dir(dir);
  runQueued(s, dir);
  // A held body waits in the host's buffer for the next chunk's hook.
  if (s->finished() || !isFree(d) || d.flow != Flow::Stopped || d.inCallback || d.holding()) return;
  if (holdForLength(s, dir)) return;  // the first data callback lets the headers go
  // Envoy resumes a stream only from its own event loop turn, never from inside another
  // stream's callback or a timer: the resume waits for onScheduled().
  d.flow = Flow::ResumeDue;
  requestSchedule(s);
}

// From onScheduled(): resume what is still due. A callback of that direction that came
// meanwhile may have stopped it again for newer work (then that work resumes it) or let it go.
void resumeDue(StreamState* s, Direction dir) {
  DirectionState& d = s->dir(dir);
  if (d.flow != Flow::ResumeDue || s->finished() || !isFree(d) || d.inCallback || d.holding()) return;
  d.flow = Flow::Passing;
  release(s, dir);
  s->host->continueStream(dir);
}

void completeStream(StreamState* s);

const char* hookName(HookId id) { return id < kHookCount ? kHookNames[id] : "a hook"; }

// "403 (a number)", "an object", "\"deny\" (a string)": what a hook wrongly returned.
std::string describeReturn(JSContext* ctx, JSValueConst v) {
  if (JS_IsObject(v)) return JS_IsFunction(ctx, v) ? "a function" : JS_IsArray(v) ? "an array" : "an object";
  const char* kind = JS_IsNumber(v) ? "a number" : JS_IsString(v) ? "a string" : JS_IsBool(v) ? "a boolean" : "a value";
  const char* text = JS_IsSymbol(v) ? nullptr : JS_ToCString(ctx, v);
  std::string out = text ? std::string(text).substr(0, 40) : "a symbol";
  if (text) JS_FreeCString(ctx, text);
  if (JS_IsString(v)) out = "\"" + out + "\"";
  return text ? out + " (" + kind + ")" : out;
}

}  // namespace

// ---- shared with bindings.cc and engine.cc ---------------------------------------------------

JSValue hookReaction(JSContext* ctx, JSValueConst, int argc, JSValueConst* argv, int magic, JSValueConst* data) {
  Engine::Impl* e = engineOf(ctx);
  auto* s = static_cast<StreamState*>(JS_GetOpaque(data[0], e->classes.context));
  if (s == nullptr) return JS_UNDEFINED;
  auto reaction = static_cast<Reaction>(magic);
  bool rejected = reaction == Reaction::RequestRejected || reaction == Reaction::ResponseRejected;
  Direction dir = reaction == Reaction::RequestFulfilled || reaction == Reaction::RequestRejected ? Direction::Request
                                                                                                  : Direction::Response;
  uint32_t generation = 0;
  JS_ToUint32(ctx, &generation, data[1]);
  DirectionState& d = s->dir(dir);
  // Only the pending hook's own promise counts: an older hook's may settle late.
  if (d.hook != HookState::Pending || d.hookGeneration != generation || s->destroyed()) return JS_UNDEFINED;
  d.hook = HookState::Settled;
  d.settledRejected = rejected;
  d.settledValue = JS_DupValue(ctx, argc > 0 ? argv[0] : JS_UNDEFINED);
  s->jsRefs++;  // released by processSettled
  e->settledQueue.push_back(s);
  return JS_UNDEFINED;
}

void streamHookSettled(StreamState* s, Direction dir, bool runaway, bool rejected, JSValueConst value) {
  Engine::Impl* e = s->engine;
  JSContext* ctx = e->ctx;
  DirectionState& d = s->dir(dir);
  HookId hook = d.pendingHook;
  d.hook = HookState::None;
  d.pendingHook = kHookCount;
  JSValue promise = d.pendingPromise;
  d.pendingPromise = JS_UNDEFINED;
  JS_FreeValue(ctx, promise);
  JSValue chunk = d.pendingChunk;
  d.pendingChunk = JS_UNDEFINED;
  if (!JS_IsUndefined(chunk)) {
    // A chunk that waited in the host's buffer is done: what follows it is not yet.
    size_t end = chunkWindowEnd(s, chunk);
    if (end > d.processedBytes) d.processedBytes = end;
    killChunk(s, chunk);
    JS_FreeValue(ctx, chunk);
  }
  if (s->destroyed()) return;
  if (hook == kOnDone) {
    if (rejected) {
      e->logEngine(LogLevel::Error, "onDone failed: " + e->describeException(JS_DupValue(ctx, value)));
      e->host->incrementCounter(kCounterErrors, 1);
    }
    return;
  }
  bool isDataHook = hook == dataHook(dir);
  bool hold = !rejected && JS_GetClassID(value) == e->classes.bodyHold;
  if (hold && !isDataHook) {
    streamFail(s, dir,
               "TypeError: " + std::string(hookName(hook)) +
                   " returned chunk.hold(): only onRequestData and onResponseData can hold the body",
               false);
  } else if (hold) {
    d.bodyHeld = true;
    holdWithinLimit(s, dir, 0);
  } else if (!rejected && !JS_IsUndefined(value) && !JS_IsNull(value) && JS_GetClassID(value) != e->classes.reply) {
    // `return 403` or `return { status: 403 }` must not let the request through silently.
    streamFail(s, dir,
               "TypeError: " + std::string(hookName(hook)) + " returned " + describeReturn(ctx, value) +
                   ": a hook returns nothing (to continue) or the value of ctx.respond(...)",
               false);
  } else if (rejected) {
    streamFail(s, dir, e->describeException(JS_DupValue(ctx, value)), runaway);
  } else if (s->pendingReply && !s->finished()) {
    sendReply(s, std::move(*s->pendingReply));
  }
  if (isDataHook && !hold) d.bodyHeld = false;  // the held body goes on with this chunk
  if (!s->finished()) resumeIfFree(s, dir);
}

void streamFail(StreamState* s, Direction dir, const std::string& message, bool runaway) {
  Engine::Impl* e = s->engine;
  bool heap = e->heapLimitHit || message.find("out of memory") != std::string::npos;
  e->heapLimitHit = false;
  e->host->incrementCounter(kCounterErrors, 1);
  if (runaway) e->host->incrementCounter(kCounterCpuLimit, 1);
  if (heap) e->host->incrementCounter(kCounterHeapLimit, 1);
  std::string text = std::string(runaway ? "max_cpu_ms_per_event exceeded: " : "") + message;
  e->logEngine(LogLevel::Error, "stream " + std::to_string(s->id) + ": filter failed: " + text);
  if (s->host != nullptr) s->host->recordError(text);
  if (heap) JS_RunGC(e->rt);
  if (s->finished()) return;
  DirectionState& d = s->dir(dir);
  if (e->program->settings().failureMode == FailureMode::Open) {
    // Log and carry on. A pending hook is left alone: the failure came from a timer callback,
    // a function of its own, and the hook still settles and resumes the stream. (A job killed
    // by the interrupt may have been the hook's own continuation: the job pump handles that.)
    if (!d.hookPending()) s->pendingReply.reset();
    return;
  }
  if (responseStarted(s)) {
    resetStream(s, Outcome::FailedReset);
    return;
  }
  LocalReply reply;
  reply.status = 500;
  reply.details = kFilterErrorDetails;
  sendReply(s, std::move(reply), Outcome::FailedReplied);
}

void streamOverLimit(StreamState* s, Direction dir) {
  Engine::Impl* e = s->engine;
  e->logEngine(LogLevel::Warn, "stream " + std::to_string(s->id) + ": " +
                                   (dir == Direction::Request ? "request" : "response") +
                                   " body is over buffer_limit_bytes (" +
                                   std::to_string(e->program->settings().bufferLimitBytes) + ")");
  if (responseStarted(s)) {
    resetStream(s, Outcome::Reset);
    return;
  }
  LocalReply reply;
  if (dir == Direction::Request) {
    reply.status = 413;
    reply.body = "Payload Too Large";
    reply.details = "envoy_js_request_body_too_large";
  } else {
    reply.status = 500;
    reply.body = "Internal Server Error";
    reply.details = "envoy_js_response_body_too_large";
  }
  sendReply(s, std::move(reply));
}

namespace {}  // namespace

// ---- host callbacks --------------------------------------------------------------------------

namespace {

// The route decides whether the filter runs and which config it sees.
void applyRoute(StreamState* s) {
  if (s->host == nullptr || !JS_IsUndefined(s->routeConfig)) return;
  RouteOverride route = s->host->routeOverride();
  if (route.disabled) {
    s->disabled = true;
    return;
  }
  if (route.configJson.empty()) return;
  std::string error;
  JSValue config = s->engine->configFor(route.configJson, &error);
  if (JS_IsException(config)) {
    streamFail(s, Direction::Request, error, false);
    return;
  }
  s->routeConfig = config;
}
}  // namespace

void streamRouteCacheCleared(StreamState* s) {
  if (s->host == nullptr) return;
  s->host->clearRouteCache();
  s->routeStale = true;
}

bool streamRereadRoute(StreamState* s, std::string* error) {
  s->routeStale = false;
  if (s->host == nullptr) return true;
  RouteOverride route = s->host->routeOverride();
  JSValue config = JS_UNDEFINED;
  if (!route.disabled && !route.configJson.empty()) {
    config = s->engine->configFor(route.configJson, error);
    if (JS_IsException(config)) return false;
  }
  JS_FreeValue(s->engine->ctx, s->routeConfig);
  s->routeConfig = config;
  return true;
}

namespace {

// ---- from state to Envoy's return codes ----------------------------------------------------
// Every callback ends in a Verdict; these three functions are the only place where one becomes
// an Envoy status.
enum class Verdict : uint8_t {
  Continue,       // pass it on
  Hold,           // keep it: the host buffers it for us (a whole body, trailers behind a hook)
  HoldWatermark,  // keep it in the host's buffer under flow control: a pending hook's data
  Drop,           // the stream is over for the filter: pass nothing on
};
HeadersStatus headersStatus(Verdict v) {
  return v == Verdict::Continue ? HeadersStatus::Continue : HeadersStatus::StopIteration;
}
DataStatus dataStatus(Verdict v) {
  switch (v) {
    case Verdict::Continue: return DataStatus::Continue;
    case Verdict::Hold: return DataStatus::StopIterationAndBuffer;
    case Verdict::HoldWatermark: return DataStatus::StopIterationAndWatermark;
    case Verdict::Drop: break;
  }
  return DataStatus::StopIterationNoBuffer;
}
TrailersStatus trailersStatus(Verdict v) {
  return v == Verdict::Continue ? TrailersStatus::Continue : TrailersStatus::StopIteration;
}

// A callback of a stream the filter is done with. Our own local reply (not a failure's 500,
// which has no body) passes through our encoder callbacks.
Verdict verdictWhenFinished(StreamState* s, Direction dir, bool headers) {
  bool ownReply = s->responded() && dir == Direction::Response && (headers || !s->failed());
  return ownReply ? Verdict::Continue : Verdict::Drop;
}

// Our own local reply, sent before the response reached us, passing through our response
// callbacks: the hooks run on it as on any response (Envoy runs a local reply through every
// encoder filter, the sender included). It is never held for a hook: an await in the hook
// lets the reply go on as it is then. The headers wait only for the reply's body, which
// follows inside the same call (holdForLength, or a whole-body read).
bool ownReplyPassing(StreamState* s, Direction dir) {
  return dir == Direction::Response && s->replyHooksRunning && s->outcome == Outcome::Replied && !s->destroyed();
}

Verdict verdictForOwnReply(StreamState* s, Direction dir, bool headers) {
  DirectionState& d = s->dir(dir);
  if (headers && (holdForLength(s, dir) || d.bodyRead == BodyRead::Waiting)) {
    d.flow = Flow::Stopped;
    return Verdict::Hold;
  }
  d.flow = Flow::Passing;
  release(s, dir);
  return Verdict::Continue;
}

// The end of a callback that ran its hook: pass the direction on if nothing holds it,
// otherwise stop it until resumeIfFree() decides it is free.
Verdict verdictAfterHooks(StreamState* s, Direction dir, Verdict hold) {
  DirectionState& d = s->dir(dir);
  if (s->finished()) return Verdict::Drop;
  // chunk.hold(): the host keeps the body so far (StopIterationAndBuffer) and the next chunk
  // comes to the data hook; holdForLength: the headers wait for the first data.
  if (isFree(d) && (d.holding() || holdForLength(s, dir))) {
    d.flow = Flow::Stopped;
    return Verdict::Hold;
  }
  if (isFree(d)) {
    d.flow = Flow::Passing;
    release(s, dir);
    return Verdict::Continue;
  }
  d.flow = Flow::Stopped;
  return hold;
}

HeadersStatus onHeaders(StreamState* s, Direction dir, bool endStream) {
  if (s == nullptr) return HeadersStatus::Continue;  // called after onDestroy: nothing to do
  Engine::Impl* e = s->engine;
  DirectionState& d = s->dir(dir);
  CallbackScope scope(s, dir);
  d.arrival = endStream ? Arrival::Ended : Arrival::Headers;
  d.headersEnded = endStream;
  if (dir == Direction::Request && !s->finished()) applyRoute(s);
  if (s->disabled) return HeadersStatus::Continue;
  bool ownReply = ownReplyPassing(s, dir);
  if (s->finished() && !ownReply) return headersStatus(verdictWhenFinished(s, dir, true));
  if (e->hasHook[headersHook(dir)]) {
    JSValue msg = dir == Direction::Request ? makeRequest(s) : makeResponse(s);
    startHook(s, dir, headersHook(dir), msg, JS_UNDEFINED);
    e->runJobs();
  }
  if (ownReply) return headersStatus(ownReplyPassing(s, dir) ? verdictForOwnReply(s, dir, true) : Verdict::Drop);
  return headersStatus(verdictAfterHooks(s, dir, Verdict::Hold));
}

DataStatus onData(StreamState* s, Direction dir, bool endStream) {
  if (s == nullptr) return DataStatus::Continue;
  Engine::Impl* e = s->engine;
  DirectionState& d = s->dir(dir);
  CallbackScope scope(s, dir);
  if (endStream) d.arrival = Arrival::Ended;
  if (s->disabled) return DataStatus::Continue;
  BodyBuffer* current = s->host == nullptr ? nullptr : s->host->currentData(dir);
  d.bytesArrived += current ? current->length() : 0;
  bool hasDataHook = e->hasHook[dataHook(dir)];
  if (ownReplyPassing(s, dir)) {
    if (d.bodyRead == BodyRead::Waiting) {
      if (endStream) streamCompleteBodyRead(s, dir);
    } else if (hasDataHook && isFree(d)) {
      JSValue chunk = makeChunk(s, dir, endStream, ChunkTarget::Current);
      startHook(s, dir, dataHook(dir), JS_DupValue(e->ctx, chunk), chunk);
    }
    e->runJobs();
    return dataStatus(ownReplyPassing(s, dir) ? verdictForOwnReply(s, dir, false) : Verdict::Drop);
  }
  if (s->finished()) return dataStatus(verdictWhenFinished(s, dir, false));
  size_t limit = e->program->settings().bufferLimitBytes;

  if (d.bodyRead == BodyRead::Waiting) {
    size_t total = s->host->bufferedData(dir)->length() + (current ? current->length() : 0);
    if (total > limit) {
      streamOverLimit(s, dir);
      return dataStatus(Verdict::Drop);
    }
    if (endStream) {
      streamCompleteBodyRead(s, dir);
      e->runJobs();
    }
  } else if (!isFree(d)) {
    // A hook is pending: the data waits in the host's buffer, under the host's flow control
    // (watermarks: a slow hook slows the sender down, it does not fail the stream), and goes
    // to the data hook once the pending one settles.
    if (hasDataHook && d.bodyRead == BodyRead::None) d.heldChunks.push_back(current ? current->length() : 0);
    d.flow = Flow::Stopped;
    return dataStatus(Verdict::HoldWatermark);
  } else if (hasDataHook) {
    // The data goes into the host's buffer behind what is there if the hook goes async.
    size_t start = s->host->bufferedData(dir)->length();
    JSValue chunk = makeChunk(s, dir, endStream, ChunkTarget::Current);
    startHook(s, dir, dataHook(dir), JS_DupValue(e->ctx, chunk), chunk);
    e->runJobs();
    if (!s->finished() && d.hookPending()) {
      // The chunk is about to be buffered by the host: follow it there.
      retargetChunk(s, d.pendingChunk, start, current ? current->length() : 0);
      d.flow = Flow::Stopped;
      return dataStatus(Verdict::HoldWatermark);
    }
    if (!s->finished() && isFree(d) && d.holding()) {
      // Held at once: the host appends this chunk to its buffer, and the hooks are done with it.
      size_t length = current ? current->length() : 0;
      d.processedBytes = start + length;
      if (!holdWithinLimit(s, dir, length)) return dataStatus(Verdict::Drop);
    }
  }
  return dataStatus(verdictAfterHooks(s, dir, Verdict::Hold));
}

TrailersStatus onTrailers(StreamState* s, Direction dir) {
  if (s == nullptr) return TrailersStatus::Continue;
  Engine::Impl* e = s->engine;
  DirectionState& d = s->dir(dir);
  CallbackScope scope(s, dir);
  d.arrival = Arrival::Trailers;
  if (s->disabled) return TrailersStatus::Continue;
  if (ownReplyPassing(s, dir)) return TrailersStatus::Continue;  // a local reply has none
  if (s->finished()) return trailersStatus(verdictWhenFinished(s, dir, false));
  if (d.bodyRead == BodyRead::Waiting) {
    streamCompleteBodyRead(s, dir);
    e->runJobs();
    if (s->finished()) return trailersStatus(Verdict::Drop);
  }
  if (e->hasHook[trailersHook(dir)]) {
    if (isFree(d)) {
      startHook(s, dir, trailersHook(dir), headersObject(s, trailersKind(dir)), JS_UNDEFINED);
      e->runJobs();
    } else {
      d.heldTrailers = true;
    }
  }
  Verdict v = verdictAfterHooks(s, dir, Verdict::Hold);
  if (v == Verdict::Continue) d.sent = Sent::All;
  return trailersStatus(v);
}

}  // namespace

// ---- Stream / Engine entry points ------------------------------------------------------------

std::unique_ptr<Stream> Engine::newStream(StreamHost& host) {
  StreamState* s = impl_->newStreamState(host);
  return std::unique_ptr<Stream>(new Stream(s));
}

HeadersStatus Stream::onRequestHeaders(bool endStream) { return onHeaders(state_, Direction::Request, endStream); }
DataStatus Stream::onRequestData(bool endStream) { return onData(state_, Direction::Request, endStream); }
TrailersStatus Stream::onRequestTrailers() { return onTrailers(state_, Direction::Request); }
HeadersStatus Stream::onResponseHeaders(bool endStream) { return onHeaders(state_, Direction::Response, endStream); }
DataStatus Stream::onResponseData(bool endStream) { return onData(state_, Direction::Response, endStream); }
TrailersStatus Stream::onResponseTrailers() { return onTrailers(state_, Direction::Response); }

void Stream::onScheduled() {
  StreamState* s = state_;
  if (s == nullptr || s->destroyed()) return;
  s->scheduleRequested = false;
  s->jsRefs++;  // the host may destroy the stream inside our calls
  s->hostCallbacks++;
  StreamState* saved = s->engine->current;
  s->engine->current = s;
  performDue(s);
  for (Direction dir : {Direction::Request, Direction::Response}) {
    if (s->destroyed()) break;
    resumeDue(s, dir);
  }
  s->engine->current = saved;
  s->hostCallbacks--;
  s->engine->releaseStream(s);
}

// Envoy reports the end of every stream here, reset ones included, before its access log and
// before destroy: a stream whose response did not end was aborted.
void Stream::onComplete() {
  StreamState* s = state_;
  if (s != nullptr && !s->destroyed() && !s->dir(Direction::Response).endSeen() && !s->responded()) s->aborted = true;
  completeStream(s);
}

namespace {
// Runs onDone once; the stream's maps become read-only.
void completeStream(StreamState* s) {
  if (s == nullptr || s->completed() || s->disabled) return;
  s->life = Life::Completed;
  // The stream is over on the host's side: a reply or reset still due has nothing to act on
  // (and Envoy takes none from onComplete/onDestroy).
  s->replyDue.reset();
  s->resetDue = false;
  Engine::Impl* e = s->engine;
  if (!e->hasHook[kOnDone]) return;
  CallbackScope scope(s, Direction::Response);
  // onDone is read-only: every map counts as sent.
  for (Direction dir : {Direction::Request, Direction::Response}) s->dir(dir).sent = Sent::All;
  DirectionState& d = s->dir(Direction::Response);
  if (d.hookPending()) return;  // a response hook never settled; nothing sensible to run
  JSValue ctxObject = JS_DupValue(e->ctx, makeContext(s));
  startHook(s, Direction::Response, kOnDone, ctxObject, JS_UNDEFINED);
  e->runJobs();
}
}  // namespace

void Stream::onDestroy() {
  StreamState* s = state_;
  if (s == nullptr || s->destroyed()) return;
  state_ = nullptr;
  Engine::Impl* e = s->engine;
  s->jsRefs++;  // held until the end: freeing wrappers below may drop the count to zero
  JSContext* ctx = e->ctx;
  bool ended = s->dir(Direction::Response).endSeen() || s->responded();
  if (!ended) s->aborted = true;
  completeStream(s);
  cancelStreamCallouts(s);  // while the host can still cancel them
  s->life = Life::Destroyed;
  s->host = nullptr;
  s->aborted = s->aborted || !ended;
  // Whole-body reads still waiting reject with StreamGone; pending hooks are abandoned.
  for (auto& d : s->dirs) {
    d.heldChunks.clear();
    d.heldTrailers = false;
    std::vector<BodyWaiter> waiters;
    waiters.swap(d.bodyWaiters);
    for (BodyWaiter& w : waiters) {
      JSValue err = newStreamGoneError(ctx);
      JSValue r = JS_Call(ctx, w.reject, JS_UNDEFINED, 1, &err);
      JS_FreeValue(ctx, r);
      JS_FreeValue(ctx, err);
      JS_FreeValue(ctx, w.resolve);
      JS_FreeValue(ctx, w.reject);
    }
    if (d.hook == HookState::Settled) {
      JS_FreeValue(ctx, d.settledValue);
      d.settledValue = JS_UNDEFINED;
    }
    d.hook = HookState::None;
  }
  StreamState* saved = e->current;
  e->current = s;
  e->runJobs();
  e->current = saved;
  cancelStreamTimers(s);
  e->freeStreamValues(s);
  e->releaseStream(s);  // frees it now unless JS still holds a wrapper
}

Stream::~Stream() { onDestroy(); }

}  // namespace envoy_js

namespace envoy_js {
// ctx.respond() outside any hook of this stream (e.g. from a timer): send at once.
void sendReplyNowImpl(StreamState* s) {
  if (s->pendingReply && !s->finished()) sendReply(s, std::move(*s->pendingReply));
}
}  // namespace envoy_js
