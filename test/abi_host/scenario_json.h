// Scenarios in and transcripts out as JSON text, for the ABI host: the same reading and the same
// transcript shape as the Node addon (test/host_stub/addon.cc), done with a scratch quickjs-ng
// context instead of N-API.
#pragma once

#include <string>
#include <string_view>

#include "../host_stub/scripted_host.h"

namespace envoy_js::abi_host {

// Reads a replay scenario (DESIGN.md section 7). Returns false with *error naming the bad field.
bool parseScenario(std::string_view json, stub::Scenario* out, std::string* error);

// The transcript as one line of JSON.
std::string transcriptJson(const stub::Transcript& transcript);

// Builds the module's filter_config: {"source", "bytecode"?, "source_map"?, "config", ...settings}.
std::string filterConfigJson(const std::string& sourcePath, const std::string* bytecodePath,
                             const std::string* sourceMapPath, const std::string& configJson,
                             const std::string& settingsJson);

// Per-route filter_config: {"disabled": ..., "config": ...}.
std::string routeConfigJson(const RouteOverride& route);

// A JSON scalar as Envoy's typed metadata holds it.
struct MetadataValue {
  enum Kind { String, Number, Bool, Other } kind = Other;
  std::string string;
  double number = 0;
  bool boolean = false;
};
MetadataValue readMetadataValue(const std::string& json);
std::string stringJson(std::string_view s);
std::string numberJson(double d);

}  // namespace envoy_js::abi_host
