// Soak: one engine serves many streams that end at random points (make soak), on the scripted
// Envoy model, which aborts when the runtime breaks the host contract. Every
// SOAK_REPORT streams it collects garbage and prints the process RSS and the engine's quickjs
// heap; at the end it prints the drift from the first report (after warm-up). It fails when
// streams are still alive after the last one was destroyed, or when the quickjs heap grew by
// more than SOAK_MAX_HEAP_DRIFT bytes (default 1 MiB): a leak of a few bytes per stream shows.
//
//   soak [STREAMS] (environment: SOAK_SEED, SOAK_REPORT, SOAK_MAX_HEAP_DRIFT)
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "stream_mix.h"

using namespace envoy_js;
using namespace envoy_js::reliability;

namespace {

long rssKiB() {
  std::ifstream statm("/proc/self/statm");
  long pages = 0, resident = 0;
  statm >> pages >> resident;
  return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

uint64_t envOr(const char* name, uint64_t fallback) {
  const char* v = getenv(name);
  return v && *v ? strtoull(v, nullptr, 10) : fallback;
}

uint64_t counter(const ScriptedHost& host, const char* name) {
  auto it = host.transcript().counters.find(name);
  return it == host.transcript().counters.end() ? 0 : it->second;
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t streams = argc > 1 ? strtoull(argv[1], nullptr, 10) : 1000000;
  uint64_t every = envOr("SOAK_REPORT", 100000);
  uint64_t maxDrift = envOr("SOAK_MAX_HEAP_DRIFT", 1 << 20);
  Rng rng{envOr("SOAK_SEED", 1)};
  Settings settings;
  std::string error;
  auto program = FilterProgram::compile(kMixFilter, "soak.js", "{}", settings, &error);
  if (!program) {
    fprintf(stderr, "soak: %s\n", error.c_str());
    return 2;
  }
  auto host = ScriptedHost::create(program, 0, &error);
  if (!host) {
    fprintf(stderr, "soak: %s\n", error.c_str());
    return 2;
  }
  Engine& engine = host->engine();
  printf("soak: %llu streams on one engine, report every %llu\n", (unsigned long long)streams,
         (unsigned long long)every);
  printf("%10s %10s %12s %6s %7s %9s\n", "streams", "rss KiB", "heap bytes", "live", "timers", "streams/s");
  long firstRss = -1;
  size_t firstHeap = 0;
  auto start = std::chrono::steady_clock::now();
  auto last = start;
  for (uint64_t i = 1; i <= streams; i++) {
    playMixStream(*host, rng);
    if (i % every == 0 || i == streams) {
      host->clearWorkerLogs();  // the engine's log of every /throw: not a leak of ours
      engine.collectGarbage();
      EngineStats st = engine.stats();
      long rss = rssKiB();
      auto now = std::chrono::steady_clock::now();
      double secs = std::chrono::duration<double>(now - last).count();
      uint64_t done = i % every == 0 ? every : i % every;
      last = now;
      printf("%10llu %10ld %12zu %6zu %7zu %9.0f\n", (unsigned long long)i, rss, st.heapBytes, st.liveStreams,
             host->pendingTimers(), done / secs);
      fflush(stdout);
      if (firstRss < 0) {
        firstRss = rss;
        firstHeap = st.heapBytes;
      }
    }
  }
  EngineStats st = engine.stats();
  long rss = rssKiB();
  double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  long heapDrift = static_cast<long>(st.heapBytes) - static_cast<long>(firstHeap);
  printf("drift since the first report: rss %+ld KiB, quickjs heap %+ld bytes; live streams %zu; "
         "errors counted %llu; %.1f s\n",
         rss - firstRss, heapDrift, st.liveStreams, (unsigned long long)counter(*host, envoy_js::kCounterErrors),
         total);
  int rc = 0;
  if (st.liveStreams != 0) {
    printf("soak FAILED: %zu streams still alive after every stream was destroyed\n", st.liveStreams);
    rc = 1;
  }
  if (heapDrift > static_cast<long>(maxDrift)) {
    printf("soak FAILED: the quickjs heap grew by %ld bytes (limit %llu)\n", heapDrift, (unsigned long long)maxDrift);
    rc = 1;
  }
  host.reset();
  return rc;
}
