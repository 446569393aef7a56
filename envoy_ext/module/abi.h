// envoy-js's own declaration of the part of Envoy's dynamic-module C ABI that it uses (HTTP
// filters, Envoy >= 1.38, ABI version "v0.1.0"). Written from the public ABI's names, types and
// enum values; Envoy's own header is not used. Anything not declared here is not used.
//
// Three kinds of names, as in the ABI:
//  - envoy_dynamic_module_type_*      types shared by both sides
//  - envoy_dynamic_module_on_*        hooks: the module exports them, Envoy calls them
//  - envoy_dynamic_module_callback_*  callbacks: Envoy exports them, the module calls them
//
// Pointers named *_envoy_ptr belong to Envoy, *_module_ptr to the module. Buffers Envoy hands
// out (envoy_buffer, envoy_http_header) are valid until the current hook returns, or until the
// module changes what they point into.
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// The ABI version this module is built against; returned by on_program_init. Envoy 1.38 logs a
// warning (it does not refuse the module) when it differs from its own.
#define ENVOY_JS_DYNAMIC_MODULES_ABI_VERSION "v0.1.0"

#ifdef __cplusplus
extern "C" {
#endif

// ---- types ------------------------------------------------------------------------------------

typedef const char* envoy_dynamic_module_type_abi_version_module_ptr;
typedef const char* envoy_dynamic_module_type_buffer_module_ptr;
typedef const char* envoy_dynamic_module_type_buffer_envoy_ptr;

typedef struct envoy_dynamic_module_type_envoy_buffer {
  envoy_dynamic_module_type_buffer_envoy_ptr ptr;
  size_t length;
} envoy_dynamic_module_type_envoy_buffer;

typedef struct envoy_dynamic_module_type_module_buffer {
  envoy_dynamic_module_type_buffer_module_ptr ptr;
  size_t length;
} envoy_dynamic_module_type_module_buffer;

typedef struct envoy_dynamic_module_type_module_http_header {
  envoy_dynamic_module_type_buffer_module_ptr key_ptr;
  size_t key_length;
  envoy_dynamic_module_type_buffer_module_ptr value_ptr;
  size_t value_length;
} envoy_dynamic_module_type_module_http_header;

typedef struct envoy_dynamic_module_type_envoy_http_header {
  envoy_dynamic_module_type_buffer_envoy_ptr key_ptr;
  size_t key_length;
  envoy_dynamic_module_type_buffer_envoy_ptr value_ptr;
  size_t value_length;
} envoy_dynamic_module_type_envoy_http_header;

typedef enum envoy_dynamic_module_type_http_header_type {
  envoy_dynamic_module_type_http_header_type_RequestHeader = 0,
  envoy_dynamic_module_type_http_header_type_RequestTrailer = 1,
  envoy_dynamic_module_type_http_header_type_ResponseHeader = 2,
  envoy_dynamic_module_type_http_header_type_ResponseTrailer = 3,
} envoy_dynamic_module_type_http_header_type;

typedef enum envoy_dynamic_module_type_log_level {
  envoy_dynamic_module_type_log_level_Trace = 0,
  envoy_dynamic_module_type_log_level_Debug = 1,
  envoy_dynamic_module_type_log_level_Info = 2,
  envoy_dynamic_module_type_log_level_Warn = 3,
  envoy_dynamic_module_type_log_level_Error = 4,
  envoy_dynamic_module_type_log_level_Critical = 5,
  envoy_dynamic_module_type_log_level_Off = 6,
} envoy_dynamic_module_type_log_level;

typedef enum envoy_dynamic_module_type_http_callout_init_result {
  envoy_dynamic_module_type_http_callout_init_result_Success = 0,
  envoy_dynamic_module_type_http_callout_init_result_MissingRequiredHeaders = 1,
  envoy_dynamic_module_type_http_callout_init_result_ClusterNotFound = 2,
  envoy_dynamic_module_type_http_callout_init_result_DuplicateCalloutId = 3,
  envoy_dynamic_module_type_http_callout_init_result_CannotCreateRequest = 4,
} envoy_dynamic_module_type_http_callout_init_result;

typedef enum envoy_dynamic_module_type_http_callout_result {
  envoy_dynamic_module_type_http_callout_result_Success = 0,
  envoy_dynamic_module_type_http_callout_result_Reset = 1,
  envoy_dynamic_module_type_http_callout_result_ExceedResponseBufferLimit = 2,
} envoy_dynamic_module_type_http_callout_result;

// Only in the signature of the streaming-callout hooks, which envoy-js does not use.
typedef enum envoy_dynamic_module_type_http_stream_reset_reason {
  envoy_dynamic_module_type_http_stream_reset_reason_ConnectionFailure = 0,
  envoy_dynamic_module_type_http_stream_reset_reason_ConnectionTermination = 1,
  envoy_dynamic_module_type_http_stream_reset_reason_LocalReset = 2,
  envoy_dynamic_module_type_http_stream_reset_reason_LocalRefusedStreamReset = 3,
  envoy_dynamic_module_type_http_stream_reset_reason_Overflow = 4,
  envoy_dynamic_module_type_http_stream_reset_reason_RemoteReset = 5,
  envoy_dynamic_module_type_http_stream_reset_reason_RemoteRefusedStreamReset = 6,
  envoy_dynamic_module_type_http_stream_reset_reason_ProtocolError = 7,
} envoy_dynamic_module_type_http_stream_reset_reason;

typedef enum envoy_dynamic_module_type_http_filter_stream_reset_reason {
  envoy_dynamic_module_type_http_filter_stream_reset_reason_LocalReset = 0,
  envoy_dynamic_module_type_http_filter_stream_reset_reason_LocalRefusedStreamReset = 1,
} envoy_dynamic_module_type_http_filter_stream_reset_reason;

typedef enum envoy_dynamic_module_type_metrics_result {
  envoy_dynamic_module_type_metrics_result_Success = 0,
  envoy_dynamic_module_type_metrics_result_MetricNotFound = 1,
  envoy_dynamic_module_type_metrics_result_InvalidLabels = 2,
  envoy_dynamic_module_type_metrics_result_Frozen = 3,
} envoy_dynamic_module_type_metrics_result;

typedef enum envoy_dynamic_module_type_metadata_source {
  envoy_dynamic_module_type_metadata_source_Dynamic = 0,
  envoy_dynamic_module_type_metadata_source_Route = 1,
  envoy_dynamic_module_type_metadata_source_Cluster = 2,
  envoy_dynamic_module_type_metadata_source_Host = 3,
  envoy_dynamic_module_type_metadata_source_HostLocality = 4,
} envoy_dynamic_module_type_metadata_source;

// A subset of the attribute ids, with their values in the ABI's enumeration.
typedef enum envoy_dynamic_module_type_attribute_id {
  envoy_dynamic_module_type_attribute_id_RequestId = 9,
  envoy_dynamic_module_type_attribute_id_RequestProtocol = 10,
  envoy_dynamic_module_type_attribute_id_ResponseCode = 15,
  envoy_dynamic_module_type_attribute_id_ResponseCodeDetails = 16,
  envoy_dynamic_module_type_attribute_id_ResponseFlags = 17,
  envoy_dynamic_module_type_attribute_id_SourceAddress = 24,
  envoy_dynamic_module_type_attribute_id_SourcePort = 25,
  envoy_dynamic_module_type_attribute_id_DestinationAddress = 26,
  envoy_dynamic_module_type_attribute_id_DestinationPort = 27,
  envoy_dynamic_module_type_attribute_id_ConnectionId = 28,
  envoy_dynamic_module_type_attribute_id_ConnectionRequestedServerName = 30,
  envoy_dynamic_module_type_attribute_id_UpstreamAddress = 41,
  envoy_dynamic_module_type_attribute_id_UpstreamPort = 42,
  envoy_dynamic_module_type_attribute_id_UpstreamRequestAttemptCount = 53,
  envoy_dynamic_module_type_attribute_id_XdsClusterName = 57,
  envoy_dynamic_module_type_attribute_id_XdsRouteName = 61,
  envoy_dynamic_module_type_attribute_id_XdsVirtualHostName = 63,
  envoy_dynamic_module_type_attribute_id_XdsFilterChainName = 66,
} envoy_dynamic_module_type_attribute_id;

typedef void* envoy_dynamic_module_type_http_filter_config_envoy_ptr;
typedef const void* envoy_dynamic_module_type_http_filter_config_module_ptr;
typedef const void* envoy_dynamic_module_type_http_filter_per_route_config_module_ptr;
typedef void* envoy_dynamic_module_type_http_filter_envoy_ptr;
typedef const void* envoy_dynamic_module_type_http_filter_module_ptr;
// Allocated by Envoy, owned by the module (freed with ..._scheduler_delete).
typedef void* envoy_dynamic_module_type_http_filter_scheduler_module_ptr;
// The filter config's scheduler (main thread), likewise owned by the module.
typedef void* envoy_dynamic_module_type_http_filter_config_scheduler_module_ptr;

typedef enum envoy_dynamic_module_type_http_body_type {
  envoy_dynamic_module_type_http_body_type_ReceivedRequestBody = 0,
  envoy_dynamic_module_type_http_body_type_BufferedRequestBody = 1,
  envoy_dynamic_module_type_http_body_type_ReceivedResponseBody = 2,
  envoy_dynamic_module_type_http_body_type_BufferedResponseBody = 3,
} envoy_dynamic_module_type_http_body_type;

// The status enums have the numeric values of Envoy's FilterHeadersStatus, FilterDataStatus and
// FilterTrailersStatus (DESIGN.md section 8; runtime/host.h uses the same values).
typedef enum envoy_dynamic_module_type_on_http_filter_request_headers_status {
  envoy_dynamic_module_type_on_http_filter_request_headers_status_Continue = 0,
  envoy_dynamic_module_type_on_http_filter_request_headers_status_StopIteration = 1,
  envoy_dynamic_module_type_on_http_filter_request_headers_status_ContinueAndDontEndStream = 2,
  envoy_dynamic_module_type_on_http_filter_request_headers_status_StopAllIterationAndBuffer = 3,
  envoy_dynamic_module_type_on_http_filter_request_headers_status_StopAllIterationAndWatermark = 4,
} envoy_dynamic_module_type_on_http_filter_request_headers_status;

typedef enum envoy_dynamic_module_type_on_http_filter_request_body_status {
  envoy_dynamic_module_type_on_http_filter_request_body_status_Continue = 0,
  envoy_dynamic_module_type_on_http_filter_request_body_status_StopIterationAndBuffer = 1,
  envoy_dynamic_module_type_on_http_filter_request_body_status_StopIterationAndWatermark = 2,
  envoy_dynamic_module_type_on_http_filter_request_body_status_StopIterationNoBuffer = 3,
} envoy_dynamic_module_type_on_http_filter_request_body_status;

typedef enum envoy_dynamic_module_type_on_http_filter_request_trailers_status {
  envoy_dynamic_module_type_on_http_filter_request_trailers_status_Continue = 0,
  envoy_dynamic_module_type_on_http_filter_request_trailers_status_StopIteration = 1,
} envoy_dynamic_module_type_on_http_filter_request_trailers_status;

typedef enum envoy_dynamic_module_type_on_http_filter_response_headers_status {
  envoy_dynamic_module_type_on_http_filter_response_headers_status_Continue = 0,
  envoy_dynamic_module_type_on_http_filter_response_headers_status_StopIteration = 1,
  envoy_dynamic_module_type_on_http_filter_response_headers_status_ContinueAndDontEndStream = 2,
  envoy_dynamic_module_type_on_http_filter_response_headers_status_StopAllIterationAndBuffer = 3,
  envoy_dynamic_module_type_on_http_filter_response_headers_status_StopAllIterationAndWatermark = 4,
} envoy_dynamic_module_type_on_http_filter_response_headers_status;

typedef enum envoy_dynamic_module_type_on_http_filter_response_body_status {
  envoy_dynamic_module_type_on_http_filter_response_body_status_Continue = 0,
  envoy_dynamic_module_type_on_http_filter_response_body_status_StopIterationAndBuffer = 1,
  envoy_dynamic_module_type_on_http_filter_response_body_status_StopIterationAndWatermark = 2,
  envoy_dynamic_module_type_on_http_filter_response_body_status_StopIterationNoBuffer = 3,
} envoy_dynamic_module_type_on_http_filter_response_body_status;

typedef enum envoy_dynamic_module_type_on_http_filter_response_trailers_status {
  envoy_dynamic_module_type_on_http_filter_response_trailers_status_Continue = 0,
  envoy_dynamic_module_type_on_http_filter_response_trailers_status_StopIteration = 1,
} envoy_dynamic_module_type_on_http_filter_response_trailers_status;

// ---- hooks the module exports -----------------------------------------------------------------
// Envoy 1.38 refuses a module that lacks any of these when it is used as an HTTP filter
// (on_program_init when it loads the module; the per-route pair when a route configures it).

// Main thread, once, when the object is loaded. Returns the ABI version; nullptr unloads it.
envoy_dynamic_module_type_abi_version_module_ptr envoy_dynamic_module_on_program_init(void);

// Main thread, once per filter config. nullptr rejects the config.
envoy_dynamic_module_type_http_filter_config_module_ptr envoy_dynamic_module_on_http_filter_config_new(
    envoy_dynamic_module_type_http_filter_config_envoy_ptr filter_config_envoy_ptr,
    envoy_dynamic_module_type_envoy_buffer name, envoy_dynamic_module_type_envoy_buffer config);

// When the last user of the config is gone (the main thread or a worker).
void envoy_dynamic_module_on_http_filter_config_destroy(
    envoy_dynamic_module_type_http_filter_config_module_ptr filter_config_ptr);

// Main thread, once per route that configures the filter. nullptr rejects the route config.
envoy_dynamic_module_type_http_filter_per_route_config_module_ptr
envoy_dynamic_module_on_http_filter_per_route_config_new(envoy_dynamic_module_type_envoy_buffer name,
                                                         envoy_dynamic_module_type_envoy_buffer config);

void envoy_dynamic_module_on_http_filter_per_route_config_destroy(
    envoy_dynamic_module_type_http_filter_per_route_config_module_ptr filter_config_ptr);

// A worker, once per HTTP stream. Every later hook of that stream runs on the same worker.
envoy_dynamic_module_type_http_filter_module_ptr envoy_dynamic_module_on_http_filter_new(
    envoy_dynamic_module_type_http_filter_config_module_ptr filter_config_ptr,
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr);

envoy_dynamic_module_type_on_http_filter_request_headers_status envoy_dynamic_module_on_http_filter_request_headers(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr,
    envoy_dynamic_module_type_http_filter_module_ptr filter_module_ptr, bool end_of_stream);

envoy_dynamic_module_type_on_http_filter_request_body_status envoy_dynamic_module_on_http_filter_request_body(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr,
    envoy_dynamic_module_type_http_filter_module_ptr filter_module_ptr, bool end_of_stream);

envoy_dynamic_module_type_on_http_filter_request_trailers_status envoy_dynamic_module_on_http_filter_request_trailers(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr,
    envoy_dynamic_module_type_http_filter_module_ptr filter_module_ptr);

envoy_dynamic_module_type_on_http_filter_response_headers_status envoy_dynamic_module_on_http_filter_response_headers(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr,
    envoy_dynamic_module_type_http_filter_module_ptr filter_module_ptr, bool end_of_stream);

envoy_dynamic_module_type_on_http_filter_response_body_status envoy_dynamic_module_on_http_filter_response_body(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr,
    envoy_dynamic_module_type_http_filter_module_ptr filter_module_ptr, bool end_of_stream);

envoy_dynamic_module_type_on_http_filter_response_trailers_status envoy_dynamic_module_on_http_filter_response_trailers(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr,
    envoy_dynamic_module_type_http_filter_module_ptr filter_module_ptr);

// Before access logs; Envoy calls it for reset streams too, then on_http_filter_destroy.
void envoy_dynamic_module_on_http_filter_stream_complete(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr,
    envoy_dynamic_module_type_http_filter_module_ptr filter_module_ptr);

void envoy_dynamic_module_on_http_filter_destroy(envoy_dynamic_module_type_http_filter_module_ptr filter_module_ptr);

// A callout started with ..._http_filter_http_callout finished. headers/body_chunks are null
// (sizes 0) unless result is Success.
void envoy_dynamic_module_on_http_filter_http_callout_done(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr,
    envoy_dynamic_module_type_http_filter_module_ptr filter_module_ptr, uint64_t callout_id,
    envoy_dynamic_module_type_http_callout_result result, envoy_dynamic_module_type_envoy_http_header* headers,
    size_t headers_size, envoy_dynamic_module_type_envoy_buffer* body_chunks, size_t body_chunks_size);

// Streaming callouts: required symbols; envoy-js starts none, so they never run.
void envoy_dynamic_module_on_http_filter_http_stream_headers(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr,
    envoy_dynamic_module_type_http_filter_module_ptr filter_module_ptr, uint64_t stream_id,
    envoy_dynamic_module_type_envoy_http_header* headers, size_t headers_size, bool end_stream);

void envoy_dynamic_module_on_http_filter_http_stream_data(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr,
    envoy_dynamic_module_type_http_filter_module_ptr filter_module_ptr, uint64_t stream_id,
    const envoy_dynamic_module_type_envoy_buffer* data, size_t data_count, bool end_stream);

void envoy_dynamic_module_on_http_filter_http_stream_trailers(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr,
    envoy_dynamic_module_type_http_filter_module_ptr filter_module_ptr, uint64_t stream_id,
    envoy_dynamic_module_type_envoy_http_header* trailers, size_t trailers_size);

void envoy_dynamic_module_on_http_filter_http_stream_complete(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr,
    envoy_dynamic_module_type_http_filter_module_ptr filter_module_ptr, uint64_t stream_id);

void envoy_dynamic_module_on_http_filter_http_stream_reset(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr,
    envoy_dynamic_module_type_http_filter_module_ptr filter_module_ptr, uint64_t stream_id,
    envoy_dynamic_module_type_http_stream_reset_reason reason);

// On the stream's worker, for each ..._scheduler_commit(event_id); never after destroy.
void envoy_dynamic_module_on_http_filter_scheduled(envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr,
                                                   envoy_dynamic_module_type_http_filter_module_ptr filter_module_ptr,
                                                   uint64_t event_id);

// Downstream flow control for terminal filters; envoy-js is not one.
void envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr,
    envoy_dynamic_module_type_http_filter_module_ptr filter_module_ptr);

void envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr,
    envoy_dynamic_module_type_http_filter_module_ptr filter_module_ptr);

// ---- callbacks Envoy exports ------------------------------------------------------------------

// Logging, under Envoy's "dynamic_modules" logger.
void envoy_dynamic_module_callback_log(envoy_dynamic_module_type_log_level level,
                                       envoy_dynamic_module_type_module_buffer message);

// Metrics: defined only inside on_http_filter_config_new (afterwards: Frozen).
envoy_dynamic_module_type_metrics_result envoy_dynamic_module_callback_http_filter_config_define_counter(
    envoy_dynamic_module_type_http_filter_config_envoy_ptr filter_config_envoy_ptr,
    envoy_dynamic_module_type_module_buffer name, envoy_dynamic_module_type_module_buffer* label_names,
    size_t label_names_length, size_t* counter_id_ptr);

envoy_dynamic_module_type_metrics_result envoy_dynamic_module_callback_http_filter_config_define_gauge(
    envoy_dynamic_module_type_http_filter_config_envoy_ptr filter_config_envoy_ptr,
    envoy_dynamic_module_type_module_buffer name, envoy_dynamic_module_type_module_buffer* label_names,
    size_t label_names_length, size_t* gauge_id_ptr);

envoy_dynamic_module_type_metrics_result envoy_dynamic_module_callback_http_filter_config_define_histogram(
    envoy_dynamic_module_type_http_filter_config_envoy_ptr filter_config_envoy_ptr,
    envoy_dynamic_module_type_module_buffer name, envoy_dynamic_module_type_module_buffer* label_names,
    size_t label_names_length, size_t* histogram_id_ptr);

envoy_dynamic_module_type_metrics_result envoy_dynamic_module_callback_http_filter_increment_counter(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr, size_t id,
    envoy_dynamic_module_type_module_buffer* label_values, size_t label_values_length, uint64_t value);

// A gauge is one value for the whole process, shared by every worker and by every filter
// config that defines the same name.
envoy_dynamic_module_type_metrics_result envoy_dynamic_module_callback_http_filter_set_gauge(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr, size_t id,
    envoy_dynamic_module_type_module_buffer* label_values, size_t label_values_length, uint64_t value);

envoy_dynamic_module_type_metrics_result envoy_dynamic_module_callback_http_filter_record_histogram_value(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr, size_t id,
    envoy_dynamic_module_type_module_buffer* label_values, size_t label_values_length, uint64_t value);

// Header maps. Envoy lower-cases the names it is given. get_header stores the index-th value
// and the number of values (optional_size may be null); false when absent or out of range.
bool envoy_dynamic_module_callback_http_get_header(envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr,
                                                   envoy_dynamic_module_type_http_header_type header_type,
                                                   envoy_dynamic_module_type_module_buffer key,
                                                   envoy_dynamic_module_type_envoy_buffer* result_buffer, size_t index,
                                                   size_t* optional_size);

size_t envoy_dynamic_module_callback_http_get_headers_size(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr,
    envoy_dynamic_module_type_http_header_type header_type);

// result_headers must hold get_headers_size entries; false when the map does not exist.
bool envoy_dynamic_module_callback_http_get_headers(envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr,
                                                    envoy_dynamic_module_type_http_header_type header_type,
                                                    envoy_dynamic_module_type_envoy_http_header* result_headers);

// Adds one value. An empty value adds nothing (returns false).
bool envoy_dynamic_module_callback_http_add_header(envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr,
                                                   envoy_dynamic_module_type_http_header_type header_type,
                                                   envoy_dynamic_module_type_module_buffer key,
                                                   envoy_dynamic_module_type_module_buffer value);

// Replaces every value with one. An empty (or null) value removes the header.
bool envoy_dynamic_module_callback_http_set_header(envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr,
                                                   envoy_dynamic_module_type_http_header_type header_type,
                                                   envoy_dynamic_module_type_module_buffer key,
                                                   envoy_dynamic_module_type_module_buffer value);

// sendLocalReply(status, body, headers added, details); empty details become "dynamic_module".
void envoy_dynamic_module_callback_http_send_response(envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr,
                                                      uint32_t status_code,
                                                      envoy_dynamic_module_type_module_http_header* headers_vector,
                                                      size_t headers_vector_size,
                                                      envoy_dynamic_module_type_module_buffer body,
                                                      envoy_dynamic_module_type_module_buffer details);

// Bodies: Received* is the data of the running body hook only; Buffered* is what Envoy holds
// for this filter (decodingBuffer/encodingBuffer), absent until something was buffered.
size_t envoy_dynamic_module_callback_http_get_body_size(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr,
    envoy_dynamic_module_type_http_body_type body_type);

size_t envoy_dynamic_module_callback_http_get_body_chunks_size(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr,
    envoy_dynamic_module_type_http_body_type body_type);

bool envoy_dynamic_module_callback_http_get_body_chunks(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr,
    envoy_dynamic_module_type_http_body_type body_type, envoy_dynamic_module_type_envoy_buffer* result_buffer_vector);

bool envoy_dynamic_module_callback_http_append_body(envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr,
                                                    envoy_dynamic_module_type_http_body_type body_type,
                                                    envoy_dynamic_module_type_module_buffer data);

bool envoy_dynamic_module_callback_http_drain_body(envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr,
                                                   envoy_dynamic_module_type_http_body_type body_type,
                                                   size_t number_of_bytes);

// True when the data of the running body hook is the buffered body itself (an earlier filter
// buffered it and continued).
bool envoy_dynamic_module_callback_http_received_buffered_request_body(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr);

bool envoy_dynamic_module_callback_http_received_buffered_response_body(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr);

// Dynamic metadata: typed scalar values under a filter namespace.
void envoy_dynamic_module_callback_http_set_dynamic_metadata_number(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr, envoy_dynamic_module_type_module_buffer ns,
    envoy_dynamic_module_type_module_buffer key, double value);

void envoy_dynamic_module_callback_http_set_dynamic_metadata_string(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr, envoy_dynamic_module_type_module_buffer ns,
    envoy_dynamic_module_type_module_buffer key, envoy_dynamic_module_type_module_buffer value);

void envoy_dynamic_module_callback_http_set_dynamic_metadata_bool(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr, envoy_dynamic_module_type_module_buffer ns,
    envoy_dynamic_module_type_module_buffer key, bool value);

bool envoy_dynamic_module_callback_http_get_metadata_number(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr,
    envoy_dynamic_module_type_metadata_source metadata_source, envoy_dynamic_module_type_module_buffer ns,
    envoy_dynamic_module_type_module_buffer key, double* result);

bool envoy_dynamic_module_callback_http_get_metadata_string(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr,
    envoy_dynamic_module_type_metadata_source metadata_source, envoy_dynamic_module_type_module_buffer ns,
    envoy_dynamic_module_type_module_buffer key, envoy_dynamic_module_type_envoy_buffer* result);

bool envoy_dynamic_module_callback_http_get_metadata_bool(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr,
    envoy_dynamic_module_type_metadata_source metadata_source, envoy_dynamic_module_type_module_buffer ns,
    envoy_dynamic_module_type_module_buffer key, bool* result);

// Filter state as string values. Envoy stores them read-only: a key is set once.
bool envoy_dynamic_module_callback_http_set_filter_state_bytes(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr, envoy_dynamic_module_type_module_buffer key,
    envoy_dynamic_module_type_module_buffer value);

bool envoy_dynamic_module_callback_http_get_filter_state_bytes(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr, envoy_dynamic_module_type_module_buffer key,
    envoy_dynamic_module_type_envoy_buffer* result);

// Scheduler: commit may be called from any thread; Envoy posts on_http_filter_scheduled to the
// stream's worker (dropped once the filter is destroyed).
envoy_dynamic_module_type_http_filter_scheduler_module_ptr envoy_dynamic_module_callback_http_filter_scheduler_new(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr);

void envoy_dynamic_module_callback_http_filter_scheduler_commit(
    envoy_dynamic_module_type_http_filter_scheduler_module_ptr scheduler_module_ptr, uint64_t event_id);

void envoy_dynamic_module_callback_http_filter_scheduler_delete(
    envoy_dynamic_module_type_http_filter_scheduler_module_ptr scheduler_module_ptr);

void envoy_dynamic_module_callback_http_clear_route_cache(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr);

bool envoy_dynamic_module_callback_http_filter_get_attribute_string(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr,
    envoy_dynamic_module_type_attribute_id attribute_id, envoy_dynamic_module_type_envoy_buffer* result);

bool envoy_dynamic_module_callback_http_filter_get_attribute_int(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr,
    envoy_dynamic_module_type_attribute_id attribute_id, uint64_t* result);

// The cluster of the route the request is on; false before a route is chosen or without one.
bool envoy_dynamic_module_callback_http_get_cluster_name(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr, envoy_dynamic_module_type_envoy_buffer* result);

// One-shot callout. headers must include :method, :path and :authority; Envoy chooses the id.
envoy_dynamic_module_type_http_callout_init_result envoy_dynamic_module_callback_http_filter_http_callout(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr, uint64_t* callout_id_out,
    envoy_dynamic_module_type_module_buffer cluster_name, envoy_dynamic_module_type_module_http_header* headers,
    size_t headers_size, envoy_dynamic_module_type_module_buffer body, uint64_t timeout_milliseconds);

// continueDecoding()/continueEncoding(); no-ops unless the last hook stopped iteration.
void envoy_dynamic_module_callback_http_filter_continue_decoding(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr);

void envoy_dynamic_module_callback_http_filter_continue_encoding(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr);

// The per-route config (from on_http_filter_per_route_config_new) of the stream's route, or null.
envoy_dynamic_module_type_http_filter_per_route_config_module_ptr
envoy_dynamic_module_callback_get_most_specific_route_config(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr);

uint32_t envoy_dynamic_module_callback_http_filter_get_worker_index(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr);

// The stream's buffer limit (0: none); Envoy answers 413/500 itself when it is exceeded.
uint64_t envoy_dynamic_module_callback_http_get_buffer_limit(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr);

void envoy_dynamic_module_callback_http_set_buffer_limit(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr, uint64_t limit);

// LoadBalancerContext::overrideHostToSelect: Envoy refuses (false) a host that is not an IP
// address with an optional port. In every pinned version (1.38 on).
bool envoy_dynamic_module_callback_http_set_upstream_override_host(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr, envoy_dynamic_module_type_module_buffer host,
    bool strict);

void envoy_dynamic_module_callback_http_filter_reset_stream(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr,
    envoy_dynamic_module_type_http_filter_stream_reset_reason reason, envoy_dynamic_module_type_module_buffer details);

// ---- the filter config's own work, on Envoy's main thread (envoy_ext/module/background.cc) ----
// Exported by 1.38.3, 1.39.x and 1.40.0 alike; the module still resolves them with dlsym when it
// loads (gBackgroundAbi), so that a host without them (the ABI host stub) loads it and only a
// filter with `background` is refused there. Hence function pointer types, not declarations.

// Envoy posts on_http_filter_config_scheduled(event_id) to the main thread; commit may be called
// from any thread. Events after the config is destroyed are dropped.
typedef envoy_dynamic_module_type_http_filter_config_scheduler_module_ptr (
    *envoy_js_http_filter_config_scheduler_new_fn)(envoy_dynamic_module_type_http_filter_config_envoy_ptr);
typedef void (*envoy_js_http_filter_config_scheduler_commit_fn)(
    envoy_dynamic_module_type_http_filter_config_scheduler_module_ptr, uint64_t event_id);
typedef void (*envoy_js_http_filter_config_scheduler_delete_fn)(
    envoy_dynamic_module_type_http_filter_config_scheduler_module_ptr);
// A callout owned by the filter config (main thread): on_http_filter_config_http_callout_done
// answers it. Same arguments as ..._http_filter_http_callout, with the config for the filter.
typedef envoy_dynamic_module_type_http_callout_init_result (*envoy_js_http_filter_config_http_callout_fn)(
    envoy_dynamic_module_type_http_filter_config_envoy_ptr, uint64_t* callout_id_out,
    envoy_dynamic_module_type_module_buffer cluster_name, envoy_dynamic_module_type_module_http_header* headers,
    size_t headers_size, envoy_dynamic_module_type_module_buffer body, uint64_t timeout_milliseconds);

// Optional hooks: Envoy looks them up and calls them only when the module exports them.
void envoy_dynamic_module_on_http_filter_config_scheduled(
    envoy_dynamic_module_type_http_filter_config_envoy_ptr filter_config_envoy_ptr,
    envoy_dynamic_module_type_http_filter_config_module_ptr filter_config_ptr, uint64_t event_id);

void envoy_dynamic_module_on_http_filter_config_http_callout_done(
    envoy_dynamic_module_type_http_filter_config_envoy_ptr filter_config_envoy_ptr,
    envoy_dynamic_module_type_http_filter_config_module_ptr filter_config_ptr, uint64_t callout_id,
    envoy_dynamic_module_type_http_callout_result result, envoy_dynamic_module_type_envoy_http_header* headers,
    size_t headers_size, envoy_dynamic_module_type_envoy_buffer* body_chunks, size_t body_chunks_size);

#ifdef __cplusplus
}  // extern "C"
#endif
