// State that belongs to the whole process, shared by the engines of every worker thread: the
// shared key-value store (`ctx.shared`, proxy-wasm's shared data) and the process-wide values of
// the filter's metrics (`Counter.value`, `Gauge.value`).
//
// Threading: every function here may be called from any worker at any time; each takes a
// process-wide lock for the few map operations it does (never while calling into JS). The wasm
// engine has one thread and no lock.
//
// Lifetime: namespaces and totals live until the process ends (tests: resetProcessState()).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "host.h"

namespace envoy_js {

// Bounds of one shared-data namespace (docs/limits.md). Fixed, not configured: one namespace
// is shared by every filter config that loads the same bundle, and those could disagree.
inline constexpr size_t kSharedKeyMaxBytes = 256;
inline constexpr size_t kSharedValueMaxBytes = 64 * 1024;
inline constexpr size_t kSharedMaxEntries = 10000;
inline constexpr size_t kSharedMaxBytes = 8u << 20;  // keys + values of all entries

enum class SharedWrite : uint8_t {
  Ok,
  VersionMismatch,  // an expected version was given and the entry has another (0: absent)
  KeyInvalid,       // empty, or over kSharedKeyMaxBytes
  ValueTooLarge,    // over kSharedValueMaxBytes
  Full,             // over kSharedMaxEntries or kSharedMaxBytes
};

struct SharedEntry {
  std::string value;
  uint64_t version = 0;  // > 0; a new one on every write, unique within the namespace
};

// One namespace of the shared store (one per filter bundle name). Never freed.
class SharedNamespace;
SharedNamespace* sharedNamespace(std::string_view name);
// A namespace of its own for a dry-run engine (EngineHost::dryRun): nobody else sees it.
SharedNamespace* newPrivateNamespace();
void freePrivateNamespace(SharedNamespace* ns);

std::optional<SharedEntry> sharedGet(SharedNamespace* ns, std::string_view key);
// Writes `value` under `key` unless `expected` is given and differs from the entry's version
// (0: the key must be absent). *version: the new version on Ok, the current one (0 when
// absent) on VersionMismatch.
SharedWrite sharedSet(SharedNamespace* ns, std::string_view key, std::string_view value,
                      std::optional<uint64_t> expected, uint64_t* version);
// Removes `key` (under the same rule for `expected`). *version as for sharedSet (0 on Ok).
// Removing an absent key without `expected` is Ok.
SharedWrite sharedDelete(SharedNamespace* ns, std::string_view key, std::optional<uint64_t> expected,
                         uint64_t* version);
struct SharedUsage {
  size_t entries = 0;
  size_t bytes = 0;
};
SharedUsage sharedUsage(SharedNamespace* ns);

// ---- metric values ------------------------------------------------------------------------------
// A metric is one value per name for the process, as Envoy keeps it (whatever config defined
// it): counters add up the increments of every engine; a gauge is the sum of every live
// engine's share, never below 0 (Envoy's gauges are unsigned). `engine` identifies the share.

// Adds `delta` and returns the new total.
double metricCounterAdd(std::string_view name, double delta);
// Sets `engine`'s share of the gauge (0 removes it: Engine's destructor does that for each
// gauge); returns the new process value. `report` is called with that value while the lock is
// held, so that the host's gauge is set in the same order as the values were computed.
double metricGaugeShare(std::string_view name, const void* engine, double share,
                        void (*report)(void* opaque, double total), void* opaque);
// The process value of a counter or gauge (0 when never touched).
double metricValue(std::string_view name, MetricKind kind);
// A labelled metric's series are named by a key (bind_context.cc: the metric's name and its
// label values); the functions above take that key. Admits `key` as a series of `metric`:
// true when it is already known or the metric has fewer than `limit` series.
bool metricSeriesAdmit(std::string_view metric, std::string_view key, size_t limit);

// Forgets the shared store's contents and every metric value. For hosts that play several
// Envoy processes in one real process (the scripted host: one scenario is one process).
void resetProcessState();

}  // namespace envoy_js
