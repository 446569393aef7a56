// libFuzzer target over event sequences (make fuzz). The input bytes choose one of six fixed
// filters and its failure mode, then decode into what Envoy could do to a worker: up to three
// interleaved streams receiving request/response headers (random names and values, invalid
// UTF-8, values up to 64 KiB), data chunks (up to 64 KiB), trailers, plus timer fires, posted
// continues, garbage collections, client resets and destroys at any point. The host is the
// scripted Envoy model (test/host_stub/scripted_host.h) with posted continues run as events of
// their own; this driver only delivers events in an order Envoy could (per direction headers,
// data, trailers; the response after the request headers reached the router; nothing once the
// stream is answered, reset, over or destroyed), and the model aborts with "host contract
// violated: ..." when the runtime breaks its side of the contract. ASan/UBSan catch memory
// errors; quickjs's own assertion at JS_FreeRuntime catches leaked JS objects.
//
// Input layout: byte 0 filter, byte 1 flags (bit 0 failure mode open, bit 1 complete streams
// that the client resets, bit 2 complete the streams left at the end, bit 3 posted continues
// run at once as in the model's default instead of as events), then events: one op byte
// (stream slot in the top bits, kind in the low bits) followed by the bytes that kind consumes.
// Running out of bytes ends the run: remaining streams complete (or not) and are destroyed.
// FUZZ_TRACE=1 prints every event and everything the host sees on stderr.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "../host_stub/scripted_host.h"

namespace {

using namespace envoy_js;
using stub::HeaderList;
using stub::ScriptedHost;

bool gTrace = false;
#define FUZZ_TRACE(...)                       \
  do {                                        \
    if (gTrace) fprintf(stderr, __VA_ARGS__); \
  } while (0)

// ---- the filters -------------------------------------------------------------------------------

// Behaviour is picked by characters of the x-mode request header (and of the data), which the
// fuzzer controls, so that every branch is reachable without guessing long strings.
const char* const kFilters[] = {
    // 0: synchronous: reads and edits headers and chunks in every hook, and pokes the objects
    //    of earlier streams (which may be gone) from every hook.
    R"JS(
let keptReq = null, keptRes = null, keptCtx = null, keptTrailers = null;
function poke() {
  const tries = [
    () => keptReq.headers.get("x-mode"),
    () => keptReq.headers.set("x-late", "1"),
    () => keptReq.path + keptReq.method,
    () => keptRes.status,
    () => keptRes.headers.append("x-late", "1"),
    () => keptCtx.log.info("kept", keptCtx.aborted),
    () => keptCtx.respond(418, { details: "from another stream" }),
    () => [...keptTrailers.entries()],
    () => keptTrailers.delete("x"),
    () => keptReq.body.text().catch(() => {}),
    () => keptRes.body.replace("x"),
  ];
  for (const f of tries) { try { f(); } catch (e) {} }
}
export default {
  onRequest(req, ctx) {
    poke();
    keptReq = req;
    keptCtx = ctx;
    const h = req.headers;
    const mode = h.get("x-mode") ?? "";
    ctx.log.debug(req.method, req.path, req.authority, req.scheme, h.size);
    let n = 0;
    for (const [k, v] of h.entries()) n += k.length + v.length;
    h.set("x-seen", String(n));
    h.append("x-multi", mode);
    h.getAll("x-multi");
    if (h.has("x-del")) h.delete("x-del");
    try { h.set(mode, mode); } catch (e) { ctx.log.info(e.name); }
    try { h.get(mode); } catch (e) {}
    if (mode.includes("c")) console.log(ctx.config, ctx.worker, ctx.aborted);
  },
  onRequestData(chunk, ctx) {
    const t = chunk.text();
    if (t.length % 3 === 0) chunk.append("+");
    chunk.bytes();
    ctx.log.trace(chunk.size, chunk.endOfStream);
  },
  onRequestTrailers(t) { poke(); keptTrailers = t; t.set("x-trailer-count", String(t.size)); for (const [k] of t.entries()) t.get(k); },
  onResponse(res) { poke(); keptRes = res; res.headers.set("x-status", String(res.status)); res.headers.delete("server"); },
  onResponseData(chunk) { if (chunk.endOfStream) chunk.append("\n"); else chunk.prepend(""); },
  onResponseTrailers(t) { t.append("x-end", "1"); },
  onDone(ctx) { poke(); ctx.log.info("done", ctx.aborted); },
};
)JS",
    // 1: asynchronous: every hook waits on timers; intervals on the stream and the worker.
    R"JS(
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let ticks = 0;
const kept = [];
export default {
  setup() {
    // A worker timer that touches objects of streams that may be gone by now.
    setInterval(() => {
      ticks++;
      for (const [req, ctx] of kept.splice(0)) {
        try { req.headers.set("x-worker", String(ticks)); } catch (e) {}
        try { ctx.log.info("worker tick", ctx.aborted); } catch (e) {}
        try { if (ticks % 3 === 0) ctx.respond(503); } catch (e) {}
      }
    }, 7);
    return { started: true };
  },
  async onRequest(req, ctx) {
    const mode = req.headers.get("x-mode") ?? "";
    if (mode.includes("w")) kept.push([req, ctx]);
    await sleep(mode.length % 4);
    if (ctx.aborted) return;
    if (mode.includes("b")) {
      try { req.body.replace((await req.body.text()).slice(1)); } catch (e) { ctx.log.info(e.name); }
    }
    req.headers.set("x-ticks", String(ticks));
    if (mode.includes("i")) {
      let n = 0;
      await new Promise((resolve) => { const id = setInterval(() => { if (++n > 2) { clearInterval(id); resolve(); } }, 1); });
    }
    if (mode.includes("k")) setInterval(() => ctx.log.info("stream interval"), 3);
    if (mode.includes("q")) queueMicrotask(() => ctx.log.info("microtask"));
    if (mode.includes("a")) await new Promise((r) => setTimeout((x, y) => r(x + y), 1, 2, 3));
  },
  async onRequestData(chunk) { await sleep(chunk.size % 3); chunk.append("."); },
  async onRequestTrailers(t) { await null; t.set("x-async", "1"); },
  async onResponse(res) { await sleep(1); res.headers.set("x-async", "1"); },
  async onResponseData(chunk) { if (chunk.size & 1) await sleep(2); chunk.prepend("<"); },
  async onResponseTrailers(t) { await sleep(0); t.set("x-async", "1"); },
  async onDone(ctx) { await sleep(1); ctx.log.info("done later", ctx.aborted); },
};
)JS",
    // 2: whole body on both sides, with a data hook for what is not consumed.
    R"JS(
export default {
  async onRequest(req, ctx) {
    const mode = req.headers.get("x-mode") ?? "";
    if (mode.includes("s")) return;  // streaming: the data hook sees it
    try {
      if (mode.includes("j")) {
        const v = await req.body.json();
        req.body.replace(JSON.stringify(v));
      } else if (mode.includes("b")) {
        const b = await req.body.bytes();
        req.body.replace(b.reverse());
      } else {
        const [a, b] = await Promise.all([req.body.text(), req.body.text()]);
        req.body.replace(a + b.length);
        await req.body.text();
      }
    } catch (e) {
      ctx.log.warn("body: " + e.name);
    }
  },
  onRequestData(chunk, ctx) {
    if (chunk.text().includes("stop")) return ctx.respond(400, { body: "bad chunk" });
    chunk.append("!");
  },
  async onResponse(res, ctx) {
    try {
      const t = await res.body.text();
      res.body.replace(t.toUpperCase());
      res.headers.set("x-len", String(t.length));
    } catch (e) {
      ctx.log.warn("response body: " + e.name);
    }
  },
};
)JS",
    // 3: streaming rewrites, including a chunk kept across hooks and streams.
    R"JS(
let held = null;
const enc = new TextEncoder();
const dec = new TextDecoder();
export default {
  onRequestData(chunk, ctx) {
    if (held) { try { held.text(); held.append("x"); } catch (e) { ctx.log.debug(e.name); } }
    held = chunk;
    const t = chunk.text();
    switch (t.length % 5) {
      case 0: chunk.replace(t.toUpperCase()); break;
      case 1: chunk.prepend("["); chunk.append("]"); break;
      case 2: chunk.clear(); break;
      case 3: chunk.replace(enc.encode(dec.decode(chunk.bytes()))); break;
      default: chunk.replace(new Uint8Array(0));
    }
  },
  async onResponseData(chunk) {
    const b = chunk.bytes();
    if (b.length % 2) await null;
    chunk.replace(b.map((x) => x ^ 1));
    try { new TextDecoder("utf-8", { fatal: true }).decode(b); } catch (e) {}
  },
  onRequestTrailers(t) { if (held) { try { held.size; } catch (e) {} } },
  onDone() { held = null; },
};
)JS",
    // 4: failures of every kind, chosen by x-mode characters and by the data.
    R"JS(
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
function deep(n) { return deep(n + 1) + 1; }
export default {
  async onRequest(req, ctx) {
    const m = req.headers.get("x-mode") ?? "";
    if (m.includes("t")) throw new Error("boom " + m);
    if (m.includes("n")) throw null;
    if (m.includes("o")) throw { toString() { throw new Error("nested"); } };
    if (m.includes("u")) Promise.reject(new Error("unhandled"));
    if (m.includes("x")) setTimeout(() => { throw new Error("timer throws"); }, 1);
    if (m.includes("d")) deep(0);
    if (m.includes("L")) for (;;) {}
    if (m.includes("H")) { const a = []; for (;;) a.push(new Array(4096).fill(a.length)); }
    if (m.includes("a")) { await sleep(1); throw new TypeError("after await"); }
    if (m.includes("l")) { await sleep(1); for (;;) {} }
    if (m.includes("m")) { setTimeout(() => { for (;;) {} }, 1); await sleep(2); }
  },
  onRequestData(chunk) { if (chunk.text().includes("!")) throw new RangeError("bang"); },
  async onResponse(res) { await null; if (res.status >= 500) throw new Error("upstream failed"); },
  onResponseData(chunk) { if (chunk.size > 100) throw new Error("too big"); },
  onResponseTrailers() { throw new Error("trailers"); },
  onDone(ctx) { if (ctx.aborted) throw new Error("done"); },
};
)JS",
    // 5: local replies from everywhere, valid and not; no request data hook, so data that
    //    arrives while onRequest waits is buffered by the host with watermarks.
    R"JS(
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export default {
  async onRequest(req, ctx) {
    const m = req.headers.get("x-mode") ?? "";
    if (m.includes("1")) return ctx.respond(403, { body: "no", headers: { "x-why": m.replace(/[^a-z]/g, "") || "x", "set-cookie": ["a=1", "b=2"] }, details: "denied by\tpolicy" });
    if (m.includes("2")) { await sleep(2); return ctx.respond(429); }
    if (m.includes("3")) { setTimeout(() => { try { ctx.respond(503, { body: "from a timer" }); } catch (e) { ctx.log.info(e.name); } }, 3); return; }
    if (m.includes("4")) { ctx.respond(401); try { ctx.respond(402); } catch (e) {} return; }
    if (m.includes("5")) { try { ctx.respond(99); } catch (e) {} try { ctx.respond(200, { headers: { "x": "a\r\nb" } }); } catch (e) {} }
    if (m.includes("6")) { ctx.respond(200, { body: "x" }); throw new Error("after respond"); }
    if (m.includes("7")) { Promise.resolve().then(() => ctx.respond(418)); return; }
    if (m.includes("8")) { req.body.text().then((b) => { if (b.length > 3) ctx.respond(413); }, () => {}); return; }
    if (m.includes("9")) return 42;
  },
  async onResponse(res, ctx) {
    if (res.status >= 500) return ctx.respond(502, { body: "bad upstream" });
    if (res.headers.has("x-replace")) { await sleep(1); return ctx.respond(200, { body: "replaced" }); }
  },
  onResponseData(chunk, ctx) { try { if (chunk.text().includes("x")) return ctx.respond(500); } catch (e) { ctx.log.info(e.name); } },
};
)JS",
};
constexpr int kFilterCount = sizeof kFilters / sizeof kFilters[0];

// Compiled once per process: [filter][failure mode closed/open].
std::shared_ptr<const FilterProgram> gPrograms[kFilterCount][2];

// ---- reading the input --------------------------------------------------------------------------

class Input {
 public:
  Input(const uint8_t* data, size_t size) : p_(data), end_(data + size) {}
  bool empty() const { return p_ == end_; }
  uint8_t byte() { return p_ < end_ ? *p_++ : 0; }
  uint16_t u16() { return static_cast<uint16_t>(byte() | (byte() << 8)); }
  std::string bytes(size_t n) {
    n = std::min<size_t>(n, static_cast<size_t>(end_ - p_));
    std::string out(reinterpret_cast<const char*>(p_), n);
    p_ += n;
    return out;
  }

 private:
  const uint8_t* p_;
  const uint8_t* end_;
};

const char* const kNames[] = {"content-length", "x-mode", "x-del",  "transfer-encoding",
                              "x-multi",        "host",   "cookie", "x-replace",
                              "server",         "te",     "x-a",    "content-type"};
const char* const kValues[] = {"",        "0",        "5",        "-1",       "99999999999999999999",
                               "chunked", "a, b",     "\xc3\xa9", "\xff\xfe", "application/json",
                               "gzip",    " spaced ", "\t"};

// A string shape chosen by the input: short from the dictionary, short raw bytes (any byte,
// invalid UTF-8 included) or long (a repeated byte up to 64 KiB).
std::string fuzzString(Input& in, const char* const* dict, size_t dictSize, size_t rawMax) {
  uint8_t shape = in.byte();
  switch (shape % 4) {
    case 0:
    case 1: return dict[in.byte() % dictSize];
    case 2: return in.bytes(in.byte() % (rawMax + 1));
    default: {
      size_t n = in.u16();  // up to 64 KiB
      return std::string(n, static_cast<char>(in.byte()));
    }
  }
}

HeaderList fuzzHeaders(Input& in, bool request, bool trailers) {
  HeaderList h;
  if (!trailers) {
    if (request) {
      static const char* const methods[] = {"GET", "POST", "PUT", "DELETE", "CONNECT", ""};
      h.emplace_back(":method", methods[in.byte() % 6]);
      h.emplace_back(":path", "/" + in.bytes(in.byte() % 16));
      h.emplace_back(":authority", "h");
      h.emplace_back("x-mode", in.bytes(in.byte() % 6));
    } else {
      static const char* const statuses[] = {"200", "204", "404", "500", "503", "abc", "", "99999999"};
      h.emplace_back(":status", statuses[in.byte() % 8]);
    }
  }
  size_t n = in.byte() % 6;
  for (size_t i = 0; i < n; i++) {
    std::string name = fuzzString(in, kNames, sizeof kNames / sizeof kNames[0], 12);
    if (name.empty()) name = "x-empty";
    h.emplace_back(std::move(name), fuzzString(in, kValues, sizeof kValues / sizeof kValues[0], 24));
  }
  return h;
}

std::string fuzzBody(Input& in) {
  static const char* const chunks[] = {"a",    "stop", "bang!",        "{\"k\":[1,2]}",
                                       "[[[[", "x",    "\xff\x00\xfe", "hello world"};
  uint8_t shape = in.byte();
  switch (shape % 3) {
    case 0: return chunks[in.byte() % 8];
    case 1: return in.bytes(in.byte() % 48);
    default: return std::string(in.u16(), static_cast<char>('a' + in.byte() % 26));
  }
}

// ---- one run -----------------------------------------------------------------------------------

enum Kind : uint8_t {
  kStepRequest = 0,  // headers, then data or trailers, as the stream's phase allows
  kStepResponse,
  kFireTimer,
  kRunPosted,
  kCollectGarbage,
  kClientReset,  // onComplete (maybe) + onDestroy mid-stream
  kFinish,       // complete and destroy a stream that is done (or give up on it)
  kKinds,
};

enum class Phase : uint8_t { NotStarted, Body, Ended };

// A stream slot: what the client (request) and the upstream (response) have sent so far.
struct Slot {
  bool open = false;
  size_t id = 0;
  Phase phase[2] = {Phase::NotStarted, Phase::NotStarted};
};

// Envoy delivers a direction's events in order while the stream lives and its response has not
// ended downstream; the upstream answers only once the request headers reached the router.
bool canSend(ScriptedHost& host, const Slot& s, Direction d) {
  if (!host.live(s.id) || host.responseSentDownstream(s.id)) return false;
  if (s.phase[static_cast<int>(d)] == Phase::Ended) return false;
  return d == Direction::Request || host.requestHeadersSentUpstream(s.id);
}

void step(ScriptedHost& host, Slot& s, Direction d, Input& in) {
  if (!canSend(host, s, d)) return;
  uint8_t choice = in.byte();
  bool request = d == Direction::Request;
  Phase& phase = s.phase[static_cast<int>(d)];
  switch (phase) {
    case Phase::NotStarted: {
      HeaderList h = fuzzHeaders(in, request, false);
      bool end = (choice & 3) == 0;
      phase = end ? Phase::Ended : Phase::Body;
      if (request) host.requestHeaders(s.id, h, end);
      else host.responseHeaders(s.id, h, end);
      break;
    }
    case Phase::Body:
      if ((choice & 7) == 0) {
        HeaderList t = fuzzHeaders(in, request, true);
        phase = Phase::Ended;
        if (request) host.requestTrailers(s.id, t);
        else host.responseTrailers(s.id, t);
      } else {
        bool end = (choice & 7) == 1;
        std::string body = fuzzBody(in);
        if (body.empty() && !end) body = "z";
        if (end) phase = Phase::Ended;
        if (request) host.requestData(s.id, body, end);
        else host.responseData(s.id, body, end);
      }
      break;
    case Phase::Ended: break;
  }
}

void runAllPosted(ScriptedHost& host) {
  while (host.runOnePosted()) {
  }
}

// The filters' buffer_limit_bytes (64 KiB) is far below Envoy's limit (1 MiB), and the runtime
// answers bodies over its limit itself: an answer of Envoy's means a StopIterationAndBuffer
// left the buffer over it. (The model plays Envoy's 413/500 there, as it should for a filter
// that inflates its held body; none of these filters does.)
void checkNoEnvoyBufferLimitAnswer(const ScriptedHost& host) {
  if (host.envoyBufferLimitAnswers() != 0) {
    stub::hostContractViolated(
        "StopIterationAndBuffer left the filter's buffer over Envoy's limit: Envoy answered 413/500 itself");
  }
}

void runOne(const uint8_t* data, size_t size) {
  Input in(data, size);
  uint8_t filter = in.byte() % kFilterCount;
  uint8_t flags = in.byte();
  FUZZ_TRACE("filter %d, failure mode %s, flags %d\n", filter, flags & 1 ? "open" : "closed", flags);
  std::string error;
  std::unique_ptr<ScriptedHost> host;
  // The CPU budget is wall-clock time: on a machine busy with other work, loading the module
  // can overrun the fuzz programs' 10 ms now and then. Try again; any other failure is a bug.
  for (int attempt = 0; attempt < 5 && !host; attempt++) {
    error.clear();
    host = ScriptedHost::create(gPrograms[filter][flags & 1], 0, &error);
    if (!host && error.find("interrupted") == std::string::npos) break;
  }
  if (!host) {
    fprintf(stderr, "engine did not load: %s\n", error.c_str());
    abort();
  }
  host->setTrace(gTrace);
  host->setManualPosts((flags & 8) == 0);
  constexpr int kSlots = 3;
  Slot slots[kSlots];
  int streamsStarted = 0;
  int events = 0;
  while (!in.empty() && events++ < 400) {
    uint8_t op = in.byte();
    int slot = (op >> 5) % kSlots;
    Kind kind = static_cast<Kind>((op & 31) % kKinds);
    Slot& s = slots[slot];
    static const char* const kindNames[] = {"step request", "step response", "fire timer", "run posted",
                                            "gc",           "client reset",  "finish"};
    FUZZ_TRACE("event %s slot %d\n", kindNames[kind], slot);
    if (kind == kStepRequest || kind == kStepResponse) {
      if (!s.open && streamsStarted < 8) {
        s = Slot{};
        s.id = host->newStream(stub::StreamScenario{});
        s.open = true;
        streamsStarted++;
      }
      if (s.open) step(*host, s, kind == kStepRequest ? Direction::Request : Direction::Response, in);
    } else if (kind == kFireTimer) {
      host->fireNextTimer();
    } else if (kind == kRunPosted) {
      host->runOnePosted();
    } else if (kind == kCollectGarbage) {
      host->engine().collectGarbage();
    } else if (s.open && (kind == kClientReset || kind == kFinish)) {
      if (kind == kFinish || (flags & 2)) host->complete(s.id);
      host->destroy(s.id, kind == kFinish ? nullptr : "client reset");
      s.open = false;
      runAllPosted(*host);
    }
    checkNoEnvoyBufferLimitAnswer(*host);
  }
  // The end of the input: let what is in flight finish a little, then tear everything down.
  for (int i = 0; i < 50 && (host->pendingPosts() || host->pendingTimers()); i++) {
    runAllPosted(*host);
    host->fireNextTimer();
  }
  for (Slot& s : slots) {
    if (!s.open) continue;
    if (flags & 4) host->complete(s.id);
    host->destroy(s.id, nullptr);
    s.open = false;
  }
  runAllPosted(*host);
  checkNoEnvoyBufferLimitAnswer(*host);
  host.reset();  // JS_FreeRuntime asserts that no JS object leaked
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  gTrace = getenv("FUZZ_TRACE") != nullptr;
  for (int f = 0; f < kFilterCount; f++) {
    for (int mode = 0; mode < 2; mode++) {
      Settings settings;
      settings.failureMode = mode ? FailureMode::Open : FailureMode::Closed;
      settings.maxCpuMsPerEvent = 10;
      settings.maxHeapBytes = 16u << 20;
      settings.bufferLimitBytes = 64u << 10;
      std::string error;
      gPrograms[f][mode] =
          FilterProgram::compile(kFilters[f], "fuzz" + std::to_string(f) + ".js", "{\"k\":1}", settings, &error);
      if (!gPrograms[f][mode]) {
        fprintf(stderr, "fuzz filter %d does not compile: %s\n", f, error.c_str());
        abort();
      }
    }
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  runOne(data, size);
  return 0;
}
