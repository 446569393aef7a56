// The hooks' `ctx`: config, worker, aborted, log, respond(), stream, metadata, filterState,
// metrics, clearRouteCache() and fetch(), with the classes behind them (Log, FilterState,
// Metric; DynamicMetadata is in bind_metadata.cc, Fetch* in fetch.cc).
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

// Metric objects carry their series index + 1 as opaque (0 would mean "no opaque"): the
// metric's own series (ctx.metrics.x) or one that labels() made.
const Engine::Impl::MetricSeries* seriesThis(JSContext* ctx, JSValueConst thisVal) {
  Engine::Impl* e = engineOf(ctx);
  auto slot = reinterpret_cast<uintptr_t>(JS_GetOpaque2(ctx, thisVal, e->classes.metric));
  if (slot == 0) return nullptr;
  return &e->metricSeries[slot - 1];
}

std::string joinLabels(const MetricDeclaration& decl) {
  std::string out;
  for (const std::string& l : decl.labels) out += (out.empty() ? "" : ", ") + l;
  return out;
}

// The series a recording method acts on; a TypeError for a labelled metric's own object,
// which has no value of its own: its series come from labels().
const Engine::Impl::MetricSeries* recordingSeries(JSContext* ctx, JSValueConst thisVal, const char* method) {
  const Engine::Impl::MetricSeries* series = seriesThis(ctx, thisVal);
  if (!series) return nullptr;
  const MetricDeclaration& decl = engineOf(ctx)->program->metrics()[series->metric];
  if (!decl.labels.empty() && series->values.empty()) {
    JS_ThrowTypeError(ctx, "metric `%s` has labels (%s): use ctx.metrics.%s.labels({ ... }).%s", decl.name.c_str(),
                      joinLabels(decl).c_str(), decl.name.c_str(), method);
    return nullptr;
  }
  return series;
}

const char* const kKindNames[] = {"counter", "gauge", "histogram"};
const char* const kKindMethods[] = {"inc(n)", "set(v), inc(n) or dec(n)", "record(v)"};

JSValue throwWrongKind(JSContext* ctx, const MetricDeclaration& decl) {
  int k = static_cast<int>(decl.kind);
  return JS_ThrowTypeError(ctx, "metric `%s` is a %s: use %s", decl.name.c_str(), kKindNames[k], kKindMethods[k]);
}

// The host sets its gauge to the process value under the process lock (process_state.h).
struct GaugeReport {
  EngineHost* host;
  const Engine::Impl::MetricSeries* series;
};
void reportGauge(void* opaque, double total) {
  auto* r = static_cast<GaugeReport*>(opaque);
  r->host->recordMetric(r->series->metric, MetricKind::Gauge, r->series->values, total);
}

void setGaugeShare(Engine::Impl* e, Engine::Impl::MetricSeries* series, double share) {
  series->gaugeShare = share;
  if (e->host->dryRun()) return;  // the process's gauges are the real engines'
  GaugeReport r{e->host, series};
  metricGaugeShare(series->key, e, share, reportGauge, &r);
}

// argv[0] as a finite number, `dflt` when absent; a RangeError naming the metric otherwise.
bool metricArg(JSContext* ctx, int argc, JSValueConst* argv, double dflt, const MetricDeclaration& decl, double* v) {
  *v = dflt;
  if (argc > 0 && !JS_IsUndefined(argv[0]) && JS_ToFloat64(ctx, v, argv[0]) != 0) return false;
  if (!(*v == *v)) {
    JS_ThrowRangeError(ctx, "metric `%s`: value is NaN", decl.name.c_str());
    return false;
  }
  // Envoy's metrics hold integers: the hosts round, and an infinity has no integer.
  if (*v == INFINITY || *v == -INFINITY) {
    JS_ThrowRangeError(ctx, "metric `%s`: value is not finite", decl.name.c_str());
    return false;
  }
  return true;
}

// magic: +1 inc, -1 dec.
JSValue js_metric_inc(JSContext* ctx, JSValueConst thisVal, int argc, JSValueConst* argv, int magic) {
  const Engine::Impl::MetricSeries* series = recordingSeries(ctx, thisVal, magic > 0 ? "inc()" : "dec()");
  if (!series) return JS_EXCEPTION;
  Engine::Impl* e = engineOf(ctx);
  const MetricDeclaration& decl = e->program->metrics()[series->metric];
  bool counter = decl.kind == MetricKind::Counter;
  if (decl.kind == MetricKind::Histogram || (counter && magic < 0)) return throwWrongKind(ctx, decl);
  double n = 0;
  if (!metricArg(ctx, argc, argv, 1, decl, &n)) return JS_EXCEPTION;
  if (counter) {
    if (n < 0) return JS_ThrowRangeError(ctx, "metric `%s`: counters only go up", decl.name.c_str());
    if (!e->host->dryRun()) metricCounterAdd(series->key, n);
    e->host->recordMetric(series->metric, MetricKind::Counter, series->values, n);
    return JS_UNDEFINED;
  }
  auto* mutableSeries = const_cast<Engine::Impl::MetricSeries*>(series);
  setGaugeShare(e, mutableSeries, series->gaugeShare + magic * n);
  return JS_UNDEFINED;
}

JSValue js_metric_set(JSContext* ctx, JSValueConst thisVal, int argc, JSValueConst* argv) {
  const Engine::Impl::MetricSeries* series = recordingSeries(ctx, thisVal, "set()");
  if (!series) return JS_EXCEPTION;
  Engine::Impl* e = engineOf(ctx);
  const MetricDeclaration& decl = e->program->metrics()[series->metric];
  if (decl.kind != MetricKind::Gauge) return throwWrongKind(ctx, decl);
  double v = 0;
  if (!metricArg(ctx, argc, argv, 0, decl, &v)) return JS_EXCEPTION;
  setGaugeShare(e, const_cast<Engine::Impl::MetricSeries*>(series), v);
  return JS_UNDEFINED;
}

JSValue js_metric_record(JSContext* ctx, JSValueConst thisVal, int argc, JSValueConst* argv) {
  const Engine::Impl::MetricSeries* series = recordingSeries(ctx, thisVal, "record()");
  if (!series) return JS_EXCEPTION;
  Engine::Impl* e = engineOf(ctx);
  const MetricDeclaration& decl = e->program->metrics()[series->metric];
  if (decl.kind != MetricKind::Histogram) return throwWrongKind(ctx, decl);
  double v = 0;
  if (!metricArg(ctx, argc, argv, 0, decl, &v)) return JS_EXCEPTION;
  e->host->recordMetric(series->metric, MetricKind::Histogram, series->values, v);
  return JS_UNDEFINED;
}

/// value: number. The process-wide value (every worker's engine), as Envoy shows it.
JSValue js_metric_value(JSContext* ctx, JSValueConst thisVal) {
  const Engine::Impl::MetricSeries* series = recordingSeries(ctx, thisVal, "value");
  if (!series) return JS_EXCEPTION;
  Engine::Impl* e = engineOf(ctx);
  const MetricDeclaration& decl = e->program->metrics()[series->metric];
  if (decl.kind == MetricKind::Histogram) {
    return JS_ThrowTypeError(ctx, "metric `%s` is a histogram: Envoy keeps its distribution, it has no value to read",
                             decl.name.c_str());
  }
  if (e->host->dryRun()) return JS_NewFloat64(ctx, 0);  // a config check counts nothing
  return JS_NewFloat64(ctx, metricValue(series->key, decl.kind));
}

// A metric object for series `slot` of the metric `name`. (The engine that checks a program
// while it is compiled builds ctx.metrics before the program holds its declarations.)
JSValue newMetricObject(Engine::Impl* e, size_t slot, const std::string& name) {
  JSContext* ctx = e->ctx;
  JSValue m = JS_NewObjectClass(ctx, static_cast<int>(e->classes.metric));
  if (JS_IsException(m)) return m;
  JS_SetOpaque(m, reinterpret_cast<void*>(static_cast<uintptr_t>(slot + 1)));
  JS_DefinePropertyValueStr(ctx, m, "name", JS_NewString(ctx, name.c_str()), 0);
  return m;
}

/// labels(values: Record<string, string>): Metric. The series of one label-value combination.
JSValue js_metric_labels(JSContext* ctx, JSValueConst thisVal, int argc, JSValueConst* argv) {
  const Engine::Impl::MetricSeries* base = seriesThis(ctx, thisVal);
  if (!base) return JS_EXCEPTION;
  Engine::Impl* e = engineOf(ctx);
  size_t metric = base->metric;
  const MetricDeclaration& decl = e->program->metrics()[metric];
  const char* name = decl.name.c_str();
  if (decl.labels.empty()) return JS_ThrowTypeError(ctx, "metric `%s` declares no labels", name);
  if (!base->values.empty()) return JS_ThrowTypeError(ctx, "metric `%s`: labels() is already applied", name);
  std::string all = joinLabels(decl);
  JSValueConst arg = argc > 0 ? argv[0] : JS_UNDEFINED;
  if (!JS_IsObject(arg) || JS_IsArray(arg) == 1 || JS_IsFunction(ctx, arg)) {
    return JS_ThrowTypeError(ctx, "metric `%s`: labels() takes an object with the labels %s", name, all.c_str());
  }
  JSPropertyEnum* props = nullptr;
  uint32_t count = 0;
  if (JS_GetOwnPropertyNames(ctx, &props, &count, arg, JS_GPN_STRING_MASK | JS_GPN_ENUM_ONLY) != 0) {
    return JS_EXCEPTION;
  }
  bool ok = true;
  for (uint32_t i = 0; i < count && ok; i++) {
    const char* key = JS_AtomToCString(ctx, props[i].atom);
    if (!key) {
      ok = false;
      break;
    }
    bool known = false;
    for (const std::string& l : decl.labels) known = known || l == key;
    if (!known) {
      JS_ThrowTypeError(ctx, "metric `%s`: unknown label `%s` (its labels: %s)", name, key, all.c_str());
      ok = false;
    }
    JS_FreeCString(ctx, key);
  }
  JS_FreePropertyEnum(ctx, props, count);
  if (!ok) return JS_EXCEPTION;
  std::vector<std::string> values;
  std::string seriesKey = decl.name;
  for (const std::string& l : decl.labels) {
    JSValue v = JS_GetPropertyStr(ctx, arg, l.c_str());
    if (JS_IsException(v)) return JS_EXCEPTION;
    if (JS_IsUndefined(v)) {
      return JS_ThrowTypeError(ctx, "metric `%s`: missing label `%s` (its labels: %s)", name, l.c_str(), all.c_str());
    }
    if (!JS_IsString(v) && !JS_IsNumber(v)) {
      JS_FreeValue(ctx, v);
      return JS_ThrowTypeError(ctx, "metric `%s`: label `%s` must be a string", name, l.c_str());
    }
    size_t len = 0;
    const char* text = JS_ToCStringLen(ctx, &len, v);
    JS_FreeValue(ctx, v);
    if (!text) return JS_EXCEPTION;
    std::string value(text, len);
    JS_FreeCString(ctx, text);
    if (value.empty() || value.size() > kMetricLabelValueMaxBytes || value.find('\0') != std::string::npos) {
      return JS_ThrowRangeError(ctx, "metric `%s`: label `%s` must be 1 to %zu bytes without NUL", name, l.c_str(),
                                kMetricLabelValueMaxBytes);
    }
    seriesKey += '\0';
    seriesKey += value;
    values.push_back(std::move(value));
  }
  auto found = e->seriesByKey.find(seriesKey);
  if (found != e->seriesByKey.end()) return newMetricObject(e, found->second, decl.name);
  bool admitted;
  if (e->host->dryRun()) {  // a config check keeps its series to itself
    size_t mine = 0;
    for (const Engine::Impl::MetricSeries& s : e->metricSeries) mine += s.metric == metric && !s.values.empty();
    admitted = mine < kMetricSeriesMax;
  } else {
    admitted = metricSeriesAdmit(decl.name, seriesKey, kMetricSeriesMax);
  }
  if (!admitted) {
    return JS_ThrowRangeError(ctx, "metric `%s`: more than %zu label-value combinations (see docs/limits.md)", name,
                              kMetricSeriesMax);
  }
  size_t slot = e->metricSeries.size();
  e->metricSeries.push_back({metric, std::move(values), seriesKey, 0});
  e->seriesByKey.emplace(std::move(seriesKey), slot);
  return newMetricObject(e, slot, decl.name);
}

const JSCFunctionListEntry kMetricProto[] = {
    JS_CFUNC_MAGIC_DEF("inc", 1, js_metric_inc, 1),
    JS_CFUNC_MAGIC_DEF("dec", 1, js_metric_inc, -1),
    JS_CFUNC_DEF("set", 1, js_metric_set),
    JS_CFUNC_DEF("record", 1, js_metric_record),
    JS_CGETSET_DEF("value", js_metric_value, nullptr),
    JS_CFUNC_DEF("labels", 1, js_metric_labels),
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

bool buildMetrics(Engine::Impl* e, const std::vector<MetricDeclaration>& metrics) {
  JSContext* ctx = e->ctx;
  JSValue obj = JS_NewObject(ctx);
  e->metricSeries.clear();
  e->seriesByKey.clear();
  for (size_t i = 0; i < metrics.size(); i++) e->metricSeries.push_back({i, {}, metrics[i].name, 0});
  for (size_t i = 0; i < metrics.size(); i++) {
    JS_DefinePropertyValueStr(ctx, obj, metrics[i].name.c_str(), newMetricObject(e, i, metrics[i].name),
                              JS_PROP_ENUMERABLE);
  }
  e->metrics = freeze(ctx, obj);
  return true;
}

void releaseGaugeShares(Engine::Impl* e) {
  for (Engine::Impl::MetricSeries& s : e->metricSeries) {
    if (s.gaugeShare != 0) setGaugeShare(e, &s, 0);
  }
}

bool registerContextClasses(Engine::Impl* e) {
  ClassIds& c = e->classes;
  return defineClass(e, &c.context, "Context", streamWrapperFinalizer, kContextProto, countOf(kContextProto)) &&
         defineClass(e, &c.log, "Log", streamWrapperFinalizer, kLogProto, countOf(kLogProto)) &&
         defineClass(e, &c.filterState, "FilterState", streamWrapperFinalizer, kFilterStateProto,
                     countOf(kFilterStateProto)) &&
         defineClass(e, &c.metric, "Metric", nullptr, kMetricProto, countOf(kMetricProto));
}

}  // namespace envoy_js
