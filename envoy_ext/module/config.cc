// The filter config and the per-route config (config.h). The JSON texts are read by the
// runtime (runtime/config_text.h); here the files they name are read, the bundle is compiled
// once, setup() is tried, and the metrics are defined with Envoy.
#include "config.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "../../runtime/config_text.h"
#include "abi_util.h"
#include "background.h"

namespace envoy_js::module {
namespace {

bool readFile(const std::string& path, std::string* out, std::string* error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = "cannot read " + path + ": " + std::strerror(errno);
    return false;
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  *out = ss.str();
  return true;
}

std::atomic<uint64_t> gNextSerial{1};

// Logs of the dry run that checks setup() at config time go nowhere: the workers run it again.
using CheckHost = envoy_js::DiscardingEngineHost;

// The program a filter_config names: its bundle (a file, inline code or bytecode) and source map.
std::shared_ptr<const FilterProgram> loadProgram(const FilterConfigText& c, const std::string& name,
                                                 std::string* error) {
  // The bundle's source map: errors in Envoy's log then name the TypeScript source.
  std::string sourceMap;
  if (!c.sourceMapPath.empty() && !readFile(c.sourceMapPath, &sourceMap, error)) return nullptr;
  std::shared_ptr<const FilterProgram> program;
  if (!c.bytecodePath.empty()) {
    std::string bytes;
    if (!readFile(c.bytecodePath, &bytes, error)) return nullptr;
    program = FilterProgram::fromBytecodeFile(bytes, c.filename(), c.configJson, c.settings, error, sourceMap);
  } else {
    std::string source = c.inlineCode;
    if (!c.sourcePath.empty() && !readFile(c.sourcePath, &source, error)) return nullptr;
    program = FilterProgram::compile(source, c.filename(), c.configJson, c.settings, error, sourceMap);
  }
  if (program && !program->sourceMapError().empty()) {
    logLine(LogLevel::Warn,
            "envoy_js(" + name + "): source_map " + c.sourceMapPath + " is not used: " + program->sourceMapError());
  }
  return program;
}

// Envoy allows metrics to be defined only here, on the main thread at config time.
bool defineMetrics(envoy_dynamic_module_type_http_filter_config_envoy_ptr envoyConfig, ConfigShared* shared,
                   std::string* error) {
  auto define = [&](const std::string& metric, MetricKind kind, const std::vector<std::string>& labelNames,
                    size_t* id) {
    // Label names make the metric a vector: Envoy tags each series with name=value.
    std::vector<envoy_dynamic_module_type_module_buffer> labels;
    for (const std::string& l : labelNames) labels.push_back(buf(l));
    envoy_dynamic_module_type_module_buffer* l = labels.empty() ? nullptr : labels.data();
    envoy_dynamic_module_type_metrics_result r;
    if (kind == MetricKind::Counter) {
      r = envoy_dynamic_module_callback_http_filter_config_define_counter(envoyConfig, buf(metric), l, labels.size(),
                                                                          id);
    } else if (kind == MetricKind::Gauge) {
      r = envoy_dynamic_module_callback_http_filter_config_define_gauge(envoyConfig, buf(metric), l, labels.size(), id);
    } else {
      r = envoy_dynamic_module_callback_http_filter_config_define_histogram(envoyConfig, buf(metric), l, labels.size(),
                                                                            id);
    }
    if (r != envoy_dynamic_module_type_metrics_result_Success) {
      *error = "Envoy refused to define metric `" + metric + "` (result " + std::to_string(static_cast<int>(r)) + ")";
      return false;
    }
    return true;
  };
  for (const char* counter : kEngineCounters) {
    size_t id = 0;
    if (!define(counter, MetricKind::Counter, {}, &id)) return false;
    shared->counterIds[counter] = id;
  }
  if (!define(kEnginesGauge, MetricKind::Gauge, {}, &shared->enginesGaugeId)) return false;
  for (const MetricDeclaration& m : shared->program->metrics()) {
    size_t id = 0;
    if (!define(m.name, m.kind, m.labels, &id)) return false;
    shared->metricIds.push_back(id);
  }
  return true;
}

}  // namespace

namespace {
std::atomic<int64_t> gConfigsAlive{0};
}  // namespace

ConfigShared::ConfigShared() { gConfigsAlive++; }

ConfigShared::~ConfigShared() {
  int64_t alive = --gConfigsAlive;
  logLine(LogLevel::Debug, "envoy_js: filter configs alive: " + std::to_string(alive) + " (" + name + ": one freed)");
}

FilterConfig* newFilterConfig(envoy_dynamic_module_type_http_filter_config_envoy_ptr envoyConfig, std::string name,
                              std::string_view json, std::string* error) {
  FilterConfigText text;
  if (!FilterConfigText::parse(json, &text, error)) return nullptr;
  std::shared_ptr<const FilterProgram> program = loadProgram(text, name, error);
  if (!program) return nullptr;
  {
    // setup() runs on every worker; a setup that throws rejects the config here instead.
    CheckHost check;
    if (!Engine::create(program, check, 0, error)) return nullptr;
  }
  auto shared = std::make_shared<ConfigShared>();
  shared->name = std::move(name);
  shared->program = program;
  shared->serial = gNextSerial++;
  if (!defineMetrics(envoyConfig, shared.get(), error)) return nullptr;
  auto* config = new FilterConfig{std::move(shared), nullptr};
  if (program->hasBackground()) {
    // Only a filter with `background` gets one: an engine and a scheduler on the main thread.
    config->background = std::make_unique<ModuleBackground>(config->shared, envoyConfig);
    if (!config->background->begin(error)) {
      delete config;
      return nullptr;
    }
  }
  return config;
}

FilterConfig::~FilterConfig() = default;

RouteConfig* newRouteConfig(std::string_view json, std::string* error) {
  RouteOverride route;
  if (!parseRouteConfigText(json, &route, error)) return nullptr;
  return new RouteConfig{std::move(route)};
}

}  // namespace envoy_js::module
