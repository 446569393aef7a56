// An optional clock for the dynamic module, exported by the process that loads it.
//
// Envoy gives modules neither a clock nor a timer callback (DESIGN.md section 8), so the module
// keeps time itself: the steady clock, and one timer thread that turns due timers into
// scheduler commits. A process that plays Envoy in tests (test/abi_host) exports
// ENVOY_JS_HOST_CLOCK_SYMBOL instead, so that replays run on its fake clock, deterministically
// and in order with its scripted upstreams. Envoy exports no such symbol. Everything after a
// timer is due (the scheduler commit, on_http_filter_scheduled, the JS callback) is the same
// code on both clocks.
#pragma once

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct envoy_js_host_clock {
  // Milliseconds on the host's clock.
  double (*now_ms)(void);
  // After delay_ms on that clock, the host calls fire(key) on the thread that runs the
  // module's hooks, outside any hook.
  void (*arm)(uint64_t key, double delay_ms, void (*fire)(uint64_t key));
  // The timer `key` must not fire any more (unknown keys are ignored).
  void (*disarm)(uint64_t key);
};

// Looked up with dlsym(RTLD_DEFAULT) when the module loads. Returns the clock, or null to let
// the module use its own.
#define ENVOY_JS_HOST_CLOCK_SYMBOL "envoy_js_host_clock"
typedef const struct envoy_js_host_clock* (*envoy_js_host_clock_fn)(void);

#ifdef __cplusplus
}  // extern "C"
#endif
