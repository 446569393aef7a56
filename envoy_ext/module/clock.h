// The module's clock: Envoy gives modules neither a clock nor a timer callback (host_clock.h).
// A due timer calls timerDue(key) (worker.h) on the clock's thread, which only commits a
// scheduler event; the JS runs on the workers.
#pragma once

#include <cstdint>

namespace envoy_js::module {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual double nowMs() = 0;
  virtual void arm(uint64_t key, double delayMs) = 0;
  virtual void disarm(uint64_t key) = 0;
};

// The loading process's clock when it exports one (host_clock.h: the ABI host stub's fake
// clock), else the steady clock with one timer thread for the process.
Clock* newClock();

}  // namespace envoy_js::module
