// The stream recipe shared by the soak and the thread-sanitizer run: one filter that uses most
// of the API, and a random stream that may end at any point (a client reset after the request
// headers, mid request body, while hooks await, after the response headers, mid response
// body) or run to the end. Deterministic for a given random state.
#pragma once

#include <cstdint>
#include <string>

#include "mini_host.h"

namespace envoy_js::reliability {

inline const char* const kMixFilter = R"JS(
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let served = 0;
export default {
  setup(config, worker) {
    setInterval(() => {}, 1000);  // a worker timer that never ends
    return { cache: new Map(), index: worker.index };
  },
  async onRequest(req, ctx) {
    served++;
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

// Fires timers and posted continues until `done` or nothing more can happen soon.
template <typename Done>
inline void settle(Worker& w, Done done) {
  for (int i = 0; i < 64; i++) {
    w.drainPosted();
    if (done() || !w.fireNextTimer()) break;
  }
  w.drainPosted();
}

// Runs one stream to its end or to a random reset point.
inline void playMixStream(Worker& w, Engine& engine, Rng& rng) {
  static const char* const paths[] = {"/a", "/deny", "/slow", "/body", "/throw", "/cache/", "/tick", "/b"};
  auto at = static_cast<ResetAt>(rng.below(static_cast<uint32_t>(ResetAt::Count)));
  HostStream s(w, engine);
  std::string path = paths[rng.below(8)];
  if (path == "/cache/") path += std::to_string(rng.below(200));
  int chunks = static_cast<int>(rng.below(4));
  bool trailers = rng.below(4) == 0;
  s.sendHeaders(Direction::Request, {{":method", chunks ? "POST" : "GET"}, {":path", path}, {":authority", "soak"}},
                chunks == 0 && !trailers);
  if (at == ResetAt::RequestHeaders) return s.destroy(rng.below(2));
  for (int i = 0; i < chunks && s.canSend(Direction::Request); i++) {
    s.sendData(Direction::Request, std::string(1 + rng.below(32), 'a' + static_cast<char>(i)), i + 1 == chunks && !trailers);
    if (at == ResetAt::RequestBody && i == 0) return s.destroy(rng.below(2));
  }
  if (trailers && s.canSend(Direction::Request)) s.sendTrailers(Direction::Request, {{"x-t", "1"}});
  if (at == ResetAt::RequestEnd) return s.destroy(rng.below(2));
  settle(w, [&] { return !s.live() || s.canSend(Direction::Response); });
  if (s.canSend(Direction::Response)) {
    static const char* const statuses[] = {"200", "404", "500", "503"};
    int rchunks = static_cast<int>(rng.below(3));
    s.sendHeaders(Direction::Response, {{":status", statuses[rng.below(4)]}, {"content-length", "3"}}, rchunks == 0);
    if (at == ResetAt::ResponseHeaders) return s.destroy(rng.below(2));
    for (int i = 0; i < rchunks && s.canSend(Direction::Response); i++) {
      s.sendData(Direction::Response, "r" + std::to_string(i), i + 1 == rchunks);
      if (at == ResetAt::ResponseBody) return s.destroy(rng.below(2));
    }
    settle(w, [&] { return !s.live() || s.responseComplete(); });
  }
  s.destroy(/*complete=*/true);
}

}  // namespace envoy_js::reliability
