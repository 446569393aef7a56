#include "scripted_host.h"

#include <algorithm>
#include <cstring>
#include <deque>
#include <functional>
#include <set>

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

namespace {

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
const char* statusName(TrailersStatus s) { return s == TrailersStatus::Continue ? "Continue" : "StopIteration"; }

// Envoy's header maps are case-insensitive with lower-case keys and keep insertion order.
class ListHeaderMap : public HeaderMap {
 public:
  explicit ListHeaderMap(HeaderList list) : list_(std::move(list)) {
    for (auto& [k, v] : list_) std::transform(k.begin(), k.end(), k.begin(), ::tolower);
  }
  size_t get(std::string_view name, size_t index, std::string_view* value) const override {
    size_t n = 0;
    for (const auto& [k, v] : list_) {
      if (k != name) continue;
      if (n == index) *value = v;
      n++;
    }
    return n;
  }
  void forEach(Visitor fn, void* opaque) const override {
    for (const auto& [k, v] : list_) fn(opaque, k, v);
  }
  size_t size() const override { return list_.size(); }
  void set(std::string_view name, std::string_view value) override {
    auto it = std::find_if(list_.begin(), list_.end(), [&](auto& e) { return e.first == name; });
    if (it == list_.end()) {
      list_.emplace_back(std::string(name), std::string(value));
      return;
    }
    it->second = std::string(value);
    auto first = it - list_.begin();
    list_.erase(std::remove_if(list_.begin() + first + 1, list_.end(), [&](auto& e) { return e.first == name; }),
                list_.end());
  }
  void append(std::string_view name, std::string_view value) override {
    list_.emplace_back(std::string(name), std::string(value));
  }
  void remove(std::string_view name) override {
    list_.erase(std::remove_if(list_.begin(), list_.end(), [&](auto& e) { return e.first == name; }), list_.end());
  }
  const HeaderList& list() const { return list_; }

 private:
  HeaderList list_;
};

class StringBuffer : public BodyBuffer {
 public:
  size_t length() const override { return data.size(); }
  void copyOut(size_t offset, size_t len, uint8_t* dst) const override { std::memcpy(dst, data.data() + offset, len); }
  void replace(std::string_view d) override { data.assign(d); }
  void append(std::string_view d) override { data.append(d); }
  void prepend(std::string_view d) override { data.insert(0, d); }
  std::string data;
};

class FakeWorker : public EngineHost {
 public:
  void log(LogLevel level, std::string_view message) override {
    std::string line = std::string("[") + logLevelName(level) + "] " + std::string(message);
    transcript->workerLogs.push_back(line);
  }
  double nowMs() override { return now; }
  void incrementCounter(std::string_view name, uint64_t delta) override {
    transcript->counters[std::string(name)] += delta;
  }
  void startTimer(uint64_t id, double delayMs) override {
    PendingTimer t{now + delayMs, seq++, id};
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
  void post(std::function<void()> task) { posted.push_back(std::move(task)); }
  void drainPosted() {
    while (!posted.empty()) {
      auto task = std::move(posted.front());
      posted.pop_front();
      task();
    }
  }
  // Advances the fake clock to the next timer and fires it. False when none is due within
  // the horizon.
  bool fireNextTimer(double horizonMs) {
    if (timers.empty()) return false;
    auto first = *timers.begin();
    if (first.due > horizonMs) return false;
    timers.erase(timers.begin());
    byId.erase(first.id);
    now = std::max(now, first.due);
    engine->fireTimer(first.id);
    drainPosted();
    return true;
  }

  struct PendingTimer {
    double due;
    uint64_t seq;
    uint64_t id;
    bool operator<(const PendingTimer& o) const { return due != o.due ? due < o.due : seq < o.seq; }
  };
  std::set<PendingTimer> timers;
  std::map<uint64_t, PendingTimer> byId;
  uint64_t seq = 0;
  double now = 0;
  std::deque<std::function<void()>> posted;
  Transcript* transcript = nullptr;
  Engine* engine = nullptr;
};

// One side (request = decoding, response = encoding) of the filter manager around our filter.
struct Side {
  std::optional<ListHeaderMap> headers;
  std::optional<ListHeaderMap> trailers;
  StringBuffer buffered;
  StringBuffer* current = nullptr;
  bool stopped = false;           // our filter stopped iteration; nothing goes past it
  bool headersForwarded = false;
  bool trailersForwarded = false;
  bool endReceived = false;       // the last event (eos data or trailers) reached our filter
  bool endForwarded = false;      // ... and went past it
  std::optional<SentMessage>* sink = nullptr;
};

class FakeStream : public StreamHost {
 public:
  FakeStream(FakeWorker& worker, StreamTranscript& t) : worker_(worker), t_(t) {
    sides_[0].sink = &t_.upstreamRequest;
    sides_[1].sink = &t_.downstreamResponse;
  }

  // ---- StreamHost ----
  HeaderMap* headerMap(HeaderMapKind kind) override {
    Side& s = sides_[kind == HeaderMapKind::RequestHeaders || kind == HeaderMapKind::RequestTrailers ? 0 : 1];
    auto& m = (kind == HeaderMapKind::RequestHeaders || kind == HeaderMapKind::ResponseHeaders) ? s.headers : s.trailers;
    return m ? &*m : nullptr;
  }
  BodyBuffer* currentData(Direction dir) override { return side(dir).current; }
  BodyBuffer* bufferedData(Direction dir) override { return &side(dir).buffered; }
  void continueStream(Direction dir) override {
    event(std::string("continue ") + name(dir) + " (posted)");
    bool* alive = alive_.get() ? &*alive_ : nullptr;
    auto token = alive_;
    worker_.post([this, dir, token] {
      if (!*token) return;
      event(std::string("continue ") + name(dir));
      doContinue(dir);
    });
    (void)alive;
  }
  void sendLocalReply(const LocalReply& reply) override {
    event("localReply " + std::to_string(reply.status) + " " + reply.details);
    t_.localReply = reply;
    replied_ = true;
    // Envoy runs the reply through the encoder filters, ours included.
    HeaderList h{{":status", std::to_string(reply.status)}};
    for (const auto& kv : reply.headers) h.push_back(kv);
    if (!reply.body.empty()) {
      h.emplace_back("content-length", std::to_string(reply.body.size()));
      bool hasType = std::any_of(reply.headers.begin(), reply.headers.end(),
                                 [](auto& kv) { return kv.first == "content-type"; });
      if (!hasType) h.emplace_back("content-type", "text/plain");
    }
    sides_[1] = Side{};
    sides_[1].sink = &localSink_;
    sides_[1].headers.emplace(h);
    auto hs = stream_->onResponseHeaders(reply.body.empty());
    event(std::string("local reply onResponseHeaders -> ") + statusName(hs));
    if (!reply.body.empty()) {
      StringBuffer body;
      body.data = reply.body;
      sides_[1].current = &body;
      auto ds = stream_->onResponseData(true);
      sides_[1].current = nullptr;
      event(std::string("local reply onResponseData -> ") + statusName(ds));
    }
  }
  void resetStream() override {
    event("reset by filter");
    t_.resetByFilter = true;
    reset_ = true;
  }
  void log(LogLevel level, std::string_view message) override {
    t_.logs.push_back(std::string("[") + logLevelName(level) + "] " + std::string(message));
  }
  void recordError(std::string_view message) override { t_.errors.emplace_back(message); }

  // ---- driving ----
  void run(Engine& engine, const StreamScenario& sc) {
    stream_ = engine.newStream(*this);
    const Message& rq = sc.request;
    bool body = !rq.body.empty(), trailers = rq.trailers.has_value();
    decodeHeaders(rq.headers, !body && !trailers);
    if (sc.reset == "afterRequestHeaders") return destroy("client reset after request headers");
    for (size_t i = 0; i < rq.body.size() && live(); i++) decodeData(rq.body[i], i + 1 == rq.body.size() && !trailers);
    if (trailers && live()) decodeTrailers(*rq.trailers);
    if (sc.reset == "afterRequestBody") return destroy("client reset after request body");
    waitFor([&] { return sides_[0].endForwarded; });
    if (live() && sides_[0].endForwarded) {
      Message up = sc.upstream.value_or(Message{{{":status", "200"}}, {}, std::nullopt});
      bool ubody = !up.body.empty(), utrailers = up.trailers.has_value();
      encodeHeaders(up.headers, !ubody && !utrailers);
      for (size_t i = 0; i < up.body.size() && live(); i++) encodeData(up.body[i], i + 1 == up.body.size() && !utrailers);
      if (utrailers && live()) encodeTrailers(*up.trailers);
      waitFor([&] { return sides_[1].endForwarded; });
    }
    if (live() && !(sides_[1].endForwarded || replied_)) event("stalled: the filter never let the stream finish");
    if (!reset_) stream_->onComplete();
    worker_.drainPosted();
    destroy(nullptr);
  }

 private:
  Side& side(Direction d) { return sides_[static_cast<int>(d)]; }
  static const char* name(Direction d) { return d == Direction::Request ? "request" : "response"; }
  bool live() const { return !replied_ && !reset_; }
  void event(std::string e) { t_.events.push_back(std::move(e)); }

  void destroy(const char* why) {
    if (why) event(why);
    *alive_ = false;
    stream_->onDestroy();
    worker_.drainPosted();
    stream_.reset();
  }

  // Fires timers (on the fake clock) until `done` or nothing more can happen. The cap stops a
  // filter whose interval never lets the stream finish; it is far above what a filter may
  // legitimately wait for (a hook may await a hundred thousand timers).
  void waitFor(const std::function<bool()>& done) {
    worker_.drainPosted();
    int fired = 0;
    while (live() && !done() && fired < 1000000 && worker_.fireNextTimer(worker_.now + 3600 * 1000.0)) fired++;
  }

  void forwardHeaders(Direction d, bool endStream) {
    Side& s = side(d);
    if (s.headersForwarded) return;
    s.headersForwarded = true;
    if (s.sink) *s.sink = SentMessage{s.headers->list(), "", std::nullopt};
    if (endStream) s.endForwarded = true;
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
    }
    if (trailersIn && !s.trailersForwarded) forwardTrailers(d);
    if (d == Direction::Response) maybeFinishResponse();
  }

  void afterHeaders(Direction d, HeadersStatus st, bool endStream) {
    Side& s = side(d);
    if (!live()) return;
    if (st == HeadersStatus::Continue) forwardHeaders(d, endStream);
    else s.stopped = true;
  }

  void decodeHeaders(const HeaderList& h, bool endStream) { onHeaders(Direction::Request, h, endStream); }
  void encodeHeaders(const HeaderList& h, bool endStream) { onHeaders(Direction::Response, h, endStream); }
  void decodeData(const std::string& chunk, bool endStream) { onData(Direction::Request, chunk, endStream); }
  void encodeData(const std::string& chunk, bool endStream) { onData(Direction::Response, chunk, endStream); }
  void decodeTrailers(const HeaderList& h) { onTrailers(Direction::Request, h); }
  void encodeTrailers(const HeaderList& h) { onTrailers(Direction::Response, h); }

  void onHeaders(Direction d, const HeaderList& h, bool endStream) {
    Side& s = side(d);
    s.headers.emplace(h);
    s.endReceived = endStream;
    HeadersStatus st = d == Direction::Request ? stream_->onRequestHeaders(endStream) : stream_->onResponseHeaders(endStream);
    event(std::string(d == Direction::Request ? "onRequestHeaders" : "onResponseHeaders") + " -> " + statusName(st));
    afterHeaders(d, st, endStream);
    worker_.drainPosted();
  }

  void onData(Direction d, const std::string& chunk, bool endStream) {
    Side& s = side(d);
    hadData_[static_cast<int>(d)] = true;
    StringBuffer current;
    current.data = chunk;
    s.current = &current;
    s.endReceived = endStream;
    DataStatus st = d == Direction::Request ? stream_->onRequestData(endStream) : stream_->onResponseData(endStream);
    s.current = nullptr;
    event(std::string(d == Direction::Request ? "onRequestData" : "onResponseData") + " -> " + statusName(st));
    if (live()) {
      switch (st) {
        case DataStatus::Continue:
          if (s.stopped || !s.headersForwarded) {
            s.buffered.data += current.data;
            s.stopped = true;
            doContinue(d);
          } else {
            forwardData(d, current.data, endStream);
            if (d == Direction::Response) maybeFinishResponse();
          }
          break;
        case DataStatus::StopIterationAndBuffer:
        case DataStatus::StopIterationAndWatermark:
          s.buffered.data += current.data;
          s.stopped = true;
          break;
        case DataStatus::StopIterationNoBuffer:
          s.stopped = true;
          break;
      }
    }
    worker_.drainPosted();
  }

  void onTrailers(Direction d, const HeaderList& h) {
    Side& s = side(d);
    s.trailers.emplace(h);
    s.endReceived = true;
    TrailersStatus st = d == Direction::Request ? stream_->onRequestTrailers() : stream_->onResponseTrailers();
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
      }
    }
    worker_.drainPosted();
  }

  void maybeFinishResponse() {}

  FakeWorker& worker_;
  StreamTranscript& t_;
  Side sides_[2];
  bool hadData_[2] = {false, false};
  std::optional<SentMessage> localSink_;
  bool replied_ = false;
  bool reset_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  std::unique_ptr<Stream> stream_;
};

}  // namespace

bool runScenario(const std::string& source, const std::string& filename, const std::string* bytecodeFile,
                 const Scenario& scenario, Transcript* out, std::string* error) {
  Settings settings;
  if (!Settings::fromJson(scenario.settingsJson, &settings, error)) return false;
  std::shared_ptr<const FilterProgram> program =
      bytecodeFile ? FilterProgram::fromBytecodeFile(*bytecodeFile, filename, scenario.configJson, settings, error)
                   : FilterProgram::compile(source, filename, scenario.configJson, settings, error);
  if (!program) return false;
  FakeWorker worker;
  worker.transcript = out;
  std::unique_ptr<Engine> engine = Engine::create(program, worker, 0, error);
  if (!engine) return false;
  worker.engine = engine.get();
  for (const StreamScenario& sc : scenario.streams) {
    out->streams.emplace_back();
    FakeStream stream(worker, out->streams.back());
    stream.run(*engine, sc);
  }
  // Worker-level timers would keep firing in Envoy; a replay ends here.
  engine.reset();
  return true;
}

}  // namespace envoy_js::stub
