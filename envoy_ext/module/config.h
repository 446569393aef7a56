// The module's configurations: the filter config (Envoy's main thread: the bundle compiled once
// and the metrics defined) and the per-route config.
#pragma once

#include <atomic>
#include <iterator>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "../../runtime/engine.h"
#include "abi.h"

namespace envoy_js::module {

// The gauge of worker engines alive in the process, every filter config's (each config defines
// it; Envoy keeps one stat of that name). Set by publishLiveEngines (worker.h).
inline constexpr const char* kEnginesGauge = "envoy_js.engines";

// What a config shares with the worker engines made from it; outlives the config itself when
// a worker still holds an engine.
struct ConfigShared {
  ConfigShared();
  // Logs "envoy_js: filter configs alive: N (<name>: one freed)" at debug level (the module's
  // line, not the filter's): after reloads N falls back to the configs in use once the old ones
  // and their engines are gone.
  ~ConfigShared();
  std::string name;  // filter_name
  std::shared_ptr<const FilterProgram> program;
  std::vector<size_t> metricIds;             // by index into program->metrics()
  std::map<std::string, size_t> counterIds;  // the engine's own counters (envoy_js.errors, ...)
  size_t enginesGaugeId = 0;                 // envoy_js.engines (worker.h publishLiveEngines)
  uint64_t serial = 0;                       // key of the worker engine maps
  std::atomic<bool> alive{true};             // false once Envoy destroyed the config
  // The background engine's counts (by index into kEngineCounters), waiting for a worker's
  // stream to add them: the main thread has no filter to count through (background.cc).
  std::atomic<uint64_t> backgroundCounts[std::size(kEngineCounters)] = {};
};

class ModuleBackground;

struct FilterConfig {
  ~FilterConfig();
  std::shared_ptr<ConfigShared> shared;
  // The filter's `background` engine (main thread), when it has one (background.h).
  std::unique_ptr<ModuleBackground> background;
};

struct RouteConfig {
  RouteOverride route;
};

// on_http_filter_config_new: nullptr with *error when the config is refused.
FilterConfig* newFilterConfig(envoy_dynamic_module_type_http_filter_config_envoy_ptr envoyConfig, std::string name,
                              std::string_view json, std::string* error);

// Per-route filter_config: {"config": <merged over the filter's config>, "disabled": bool}.
RouteConfig* newRouteConfig(std::string_view json, std::string* error);

}  // namespace envoy_js::module
