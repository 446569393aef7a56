// Small helpers over the ABI's types: buffers in and out of Envoy, and Envoy's module logger.
#pragma once

#include <string_view>

#include "../../runtime/host.h"
#include "abi.h"

namespace envoy_js::module {

using FilterPtr = envoy_dynamic_module_type_http_filter_envoy_ptr;

// A buffer of ours that Envoy reads during the call.
inline envoy_dynamic_module_type_module_buffer buf(std::string_view s) { return {s.data(), s.size()}; }
// A buffer of Envoy's, valid until the current hook returns.
inline std::string_view view(envoy_dynamic_module_type_envoy_buffer b) {
  return b.ptr == nullptr ? std::string_view() : std::string_view(b.ptr, b.length);
}

// One line in Envoy's log, under its dynamic_modules logger.
void logLine(LogLevel level, std::string_view text);

}  // namespace envoy_js::module
