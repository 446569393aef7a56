// A filter's configuration as JSON text, the form the dynamic module receives from Envoy
// (filter_config, and typed_per_filter_config for a route), read into plain structs so that
// no adapter parses JSON. Keys (DESIGN.md section 5):
//
//   filter_config:  {"source": path | "inline": code | "bytecode": path, "source_map": path,
//                    "config": any JSON, "failure_mode", "max_heap_bytes",
//                    "max_cpu_ms_per_event", "buffer_limit_bytes", "allow_code_from_strings"}
//   per-route:      {"config": object merged over the filter's config, "disabled": bool}
//
// Unknown keys are refused with a message that names them and lists the known ones.
#pragma once

#include <string>
#include <string_view>

#include "engine.h"

namespace envoy_js {

struct FilterConfigText {
  std::string sourcePath;         // `source`: the bundle's path
  std::string inlineCode;         // `inline`: the bundle's code
  std::string bytecodePath;       // `bytecode`: a `.qjsbc` file (with `source` or alone)
  std::string sourceMapPath;      // `source_map`: the bundle's source map
  std::string configJson = "{}";  // `config`, as JSON text
  Settings settings;              // the section 5 keys, defaults where absent

  // The file name that errors and stacks show: the base name of `source` or `bytecode`, or
  // "inline.js".
  std::string filename() const;

  // Reads a filter_config text; an empty text is an empty object. Returns false with *error
  // ("filter_config ...", "`source` must be a non-empty string", "unknown key `x` in
  // filter_config (known keys: ...)", or Settings::fromJson's message).
  static bool parse(std::string_view json, FilterConfigText* out, std::string* error);
};

// Reads a per-route filter_config text into *out (configJson stays empty without `config`).
// Returns false with *error ("per-route filter_config ...").
bool parseRouteConfigText(std::string_view json, RouteOverride* out, std::string* error);

}  // namespace envoy_js
