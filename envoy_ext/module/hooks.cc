// libenvoy_js.so: envoy-js as an Envoy dynamic module (DESIGN.md sections 1, 4 and 8). A thin
// adapter: the exported envoy_dynamic_module_on_* hooks drive runtime/ (FilterProgram, Engine,
// Stream), and runtime/host.h's StreamHost and EngineHost are implemented with Envoy's
// envoy_dynamic_module_callback_* functions, which stay undefined here and resolve from Envoy
// when it loads the module.
//
// Files, one per job:
//   hooks.cc          the exported hooks (this file): Envoy's calls into the module
//   config.cc         the filter config (compiled once, metrics defined) and the per-route config
//   worker.cc         one engine per worker thread and config (EngineHost), timer routing
//   background.cc     the config's `background` engine on the main thread (BackgroundHost)
//   stream.cc         ModuleStream: the runtime's StreamHost over the ABI's callbacks
//   clock.cc          the module's clock and timer thread (host_clock.h)
//   abi_util.cc       buffers in and out of Envoy, Envoy's logger
//
// Threads and lifetimes:
//  - on_http_filter_config_new runs on Envoy's main thread: the runtime reads the JSON
//    filter_config (runtime/config_text.h), the bundle is compiled once (a FilterProgram shared
//    by every worker), setup() is tried once, and the metrics are defined (Envoy allows that
//    only there).
//  - A worker creates its engine for a config on its first stream (a thread_local map keyed by
//    config). Every hook of a stream runs on that stream's worker; so does everything the
//    engine does, because the only ways into it are hooks.
//  - A stream is resumed by committing a scheduler event, never from inside Envoy's callback:
//    on_http_filter_scheduled then calls continue_decoding/continue_encoding.
//  - On its own the module makes ABI calls for a stream only inside that stream's hooks, with
//    one exception by design: scheduler_commit, which Envoy allows from any thread (a post).
//    JS of a stream may run inside another stream's hook (a promise both await, a
//    worker-level timer): the runtime defers that stream's continue, local reply and reset
//    to its own on_http_filter_scheduled; its header, body and metadata writes and callouts
//    touch only its own filter object, on the same worker, while its filter manager is idle
//    (Envoy accepts that: test/envoy/cross_stream.test.mjs).
//  - Envoy has no timer callback. Timers (setTimeout, callout deadlines) are armed on a clock
//    owned by the module (host_clock.h): its thread commits a scheduler event when one is due,
//    to the stream that started it or, for worker-level timers, to any live stream of that
//    worker (kept until the next stream when there is none).
//  - One mutex (Globals::mutex) guards what the clock thread touches: timer routes, the live
//    streams of each worker and their schedulers.
//  - A JS gauge has a share per worker engine; Envoy keeps one value per name, which the
//    runtime computes (the sum over the live engines, runtime/process_state.h) and the module
//    sets.
//
// Log lines (Envoy's dynamic_modules logger), one format so that they can be told apart:
//    envoy_js(<filter_name>): <message>                          the engine (setup, jobs, ...)
//    envoy_js(<filter_name>) stream <request id>: <message>      ctx.log / console of a stream
//    envoy_js(<filter_name>) stream <request id> failed: <why>   (debug) why a stream failed
#include <dlfcn.h>

#include <iterator>
#include <string>
#include <unordered_set>

#include "abi.h"
#include "abi_util.h"
#include "background.h"
#include "clock.h"
#include "config.h"
#include "stream.h"
#include "worker.h"

#define ENVOY_JS_EXPORT extern "C" __attribute__((visibility("default")))

using namespace envoy_js;
using namespace envoy_js::module;

namespace {

ModuleStream* streamOf(envoy_dynamic_module_type_http_filter_module_ptr p) {
  return const_cast<ModuleStream*>(static_cast<const ModuleStream*>(p));
}

// Configs whose background engine runs (main thread only: config_new, config_destroy and the
// config-level hooks all run there).
std::unordered_set<const FilterConfig*> gBackgroundConfigs;

// The background engine counted on the main thread, where no filter exists to count through:
// the config's next stream on any worker adds it.
void flushBackgroundCounts(ConfigShared& config, envoy_dynamic_module_type_http_filter_envoy_ptr filter) {
  for (size_t i = 0; i < std::size(kEngineCounters); i++) {
    if (config.backgroundCounts[i].load(std::memory_order_relaxed) == 0) continue;
    uint64_t n = config.backgroundCounts[i].exchange(0);
    auto it = config.counterIds.find(kEngineCounters[i]);
    if (n > 0 && it != config.counterIds.end()) {
      envoy_dynamic_module_callback_http_filter_increment_counter(filter, it->second, nullptr, 0, n);
    }
  }
}

bool failClosed(ModuleStream* s) {
  return s->worker()->config().program->settings().failureMode == FailureMode::Closed;
}

}  // namespace

// ---- hooks ------------------------------------------------------------------------------------

ENVOY_JS_EXPORT envoy_dynamic_module_type_abi_version_module_ptr envoy_dynamic_module_on_program_init(void) {
  if (g.clock == nullptr) g.clock = newClock();
  gSingleContinueFlag = dlsym(RTLD_DEFAULT, "envoy_dynamic_module_callback_http_get_header_values") == nullptr;
  gVirtualHostAttribute =
      dlsym(RTLD_DEFAULT, "envoy_dynamic_module_callback_http_get_upstream_remote_address") != nullptr;
  // The config-level scheduler and callout of `background` (background.h).
  gBackgroundAbi.schedulerNew = reinterpret_cast<envoy_js_http_filter_config_scheduler_new_fn>(
      dlsym(RTLD_DEFAULT, "envoy_dynamic_module_callback_http_filter_config_scheduler_new"));
  gBackgroundAbi.schedulerCommit = reinterpret_cast<envoy_js_http_filter_config_scheduler_commit_fn>(
      dlsym(RTLD_DEFAULT, "envoy_dynamic_module_callback_http_filter_config_scheduler_commit"));
  gBackgroundAbi.schedulerDelete = reinterpret_cast<envoy_js_http_filter_config_scheduler_delete_fn>(
      dlsym(RTLD_DEFAULT, "envoy_dynamic_module_callback_http_filter_config_scheduler_delete"));
  gBackgroundAbi.httpCallout = reinterpret_cast<envoy_js_http_filter_config_http_callout_fn>(
      dlsym(RTLD_DEFAULT, "envoy_dynamic_module_callback_http_filter_config_http_callout"));
  return ENVOY_JS_DYNAMIC_MODULES_ABI_VERSION;
}

ENVOY_JS_EXPORT envoy_dynamic_module_type_http_filter_config_module_ptr envoy_dynamic_module_on_http_filter_config_new(
    envoy_dynamic_module_type_http_filter_config_envoy_ptr filter_config_envoy_ptr,
    envoy_dynamic_module_type_envoy_buffer name, envoy_dynamic_module_type_envoy_buffer config) {
  std::string error;
  std::string filterName(view(name));
  FilterConfig* c = newFilterConfig(filter_config_envoy_ptr, filterName, view(config), &error);
  if (c == nullptr) logLine(LogLevel::Error, "envoy_js(" + filterName + "): filter_config rejected: " + error);
  if (c != nullptr && c->background) gBackgroundConfigs.insert(c);
  return c;
}

ENVOY_JS_EXPORT void envoy_dynamic_module_on_http_filter_config_destroy(
    envoy_dynamic_module_type_http_filter_config_module_ptr filter_config_ptr) {
  auto* c = const_cast<FilterConfig*>(static_cast<const FilterConfig*>(filter_config_ptr));
  c->shared->alive = false;  // workers drop their engine for it at their next stream
  if (c->background) {
    gBackgroundConfigs.erase(c);
    // Envoy may cancel a destroyed config's callouts (its newer sources do), but one that does not may still
    // answer them with this pointer: the object stays allocated, so that the address never
    // names a newer config. Only the object: its engine, timers and scheduler go, and so does
    // its hold on the program (the bundle, its bytecode and source map), which the workers'
    // engines of the dropped config release too.
    if (c->background->calloutsInFlight()) {
      c->background.reset();
      c->shared.reset();
      return;
    }
  }
  delete c;
}

ENVOY_JS_EXPORT envoy_dynamic_module_type_http_filter_per_route_config_module_ptr
envoy_dynamic_module_on_http_filter_per_route_config_new(envoy_dynamic_module_type_envoy_buffer name,
                                                         envoy_dynamic_module_type_envoy_buffer config) {
  std::string error;
  RouteConfig* rc = newRouteConfig(view(config), &error);
  if (rc == nullptr)
    logLine(LogLevel::Error, "envoy_js(" + std::string(view(name)) + "): per-route filter_config rejected: " + error);
  return rc;
}

ENVOY_JS_EXPORT void envoy_dynamic_module_on_http_filter_per_route_config_destroy(
    envoy_dynamic_module_type_http_filter_per_route_config_module_ptr filter_config_ptr) {
  delete static_cast<const RouteConfig*>(filter_config_ptr);
}

// The config-level hooks of `background` (background.h), on the main thread. Only configs with
// a live background engine are answered: anything else is a config already destroyed.
ENVOY_JS_EXPORT void envoy_dynamic_module_on_http_filter_config_scheduled(
    envoy_dynamic_module_type_http_filter_config_envoy_ptr,
    envoy_dynamic_module_type_http_filter_config_module_ptr filter_config_ptr, uint64_t event_id) {
  auto* c = const_cast<FilterConfig*>(static_cast<const FilterConfig*>(filter_config_ptr));
  if (gBackgroundConfigs.count(c) == 0) return;
  c->background->onScheduled(event_id);
}

ENVOY_JS_EXPORT void envoy_dynamic_module_on_http_filter_config_http_callout_done(
    envoy_dynamic_module_type_http_filter_config_envoy_ptr,
    envoy_dynamic_module_type_http_filter_config_module_ptr filter_config_ptr, uint64_t callout_id,
    envoy_dynamic_module_type_http_callout_result result, envoy_dynamic_module_type_envoy_http_header* headers,
    size_t headers_size, envoy_dynamic_module_type_envoy_buffer* body_chunks, size_t body_chunks_size) {
  auto* c = const_cast<FilterConfig*>(static_cast<const FilterConfig*>(filter_config_ptr));
  if (gBackgroundConfigs.count(c) == 0) return;
  c->background->calloutDone(callout_id, result, headers, headers_size, body_chunks, body_chunks_size);
}

ENVOY_JS_EXPORT envoy_dynamic_module_type_http_filter_module_ptr
envoy_dynamic_module_on_http_filter_new(envoy_dynamic_module_type_http_filter_config_module_ptr filter_config_ptr,
                                        envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr) {
  const auto* config = static_cast<const FilterConfig*>(filter_config_ptr);
  WorkerEngine* w = workerFor(config->shared, filter_envoy_ptr);
  publishLiveEngines(*config->shared, filter_envoy_ptr);
  auto* s = new ModuleStream(w, filter_envoy_ptr);
  if (config->shared->program->hasBackground()) flushBackgroundCounts(*config->shared, filter_envoy_ptr);
  if (w->engine() != nullptr) {
    HookScope scope(w, filter_envoy_ptr, s);
    s->attach(w->engine()->newStream(*s));
    registerStream(s);
  }
  return s;
}

namespace {

// Runs a hook of a live stream. Envoy may destroy the stream inside our own calls (a local
// reply or a continue ends it synchronously): the ModuleStream then outlives the hook.
template <typename Status, typename Fn>
Status run(envoy_dynamic_module_type_http_filter_envoy_ptr filter, envoy_dynamic_module_type_http_filter_module_ptr p,
           Status whenGone, Fn fn) {
  ModuleStream* s = streamOf(p);
  if (s == nullptr || s->stream() == nullptr || s->destroyed()) return whenGone;
  s->enter();
  Status r;
  {
    HookScope scope(s->worker(), filter, s);
    r = fn(s, s->stream());
  }
  if (s->leave()) delete s;
  return r;
}

}  // namespace

ENVOY_JS_EXPORT envoy_dynamic_module_type_on_http_filter_request_headers_status
envoy_dynamic_module_on_http_filter_request_headers(envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr,
                                                    envoy_dynamic_module_type_http_filter_module_ptr filter_module_ptr,
                                                    bool end_of_stream) {
  ModuleStream* s = streamOf(filter_module_ptr);
  if (s != nullptr && s->stream() == nullptr) {
    // The worker's engine did not start (logged when it failed): apply the failure policy.
    if (!failClosed(s)) return envoy_dynamic_module_type_on_http_filter_request_headers_status_Continue;
    envoy_dynamic_module_callback_http_send_response(filter_envoy_ptr, 500, nullptr, 0, buf(""),
                                                     buf("envoy_js_engine_unavailable"));
    return envoy_dynamic_module_type_on_http_filter_request_headers_status_StopIteration;
  }
  return run(filter_envoy_ptr, filter_module_ptr,
             envoy_dynamic_module_type_on_http_filter_request_headers_status_Continue,
             [&](ModuleStream* s, Stream* st) {
               s->seenHeaders(Direction::Request);
               s->raiseBufferLimit(s->worker()->engine()->settings().bufferLimitBytes);
               return static_cast<envoy_dynamic_module_type_on_http_filter_request_headers_status>(
                   st->onRequestHeaders(end_of_stream));
             });
}

ENVOY_JS_EXPORT envoy_dynamic_module_type_on_http_filter_request_body_status
envoy_dynamic_module_on_http_filter_request_body(envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr,
                                                 envoy_dynamic_module_type_http_filter_module_ptr filter_module_ptr,
                                                 bool end_of_stream) {
  return run(filter_envoy_ptr, filter_module_ptr, envoy_dynamic_module_type_on_http_filter_request_body_status_Continue,
             [&](ModuleStream* s, Stream* st) {
               s->enterData(Direction::Request);
               auto r = st->onRequestData(end_of_stream);
               s->leaveData(Direction::Request);
               return static_cast<envoy_dynamic_module_type_on_http_filter_request_body_status>(r);
             });
}

ENVOY_JS_EXPORT envoy_dynamic_module_type_on_http_filter_request_trailers_status
envoy_dynamic_module_on_http_filter_request_trailers(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr,
    envoy_dynamic_module_type_http_filter_module_ptr filter_module_ptr) {
  return run(
      filter_envoy_ptr, filter_module_ptr, envoy_dynamic_module_type_on_http_filter_request_trailers_status_Continue,
      [&](ModuleStream* s, Stream* st) {
        s->seenTrailers(Direction::Request);
        return static_cast<envoy_dynamic_module_type_on_http_filter_request_trailers_status>(st->onRequestTrailers());
      });
}

ENVOY_JS_EXPORT envoy_dynamic_module_type_on_http_filter_response_headers_status
envoy_dynamic_module_on_http_filter_response_headers(envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr,
                                                     envoy_dynamic_module_type_http_filter_module_ptr filter_module_ptr,
                                                     bool end_of_stream) {
  return run(filter_envoy_ptr, filter_module_ptr,
             envoy_dynamic_module_type_on_http_filter_response_headers_status_Continue,
             [&](ModuleStream* s, Stream* st) {
               s->seenHeaders(Direction::Response);
               auto r = st->onResponseHeaders(end_of_stream);
               s->encodeReturned(r != HeadersStatus::Continue, end_of_stream);
               return static_cast<envoy_dynamic_module_type_on_http_filter_response_headers_status>(r);
             });
}

ENVOY_JS_EXPORT envoy_dynamic_module_type_on_http_filter_response_body_status
envoy_dynamic_module_on_http_filter_response_body(envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr,
                                                  envoy_dynamic_module_type_http_filter_module_ptr filter_module_ptr,
                                                  bool end_of_stream) {
  return run(filter_envoy_ptr, filter_module_ptr,
             envoy_dynamic_module_type_on_http_filter_response_body_status_Continue, [&](ModuleStream* s, Stream* st) {
               s->enterData(Direction::Response);
               auto r = st->onResponseData(end_of_stream);
               s->leaveData(Direction::Response);
               s->encodeReturned(r != DataStatus::Continue, end_of_stream);
               return static_cast<envoy_dynamic_module_type_on_http_filter_response_body_status>(r);
             });
}

ENVOY_JS_EXPORT envoy_dynamic_module_type_on_http_filter_response_trailers_status
envoy_dynamic_module_on_http_filter_response_trailers(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr,
    envoy_dynamic_module_type_http_filter_module_ptr filter_module_ptr) {
  return run(filter_envoy_ptr, filter_module_ptr,
             envoy_dynamic_module_type_on_http_filter_response_trailers_status_Continue,
             [&](ModuleStream* s, Stream* st) {
               s->seenTrailers(Direction::Response);
               auto r = st->onResponseTrailers();
               s->encodeReturned(r != TrailersStatus::Continue, true);
               return static_cast<envoy_dynamic_module_type_on_http_filter_response_trailers_status>(r);
             });
}

ENVOY_JS_EXPORT void envoy_dynamic_module_on_http_filter_stream_complete(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr,
    envoy_dynamic_module_type_http_filter_module_ptr filter_module_ptr) {
  // Envoy calls this for every stream, reset ones included, before its access log: onDone runs
  // here, while the filter can still reach Envoy (the ABI forbids that in destroy) and what it
  // sets is still logged. Destroy then only frees.
  run(filter_envoy_ptr, filter_module_ptr, 0, [&](ModuleStream*, Stream* st) {
    st->onComplete();
    return 0;
  });
}

ENVOY_JS_EXPORT void envoy_dynamic_module_on_http_filter_destroy(
    envoy_dynamic_module_type_http_filter_module_ptr filter_module_ptr) {
  ModuleStream* s = streamOf(filter_module_ptr);
  if (s == nullptr) return;
  if (s->stream() != nullptr) {
    // The ABI forbids using filter_envoy_ptr here: no filter is current (metrics of an onDone
    // that only runs now, without a stream_complete before, are dropped).
    HookScope scope(s->worker(), nullptr, s);
    s->stream()->onDestroy();
    unregisterStream(s);
  }
  if (s->busy()) {
    s->markDestroyed();  // deleted when the hook that Envoy destroyed it from returns
    return;
  }
  delete s;
}

ENVOY_JS_EXPORT void envoy_dynamic_module_on_http_filter_http_callout_done(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr,
    envoy_dynamic_module_type_http_filter_module_ptr filter_module_ptr, uint64_t callout_id,
    envoy_dynamic_module_type_http_callout_result result, envoy_dynamic_module_type_envoy_http_header* headers,
    size_t headers_size, envoy_dynamic_module_type_envoy_buffer* body_chunks, size_t body_chunks_size) {
  run(filter_envoy_ptr, filter_module_ptr, 0, [&](ModuleStream* s, Stream*) {
    s->calloutDone(callout_id, result, headers, headers_size, body_chunks, body_chunks_size);
    return 0;
  });
}

ENVOY_JS_EXPORT void envoy_dynamic_module_on_http_filter_scheduled(
    envoy_dynamic_module_type_http_filter_envoy_ptr filter_envoy_ptr,
    envoy_dynamic_module_type_http_filter_module_ptr filter_module_ptr, uint64_t event_id) {
  run(filter_envoy_ptr, filter_module_ptr, 0, [&](ModuleStream* s, Stream*) {
    uint64_t key = event_id >> 2;
    switch (static_cast<EventKind>(event_id & 3)) {
      case kScheduled:
        s->scheduledRan();
        s->stream()->onScheduled();
        break;
      case kUnusedEvent: break;
      case kTimerDue: {
        uint64_t id = 0;
        if (s->worker()->takeTimer(key, &id)) s->worker()->engine()->fireTimer(id);
        break;
      }
      case kCalloutDeadline: s->calloutDeadline(key); break;
    }
    return 0;
  });
}

// Streaming callouts and downstream watermarks: required by Envoy, never used by envoy-js.
ENVOY_JS_EXPORT void envoy_dynamic_module_on_http_filter_http_stream_headers(
    envoy_dynamic_module_type_http_filter_envoy_ptr, envoy_dynamic_module_type_http_filter_module_ptr, uint64_t,
    envoy_dynamic_module_type_envoy_http_header*, size_t, bool) {}

ENVOY_JS_EXPORT void envoy_dynamic_module_on_http_filter_http_stream_data(
    envoy_dynamic_module_type_http_filter_envoy_ptr, envoy_dynamic_module_type_http_filter_module_ptr, uint64_t,
    const envoy_dynamic_module_type_envoy_buffer*, size_t, bool) {}

ENVOY_JS_EXPORT void envoy_dynamic_module_on_http_filter_http_stream_trailers(
    envoy_dynamic_module_type_http_filter_envoy_ptr, envoy_dynamic_module_type_http_filter_module_ptr, uint64_t,
    envoy_dynamic_module_type_envoy_http_header*, size_t) {}

ENVOY_JS_EXPORT void envoy_dynamic_module_on_http_filter_http_stream_complete(
    envoy_dynamic_module_type_http_filter_envoy_ptr, envoy_dynamic_module_type_http_filter_module_ptr, uint64_t) {}

ENVOY_JS_EXPORT void envoy_dynamic_module_on_http_filter_http_stream_reset(
    envoy_dynamic_module_type_http_filter_envoy_ptr, envoy_dynamic_module_type_http_filter_module_ptr, uint64_t,
    envoy_dynamic_module_type_http_stream_reset_reason) {}

ENVOY_JS_EXPORT void envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark(
    envoy_dynamic_module_type_http_filter_envoy_ptr, envoy_dynamic_module_type_http_filter_module_ptr) {}

ENVOY_JS_EXPORT void envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark(
    envoy_dynamic_module_type_http_filter_envoy_ptr, envoy_dynamic_module_type_http_filter_module_ptr) {}
