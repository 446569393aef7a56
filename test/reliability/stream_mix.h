// The stream recipe shared by the soak and the thread-sanitizer run: one filter that uses most
// of the API, and a random stream that may end at any point (a client reset after the request
// headers, mid request body, while hooks await, after the response headers, mid response
// body) or run to the end, on the scripted Envoy model (test/host_stub/scripted_host.h, which
// checks the runtime's side of the host contract as it goes). Deterministic for a given random
// state.
#pragma once

#include <cstdint>
#include <string>

#include "../host_stub/scripted_host.h"

namespace envoy_js::reliability {

using stub::HeaderList;
using stub::ScriptedHost;

inline const char* const kMixFilter = R"JS(
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let served = 0;
export default {
  // Process-wide state touched from every engine's thread (runtime/process_state.h).
  metrics: { mix_streams: "counter", mix_open: "gauge" },
  setup(config, worker) {
    worker.shared.set("setup-" + worker.index, "1");
    setInterval(() => {}, 1000);  // a worker timer that never ends
    return { cache: new Map(), index: worker.index };
  },
  async onRequest(req, ctx) {
    served++;
    ctx.metrics.mix_streams.inc();
    ctx.metrics.mix_open.inc();
    for (let tries = 0; tries < 100; tries++) {
      const e = ctx.shared.get("served");
      if (ctx.shared.set("served", String(Number(e?.value ?? 0) + 1), e?.version ?? 0).ok) break;
    }
    if (ctx.metrics.mix_streams.value < 1 || ctx.property("request.id") === null) throw new Error("lost a value");
    const p = req.path;
    req.headers.set("x-served", String(served));
    if (p.startsWith("/deny")) return ctx.respond(403, { body: "no", headers: { "x-why": "soak" } });
    if (p.startsWith("/slow")) await sleep(2);
    if (p.startsWith("/body")) {
      const b = await req.body.text();
      req.body.replace(b.toUpperCase());
    }
    if (p.startsWith("/throw")) throw new Error("soak failure " + served);
    if (p.startsWith("/cache")) {
      ctx.worker.cache.set(p, { served, at: performance.now() });
      if (ctx.worker.cache.size > 64) ctx.worker.cache.clear();
    }
    if (p.startsWith("/tick")) {
      let n = 0;
      await new Promise((resolve) => { const id = setInterval(() => { if (++n === 3) { clearInterval(id); resolve(); } }, 1); });
    }
    ctx.log.debug("request", p, req.headers.size);
  },
  async onRequestData(chunk) {
    if (chunk.size > 8) await null;
    chunk.append(".");
  },
  async onResponse(res, ctx) {
    if (res.status >= 500) await sleep(1);
    res.headers.set("x-soak", String(ctx.worker.index));
  },
  onResponseData(chunk) {
    if (chunk.endOfStream) chunk.append("!");
  },
  onDone(ctx) {
    ctx.metrics.mix_open.dec();
    if (ctx.aborted) ctx.log.debug("aborted");
  },
};
)JS";

// splitmix64: a small deterministic generator.
struct Rng {
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  uint32_t below(uint32_t n) { return static_cast<uint32_t>(next() % n); }
};

enum class ResetAt : uint8_t { None, RequestHeaders, RequestBody, RequestEnd, ResponseHeaders, ResponseBody, Count };

// Fires timers (posted continues run as they come) until `done` or nothing more can happen soon.
template <typename Done>
inline void settle(ScriptedHost& host, Done done) {
  for (int i = 0; i < 64 && !done(); i++) {
    if (!host.fireNextTimer()) break;
  }
}

// The runtime answers bodies over buffer_limit_bytes itself, before Envoy's own limit could:
// an answer of Envoy's means a StopIterationAndBuffer left the buffer over it.
inline void checkNoEnvoyBufferLimitAnswer(const ScriptedHost& host) {
  if (host.envoyBufferLimitAnswers() != 0) {
    stub::hostContractViolated(
        "StopIterationAndBuffer left the filter's buffer over Envoy's limit: Envoy answered 413/500 itself");
  }
}

// Runs one stream to its end or to a random reset point, then lets go of it.
inline void playMixStream(ScriptedHost& host, Rng& rng) {
  static const char* const paths[] = {"/a", "/deny", "/slow", "/body", "/throw", "/cache/", "/tick", "/b"};
  auto at = static_cast<ResetAt>(rng.below(static_cast<uint32_t>(ResetAt::Count)));
  size_t s = host.newStream(stub::StreamScenario{});
  // Envoy delivers a direction's events while the stream lives and the response has not ended
  // downstream; the upstream answers once the request headers reached the router.
  auto canSend = [&](Direction d) {
    return host.live(s) && !host.responseSentDownstream(s) &&
           (d == Direction::Request || host.requestHeadersSentUpstream(s));
  };
  auto end = [&](bool complete, const char* why) {
    if (complete) host.complete(s);
    host.destroy(s, why);
    checkNoEnvoyBufferLimitAnswer(host);
    host.release(s);
  };
  std::string path = paths[rng.below(8)];
  if (path == "/cache/") path += std::to_string(rng.below(200));
  int chunks = static_cast<int>(rng.below(4));
  bool trailers = rng.below(4) == 0;
  host.requestHeaders(s, {{":method", chunks ? "POST" : "GET"}, {":path", path}, {":authority", "soak"}},
                      chunks == 0 && !trailers);
  if (at == ResetAt::RequestHeaders) return end(rng.below(2), "client reset");
  for (int i = 0; i < chunks && canSend(Direction::Request); i++) {
    host.requestData(s, std::string(1 + rng.below(32), 'a' + static_cast<char>(i)), i + 1 == chunks && !trailers);
    if (at == ResetAt::RequestBody && i == 0) return end(rng.below(2), "client reset");
  }
  if (trailers && canSend(Direction::Request)) host.requestTrailers(s, {{"x-t", "1"}});
  if (at == ResetAt::RequestEnd) return end(rng.below(2), "client reset");
  settle(host, [&] { return !host.live(s) || host.requestSentUpstream(s); });
  if (canSend(Direction::Response)) {
    static const char* const statuses[] = {"200", "404", "500", "503"};
    int rchunks = static_cast<int>(rng.below(3));
    host.responseHeaders(s, {{":status", statuses[rng.below(4)]}, {"content-length", "3"}}, rchunks == 0);
    if (at == ResetAt::ResponseHeaders) return end(rng.below(2), "client reset");
    for (int i = 0; i < rchunks && canSend(Direction::Response); i++) {
      host.responseData(s, "r" + std::to_string(i), i + 1 == rchunks);
      if (at == ResetAt::ResponseBody) return end(rng.below(2), "client reset");
    }
    settle(host, [&] { return !host.live(s) || host.responseSentDownstream(s); });
  }
  end(/*complete=*/true, nullptr);
}

}  // namespace envoy_js::reliability
