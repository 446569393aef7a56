// The module's clocks (clock.h).
#include "clock.h"

#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "host_clock.h"
#include "worker.h"

namespace envoy_js::module {
namespace {

// The steady clock and one timer thread for the process. The thread only commits scheduler
// events (timerDue); the JS runs on the workers.
class ThreadClock : public Clock {
 public:
  double nowMs() override {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start_).count();
  }
  void arm(uint64_t key, double delayMs) override {
    auto due = std::chrono::steady_clock::now() +
               std::chrono::microseconds(static_cast<int64_t>(std::max(0.0, delayMs) * 1000));
    std::lock_guard<std::mutex> lock(mutex_);
    index_[key] = queue_.emplace(due, key);
    if (!started_) {
      started_ = true;
      // Lives as long as the process: the object is linked with -z nodelete, so Envoy's
      // dlclose never unloads the code this thread (or a worker's thread_local engine) runs.
      std::thread([this] { run(); }).detach();
    }
    wake_.notify_one();
  }
  void disarm(uint64_t key) override {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = index_.find(key);
    if (it == index_.end()) return;
    queue_.erase(it->second);
    index_.erase(it);
  }

 private:
  void run() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      if (queue_.empty()) {
        wake_.wait(lock);
        continue;
      }
      auto first = queue_.begin();
      if (first->first > std::chrono::steady_clock::now()) {
        // A copy: the entry may be disarmed (erased) while this thread waits.
        const auto due = first->first;
        wake_.wait_until(lock, due);
        continue;
      }
      uint64_t key = first->second;
      index_.erase(key);
      queue_.erase(first);
      lock.unlock();
      timerDue(key);
      lock.lock();
    }
  }
  using Queue = std::multimap<std::chrono::steady_clock::time_point, uint64_t>;
  const std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  std::mutex mutex_;
  std::condition_variable wake_;
  Queue queue_;
  std::unordered_map<uint64_t, Queue::iterator> index_;
  bool started_ = false;
};

// The loading process's clock (host_clock.h).
class HostClock : public Clock {
 public:
  explicit HostClock(const envoy_js_host_clock* c) : c_(c) {}
  double nowMs() override { return c_->now_ms(); }
  void arm(uint64_t key, double delayMs) override { c_->arm(key, delayMs, &timerDue); }
  void disarm(uint64_t key) override { c_->disarm(key); }

 private:
  const envoy_js_host_clock* c_;
};

}  // namespace

Clock* newClock() {
  auto hostClock = reinterpret_cast<envoy_js_host_clock_fn>(dlsym(RTLD_DEFAULT, ENVOY_JS_HOST_CLOCK_SYMBOL));
  const envoy_js_host_clock* c = hostClock ? hostClock() : nullptr;
  return c ? static_cast<Clock*>(new HostClock(c)) : static_cast<Clock*>(new ThreadClock());
}

}  // namespace envoy_js::module
