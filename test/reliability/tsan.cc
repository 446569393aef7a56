// N engines on N threads (make test-tsan), built with -fsanitize=thread, each engine in a
// scripted Envoy model of its own (which checks the host contract as it goes). The program is
// compiled once and shared by every thread, as Envoy's main thread shares a config with its
// workers; each thread also compiles the filter itself once (configs may load concurrently),
// then creates its own engine and serves streams that end at random points. ThreadSanitizer
// reports any data race between the engines; the run also fails when a thread's engine still
// holds live streams at the end.
//
//   tsan_engines [THREADS] [STREAMS_PER_THREAD]
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include "stream_mix.h"

using namespace envoy_js;
using namespace envoy_js::reliability;

int main(int argc, char** argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 4;
  int streams = argc > 2 ? atoi(argv[2]) : 3000;
  std::string error;
  Settings settings;
  auto shared = FilterProgram::compile(kMixFilter, "tsan.js", "{}", settings, &error);
  if (!shared) {
    fprintf(stderr, "tsan: %s\n", error.c_str());
    return 2;
  }
  std::atomic<int> failures{0};
  std::atomic<uint64_t> served{0}, errors{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; t++) {
    pool.emplace_back([&, t] {
      std::string err;
      auto own = FilterProgram::compile(kMixFilter, "tsan-own.js", "{}", Settings{}, &err);
      if (!own) {
        fprintf(stderr, "thread %d: compile failed: %s\n", t, err.c_str());
        failures++;
        return;
      }
      for (int round = 0; round < 2; round++) {
        // Round 0 on the shared program, round 1 on the thread's own compile.
        auto host = ScriptedHost::create(round == 0 ? shared : own, static_cast<uint32_t>(t), &err);
        if (!host) {
          fprintf(stderr, "thread %d: engine failed: %s\n", t, err.c_str());
          failures++;
          return;
        }
        Rng rng{static_cast<uint64_t>(t) * 7919 + round};
        for (int i = 0; i < streams / 2; i++) playMixStream(*host, rng);
        Engine& engine = host->engine();
        engine.collectGarbage();
        if (engine.stats().liveStreams != 0) {
          fprintf(stderr, "thread %d: %zu streams still alive\n", t, engine.stats().liveStreams);
          failures++;
        }
        served += static_cast<uint64_t>(streams / 2);
        const auto& counters = host->transcript().counters;
        auto it = counters.find(envoy_js::kCounterErrors);
        errors += it == counters.end() ? 0 : it->second;
      }
    });
  }
  for (auto& th : pool) th.join();
  printf("tsan: %d threads, %llu streams served, %llu filter errors counted (expected: /throw), %d failures\n", threads,
         (unsigned long long)served.load(), (unsigned long long)errors.load(), failures.load());
  return failures.load() == 0 ? 0 : 1;
}
