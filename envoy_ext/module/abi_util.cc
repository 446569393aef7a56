#include "abi_util.h"

namespace envoy_js::module {
namespace {

envoy_dynamic_module_type_log_level abiLevel(LogLevel level) {
  switch (level) {
    case LogLevel::Trace: return envoy_dynamic_module_type_log_level_Trace;
    case LogLevel::Debug: return envoy_dynamic_module_type_log_level_Debug;
    case LogLevel::Info: return envoy_dynamic_module_type_log_level_Info;
    case LogLevel::Warn: return envoy_dynamic_module_type_log_level_Warn;
    case LogLevel::Error: return envoy_dynamic_module_type_log_level_Error;
  }
  return envoy_dynamic_module_type_log_level_Info;
}

}  // namespace

void logLine(LogLevel level, std::string_view text) { envoy_dynamic_module_callback_log(abiLevel(level), buf(text)); }

}  // namespace envoy_js::module
