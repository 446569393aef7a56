// The hooks' `ctx`: config, worker, aborted, log, respond(), stream, property(), metadata,
// filterState, metrics, shared, clearRouteCache(), setUpstreamOverrideHost() and fetch(), with
// the classes behind them (Log, FilterState; Metric is in bind_metrics.cc, DynamicMetadata in
// bind_metadata.cc, Fetch* in fetch.cc).
#include <cctype>
#include <cmath>

#include "bind_util.h"
#include "process_state.h"

namespace envoy_js {
namespace {

// ---- Log (ctx.log) ---------------------------------------------------------------------------

// magic: LogLevel
JSValue js_log(JSContext* ctx, JSValueConst thisVal, int argc, JSValueConst* argv, int magic) {
  Engine::Impl* e = engineOf(ctx);
  StreamState* s = streamOf(ctx, thisVal, e->classes.log);
  if (!s) return JS_EXCEPTION;
  logTo(e, s, static_cast<LogLevel>(magic), formatArgs(ctx, argc, argv));
  return JS_UNDEFINED;
}

const JSCFunctionListEntry kLogProto[] = {
    JS_CFUNC_MAGIC_DEF("trace", 1, js_log, static_cast<int>(LogLevel::Trace)),
    JS_CFUNC_MAGIC_DEF("debug", 1, js_log, static_cast<int>(LogLevel::Debug)),
    JS_CFUNC_MAGIC_DEF("info", 1, js_log, static_cast<int>(LogLevel::Info)),
    JS_CFUNC_MAGIC_DEF("warn", 1, js_log, static_cast<int>(LogLevel::Warn)),
    JS_CFUNC_MAGIC_DEF("error", 1, js_log, static_cast<int>(LogLevel::Error)),
};

// ---- Context ---------------------------------------------------------------------------------

StreamState* contextThis(JSContext* ctx, JSValueConst thisVal) {
  return streamOf(ctx, thisVal, engineOf(ctx)->classes.context);
}

JSValue js_ctx_config(JSContext* ctx, JSValueConst thisVal) {
  StreamState* s = contextThis(ctx, thisVal);
  if (!s) return JS_EXCEPTION;
  if (s->routeStale && s->host != nullptr) {
    // The route cache was cleared: Envoy picks the route again from the headers as they are
    // now, and ctx.config follows that route's per-route config.
    std::string error;
    if (!streamRereadRoute(s, &error)) return JS_ThrowTypeError(ctx, "ctx.config: %s", error.c_str());
  }
  if (!JS_IsUndefined(s->routeConfig)) return JS_DupValue(ctx, s->routeConfig);
  return JS_DupValue(ctx, engineOf(ctx)->config);
}

JSValue js_ctx_worker(JSContext* ctx, JSValueConst thisVal) {
  if (!contextThis(ctx, thisVal)) return JS_EXCEPTION;
  return JS_DupValue(ctx, engineOf(ctx)->worker);
}

JSValue js_ctx_aborted(JSContext* ctx, JSValueConst thisVal) {
  StreamState* s = contextThis(ctx, thisVal);
  if (!s) return JS_EXCEPTION;
  return JS_NewBool(ctx, s->aborted || s->destroyed() || s->reset());
}

JSValue js_ctx_log(JSContext* ctx, JSValueConst thisVal) {
  StreamState* s = contextThis(ctx, thisVal);
  if (!s) return JS_EXCEPTION;
  if (s->destroyed() && JS_IsUndefined(s->log)) {
    // After destroy the cache slot is never freed again: hand out an uncached logger.
    JSValue log = JS_NewObjectClass(ctx, static_cast<int>(engineOf(ctx)->classes.log));
    JS_SetOpaque(log, s);
    s->jsRefs++;
    return log;
  }
  if (JS_IsUndefined(s->log)) {
    Engine::Impl* e = engineOf(ctx);
    s->log = JS_NewObjectClass(ctx, static_cast<int>(e->classes.log));
    JS_SetOpaque(s->log, s);
    s->jsRefs++;
  }
  return JS_DupValue(ctx, s->log);
}

bool readReplyOptions(JSContext* ctx, JSValueConst opts, LocalReply* reply) {
  if (JS_IsUndefined(opts) || JS_IsNull(opts)) return true;
  if (!JS_IsObject(opts)) {
    JS_ThrowTypeError(ctx, "respond(status, options): options must be an object");
    return false;
  }
  JSValue body = JS_GetPropertyStr(ctx, opts, "body");
  bool ok = JS_IsUndefined(body) || bodyBytes(ctx, body, "respond(): body", &reply->body);
  JS_FreeValue(ctx, body);
  if (!ok) return false;
  JSValue details = JS_GetPropertyStr(ctx, opts, "details");
  if (!JS_IsUndefined(details)) {
    CString d(ctx, details);
    if (!d.ptr) ok = false;
    else {
      reply->details.assign(d.ptr, d.len);
      for (char& c : reply->details) {
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') c = '_';  // Envoy details are one token
      }
    }
  }
  JS_FreeValue(ctx, details);
  if (!ok) return false;
  JSValue headers = JS_GetPropertyStr(ctx, opts, "headers");
  if (!JS_IsUndefined(headers)) {
    JSPropertyEnum* props = nullptr;
    uint32_t count = 0;
    if (!JS_IsObject(headers) ||
        JS_GetOwnPropertyNames(ctx, &props, &count, headers, JS_GPN_STRING_MASK | JS_GPN_ENUM_ONLY) != 0) {
      ok = false;
      if (!JS_HasException(ctx)) JS_ThrowTypeError(ctx, "respond(): headers must be an object of name: value");
    }
    for (uint32_t i = 0; ok && i < count; i++) {
      JSValue nameVal = JS_AtomToString(ctx, props[i].atom);
      std::string name;
      ok = normalizeName(ctx, nameVal, &name);
      JS_FreeValue(ctx, nameVal);
      if (!ok) break;
      JSValue v = JS_GetProperty(ctx, headers, props[i].atom);
      auto add = [&](JSValueConst one) {
        CString s(ctx, one);
        if (!s.ptr || !checkValue(ctx, s.view())) return false;
        reply->headers.emplace_back(name, std::string(s.view()));
        return true;
      };
      if (JS_IsArray(v)) {
        int64_t len = 0;
        JS_GetLength(ctx, v, &len);
        for (int64_t j = 0; ok && j < len; j++) {
          JSValue item = JS_GetPropertyInt64(ctx, v, j);
          ok = add(item);
          JS_FreeValue(ctx, item);
        }
      } else {
        ok = add(v);
      }
      JS_FreeValue(ctx, v);
    }
    if (props) JS_FreePropertyEnum(ctx, props, count);
  }
  JS_FreeValue(ctx, headers);
  return ok;
}

void sendReplyNow(StreamState* s) { sendReplyNowImpl(s); }

JSValue js_ctx_respond(JSContext* ctx, JSValueConst thisVal, int argc, JSValueConst* argv) {
  StreamState* s = contextThis(ctx, thisVal);
  if (!s) return JS_EXCEPTION;
  if (s->host == nullptr) return throwStreamGone(ctx);
  double status = 0;
  if (argc < 1 || !JS_IsNumber(argv[0]) || JS_ToFloat64(ctx, &status, argv[0]) != 0 ||
      status != static_cast<int>(status) || status < 200 || status > 599) {
    return JS_ThrowRangeError(ctx, "respond(status): status must be an integer from 200 to 599");
  }
  if (s->responded() && s->replyHooksRunning) {
    return JS_ThrowTypeError(ctx,
                             "respond() in a response hook of this filter's own local reply: that reply is already "
                             "being sent and goes on as the hooks leave it");
  }
  if (s->responded() || s->pendingReply) return JS_ThrowTypeError(ctx, "respond() was already called for this stream");
  if (s->dir(Direction::Response).headersSent() || s->completed()) {
    return JS_ThrowTypeError(ctx, "too late to respond(): the response headers were already sent downstream");
  }
  LocalReply reply;
  reply.status = static_cast<int>(status);
  reply.details = "envoy_js_respond";
  if (!readReplyOptions(ctx, argc > 1 ? argv[1] : JS_UNDEFINED, &reply)) return JS_EXCEPTION;
  s->pendingReply = std::move(reply);
  // Inside a hook the reply goes out when the hook settles; from anywhere else (a job after
  // the hook settled, a timer), now.
  if (s->hooksRunning == 0 && !s->dirs[0].hookPending() && !s->dirs[1].hookPending()) sendReplyNow(s);
  Engine::Impl* e = engineOf(ctx);
  JSValue marker = JS_NewObjectClass(ctx, static_cast<int>(e->classes.reply));
  JS_DefinePropertyValueStr(ctx, marker, "status", JS_NewInt32(ctx, static_cast<int>(status)), JS_PROP_ENUMERABLE);
  return marker;
}

// ---- ctx.stream, ctx.metadata, ctx.filterState, ctx.metrics, ctx.clearRouteCache -------------

JSValue js_ctx_stream(JSContext* ctx, JSValueConst thisVal) {
  StreamState* s = contextThis(ctx, thisVal);
  if (!s) return JS_EXCEPTION;
  if (!JS_IsUndefined(s->info)) return JS_DupValue(ctx, s->info);
  if (s->host == nullptr) return throwStreamGone(ctx);
  StreamInfo info = s->host->streamInfo();
  JSValue o = JS_NewObject(ctx);
  auto str = [&](const char* k, const std::string& v) {
    JS_DefinePropertyValueStr(ctx, o, k, JS_NewStringLen(ctx, v.data(), v.size()), JS_PROP_ENUMERABLE);
  };
  str("id", info.id);
  str("protocol", info.protocol);
  str("remoteAddress", info.remoteAddress);
  str("localAddress", info.localAddress);
  str("routeName", info.routeName);
  JS_DefinePropertyValueStr(ctx, o, "workerIndex", JS_NewUint32(ctx, s->engine->workerIndex), JS_PROP_ENUMERABLE);
  s->info = freeze(ctx, o);  // read-only: it describes the host
  return JS_DupValue(ctx, o);
}

// ctx.property(name): Envoy's attribute names (its CEL / proxy-wasm vocabulary), by Property.
constexpr const char* kPropertyNames[kPropertyCount] = {
    "request.id",
    "request.protocol",
    "source.address",
    "source.port",
    "destination.address",
    "destination.port",
    "connection.id",
    "connection.requested_server_name",
    "upstream.address",
    "upstream.port",
    "upstream.request_attempt_count",
    "xds.cluster_name",
    "xds.route_name",
    "xds.virtual_host_name",
    "xds.virtual_cluster_name",
    "xds.filter_chain_name",
    "response.code",
    "response.code_details",
    "response.flags",
};

/// property(name: string): string | number | null
JSValue js_ctx_property(JSContext* ctx, JSValueConst thisVal, int argc, JSValueConst* argv) {
  StreamState* s = contextThis(ctx, thisVal);
  if (!s) return JS_EXCEPTION;
  std::string name;
  if (!stringArg(ctx, argc, argv, 0, "property(name): name", &name)) return JS_EXCEPTION;
  size_t which = 0;
  while (which < kPropertyCount && name != kPropertyNames[which]) which++;
  if (which == kPropertyCount) {
    std::string message = "property(): unknown property \"" + name + "\"; known: ";
    for (size_t i = 0; i < kPropertyCount; i++) message += std::string(i ? ", " : "") + kPropertyNames[i];
    // JS_ThrowTypeError formats into a fixed buffer, shorter than this list: set the message.
    JS_ThrowTypeError(ctx, "property()");
    JSValue error = JS_GetException(ctx);
    JS_DefinePropertyValueStr(ctx, error, "message", JS_NewStringLen(ctx, message.data(), message.size()),
                              JS_PROP_WRITABLE | JS_PROP_CONFIGURABLE);
    return JS_Throw(ctx, error);
  }
  if (s->host == nullptr) return throwStreamGone(ctx);
  std::optional<PropertyValue> v = s->host->property(static_cast<Property>(which));
  if (!v) return JS_NULL;
  if (v->isNumber) return JS_NewFloat64(ctx, v->number);
  return JS_NewStringLen(ctx, v->string.data(), v->string.size());
}

/// routeMetadata(ns: string, key: string): MetadataValue | undefined
JSValue js_ctx_route_metadata(JSContext* ctx, JSValueConst thisVal, int argc, JSValueConst* argv) {
  StreamState* s = contextThis(ctx, thisVal);
  if (!s) return JS_EXCEPTION;
  std::string ns, key;
  if (!stringArg(ctx, argc, argv, 0, "routeMetadata(ns, key): ns", &ns) ||
      !stringArg(ctx, argc, argv, 1, "routeMetadata(ns, key): key", &key)) {
    return JS_EXCEPTION;
  }
  if (s->host == nullptr) return throwStreamGone(ctx);
  std::optional<MetadataValue> value = s->host->getRouteMetadata(ns, key);
  if (!value) return JS_UNDEFINED;
  return metadataValueToJs(ctx, *value);
}

JSValue js_ctx_clear_route_cache(JSContext* ctx, JSValueConst thisVal, int, JSValueConst*) {
  StreamState* s = contextThis(ctx, thisVal);
  if (!s) return JS_EXCEPTION;
  if (s->host == nullptr) return throwStreamGone(ctx);
  if (s->dir(Direction::Request).headersSent()) {
    return JS_ThrowTypeError(
        ctx, "clearRouteCache() after the request headers were sent on has no effect: call it in onRequest");
  }
  streamRouteCacheCleared(s);
  return JS_UNDEFINED;
}

// An IP address with an optional port, as Envoy's load balancers compare hosts: "10.0.0.7",
// "10.0.0.7:8080", "::1", "[::1]", "[::1]:8080". No names: the override bypasses DNS.
bool digitsIn(std::string_view s, size_t max, uint32_t limit) {
  if (s.empty() || s.size() > max) return false;
  uint32_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint32_t>(c - '0');
  }
  return v <= limit && !(s.size() > 1 && s[0] == '0' && limit == 255);
}
bool isIpv4(std::string_view s) {
  for (int part = 0; part < 4; part++) {
    size_t dot = part < 3 ? s.find('.') : s.size();
    if (dot == std::string_view::npos || !digitsIn(s.substr(0, dot), 3, 255)) return false;
    s.remove_prefix(part < 3 ? dot + 1 : dot);
  }
  return s.empty();
}
bool isIpv6(std::string_view s) {
  size_t groups = 0;
  bool elided = s.find("::") != std::string_view::npos;
  if (elided && s.find("::", s.find("::") + 1) != std::string_view::npos) return false;
  size_t start = 0;
  while (start <= s.size()) {
    size_t colon = s.find(':', start);
    std::string_view g = s.substr(start, colon == std::string_view::npos ? std::string_view::npos : colon - start);
    if (!g.empty()) {
      if (colon == std::string_view::npos && g.find('.') != std::string_view::npos) {
        if (!isIpv4(g)) return false;  // an embedded IPv4 tail counts as two groups
        groups += 2;
      } else {
        if (g.size() > 4) return false;
        for (char c : g) {
          if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
        }
        groups++;
      }
    }
    if (colon == std::string_view::npos) break;
    start = colon + 1;
  }
  return elided ? groups < 8 : groups == 8;
}
bool isHostAddress(std::string_view s) {
  if (!s.empty() && s[0] == '[') {
    size_t close = s.find(']');
    if (close == std::string_view::npos || !isIpv6(s.substr(1, close - 1))) return false;
    std::string_view rest = s.substr(close + 1);
    return rest.empty() || (rest[0] == ':' && digitsIn(rest.substr(1), 5, 65535));
  }
  if (isIpv6(s)) return true;
  size_t colon = s.rfind(':');
  if (colon == std::string_view::npos) return isIpv4(s);
  return isIpv4(s.substr(0, colon)) && digitsIn(s.substr(colon + 1), 5, 65535);
}

/// ctx.setUpstreamOverrideHost(host: string, options?: { strict?: boolean }): the load
/// balancer picks `host` for this request (Envoy's setUpstreamOverrideHost).
JSValue js_ctx_set_upstream_override_host(JSContext* ctx, JSValueConst thisVal, int argc, JSValueConst* argv) {
  StreamState* s = contextThis(ctx, thisVal);
  if (!s) return JS_EXCEPTION;
  if (s->host == nullptr) return throwStreamGone(ctx);
  if (!JS_IsString(argc > 0 ? argv[0] : JS_UNDEFINED)) {
    return JS_ThrowTypeError(ctx, "ctx.setUpstreamOverrideHost(host): host must be a string such as \"10.0.0.7:8080\"");
  }
  CString host(ctx, argv[0]);
  if (!host.ptr) return JS_EXCEPTION;
  if (!isHostAddress(host.view())) {
    return JS_ThrowTypeError(ctx,
                             "ctx.setUpstreamOverrideHost(\"%s\"): not an IP address with an optional port (e.g. "
                             "\"10.0.0.7:8080\" or \"[::1]:8080\"); Envoy matches the cluster's hosts by address",
                             host.ptr);
  }
  bool strict = false;
  JSValueConst options = argc > 1 ? argv[1] : JS_UNDEFINED;
  if (!JS_IsUndefined(options)) {
    if (!JS_IsObject(options)) return JS_ThrowTypeError(ctx, "ctx.setUpstreamOverrideHost: options must be an object");
    JSValue v = JS_GetPropertyStr(ctx, options, "strict");
    if (JS_IsException(v)) return JS_EXCEPTION;
    if (!JS_IsUndefined(v) && !JS_IsBool(v)) {
      JS_FreeValue(ctx, v);
      return JS_ThrowTypeError(ctx, "ctx.setUpstreamOverrideHost: options.strict must be true or false");
    }
    strict = JS_ToBool(ctx, v) == 1;
    JS_FreeValue(ctx, v);
  }
  if (s->dir(Direction::Request).headersSent()) {
    return JS_ThrowTypeError(ctx,
                             "ctx.setUpstreamOverrideHost() after the request headers were sent on has no effect: the "
                             "upstream host is chosen then; call it in onRequest");
  }
  if (!s->host->setUpstreamOverrideHost(host.view(), strict)) {
    return JS_ThrowTypeError(ctx, "ctx.setUpstreamOverrideHost(\"%s\"): the host refused it", host.ptr);
  }
  return JS_UNDEFINED;
}

JSValue cachedObject(JSContext* ctx, StreamState* s, JSValue* slot, JSClassID id) {
  if (!JS_IsUndefined(*slot)) return JS_DupValue(ctx, *slot);
  JSValue o = JS_NewObjectClass(ctx, static_cast<int>(id));
  JS_SetOpaque(o, s);
  s->jsRefs++;
  if (s->destroyed()) return o;  // the slot would never be freed again
  *slot = o;
  return JS_DupValue(ctx, o);
}

JSValue js_ctx_metadata(JSContext* ctx, JSValueConst thisVal) {
  StreamState* s = contextThis(ctx, thisVal);
  if (!s) return JS_EXCEPTION;
  return cachedObject(ctx, s, &s->metadata, engineOf(ctx)->classes.metadata);
}

JSValue js_ctx_filter_state(JSContext* ctx, JSValueConst thisVal) {
  StreamState* s = contextThis(ctx, thisVal);
  if (!s) return JS_EXCEPTION;
  return cachedObject(ctx, s, &s->filterState, engineOf(ctx)->classes.filterState);
}

JSValue js_ctx_fetch(JSContext* ctx, JSValueConst thisVal, int argc, JSValueConst* argv) {
  StreamState* s = contextThis(ctx, thisVal);
  if (!s) return JS_EXCEPTION;
  return jsFetch(ctx, s, argc, argv);
}

JSValue js_ctx_metrics(JSContext* ctx, JSValueConst thisVal) {
  if (!contextThis(ctx, thisVal)) return JS_EXCEPTION;
  return JS_DupValue(ctx, engineOf(ctx)->metrics);
}

JSValue js_filter_state_get(JSContext* ctx, JSValueConst thisVal, int argc, JSValueConst* argv) {
  StreamState* s = streamOf(ctx, thisVal, engineOf(ctx)->classes.filterState);
  if (!s) return JS_EXCEPTION;
  std::string key;
  if (!stringArg(ctx, argc, argv, 0, "filter state key", &key)) return JS_EXCEPTION;
  if (s->host == nullptr) return throwStreamGone(ctx);
  std::optional<std::string> v = s->host->getFilterState(key);
  if (!v) return JS_UNDEFINED;
  return JS_NewStringLen(ctx, v->data(), v->size());
}

JSValue js_filter_state_set(JSContext* ctx, JSValueConst thisVal, int argc, JSValueConst* argv) {
  StreamState* s = streamOf(ctx, thisVal, engineOf(ctx)->classes.filterState);
  if (!s) return JS_EXCEPTION;
  std::string key;
  if (!stringArg(ctx, argc, argv, 0, "filter state key", &key)) return JS_EXCEPTION;
  CString value(ctx, argc > 1 ? argv[1] : JS_UNDEFINED);
  if (!value.ptr) return JS_EXCEPTION;
  if (s->host == nullptr) return throwStreamGone(ctx);
  s->host->setFilterState(key, value.view());
  return JS_UNDEFINED;
}

const JSCFunctionListEntry kFilterStateProto[] = {
    JS_CFUNC_DEF("get", 1, js_filter_state_get),
    JS_CFUNC_DEF("set", 2, js_filter_state_set),
};

JSValue js_ctx_shared(JSContext* ctx, JSValueConst thisVal) {
  if (!contextThis(ctx, thisVal)) return JS_EXCEPTION;
  return sharedObject(engineOf(ctx));
}

const JSCFunctionListEntry kContextProto[] = {
    JS_CGETSET_DEF("config", js_ctx_config, nullptr),
    JS_CGETSET_DEF("worker", js_ctx_worker, nullptr),
    JS_CGETSET_DEF("aborted", js_ctx_aborted, nullptr),
    JS_CGETSET_DEF("log", js_ctx_log, nullptr),
    JS_CFUNC_DEF("respond", 2, js_ctx_respond),
    JS_CGETSET_DEF("stream", js_ctx_stream, nullptr),
    JS_CFUNC_DEF("property", 1, js_ctx_property),
    JS_CFUNC_DEF("routeMetadata", 2, js_ctx_route_metadata),
    JS_CGETSET_DEF("metadata", js_ctx_metadata, nullptr),
    JS_CGETSET_DEF("filterState", js_ctx_filter_state, nullptr),
    JS_CGETSET_DEF("metrics", js_ctx_metrics, nullptr),
    JS_CGETSET_DEF("shared", js_ctx_shared, nullptr),
    JS_CFUNC_DEF("clearRouteCache", 0, js_ctx_clear_route_cache),
    JS_CFUNC_DEF("setUpstreamOverrideHost", 2, js_ctx_set_upstream_override_host),
    JS_CFUNC_DEF("fetch", 2, js_ctx_fetch),
};

}  // namespace

JSValue makeContext(StreamState* s) {
  JSValue v = cachedStreamWrapper(s, &s->ctx, s->engine->classes.context);
  JS_FreeValue(s->engine->ctx, v);  // the cache slot holds the reference the caller uses
  return s->ctx;
}

bool registerContextClasses(Engine::Impl* e) {
  ClassIds& c = e->classes;
  return defineClass(e, &c.context, "Context", streamWrapperFinalizer, kContextProto, countOf(kContextProto)) &&
         defineClass(e, &c.log, "Log", streamWrapperFinalizer, kLogProto, countOf(kLogProto)) &&
         defineClass(e, &c.filterState, "FilterState", streamWrapperFinalizer, kFilterStateProto,
                     countOf(kFilterStateProto)) &&
         registerMetricClass(e);
}

}  // namespace envoy_js
