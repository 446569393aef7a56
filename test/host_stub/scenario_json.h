// Scenarios in and transcripts out as JSON text, for every driver of the scripted Envoy model
// (the wasm engine's exports, the ABI host, the C++ tools), done with a scratch quickjs-ng
// context. No exceptions (the wasm build has none): parse functions return false with *error
// naming the first bad field.
#pragma once

#include <string>
#include <string_view>

#include "scripted_host.h"

namespace envoy_js::stub {

// Reads a replay scenario (DESIGN.md section 7). Returns false with *error naming the bad field.
bool parseScenario(std::string_view json, Scenario* out, std::string* error);

// One stream's setup for ScriptedHost::newStream (the scenario's stream keys, less the
// request); `null` is an empty setup.
bool parseStreamSetup(std::string_view json, StreamScenario* out, std::string* error);

// {"name": "value" | ["v1", "v2"]} in order; `where` names it in the error.
bool parseHeaders(std::string_view json, const char* where, HeaderList* out, std::string* error);

// JSON text as the scenario reader keeps config and settings: re-serialised, and {} for
// null, undefined or text that is not JSON.
std::string jsonOf(std::string_view json);

// The transcript as one line of JSON.
std::string transcriptJson(const Transcript& transcript);

// One stream's transcript as one line of JSON (the shape of transcript.streams[i]).
std::string streamTranscriptJson(const StreamTranscript& stream);

// Builds the module's filter_config: {"source", "bytecode"?, "source_map"?, "config", ...settings}.
std::string filterConfigJson(const std::string& sourcePath, const std::string* bytecodePath,
                             const std::string* sourceMapPath, const std::string& configJson,
                             const std::string& settingsJson);

// Per-route filter_config: {"disabled": ..., "config": ...}.
std::string routeConfigJson(const RouteOverride& route);

}  // namespace envoy_js::stub
