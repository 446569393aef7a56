// The envoy-js benchmark driver: feeds the runtime (and the LuaJIT peer) through the minimal
// in-process host of host.h, times whole stream lifecycles, and writes bench/results.json and
// bench/RESULTS.md. No Node in the loop. Numbers are printed and written, never asserted; the
// only failures are a filter that did not do its work (the numbers would mean nothing).
//
//   driver run [--out DIR] [--callgrind-dir DIR] [--commit SHA] [--quick]
//   driver callgrind BENCH N      fixed work for valgrind --tool=callgrind (see bench.mk);
//                                 the N operations run inside bench_measured_loop().
#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <functional>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "../runtime/engine.h"
#include "../runtime/internal.h"  // Engine::Impl::rt, for the memory breakdown only
#include "bundle.h"
#include "host.h"
#include "lua_peer.h"
#include "report.h"

extern "C" {
#include "quickjs.h"
#include <luajit.h>
}

// ---- allocation accounting (runtime C++ memory per suspended stream) -------------------------

namespace {
bool gCountAllocs = false;
int64_t gAllocBytes = 0;
}  // namespace

// GCC cannot see that this pair matches: both sides use malloc/free.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void* operator new(size_t n) {
  void* p = std::malloc(n == 0 ? 1 : n);
  if (p == nullptr) throw std::bad_alloc();
  if (gCountAllocs && bench::gHostAllocating == 0) gAllocBytes += static_cast<int64_t>(malloc_usable_size(p));
  return p;
}
void operator delete(void* p) noexcept {
  if (p != nullptr && gCountAllocs) gAllocBytes -= static_cast<int64_t>(malloc_usable_size(p));
  std::free(p);
}
void operator delete(void* p, size_t) noexcept { operator delete(p); }

// The region valgrind collects with --toggle-collect=bench_measured_loop. Not inlined, so that
// the symbol exists.
extern "C" __attribute__((noinline)) void bench_measured_loop(void (*body)(void*), void* arg, long n) {
  for (long i = 0; i < n; i++) body(arg);
  asm volatile("" ::: "memory");
}

namespace bench {
namespace {

using envoy_js::DataStatus;
using envoy_js::Engine;
using envoy_js::FilterProgram;
using envoy_js::HeadersStatus;
using envoy_js::Settings;
using envoy_js::Stream;
using Clock = std::chrono::steady_clock;

[[noreturn]] void die(const std::string& message) {
  std::fprintf(stderr, "bench: %s\n", message.c_str());
  std::exit(1);
}

double nowNs() {
  return static_cast<double>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count());
}

// ---- the filters -----------------------------------------------------------------------------

const char* const kHeaderRewriteJs = R"JS(
export default {
  onRequest(req) {
    const v = req.headers.get("x-a");
    req.headers.set("x-b", v ?? "none");
    req.headers.delete("x-c");
  },
};
)JS";

// Mirrors the JS filter call for call: `req.headers` is read three times there too.
const char* const kHeaderRewriteLua = R"LUA(
function envoy_on_request(handle)
  local v = handle:headers():get("x-a")
  handle:headers():replace("x-b", v or "none")
  handle:headers():remove("x-c")
end
)LUA";

const char* const kAsyncJs = R"JS(
export default {
  async onRequest(req) {
    await new Promise((resolve) => setTimeout(resolve, 0));
  },
};
)JS";

const char* const kNeverJs = R"JS(
export default {
  async onRequest(req) {
    await new Promise((resolve) => setTimeout(resolve, 3.6e9));
  },
};
)JS";

const char* const kPassthroughJs = R"JS(
export default {
  onRequestData(chunk) { if (chunk.size < 0) throw 1; },
};
)JS";

const char* const kTransformJs = R"JS(
export default {
  onRequestData(chunk) { chunk.replace(chunk.text().toUpperCase()); },
};
)JS";

// The worker-memory sample: DESIGN.md's example filter, limited to the API the runtime has.
const char* const kSampleJs = R"JS(
export default {
  metrics: { rejected: "counter" },
  setup(config, worker) { return { seen: 0 }; },
  async onRequest(req, ctx) {
    if (!req.headers.has(ctx.config.header)) {
      return ctx.respond(401, { body: "missing " + ctx.config.header });
    }
    ctx.worker.seen++;
    req.headers.set("x-user", req.headers.get(ctx.config.header) ?? "");
  },
  onResponse(res, ctx) { res.headers.set("x-filtered-by", "envoy-js"); },
};
)JS";

const HeaderList kRequest = {
    {":method", "GET"},
    {":path", "/api/v1/items?id=42"},
    {":authority", "shop.example.com"},
    {":scheme", "https"},
    {"user-agent", "bench-client/1.0"},
    {"accept", "application/json"},
    {"x-request-id", "0f6d1c2e-8f0b-4a57-9d6c-2b8e4b1a7c35"},
    {"x-forwarded-for", "10.1.2.3"},
    {"x-a", "alpha"},
    {"x-c", "remove-me"},
};

const HeaderList kPostRequest = {
    {":method", "POST"},
    {":path", "/api/v1/upload"},
    {":authority", "shop.example.com"},
    {":scheme", "https"},
    {"content-type", "application/octet-stream"},
    {"content-length", "1048576"},
    {"x-request-id", "0f6d1c2e-8f0b-4a57-9d6c-2b8e4b1a7c35"},
};

const HeaderList kResponse = {
    {":status", "200"},
    {"content-type", "application/json"},
    {"date", "Sat, 21 Nov 2026 12:00:00 GMT"},
    {"server", "upstream"},
};

constexpr size_t kBodyBytes = 1 << 20;
constexpr size_t kChunkBytes = 16 << 10;

// Default settings except the CPU limit: max_cpu_ms_per_event is wall-clock time, and under
// callgrind (~50x slower, two runs sharing two cores) loading the 50 KB bundle can pass the
// default 50 ms and be interrupted. The hot path checks the deadline the same way at any limit.
Settings benchSettings() {
  Settings s;
  s.maxCpuMsPerEvent = 60000;
  return s;
}

std::shared_ptr<const FilterProgram> compileOrDie(const std::string& source, const char* name,
                                                  const std::string& config = "{}") {
  std::string error;
  auto p = FilterProgram::compile(source, name, config, benchSettings(), &error);
  if (!p) die(std::string("cannot compile ") + name + ": " + error);
  return p;
}

std::unique_ptr<Engine> engineOrDie(std::shared_ptr<const FilterProgram> p, BenchWorker& w) {
  std::string error;
  auto e = Engine::create(std::move(p), w, 0, &error);
  if (!e) die("Engine::create failed: " + error);
  w.engine = e.get();
  return e;
}

// ---- benchmark fixtures: each does one operation per call of one() ---------------------------

struct Fixture {
  virtual ~Fixture() = default;
  virtual void one() = 0;
  // Called once after a warm-up operation: dies when the filter did not do its work.
  virtual void check() {}
  static void call(void* self) { static_cast<Fixture*>(self)->one(); }
};

// What the host itself costs per request (maps refilled), with no filter at all.
struct HostOnly : Fixture {
  BenchStream host;
  void one() override {
    host.begin(kRequest);
    host.setResponse(kResponse);
  }
};

std::string headerValue(const BenchHeaderMap& m, std::string_view name) {
  std::string_view v;
  return m.get(name, 0, &v) > 0 ? std::string(v) : std::string("<absent>");
}

void checkRewritten(const BenchStream& host, const char* who) {
  std::string_view v;
  if (headerValue(host.requestHeaders, "x-b") != "alpha" || host.requestHeaders.get("x-c", 0, &v) != 0) {
    die(std::string(who) + ": the header rewrite did not happen (x-b=" + headerValue(host.requestHeaders, "x-b") + ")");
  }
  if (host.errors) die(std::string(who) + ": " + host.lastError);
}

struct JsHeaderRewrite : Fixture {
  BenchWorker worker;
  std::unique_ptr<Engine> engine = engineOrDie(compileOrDie(kHeaderRewriteJs, "header_rewrite.js"), worker);
  BenchStream host;
  HeadersStatus last[2];
  void one() override {
    host.begin(kRequest);
    std::unique_ptr<Stream> s = engine->newStream(host);
    last[0] = s->onRequestHeaders(true);
    host.setResponse(kResponse);
    last[1] = s->onResponseHeaders(true);
    s->onComplete();
    s->onDestroy();
  }
  void check() override {
    if (last[0] != HeadersStatus::Continue || last[1] != HeadersStatus::Continue)
      die("header_rewrite: unexpected stop");
    checkRewritten(host, "header_rewrite");
    if (worker.errors) die("header_rewrite: " + worker.lastError);
  }
};

struct LuaHeaderRewrite : Fixture {
  std::unique_ptr<LuaWorker> lua;
  BenchStream host;
  HeadersStatus last[2];
  LuaHeaderRewrite() {
    std::string error;
    lua = LuaWorker::create(kHeaderRewriteLua, &error);
    if (!lua) die("LuaJIT peer: " + error);
  }
  void one() override {
    host.begin(kRequest);
    auto s = std::make_unique<LuaStream>(*lua, host);
    last[0] = s->onRequestHeaders(true);
    host.setResponse(kResponse);
    last[1] = s->onResponseHeaders(true);
    s->onComplete();
    s->onDestroy();
  }
  void check() override { checkRewritten(host, "luajit_header_rewrite"); }
};

// A bare JS_Call of a JS function with one object argument, on quickjs directly.
struct CallFloor : Fixture {
  JSRuntime* rt = JS_NewRuntime();
  JSContext* ctx = JS_NewContext(rt);
  JSValue fn, arg;
  CallFloor() {
    const char src[] = "(function (req) {})";
    fn = JS_Eval(ctx, src, sizeof src - 1, "<floor>", JS_EVAL_TYPE_GLOBAL);
    if (!JS_IsFunction(ctx, fn)) die("call floor: eval failed");
    arg = JS_NewObject(ctx);
  }
  ~CallFloor() override {
    JS_FreeValue(ctx, fn);
    JS_FreeValue(ctx, arg);
    JS_FreeContext(ctx);
    JS_FreeRuntime(rt);
  }
  void one() override {
    JSValue r = JS_Call(ctx, fn, JS_UNDEFINED, 1, &arg);
    JS_FreeValue(ctx, r);
  }
};

struct AsyncRequest : Fixture {
  BenchWorker worker;
  std::unique_ptr<Engine> engine = engineOrDie(compileOrDie(kAsyncJs, "async_request.js"), worker);
  BenchStream host;
  HeadersStatus first = HeadersStatus::Continue;
  bool fired = false;
  void one() override {
    host.begin(kRequest);
    std::unique_ptr<Stream> s = engine->newStream(host);
    first = s->onRequestHeaders(true);
    // The host's timer is due at once: the worker's event loop fires it right away.
    fired = worker.fireNextTimer();
    if (host.scheduled) {
      host.scheduled = false;
      s->onScheduled();
    }
    host.setResponse(kResponse);
    s->onResponseHeaders(true);
    s->onComplete();
    s->onDestroy();
  }
  void check() override {
    if (first != HeadersStatus::StopIteration || !fired || host.continues[0] != 1) {
      die("async_request: expected StopIteration, one timer, one continue (got status " +
          std::to_string(static_cast<int>(first)) + ", continues " + std::to_string(host.continues[0]) + ")");
    }
    if (worker.errors || host.errors) die("async_request: " + worker.lastError + host.lastError);
  }
};

// 1 MiB of lower-case ASCII text: JSON-ish records.
std::string makePayload() {
  std::string out;
  out.reserve(kBodyBytes);
  const char* words[] = {"alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"};
  for (int i = 0; out.size() < kBodyBytes; i++) {
    out +=
        "{\"id\":" + std::to_string(i) + ",\"name\":\"" + words[i % 8] + "\",\"tag\":\"" + words[(i * 3) % 8] + "\"}\n";
  }
  out.resize(kBodyBytes);
  return out;
}

struct BodyStream : Fixture {
  BenchWorker worker;
  std::unique_ptr<Engine> engine;
  BenchStream host;
  std::string payload = makePayload();
  BenchBuffer chunk;
  bool verifyUpper = false;
  std::string lastChunkOut;
  int stops = 0;
  explicit BodyStream(const char* source, const char* name, bool upper)
      : engine(engineOrDie(compileOrDie(source, name), worker)), verifyUpper(upper) {}
  void one() override {
    host.begin(kPostRequest);
    std::unique_ptr<Stream> s = engine->newStream(host);
    // With a content-length and a data hook the headers wait for the first data (the data
    // callback lets them go, docs/api.md); any other stop is unexpected.
    HeadersStatus headers = s->onRequestHeaders(false);
    if (headers != HeadersStatus::Continue && headers != HeadersStatus::StopIteration) stops++;
    for (size_t off = 0; off < kBodyBytes; off += kChunkBytes) {
      chunk.view(payload.data() + off, kChunkBytes);
      host.setCurrent(Direction::Request, &chunk);
      if (s->onRequestData(off + kChunkBytes == kBodyBytes) != DataStatus::Continue) stops++;
      host.setCurrent(Direction::Request, nullptr);
    }
    host.setResponse(kResponse);
    s->onResponseHeaders(true);
    s->onComplete();
    s->onDestroy();
  }
  void check() override {
    if (stops) die("body: unexpected stops");
    if (worker.errors || host.errors) die("body: " + worker.lastError + host.lastError);
    std::string_view out = chunk.bytes();
    std::string want = payload.substr(kBodyBytes - kChunkBytes);
    if (verifyUpper) {
      for (char& c : want) c = static_cast<char>(toupper(static_cast<unsigned char>(c)));
    }
    if (out != want) die("body: the last chunk is not what the filter should have left");
  }
};

// ---- timing ----------------------------------------------------------------------------------

// Operations per timed run so that one run lasts about `targetMs` (after a warm-up op).
long calibrate(Fixture& f, double targetMs) {
  f.one();
  f.check();
  long n = 16;
  for (;;) {
    double t0 = nowNs();
    for (long i = 0; i < n; i++) f.one();
    double dt = nowNs() - t0;
    if (dt > 20e6 || n > (1L << 26)) return std::max<long>(1, static_cast<long>(n * targetMs * 1e6 / dt));
    n *= 4;
  }
}

// Calibrates every fixture, then runs `runs` rounds that each time every fixture once (ns per
// op). Interleaving spreads a burst of load from other processes over all the benchmarks
// instead of spoiling one, which keeps the ratios between them honest on a shared machine.
std::vector<Sample> timeInterleaved(const std::vector<Fixture*>& fixtures, int runs, double targetMs) {
  std::vector<Sample> out(fixtures.size());
  for (size_t i = 0; i < fixtures.size(); i++) out[i].opsPerRun = calibrate(*fixtures[i], targetMs);
  for (int r = 0; r < runs; r++) {
    for (size_t i = 0; i < fixtures.size(); i++) {
      Fixture& f = *fixtures[i];
      long n = out[i].opsPerRun;
      double t0 = nowNs();
      for (long k = 0; k < n; k++) f.one();
      out[i].runs.push_back((nowNs() - t0) / static_cast<double>(n));
    }
  }
  for (Fixture* f : fixtures) f->check();
  return out;
}

Sample timeRepeated(int runs, const std::function<void()>& setup, const std::function<void()>& timed,
                    const std::function<void()>& teardown) {
  Sample s;
  s.opsPerRun = 1;
  for (int r = 0; r < runs; r++) {
    setup();
    double t0 = nowNs();
    timed();
    s.runs.push_back((nowNs() - t0) / 1000.0);  // microseconds
    teardown();
  }
  return s;
}

void say(const char* what, const Sample& s, const char* unit) {
  std::printf("  %-34s %12.1f %s  (min %.1f, max %.1f, %zu runs of %ld)\n", what, s.median(), unit, s.min(), s.max(),
              s.runs.size(), s.opsPerRun);
  std::fflush(stdout);
}

// ---- engine start-up -------------------------------------------------------------------------

struct StartFixture {
  std::string bundle = makeBundle(50 * 1024);
  std::shared_ptr<const FilterProgram> program = compileOrDie(bundle, "bundle.js");
  std::vector<uint8_t> bytecodeFile = program->serializedBytecode();
  std::string_view file() const {
    return std::string_view(reinterpret_cast<const char*>(bytecodeFile.data()), bytecodeFile.size());
  }
  std::shared_ptr<const FilterProgram> load() const {
    std::string error;
    auto p = FilterProgram::fromBytecodeFile(file(), "bundle.js", "{}", benchSettings(), &error);
    if (!p) die("fromBytecodeFile: " + error);
    return p;
  }
};

// ---- memory ----------------------------------------------------------------------------------

size_t rssBytes() {
  std::ifstream f("/proc/self/statm");
  size_t pages = 0, resident = 0;
  f >> pages >> resident;
  return resident * static_cast<size_t>(sysconf(_SC_PAGESIZE));
}

// The engine's quickjs counters (objects, shapes, ...), for the per-stream breakdown. Reads
// the runtime's internal Engine::Impl: the public EngineStats only has the byte total.
JSMemoryUsage engineUsage(Engine& e) {
  JSMemoryUsage u;
  JS_ComputeMemoryUsage(e.impl()->rt, &u);
  return u;
}

// ---- the full run ----------------------------------------------------------------------------

struct Options {
  std::string out = "bench";
  std::string callgrindDir;
  std::string commit = "unknown";
  bool quick = false;
};

std::string utcNow() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M UTC", std::gmtime(&t));
  return buf;
}

double loadAverage() {
  std::ifstream f("/proc/loadavg");
  double one = -1;
  f >> one;
  return one;
}

std::string cpuModel() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("model name", 0) == 0) {
      size_t c = line.find(':');
      return c == std::string::npos ? line : line.substr(c + 2);
    }
  }
  return "unknown cpu";
}

void runAll(const Options& o) {
  Results r;
  r.date = utcNow();
  r.commit = o.commit;
  r.cores = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
  r.cpu = cpuModel() + ", " + std::to_string(r.cores) + " cores";
  r.loadBefore = loadAverage();
  r.quickjsVersion = FilterProgram::engineVersion();
  r.luajitVersion = LUAJIT_VERSION;
  const int runs = o.quick ? 5 : 9;
  const double runMs = o.quick ? 40 : 150;

  std::printf("envoy-js bench: %s, quickjs-ng %s, %s\n", r.cpu.c_str(), r.quickjsVersion.c_str(),
              r.luajitVersion.c_str());
  std::printf("per-request lifecycles (ns per stream, median of %d interleaved runs):\n", runs);
  {
    HostOnly host;
    JsHeaderRewrite js;
    LuaHeaderRewrite lua;
    CallFloor floorCall;
    AsyncRequest async;
    BodyStream pass(kPassthroughJs, "passthrough.js", false);
    BodyStream transform(kTransformJs, "transform.js", true);
    std::vector<Sample> t = timeInterleaved({&host, &js, &lua, &floorCall, &async, &transform}, runs, runMs);
    // Pass-through is timed on its own: the copy counter then sees its copies only (warm-up,
    // calibration and timed runs all count).
    gBytesCopied = 0;
    Sample ps = timeInterleaved({&pass}, runs, runMs)[0];
    r.passthroughBytesCopied = gBytesCopied;
    r.hostOnly = t[0];
    r.headerRewrite = t[1];
    r.luajitHeaderRewrite = t[2];
    r.callFloor = t[3];
    r.asyncRequest = t[4];
    say("host only (maps refilled)", r.hostOnly, "ns");
    say("header_rewrite (envoy-js)", r.headerRewrite, "ns");
    say("luajit_header_rewrite", r.luajitHeaderRewrite, "ns");
    say("quickjs_call_floor", r.callFloor, "ns");
    say("async_request", r.asyncRequest, "ns");

    // Bodies: ns per 16 KiB chunk, and the throughput of whole 1 MiB streams.
    const double chunks = static_cast<double>(kBodyBytes / kChunkBytes);
    r.passthroughBytes = static_cast<uint64_t>(ps.opsPerRun) * ps.runs.size() * kBodyBytes;
    r.passthroughGbps = static_cast<double>(kBodyBytes) / ps.median();  // bytes per ns = GB/s
    r.passthroughChunk = ps;
    for (double& v : r.passthroughChunk.runs) v /= chunks;
    say("body_passthrough (per 16 KiB chunk)", r.passthroughChunk, "ns");
    std::printf("  %-34s %12.2f GB/s, %llu bytes copied\n", "body_passthrough", r.passthroughGbps,
                static_cast<unsigned long long>(r.passthroughBytesCopied));
    r.transformMbps = static_cast<double>(kBodyBytes) / t[5].median() * 1e3;  // bytes/ns -> MB/s
    r.transformChunk = t[5];
    for (double& v : r.transformChunk.runs) v /= chunks;
    say("body_transform (per 16 KiB chunk)", r.transformChunk, "ns");
    std::printf("  %-34s %12.1f MB/s\n", "body_transform", r.transformMbps);
  }

  // Engine start-up of the 50 KB bundle.
  std::printf("engine start (us, median):\n");
  {
    StartFixture sf;
    r.bundleBytes = sf.bundle.size();
    r.bytecodeBytes = sf.bytecodeFile.size();
    const int startRuns = o.quick ? 15 : 61;
    BenchWorker w;
    std::unique_ptr<Engine> e;
    std::shared_ptr<const FilterProgram> p;
    std::string error;
    auto drop = [&] {
      e.reset();
      p.reset();
    };
    auto nothing = [] {};
    r.startBytecode = timeRepeated(
        startRuns, nothing,
        [&] {
          p = sf.load();
          e = Engine::create(p, w, 0, &error);
          if (!e) die("Engine::create: " + error);
        },
        drop);
    r.startSource = timeRepeated(
        startRuns, nothing,
        [&] {
          p = compileOrDie(sf.bundle, "bundle.js");
          e = Engine::create(p, w, 0, &error);
          if (!e) die("Engine::create: " + error);
        },
        drop);
    r.createOnly = timeRepeated(
        startRuns, nothing,
        [&] {
          e = Engine::create(sf.program, w, 0, &error);
          if (!e) die("Engine::create: " + error);
        },
        [&] { e.reset(); });
    r.loadBytecodeOnly = timeRepeated(
        startRuns, nothing, [&] { p = sf.load(); }, [&] { p.reset(); });
    r.compileOnly = timeRepeated(
        startRuns, nothing, [&] { p = compileOrDie(sf.bundle, "bundle.js"); }, [&] { p.reset(); });
    say("bytecode: fromBytecodeFile+create", r.startBytecode, "us");
    say("source: compile+create", r.startSource, "us");
    say("Engine::create alone (per worker)", r.createOnly, "us");
    say("fromBytecodeFile alone (per config)", r.loadBytecodeOnly, "us");
    say("compile alone (per config)", r.compileOnly, "us");
    e = Engine::create(sf.program, w, 0, &error);
    r.bundleEngineBytes = e->stats().heapBytes;
  }

  // Memory of a worker engine.
  std::printf("memory:\n");
  {
    auto program = compileOrDie(kSampleJs, "sample.js", "{\"header\":\"x-api-key\"}");
    BenchWorker w;
    std::vector<std::unique_ptr<Engine>> engines;
    std::string error;
    engines.push_back(engineOrDie(program, w));  // the first one pays one-time process costs
    malloc_trim(0);
    size_t before = rssBytes();
    const int kEngines = 16;
    for (int i = 0; i < kEngines; i++) engines.push_back(engineOrDie(program, w));
    r.rssPerEngineBytes = static_cast<double>(rssBytes() - before) / kEngines;
    Engine& e = *engines.back();
    w.engine = &e;
    r.workerEngineBytes = e.stats().heapBytes;
    BenchStream host;
    HeaderList req = kRequest;
    req.emplace_back("x-api-key", "k");
    for (int i = 0; i < 1000; i++) {
      host.begin(req);
      auto s = e.newStream(host);
      s->onRequestHeaders(true);
      host.setResponse(kResponse);
      s->onResponseHeaders(true);
      s->onComplete();
      s->onDestroy();
    }
    if (host.errors || w.errors) die("sample filter: " + host.lastError + w.lastError);
    e.collectGarbage();
    r.workerEngineWarmBytes = e.stats().heapBytes;
    std::string lerr;
    auto lua = LuaWorker::create(kHeaderRewriteLua, &lerr);
    r.luaWorkerBytes = lua ? lua->heapBytes() : 0;
    std::printf("  %-34s %12zu bytes (after 1,000 streams: %zu; RSS per engine %.0f)\n", "worker_engine_bytes",
                r.workerEngineBytes, r.workerEngineWarmBytes, r.rssPerEngineBytes);
  }
  {
    BenchWorker w;
    auto engine = engineOrDie(compileOrDie(kNeverJs, "never.js"), w);
    const int kStreams = 10000;
    r.suspendedStreams = kStreams;
    // Warm up: lazily created shapes and atoms are not per-stream costs.
    {
      std::vector<std::unique_ptr<BenchStream>> hosts;
      std::vector<std::unique_ptr<Stream>> streams;
      for (int i = 0; i < 100; i++) {
        hosts.push_back(std::make_unique<BenchStream>());
        hosts.back()->begin(kRequest);
        streams.push_back(engine->newStream(*hosts.back()));
        streams.back()->onRequestHeaders(true);
      }
      for (auto& s : streams) s->onDestroy();
    }
    auto measurePending = [&](int count, bool account, double* destroyNs) {
      std::vector<std::unique_ptr<BenchStream>> hosts(count);
      for (auto& h : hosts) {
        h = std::make_unique<BenchStream>();
        h->begin(kRequest);
      }
      std::vector<std::unique_ptr<Stream>> streams;
      streams.reserve(count);
      w.reserveTimers(count + 16);
      engine->collectGarbage();
      size_t heap0 = engine->stats().heapBytes;
      JSMemoryUsage u0 = engineUsage(*engine);
      gAllocBytes = 0;
      gCountAllocs = true;
      for (int i = 0; i < count; i++) {
        streams.push_back(engine->newStream(*hosts[i]));
        if (streams.back()->onRequestHeaders(true) != HeadersStatus::StopIteration) die("suspended: no stop");
      }
      gCountAllocs = false;
      int64_t cxx = gAllocBytes;
      engine->collectGarbage();
      size_t heap1 = engine->stats().heapBytes;
      JSMemoryUsage u1 = engineUsage(*engine);
      if (account) {
        double c = count;
        r.suspendedStreamBytes = static_cast<double>(heap1 - heap0) / c;
        r.suspendedCxxBytes = static_cast<double>(cxx) / c;
        MemoryBreakdown& b = r.suspendedBreakdown;
        b.objects = (u1.obj_count - u0.obj_count) / c;
        b.objectBytes = (u1.obj_size - u0.obj_size) / c;
        b.properties = (u1.prop_count - u0.prop_count) / c;
        b.propertyBytes = (u1.prop_size - u0.prop_size) / c;
        b.mallocCount = (u1.malloc_count - u0.malloc_count) / c;
      }
      double t0 = nowNs();
      for (auto& s : streams) s->onDestroy();
      *destroyNs = (nowNs() - t0) / count;
      if (w.pendingTimers() != 0) die("suspended: timers left after destroy");
    };
    measurePending(kStreams, true, &r.destroyPendingNs);
    measurePending(10, false, &r.destroyPendingFewNs);
    std::printf("  %-34s %12.0f bytes (+ %.0f bytes of runtime C++ objects)\n", "suspended_stream_bytes",
                r.suspendedStreamBytes, r.suspendedCxxBytes);
    std::printf("  %-34s %12.0f ns with %d pending, %.0f ns with 10 pending\n", "onDestroy of a pending stream",
                r.destroyPendingNs, kStreams, r.destroyPendingFewNs);
  }

  r.loadAfter = loadAverage();
  std::printf("load average: %.2f before the timed runs, %.2f after (%d cores)\n", r.loadBefore, r.loadAfter, r.cores);

  // Instruction counts and profiles written by bench.mk's callgrind runs.
  if (!o.callgrindDir.empty()) {
    auto ir = [&](const char* bench, long n, InstructionCount* out) {
      std::string base = o.callgrindDir + "/ir-" + bench;
      double full = callgrindTotal(base + "-" + std::to_string(n) + ".out");
      double zero = callgrindTotal(base + "-0.out");
      if (full >= 0 && zero >= 0) {
        out->perOp = (full - zero) / static_cast<double>(n);
        out->n = n;
      }
    };
    // N values: keep in sync with IR_N in bench.mk (passed on the command line).
    const char* irN = std::getenv("BENCH_IR_N");
    long n = irN ? std::atol(irN) : 2000;
    const char* floorN = std::getenv("BENCH_IR_FLOOR_N");
    long nf = floorN ? std::atol(floorN) : 20000;
    ir("header_rewrite", n, &r.headerRewriteIr);
    ir("luajit_header_rewrite", n, &r.luajitHeaderRewriteIr);
    ir("host_only", n, &r.hostOnlyIr);
    ir("call_floor", nf, &r.callFloorIr);
    std::printf("instructions per operation (callgrind, N=%ld minus N=0):\n", n);
    std::printf("  header_rewrite %.0f, luajit_header_rewrite %.0f, host only %.0f, call floor %.0f\n",
                r.headerRewriteIr.perOp, r.luajitHeaderRewriteIr.perOp, r.hostOnlyIr.perOp, r.callFloorIr.perOp);
    const char* profiled[] = {"header_rewrite", "async_request",    "engine_start",
                              "engine_create",  "body_passthrough", "body_transform"};
    for (const char* b : profiled) {
      std::string base = o.callgrindDir + "/profile-" + b;
      std::ifstream nf2(base + ".n");
      long ops = 0;
      if (!(nf2 >> ops) || ops <= 0) continue;
      Profile p;
      p.bench = b;
      p.ops = ops;
      if (readAnnotate(base + ".txt", 12, ops, "", &p.top)) {
        readAnnotate(base + ".incl.txt", 12, ops, "runtime/", &p.runtimeInclusive);
        double total = callgrindTotal(base + ".out");
        p.irPerOp = total >= 0 ? total / static_cast<double>(ops) : -1;
        r.profiles.push_back(std::move(p));
      }
    }
  }

  std::string error;
  std::string mkdir = "mkdir -p '" + o.out + "'";
  if (std::system(mkdir.c_str()) != 0) die("cannot create " + o.out);
  if (!writeReports(r, o.out, &error)) die(error);
  std::printf("wrote %s/results.json and %s/RESULTS.md\n", o.out.c_str(), o.out.c_str());
}

// ---- callgrind mode --------------------------------------------------------------------------

int runCallgrind(const std::string& bench, long n) {
  std::unique_ptr<Fixture> f;
  if (bench == "header_rewrite") f = std::make_unique<JsHeaderRewrite>();
  else if (bench == "luajit_header_rewrite") f = std::make_unique<LuaHeaderRewrite>();
  else if (bench == "host_only") f = std::make_unique<HostOnly>();
  else if (bench == "call_floor") f = std::make_unique<CallFloor>();
  else if (bench == "async_request") f = std::make_unique<AsyncRequest>();
  else if (bench == "body_passthrough") f = std::make_unique<BodyStream>(kPassthroughJs, "passthrough.js", false);
  else if (bench == "body_transform") f = std::make_unique<BodyStream>(kTransformJs, "transform.js", true);
  else if (bench == "engine_start") {
    // One operation: the bytecode path, fromBytecodeFile + Engine::create + teardown.
    struct Start : Fixture {
      StartFixture sf;
      BenchWorker w;
      void one() override {
        std::string error;
        auto p = sf.load();
        auto e = Engine::create(p, w, 0, &error);
        if (!e) die("Engine::create: " + error);
      }
    };
    f = std::make_unique<Start>();
  } else if (bench == "engine_create") {
    // One operation: what each worker pays, Engine::create of a shared program + teardown.
    struct Create : Fixture {
      StartFixture sf;
      BenchWorker w;
      void one() override {
        std::string error;
        auto e = Engine::create(sf.program, w, 0, &error);
        if (!e) die("Engine::create: " + error);
      }
    };
    f = std::make_unique<Create>();
  } else {
    die("unknown benchmark '" + bench + "'");
  }
  // The same warm-up in every run, so that N=0 removes it together with start-up.
  for (int i = 0; i < 20; i++) f->one();
  f->check();
  bench_measured_loop(&Fixture::call, f.get(), n);
  f->check();
  return 0;
}

}  // namespace
}  // namespace bench

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.size() == 3 && args[0] == "callgrind") return bench::runCallgrind(args[1], std::atol(args[2].c_str()));
  if (args.empty() || args[0] != "run") {
    std::fprintf(stderr, "usage: driver run [--out DIR] [--callgrind-dir DIR] [--commit SHA] [--quick]\n"
                         "       driver callgrind BENCH N\n");
    return 2;
  }
  bench::Options o;
  for (size_t i = 1; i < args.size(); i++) {
    auto value = [&]() -> std::string {
      if (i + 1 >= args.size()) bench::die(args[i] + " needs a value");
      return args[++i];
    };
    if (args[i] == "--out") o.out = value();
    else if (args[i] == "--callgrind-dir") o.callgrindDir = value();
    else if (args[i] == "--commit") o.commit = value();
    else if (args[i] == "--quick") o.quick = true;
    else bench::die("unknown option " + args[i]);
  }
  bench::runAll(o);
  return 0;
}
