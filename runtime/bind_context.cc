// The hooks' `ctx`: config, worker, aborted, log, respond(), stream, metadata, filterState,
// metrics, clearRouteCache() and fetch(), with the classes behind them (Log, FilterState,
// Metric; DynamicMetadata is in bind_metadata.cc, Fetch* in fetch.cc).
#include "bind_util.h"

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

JSValue js_ctx_clear_route_cache(JSContext* ctx, JSValueConst thisVal, int, JSValueConst*) {
  StreamState* s = contextThis(ctx, thisVal);
  if (!s) return JS_EXCEPTION;
  if (s->host == nullptr) return throwStreamGone(ctx);
  if (s->dir(Direction::Request).headersSent()) {
    return JS_ThrowTypeError(
        ctx, "clearRouteCache() after the request headers were sent on has no effect: call it in onRequest");
  }
  s->host->clearRouteCache();
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

// Metric objects carry their declaration index + 1 as opaque (0 would mean "no opaque").
// magic: the MetricKind the method belongs to.
JSValue js_metric_record(JSContext* ctx, JSValueConst thisVal, int argc, JSValueConst* argv, int magic) {
  Engine::Impl* e = engineOf(ctx);
  auto slot = reinterpret_cast<uintptr_t>(JS_GetOpaque2(ctx, thisVal, e->classes.metric));
  if (slot == 0) return JS_EXCEPTION;
  size_t index = slot - 1;
  const MetricDeclaration& decl = e->program->metrics()[index];
  auto kind = static_cast<MetricKind>(magic);
  if (decl.kind != kind) {
    static const char* const names[] = {"counter", "gauge", "histogram"};
    static const char* const methods[] = {"inc(n)", "set(v)", "record(v)"};
    return JS_ThrowTypeError(ctx, "metric `%s` is a %s: use %s", decl.name.c_str(), names[static_cast<int>(decl.kind)],
                             methods[static_cast<int>(decl.kind)]);
  }
  double v = kind == MetricKind::Counter ? 1 : 0;
  if (argc > 0 && !JS_IsUndefined(argv[0]) && JS_ToFloat64(ctx, &v, argv[0]) != 0) return JS_EXCEPTION;
  if (!(v == v) || (kind == MetricKind::Counter && v < 0)) {
    return JS_ThrowRangeError(ctx, "metric `%s`: %s", decl.name.c_str(),
                              kind == MetricKind::Counter ? "counters only go up" : "value is NaN");
  }
  e->host->recordMetric(index, kind, v);
  return JS_UNDEFINED;
}

const JSCFunctionListEntry kMetricProto[] = {
    JS_CFUNC_MAGIC_DEF("inc", 1, js_metric_record, static_cast<int>(MetricKind::Counter)),
    JS_CFUNC_MAGIC_DEF("set", 1, js_metric_record, static_cast<int>(MetricKind::Gauge)),
    JS_CFUNC_MAGIC_DEF("record", 1, js_metric_record, static_cast<int>(MetricKind::Histogram)),
};

const JSCFunctionListEntry kContextProto[] = {
    JS_CGETSET_DEF("config", js_ctx_config, nullptr),
    JS_CGETSET_DEF("worker", js_ctx_worker, nullptr),
    JS_CGETSET_DEF("aborted", js_ctx_aborted, nullptr),
    JS_CGETSET_DEF("log", js_ctx_log, nullptr),
    JS_CFUNC_DEF("respond", 2, js_ctx_respond),
    JS_CGETSET_DEF("stream", js_ctx_stream, nullptr),
    JS_CGETSET_DEF("metadata", js_ctx_metadata, nullptr),
    JS_CGETSET_DEF("filterState", js_ctx_filter_state, nullptr),
    JS_CGETSET_DEF("metrics", js_ctx_metrics, nullptr),
    JS_CFUNC_DEF("clearRouteCache", 0, js_ctx_clear_route_cache),
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
  for (size_t i = 0; i < metrics.size(); i++) {
    JSValue m = JS_NewObjectClass(ctx, static_cast<int>(e->classes.metric));
    JS_SetOpaque(m, reinterpret_cast<void*>(static_cast<uintptr_t>(i + 1)));
    JS_DefinePropertyValueStr(ctx, m, "name", JS_NewString(ctx, metrics[i].name.c_str()), 0);
    JS_DefinePropertyValueStr(ctx, obj, metrics[i].name.c_str(), m, JS_PROP_ENUMERABLE);
  }
  e->metrics = freeze(ctx, obj);
  return true;
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
