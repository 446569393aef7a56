// Request and Response (the `req` and `res` of the hooks) and the LocalReply marker that
// ctx.respond() returns.
#include "bind_util.h"

namespace envoy_js {
namespace {

JSValue pseudoHeader(JSContext* ctx, StreamState* s, HeaderMapKind kind, const char* name) {
  if (s->host == nullptr) return throwStreamGone(ctx);
  HeaderMap* map = s->host->headerMap(kind);
  std::string_view value;
  if (map == nullptr || map->get(name, 0, &value) == 0) return JS_NewString(ctx, "");
  return JS_NewStringLen(ctx, value.data(), value.size());
}

// The request's pseudo-headers that Request shows as properties.
enum class Pseudo : int { Method, Path, Authority, Scheme };
constexpr const char* kPseudoNames[] = {":method", ":path", ":authority", ":scheme"};

// magic: Pseudo
JSValue js_request_pseudo(JSContext* ctx, JSValueConst thisVal, int magic) {
  StreamState* s = streamOf(ctx, thisVal, engineOf(ctx)->classes.request);
  if (!s) return JS_EXCEPTION;
  return pseudoHeader(ctx, s, HeaderMapKind::RequestHeaders, kPseudoNames[magic]);
}

// Getters shared by Request and Response; magic: the Direction.
StreamState* messageThis(JSContext* ctx, JSValueConst thisVal, int magic) {
  Engine::Impl* e = engineOf(ctx);
  return streamOf(ctx, thisVal,
                  static_cast<Direction>(magic) == Direction::Request ? e->classes.request : e->classes.response);
}

// The first read also stores the Headers object as an own read-only property of this
// Request/Response: filters read `req.headers` again and again, and an own data property is
// a plain (inline-cached) load where the prototype getter is a native call each time.
JSValue js_message_headers(JSContext* ctx, JSValueConst thisVal, int magic) {
  StreamState* s = messageThis(ctx, thisVal, magic);
  if (!s) return JS_EXCEPTION;
  JSValue headers = headersObject(s, headersKind(static_cast<Direction>(magic)));
  if (!JS_IsException(headers) &&
      JS_DefinePropertyValue(ctx, thisVal, s->engine->headersAtom, JS_DupValue(ctx, headers), 0) < 0) {
    JS_FreeValue(ctx, JS_GetException(ctx));  // e.g. out of memory: the getter still works
  }
  return headers;
}

JSValue js_message_body(JSContext* ctx, JSValueConst thisVal, int magic) {
  StreamState* s = messageThis(ctx, thisVal, magic);
  if (!s) return JS_EXCEPTION;
  return bodyObject(s, static_cast<Direction>(magic));
}

// Whether end of stream came with the headers: the message has no body and no trailers.
JSValue js_message_end_of_stream(JSContext* ctx, JSValueConst thisVal, int magic) {
  StreamState* s = messageThis(ctx, thisVal, magic);
  if (!s) return JS_EXCEPTION;
  return JS_NewBool(ctx, s->dir(static_cast<Direction>(magic)).headersEnded);
}

const JSCFunctionListEntry kRequestProto[] = {
    JS_CGETSET_MAGIC_DEF("method", js_request_pseudo, nullptr, static_cast<int>(Pseudo::Method)),
    JS_CGETSET_MAGIC_DEF("path", js_request_pseudo, nullptr, static_cast<int>(Pseudo::Path)),
    JS_CGETSET_MAGIC_DEF("authority", js_request_pseudo, nullptr, static_cast<int>(Pseudo::Authority)),
    JS_CGETSET_MAGIC_DEF("scheme", js_request_pseudo, nullptr, static_cast<int>(Pseudo::Scheme)),
    JS_CGETSET_MAGIC_DEF("headers", js_message_headers, nullptr, static_cast<int>(Direction::Request)),
    JS_CGETSET_MAGIC_DEF("body", js_message_body, nullptr, static_cast<int>(Direction::Request)),
    JS_CGETSET_MAGIC_DEF("endOfStream", js_message_end_of_stream, nullptr, static_cast<int>(Direction::Request)),
};

JSValue js_response_status(JSContext* ctx, JSValueConst thisVal) {
  StreamState* s = streamOf(ctx, thisVal, engineOf(ctx)->classes.response);
  if (!s) return JS_EXCEPTION;
  if (s->host == nullptr) return throwStreamGone(ctx);
  HeaderMap* map = s->host->headerMap(HeaderMapKind::ResponseHeaders);
  std::string_view value;
  if (map == nullptr || map->get(":status", 0, &value) == 0) return JS_NewInt32(ctx, 0);
  int status = 0;
  for (char c : value) {
    if (c < '0' || c > '9' || status > 9999) return JS_NewInt32(ctx, 0);
    status = status * 10 + (c - '0');
  }
  return JS_NewInt32(ctx, status);
}

const JSCFunctionListEntry kResponseProto[] = {
    JS_CGETSET_DEF("status", js_response_status, nullptr),
    JS_CGETSET_MAGIC_DEF("headers", js_message_headers, nullptr, static_cast<int>(Direction::Response)),
    JS_CGETSET_MAGIC_DEF("body", js_message_body, nullptr, static_cast<int>(Direction::Response)),
    JS_CGETSET_MAGIC_DEF("endOfStream", js_message_end_of_stream, nullptr, static_cast<int>(Direction::Response)),
};

}  // namespace

JSValue makeRequest(StreamState* s) { return cachedStreamWrapper(s, &s->req, s->engine->classes.request); }
JSValue makeResponse(StreamState* s) { return cachedStreamWrapper(s, &s->res, s->engine->classes.response); }

bool registerMessageClasses(Engine::Impl* e) {
  ClassIds& c = e->classes;
  return defineClass(e, &c.request, "Request", streamWrapperFinalizer, kRequestProto, countOf(kRequestProto)) &&
         defineClass(e, &c.response, "Response", streamWrapperFinalizer, kResponseProto, countOf(kResponseProto)) &&
         defineClass(e, &c.reply, "LocalReply", nullptr, nullptr, 0);
}

}  // namespace envoy_js
