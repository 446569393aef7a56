// ctx.fetch(cluster, init): HTTP callouts through the host. The promise settles on the worker
// when the host reports the callout done; a destroyed stream cancels its callouts and their
// promises reject with StreamGone.
#include "bind_util.h"

namespace envoy_js {
namespace {

using HeaderPairs = std::vector<std::pair<std::string, std::string>>;

// A settled response: the headers and body live in C++ until the filter reads them.
struct ResponseData {
  int status = 0;
  HeaderPairs headers;
  std::string body;
};

JSValue fetchError(JSContext* ctx, const char* code, const std::string& message) {
  JSValue err = newError(ctx, "FetchError", message);
  JS_SetPropertyStr(ctx, err, "code", JS_NewString(ctx, code));
  return err;
}

bool readInit(JSContext* ctx, JSValueConst init, CalloutRequest* req, std::string* error) {
  std::string method = "GET", path = "/", authority = req->cluster;
  if (!JS_IsUndefined(init) && !JS_IsNull(init)) {
    if (!JS_IsObject(init)) {
      *error = "fetch(cluster, init): init must be an object";
      return false;
    }
    auto str = [&](const char* key, std::string* out) {
      JSValue v = JS_GetPropertyStr(ctx, init, key);
      bool ok = true;
      if (!JS_IsUndefined(v)) {
        CString c(ctx, v);
        ok = c.ptr != nullptr;
        *out = c.str();
      }
      JS_FreeValue(ctx, v);
      return ok;
    };
    if (!str("method", &method) || !str("path", &path) || !str("authority", &authority)) return false;
    JSValue headers = JS_GetPropertyStr(ctx, init, "headers");
    if (!JS_IsUndefined(headers)) {
      JSPropertyEnum* props = nullptr;
      uint32_t count = 0;
      if (!JS_IsObject(headers) ||
          JS_GetOwnPropertyNames(ctx, &props, &count, headers, JS_GPN_STRING_MASK | JS_GPN_ENUM_ONLY) != 0) {
        JS_FreeValue(ctx, headers);
        *error = "fetch(): headers must be an object of name: value";
        return false;
      }
      for (uint32_t i = 0; i < count; i++) {
        const char* n = JS_AtomToCString(ctx, props[i].atom);
        std::string name = n ? n : "";
        if (n) JS_FreeCString(ctx, n);
        lowerAscii(name);
        JSValue v = JS_GetProperty(ctx, headers, props[i].atom);
        // HeadersInit: a header that occurs more than once is an array of its values.
        bool isArray = JS_IsArray(v);
        int64_t values = 1;
        if (isArray) JS_GetLength(ctx, v, &values);
        bool ok = isHeaderName(name, false);
        if (!ok) *error = "fetch(): invalid header name '" + name + "'";
        for (int64_t j = 0; ok && j < values; j++) {
          JSValue item = isArray ? JS_GetPropertyInt64(ctx, v, j) : JS_DupValue(ctx, v);
          CString value(ctx, item);
          JS_FreeValue(ctx, item);
          ok = value.ptr != nullptr && isHeaderValue(value.view());
          if (ok) req->headers.emplace_back(name, value.str());
          else if (value.ptr != nullptr)
            *error = "fetch(): header '" + name + "': values may not contain CR, LF or NUL";
        }
        JS_FreeValue(ctx, v);
        if (!ok) {
          JS_FreePropertyEnum(ctx, props, count);
          JS_FreeValue(ctx, headers);
          return false;
        }
      }
      JS_FreePropertyEnum(ctx, props, count);
    }
    JS_FreeValue(ctx, headers);
    JSValue body = JS_GetPropertyStr(ctx, init, "body");
    bool bodyOk = JS_IsUndefined(body) || JS_IsNull(body) || bodyBytes(ctx, body, "fetch(): body", &req->body);
    JS_FreeValue(ctx, body);
    if (!bodyOk) return false;
    JSValue timeout = JS_GetPropertyStr(ctx, init, "timeoutMs");
    if (!JS_IsUndefined(timeout)) {
      double t = 0;
      if (JS_ToFloat64(ctx, &t, timeout) != 0 || !(t >= 1 && t <= 300000)) {
        JS_FreeValue(ctx, timeout);
        *error = "fetch(): timeoutMs must be between 1 and 300000";
        return false;
      }
      req->timeoutMs = static_cast<uint32_t>(t);
    }
    JS_FreeValue(ctx, timeout);
  }
  lowerAscii(method);
  if (!isToken(method) || path.empty() || path[0] != '/' || path.find_first_of("\r\n\0 ", 0, 4) != std::string::npos) {
    *error = "fetch(): method must be a token and path must start with '/'";
    return false;
  }
  for (char& c : method) c = static_cast<char>(toupper(static_cast<unsigned char>(c)));
  req->headers.insert(req->headers.begin(), {{":method", method}, {":path", path}, {":authority", authority}});
  // The body's length is the host's to state: a filter-given content-length could lie.
  std::erase_if(req->headers, [](const auto& h) { return h.first == "content-length"; });
  if (!req->body.empty()) req->headers.emplace_back("content-length", std::to_string(req->body.size()));
  return true;
}

// ---- the response object: {status, headers, text(), json(), bytes()} -------------------------

ResponseData* responseThis(JSContext* ctx, JSValueConst thisVal) {
  return static_cast<ResponseData*>(JS_GetOpaque2(ctx, thisVal, engineOf(ctx)->classes.fetchResponse));
}

JSValue js_response_status(JSContext* ctx, JSValueConst thisVal) {
  ResponseData* r = responseThis(ctx, thisVal);
  return r ? JS_NewInt32(ctx, r->status) : JS_EXCEPTION;
}

JSValue settled(JSContext* ctx, JSValue value) {
  bool rejected = JS_IsException(value);
  if (rejected) value = JS_GetException(ctx);
  JSValue p = JS_NewSettledPromise(ctx, rejected, value);
  JS_FreeValue(ctx, value);
  return p;
}

// magic: BodyFormat
JSValue js_response_read(JSContext* ctx, JSValueConst thisVal, int, JSValueConst*, int magic) {
  ResponseData* r = responseThis(ctx, thisVal);
  if (!r) return JS_EXCEPTION;
  switch (static_cast<BodyFormat>(magic)) {
    case BodyFormat::Bytes:
      return settled(ctx, JS_NewUint8ArrayCopy(ctx, reinterpret_cast<const uint8_t*>(r->body.data()), r->body.size()));
    case BodyFormat::Json: return settled(ctx, JS_ParseJSON(ctx, r->body.c_str(), r->body.size(), "<fetch response>"));
    case BodyFormat::Text: break;
  }
  return settled(ctx, JS_NewStringLen(ctx, r->body.data(), r->body.size()));
}

const JSCFunctionListEntry kFetchResponseProto[] = {
    JS_CGETSET_DEF("status", js_response_status, nullptr),
    JS_CFUNC_MAGIC_DEF("text", 0, js_response_read, static_cast<int>(BodyFormat::Text)),
    JS_CFUNC_MAGIC_DEF("json", 0, js_response_read, static_cast<int>(BodyFormat::Json)),
    JS_CFUNC_MAGIC_DEF("bytes", 0, js_response_read, static_cast<int>(BodyFormat::Bytes)),
};

HeaderPairs* headersThis(JSContext* ctx, JSValueConst thisVal) {
  return static_cast<HeaderPairs*>(JS_GetOpaque2(ctx, thisVal, engineOf(ctx)->classes.fetchHeaders));
}

std::string lowerArg(JSContext* ctx, int argc, JSValueConst* argv) {
  CString c(ctx, argc > 0 ? argv[0] : JS_UNDEFINED);
  std::string name = c.str();
  lowerAscii(name);
  return name;
}

// get: the values joined with ", ", or null; getAll: an array of them; has: whether any.
enum class HeadersLookup : int { Get, GetAll, Has };

// magic: HeadersLookup
JSValue js_fetch_headers_lookup(JSContext* ctx, JSValueConst thisVal, int argc, JSValueConst* argv, int magic) {
  HeaderPairs* h = headersThis(ctx, thisVal);
  if (!h) return JS_EXCEPTION;
  std::string name = lowerArg(ctx, argc, argv);
  JSValue all = JS_NewArray(ctx);
  std::string joined;
  uint32_t n = 0;
  for (const auto& [k, v] : *h) {
    if (k != name) continue;
    if (n > 0) joined += ", ";
    joined += v;
    JS_SetPropertyUint32(ctx, all, n++, JS_NewStringLen(ctx, v.data(), v.size()));
  }
  auto lookup = static_cast<HeadersLookup>(magic);
  if (lookup == HeadersLookup::GetAll) return all;
  JS_FreeValue(ctx, all);
  if (lookup == HeadersLookup::Has) return JS_NewBool(ctx, n > 0);
  return n == 0 ? JS_NULL : JS_NewStringLen(ctx, joined.data(), joined.size());
}

JSValue js_fetch_headers_entries(JSContext* ctx, JSValueConst thisVal, int, JSValueConst*) {
  HeaderPairs* h = headersThis(ctx, thisVal);
  if (!h) return JS_EXCEPTION;
  JSValue arr = JS_NewArray(ctx);
  uint32_t i = 0;
  for (const auto& [k, v] : *h) {
    JSValue pair = JS_NewArray(ctx);
    JS_SetPropertyUint32(ctx, pair, 0, JS_NewStringLen(ctx, k.data(), k.size()));
    JS_SetPropertyUint32(ctx, pair, 1, JS_NewStringLen(ctx, v.data(), v.size()));
    JS_SetPropertyUint32(ctx, arr, i++, pair);
  }
  JSValue values = JS_GetPropertyStr(ctx, arr, "values");
  JSValue iter = JS_Call(ctx, values, arr, 0, nullptr);
  JS_FreeValue(ctx, values);
  JS_FreeValue(ctx, arr);
  return iter;
}

const JSCFunctionListEntry kFetchHeadersProto[] = {
    JS_CFUNC_MAGIC_DEF("get", 1, js_fetch_headers_lookup, static_cast<int>(HeadersLookup::Get)),
    JS_CFUNC_MAGIC_DEF("getAll", 1, js_fetch_headers_lookup, static_cast<int>(HeadersLookup::GetAll)),
    JS_CFUNC_MAGIC_DEF("has", 1, js_fetch_headers_lookup, static_cast<int>(HeadersLookup::Has)),
    JS_CFUNC_DEF("entries", 0, js_fetch_headers_entries),
    JS_ALIAS_DEF("[Symbol.iterator]", "entries"),
};

void responseFinalizer(JSRuntime* rt, JSValueConst val) {
  Engine::Impl* e = engineOfRt(rt);
  delete static_cast<ResponseData*>(JS_GetOpaque(val, e->classes.fetchResponse));
}

void headersFinalizer(JSRuntime* rt, JSValueConst val) {
  Engine::Impl* e = engineOfRt(rt);
  delete static_cast<HeaderPairs*>(JS_GetOpaque(val, e->classes.fetchHeaders));
}

JSValue makeResponse(JSContext* ctx, const CalloutResponse& r) {
  Engine::Impl* e = engineOf(ctx);
  auto* data = new ResponseData();
  data->body = r.body;
  for (const auto& [k, v] : r.headers) {
    if (k == ":status") {
      data->status = atoi(v.c_str());
    } else {
      std::string name = k;
      lowerAscii(name);
      data->headers.emplace_back(std::move(name), v);
    }
  }
  JSValue headers = JS_NewObjectClass(ctx, static_cast<int>(e->classes.fetchHeaders));
  JS_SetOpaque(headers, new HeaderPairs(data->headers));
  JSValue obj = JS_NewObjectClass(ctx, static_cast<int>(e->classes.fetchResponse));
  JS_SetOpaque(obj, data);
  JS_DefinePropertyValueStr(ctx, obj, "headers", headers, JS_PROP_ENUMERABLE);
  return obj;
}

void settle(Engine::Impl* e, PendingCallout& c, bool ok, JSValue value) {
  JSValue r = JS_Call(e->ctx, ok ? c.resolve : c.reject, JS_UNDEFINED, 1, &value);
  JS_FreeValue(e->ctx, r);
  JS_FreeValue(e->ctx, value);
  JS_FreeValue(e->ctx, c.resolve);
  JS_FreeValue(e->ctx, c.reject);
}

}  // namespace

JSValue jsFetch(JSContext* ctx, StreamState* s, int argc, JSValueConst* argv) {
  Engine::Impl* e = engineOf(ctx);
  JSValue funcs[2];
  JSValue promise = JS_NewPromiseCapability(ctx, funcs);
  if (JS_IsException(promise)) return promise;
  auto rejectNow = [&](JSValue err) {
    JSValue r = JS_Call(ctx, funcs[1], JS_UNDEFINED, 1, &err);
    JS_FreeValue(ctx, r);
    JS_FreeValue(ctx, err);
    JS_FreeValue(ctx, funcs[0]);
    JS_FreeValue(ctx, funcs[1]);
    return promise;
  };
  if (s != nullptr && s->host == nullptr) return rejectNow(newStreamGoneError(ctx));
  if (s == nullptr && e->backgroundHost == nullptr) {
    return rejectNow(JS_NewTypeError(ctx, "fetch(): only a stream or a background engine can start a callout"));
  }
  CalloutRequest req;
  if (argc < 1 || !JS_IsString(argv[0]))
    return rejectNow(JS_NewTypeError(ctx, "fetch(cluster, init): cluster must be a string"));
  req.cluster = CString(ctx, argv[0]).str();
  std::string error;
  if (!readInit(ctx, argc > 1 ? argv[1] : JS_UNDEFINED, &req, &error)) {
    if (JS_HasException(ctx)) return rejectNow(JS_GetException(ctx));
    return rejectNow(JS_NewTypeError(ctx, "%s", error.c_str()));
  }
  uint64_t id = e->nextCalloutId++;
  CalloutStart started = s != nullptr ? s->host->startCallout(id, req) : e->backgroundHost->startCallout(id, req);
  switch (started) {
    case CalloutStart::Started: break;
    case CalloutStart::UnknownCluster:
      return rejectNow(fetchError(ctx, "unknown_cluster", "fetch(): no cluster named '" + req.cluster + "'"));
    case CalloutStart::CannotCreate:
      return rejectNow(
          fetchError(ctx, "cannot_create", "fetch(): the host could not start a callout to '" + req.cluster + "'"));
  }
  if (s != nullptr) s->jsRefs++;
  e->callouts.emplace(id, PendingCallout{funcs[0], funcs[1], s});
  return promise;
}

namespace {
// Settles callout `id` of owner `s` (nullptr: a background callout) with the host's answer.
bool settleCallout(Engine::Impl* e, StreamState* s, uint64_t id, const CalloutResponse& response) {
  auto it = e->callouts.find(id);
  if (it == e->callouts.end() || it->second.owner != s) return false;
  PendingCallout c = it->second;
  e->callouts.erase(it);
  JSContext* ctx = e->ctx;
  using R = CalloutResponse::Result;
  switch (response.result) {
    case R::Success: settle(e, c, true, makeResponse(ctx, response)); break;
    case R::Reset:
      settle(e, c, false, fetchError(ctx, "reset", "fetch(): the callout was reset before a response"));
      break;
    case R::Timeout: settle(e, c, false, fetchError(ctx, "timeout", "fetch(): no response within timeoutMs")); break;
    case R::ResponseTooLarge:
      settle(e, c, false, fetchError(ctx, "response_too_large", "fetch(): the response body is over the buffer limit"));
      break;
  }
  return true;
}
}  // namespace

void deliverCallout(StreamState* s, uint64_t id, const CalloutResponse& response) {
  if (settleCallout(s->engine, s, id, response)) s->engine->releaseStream(s);
}

void cancelStreamCallouts(StreamState* s) {
  Engine::Impl* e = s->engine;
  for (auto it = e->callouts.begin(); it != e->callouts.end();) {
    if (it->second.owner != s) {
      ++it;
      continue;
    }
    if (s->host) s->host->cancelCallout(it->first);
    PendingCallout c = it->second;
    it = e->callouts.erase(it);
    settle(e, c, false, newStreamGoneError(e->ctx));
    e->releaseStream(s);
  }
}

void freeAllCallouts(Engine::Impl* e) {
  for (auto& [id, c] : e->callouts) {
    JS_FreeValue(e->ctx, c.resolve);
    JS_FreeValue(e->ctx, c.reject);
  }
  e->callouts.clear();
}

bool registerFetchClasses(Engine::Impl* e) {
  ClassIds& c = e->classes;
  return defineClass(e, &c.fetchResponse, "FetchResponse", responseFinalizer, kFetchResponseProto,
                     countOf(kFetchResponseProto)) &&
         defineClass(e, &c.fetchHeaders, "FetchHeaders", headersFinalizer, kFetchHeadersProto,
                     countOf(kFetchHeadersProto));
}

void Engine::onCalloutDone(uint64_t id, const CalloutResponse& response) {
  Impl* e = impl_.get();
  if (e->backgroundHost == nullptr) return;
  StreamState* saved = e->current;
  e->current = nullptr;
  settleCallout(e, nullptr, id, response);
  e->runJobs();
  e->current = saved;
}

void Stream::onCalloutDone(uint64_t id, const CalloutResponse& response) {
  StreamState* s = state_;
  if (s == nullptr || s->destroyed()) return;
  Engine::Impl* e = s->engine;
  s->jsRefs++;
  StreamState* saved = e->current;
  e->current = s;
  deliverCallout(s, id, response);
  e->runJobs();
  e->current = saved;
  e->releaseStream(s);
}

}  // namespace envoy_js
