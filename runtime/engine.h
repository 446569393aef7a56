// Public API of the envoy-js runtime: compile a filter once per config (FilterProgram), run it
// in one engine per worker (Engine), and drive one Stream per HTTP request.
//
// Threading: a FilterProgram is immutable and may be shared by all threads. An Engine and its
// Streams belong to one thread (the worker that created them).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "host.h"

namespace envoy_js {

enum class FailureMode : uint8_t { Closed, Open };

// The engine's own counters (EngineHost::incrementCounter), as every host names them to
// Envoy: the runtime counts only these.
inline constexpr const char* kCounterErrors = "envoy_js.errors";
inline constexpr const char* kCounterCpuLimit = "envoy_js.cpu_limit";
inline constexpr const char* kCounterHeapLimit = "envoy_js.heap_limit";
inline constexpr const char* kEngineCounters[] = {kCounterErrors, kCounterCpuLimit, kCounterHeapLimit};

// The limits and failure policy of DESIGN.md section 5.
struct Settings {
  FailureMode failureMode = FailureMode::Closed;
  size_t maxHeapBytes = 64u << 20;
  uint32_t maxCpuMsPerEvent = 50;
  size_t bufferLimitBytes = 1u << 20;
  // `allow_code_from_strings`: eval() and the Function constructors compile strings only when
  // true. Off by default: a filter that evals request data would hand the proxy to the client.
  bool allowCodeFromStrings = false;

  // Reads the section 5 keys from a JSON object text, leaving absent keys at their default.
  // Unknown keys are ignored by this function (the caller owns the rest of the object).
  // Returns false with *error set on a wrong type or an out-of-range value.
  static bool fromJson(std::string_view json, Settings* out, std::string* error);
};

class SourceMap;

struct MetricDeclaration {
  std::string name;
  MetricKind kind;
  std::vector<std::string> labels;  // label (tag) names, in declaration order; empty for none
};

// Labels: at most kMetricLabelsMax names per metric, each [A-Za-z_][A-Za-z0-9_]* up to
// kMetricLabelNameMaxBytes; label values up to kMetricLabelValueMaxBytes; at most
// kMetricSeriesMax distinct label-value combinations per metric in the process.
inline constexpr size_t kMetricLabelsMax = 8;
inline constexpr size_t kMetricLabelNameMaxBytes = 64;
inline constexpr size_t kMetricLabelValueMaxBytes = 128;
inline constexpr size_t kMetricSeriesMax = 100;

// A filter compiled once (on Envoy's main thread) and loaded by every worker engine.
class FilterProgram {
 public:
  // Compiles an ES module bundle. On failure returns nullptr and sets *error to a message
  // that starts with "file:line:col: " for syntax errors. Also runs the module once in a
  // scratch engine to check its default export and read the static `metrics` declaration.
  // `sourceMapJson` is the bundle's source map (`<bundle>.map`), optional: with it, error
  // messages and logged stacks name the TypeScript source, as
  // "src/filter.ts:10:11 (filter.js:12:15)". A map that cannot be read does not fail the
  // program; sourceMapError() says why it is not used.
  static std::shared_ptr<const FilterProgram> compile(std::string_view source, std::string filename,
                                                      std::string configJson, Settings settings, std::string* error,
                                                      std::string_view sourceMapJson = {});
  // Loads bytecode written by serializedBytecode() (the `.qjsbc` file). A file from another
  // quickjs-ng version or a truncated file is refused with a clear error. The module is not
  // run here: the file carries what compile()'s scratch run checked (its default export, its
  // metrics, the heap it takes to load), so this costs a digest over the file; the config
  // JSON and max_heap_bytes are checked against it. `sourceMapJson` as for compile().
  static std::shared_ptr<const FilterProgram> fromBytecodeFile(std::string_view file, std::string filename,
                                                               std::string configJson, Settings settings,
                                                               std::string* error, std::string_view sourceMapJson = {});
  // Bytecode with the version tag, as written to `.qjsbc`.
  std::vector<uint8_t> serializedBytecode() const;
  static std::string engineVersion();

  const std::string& filename() const { return filename_; }
  const std::string& configJson() const { return configJson_; }
  const Settings& settings() const { return settings_; }
  const std::vector<MetricDeclaration>& metrics() const { return metrics_; }
  const std::vector<uint8_t>& bytecode() const { return bytecode_; }
  // Whether the filter definition has `background(config, bg)`: hosts create a background
  // engine (Engine::createBackground) only then.
  bool hasBackground() const { return hasBackground_; }
  // Heap bytes the module took to load in compile()'s scratch engine (0 while that runs).
  size_t loadHeapBytes() const { return loadHeapBytes_; }
  // The parsed source map, or nullptr when none was given or it could not be read.
  const SourceMap* sourceMap() const { return sourceMap_.get(); }
  // Why a given source map is not used; empty when it is (or none was given).
  const std::string& sourceMapError() const { return sourceMapError_; }
  // `text` with bundle locations mapped through the source map (unchanged without one).
  std::string mapLocations(std::string_view text) const;

 private:
  // The program's fields, before its module facts (metrics, load heap) are known.
  static std::shared_ptr<FilterProgram> assemble(std::vector<uint8_t> bytecode, std::string filename,
                                                 std::string configJson, Settings settings,
                                                 std::string_view sourceMapJson);
  static std::shared_ptr<const FilterProgram> finish(std::vector<uint8_t> bytecode, std::string filename,
                                                     std::string configJson, Settings settings, std::string* error,
                                                     std::string_view sourceMapJson);
  std::vector<uint8_t> bytecode_;
  std::string filename_;
  std::string configJson_;
  Settings settings_;
  std::vector<MetricDeclaration> metrics_;
  size_t loadHeapBytes_ = 0;  // heap the module took to load in the scratch engine
  bool hasBackground_ = false;
  std::shared_ptr<const SourceMap> sourceMap_;
  std::string sourceMapError_;
};

struct StreamState;
class Engine;

// One HTTP stream. Created by Engine::newStream; the host calls the on* methods in Envoy's
// order and must call onDestroy() exactly once before deleting it.
class Stream {
 public:
  ~Stream();
  HeadersStatus onRequestHeaders(bool endStream);
  DataStatus onRequestData(bool endStream);
  TrailersStatus onRequestTrailers();
  HeadersStatus onResponseHeaders(bool endStream);
  DataStatus onResponseData(bool endStream);
  TrailersStatus onResponseTrailers();
  // The host runs what StreamHost::schedule() asked for.
  void onScheduled();
  // A callout started through StreamHost::startCallout finished.
  void onCalloutDone(uint64_t id, const CalloutResponse& response);
  // The stream finished, completely or not (Envoy's onStreamComplete, which comes before the
  // access log): runs onDone, with `ctx.aborted` true when the response did not end.
  void onComplete();
  // The host is about to free the stream; pending work is abandoned and `ctx.aborted` is true.
  void onDestroy();

 private:
  friend class Engine;
  explicit Stream(StreamState* state) : state_(state) {}
  StreamState* state_;
};

struct EngineStats {
  size_t heapBytes = 0;    // quickjs malloc'd bytes
  size_t liveStreams = 0;  // streams not yet freed (host-destroyed but JS-referenced count)
};

// One engine per worker thread and per filter config.
class Engine {
 public:
  // Loads the program's bytecode, runs the module, calls `setup`. Returns nullptr with *error.
  static std::unique_ptr<Engine> create(std::shared_ptr<const FilterProgram> program, EngineHost& host,
                                        uint32_t workerIndex, std::string* error);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // The background engine of a filter config: loads the module (no `setup`) and calls the
  // filter's `background(config, bg)` once. nullptr with *error when the program has no
  // `background` or the module cannot load; a `background` that throws is logged and counted
  // (envoy_js.errors) and the engine is kept, with whatever timers it started. No streams.
  static std::unique_ptr<Engine> createBackground(std::shared_ptr<const FilterProgram> program, BackgroundHost& host,
                                                  std::string* error);

  std::unique_ptr<Stream> newStream(StreamHost& host);
  // A timer started through EngineHost::startTimer is due.
  void fireTimer(uint64_t id);
  // A callout started through BackgroundHost::startCallout finished (background engines only).
  void onCalloutDone(uint64_t id, const CalloutResponse& response);
  EngineStats stats() const;
  const Settings& settings() const;
  void collectGarbage();

  struct Impl;
  Impl* impl() { return impl_.get(); }

 private:
  Engine() = default;
  std::unique_ptr<Impl> impl_;
};

}  // namespace envoy_js
