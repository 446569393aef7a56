// Process-wide state shared by every worker engine (process_state.h).
#include "process_state.h"

#include <map>
#include <memory>
#include <set>
#include <unordered_map>

#if !defined(__wasm__)
#include <mutex>
#endif

namespace envoy_js {

namespace {

// The wasm engine is built without threads (no std::mutex): one thread, nothing to lock.
#if defined(__wasm__)
struct Lock {};
struct Guard {
  explicit Guard(Lock&) {}
};
#else
using Lock = std::mutex;
using Guard = std::lock_guard<std::mutex>;
#endif

struct GaugeValue {
  std::unordered_map<const void*, double> shares;  // by engine
};

struct ProcessState {
  Lock lock;
  // std::map: stable addresses for the SharedNamespace pointers handed out.
  std::map<std::string, std::unique_ptr<SharedNamespace>, std::less<>> namespaces;
  std::map<std::string, double, std::less<>> counters;
  std::map<std::string, GaugeValue, std::less<>> gauges;
  // The series keys of each labelled metric, to bound them (kMetricSeriesMax).
  std::map<std::string, std::set<std::string, std::less<>>, std::less<>> series;
};

// Never destroyed: worker threads may still run while static destructors do at exit.
ProcessState& state() {
  static ProcessState* s = new ProcessState();
  return *s;
}

double gaugeTotal(const GaugeValue& g) {
  double sum = 0;
  for (const auto& [engine, share] : g.shares) sum += share;
  return sum > 0 ? sum : 0;
}

}  // namespace

class SharedNamespace {
 public:
  std::map<std::string, SharedEntry, std::less<>> entries;
  size_t bytes = 0;          // keys + values
  uint64_t lastVersion = 0;  // versions only grow, also across deletes
};

SharedNamespace* sharedNamespace(std::string_view name) {
  ProcessState& p = state();
  Guard g(p.lock);
  auto it = p.namespaces.find(name);
  if (it == p.namespaces.end()) it = p.namespaces.emplace(std::string(name), std::make_unique<SharedNamespace>()).first;
  return it->second.get();
}

SharedNamespace* newPrivateNamespace() { return new SharedNamespace(); }
void freePrivateNamespace(SharedNamespace* ns) { delete ns; }

std::optional<SharedEntry> sharedGet(SharedNamespace* ns, std::string_view key) {
  Guard g(state().lock);
  auto it = ns->entries.find(key);
  if (it == ns->entries.end()) return std::nullopt;
  return it->second;
}

SharedWrite sharedSet(SharedNamespace* ns, std::string_view key, std::string_view value,
                      std::optional<uint64_t> expected, uint64_t* version) {
  *version = 0;
  if (key.empty() || key.size() > kSharedKeyMaxBytes) return SharedWrite::KeyInvalid;
  if (value.size() > kSharedValueMaxBytes) return SharedWrite::ValueTooLarge;
  Guard g(state().lock);
  auto it = ns->entries.find(key);
  uint64_t current = it == ns->entries.end() ? 0 : it->second.version;
  if (expected && *expected != current) {
    *version = current;
    return SharedWrite::VersionMismatch;
  }
  size_t oldBytes = it == ns->entries.end() ? 0 : key.size() + it->second.value.size();
  size_t newBytes = key.size() + value.size();
  if (it == ns->entries.end() && ns->entries.size() >= kSharedMaxEntries) return SharedWrite::Full;
  if (ns->bytes - oldBytes + newBytes > kSharedMaxBytes) return SharedWrite::Full;
  if (it == ns->entries.end()) it = ns->entries.emplace(std::string(key), SharedEntry{}).first;
  it->second.value.assign(value.data(), value.size());
  it->second.version = ++ns->lastVersion;
  ns->bytes = ns->bytes - oldBytes + newBytes;
  *version = it->second.version;
  return SharedWrite::Ok;
}

SharedWrite sharedDelete(SharedNamespace* ns, std::string_view key, std::optional<uint64_t> expected,
                         uint64_t* version) {
  *version = 0;
  if (key.empty() || key.size() > kSharedKeyMaxBytes) return SharedWrite::KeyInvalid;
  Guard g(state().lock);
  auto it = ns->entries.find(key);
  uint64_t current = it == ns->entries.end() ? 0 : it->second.version;
  if (expected && *expected != current) {
    *version = current;
    return SharedWrite::VersionMismatch;
  }
  if (it != ns->entries.end()) {
    ns->bytes -= it->first.size() + it->second.value.size();
    ns->entries.erase(it);
  }
  return SharedWrite::Ok;
}

SharedUsage sharedUsage(SharedNamespace* ns) {
  Guard g(state().lock);
  return SharedUsage{ns->entries.size(), ns->bytes};
}

double metricCounterAdd(std::string_view name, double delta) {
  ProcessState& p = state();
  Guard g(p.lock);
  auto it = p.counters.find(name);
  if (it == p.counters.end()) it = p.counters.emplace(std::string(name), 0.0).first;
  it->second += delta;
  return it->second;
}

double metricGaugeShare(std::string_view name, const void* engine, double share,
                        void (*report)(void* opaque, double total), void* opaque) {
  ProcessState& p = state();
  Guard g(p.lock);
  auto it = p.gauges.find(name);
  if (it == p.gauges.end()) it = p.gauges.emplace(std::string(name), GaugeValue{}).first;
  if (share == 0) it->second.shares.erase(engine);
  else it->second.shares[engine] = share;
  double total = gaugeTotal(it->second);
  if (report) report(opaque, total);
  return total;
}

double metricValue(std::string_view name, MetricKind kind) {
  ProcessState& p = state();
  Guard g(p.lock);
  if (kind == MetricKind::Counter) {
    auto it = p.counters.find(name);
    return it == p.counters.end() ? 0 : it->second;
  }
  auto it = p.gauges.find(name);
  return it == p.gauges.end() ? 0 : gaugeTotal(it->second);
}

bool metricSeriesAdmit(std::string_view metric, std::string_view key, size_t limit) {
  ProcessState& p = state();
  Guard g(p.lock);
  auto it = p.series.find(metric);
  if (it == p.series.end()) it = p.series.emplace(std::string(metric), std::set<std::string, std::less<>>{}).first;
  if (it->second.count(key)) return true;
  if (it->second.size() >= limit) return false;
  it->second.emplace(key);
  return true;
}

void resetProcessState() {
  ProcessState& p = state();
  Guard g(p.lock);
  // Namespaces stay (engines hold pointers to them); their contents go.
  for (auto& [name, ns] : p.namespaces) *ns = SharedNamespace{};
  p.counters.clear();
  p.gauges.clear();
  p.series.clear();
}

}  // namespace envoy_js
