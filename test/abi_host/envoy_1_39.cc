// The callbacks Envoy 1.39 added that the module looks for. Linked into abi_host (which plays
// Envoy 1.39 and 1.40) and left out of abi_host_1_38: the module tells a 1.38 Envoy by the
// absence of envoy_dynamic_module_callback_http_get_header_values (hooks.cc,
// gSingleContinueFlag), and a process's exported callbacks are fixed when it is linked.
#include "../../envoy_ext/module/abi.h"

namespace envoy_js::abi_host {
bool getHeaderValues(envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr,
                     envoy_dynamic_module_type_http_header_type header_type,
                     envoy_dynamic_module_type_module_buffer key,
                     envoy_dynamic_module_type_envoy_buffer* result_buffer);
}  // namespace envoy_js::abi_host

// Every value of `key` in one call; result_buffer holds as many as get_header reports.
extern "C" __attribute__((visibility("default"))) bool envoy_dynamic_module_callback_http_get_header_values(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr,
    envoy_dynamic_module_type_http_header_type header_type, envoy_dynamic_module_type_module_buffer key,
    envoy_dynamic_module_type_envoy_buffer* result_buffer) {
  return envoy_js::abi_host::getHeaderValues(filter_envoy_ptr, header_type, key, result_buffer);
}
