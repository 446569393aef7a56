// Headers: a live view of one of the host's header maps (request/response headers and
// trailers), validated and lower-cased names, writes refused once the map was sent on.
#include "bind_util.h"

namespace envoy_js {
namespace {

HeadersRef* headersThis(JSContext* ctx, JSValueConst thisVal) {
  return static_cast<HeadersRef*>(JS_GetOpaque2(ctx, thisVal, engineOf(ctx)->classes.headers));
}

const char* mapName(HeaderMapKind k) {
  switch (k) {
    case HeaderMapKind::RequestHeaders: return "request headers";
    case HeaderMapKind::RequestTrailers: return "request trailers";
    case HeaderMapKind::ResponseHeaders: return "response headers";
    case HeaderMapKind::ResponseTrailers: return "response trailers";
  }
  return "headers";
}

// The live host map behind a Headers object, or nullptr with an exception set.
HeaderMap* mapFor(JSContext* ctx, HeadersRef* h, bool forWrite) {
  StreamState* s = h->stream;
  if (s->host == nullptr) {
    throwStreamGone(ctx);
    return nullptr;
  }
  bool trailers = h->kind == HeaderMapKind::RequestTrailers || h->kind == HeaderMapKind::ResponseTrailers;
  Direction dir = (h->kind == HeaderMapKind::RequestHeaders || h->kind == HeaderMapKind::RequestTrailers)
                      ? Direction::Request
                      : Direction::Response;
  if (forWrite) {
    DirectionState& d = s->dir(dir);
    bool late = trailers ? d.allSent() : d.headersSent();
    if (late || s->completed()) {
      JS_ThrowTypeError(ctx,
                        "%s were already sent on and can no longer be changed: change them in %s "
                        "before it returns or its promise settles",
                        mapName(h->kind), kHookNames[trailers ? trailersHook(dir) : headersHook(dir)]);
      return nullptr;
    }
  }
  HeaderMap* map = s->host->headerMap(h->kind);
  if (map == nullptr) {
    JS_ThrowTypeError(ctx, "this stream has no %s", mapName(h->kind));
    return nullptr;
  }
  return map;
}

// What a Headers method needs from the live host map: Read or Write open it with the receiver
// and the name; Later leaves it to openMap(), for writes that check their value first.
enum class MapAccess { Read, Write, Later };

// The prologue of every Headers method that takes a name: the receiver, the name argument and
// (unless Later) the live map, checked in that order. False (operator bool) with a JS
// exception pending.
class HeadersCall {
 public:
  HeadersCall(JSContext* ctx, JSValueConst thisVal, int argc, JSValueConst* argv, MapAccess access)
      : ref_(headersThis(ctx, thisVal)) {
    if (!ref_) return;
    name_.emplace(ctx, argc > 0 ? argv[0] : JS_UNDEFINED);
    ok_ = name_->ok() && (access == MapAccess::Later || openMap(ctx, access == MapAccess::Write));
  }
  explicit operator bool() const { return ok_; }
  std::string_view name() const { return name_->view(); }
  HeaderMap* map() const { return map_; }
  // The live map, for MapAccess::Later; false with a JS exception pending.
  bool openMap(JSContext* ctx, bool forWrite) {
    map_ = mapFor(ctx, ref_, forWrite);
    return map_ != nullptr;
  }
  // A write went through: with `rerouteOnHeaderChange`, a change to the request headers
  // clears Envoy's route cache, as Envoy's Wasm filter does on every request-header change.
  void written() const {
    if (ref_->kind == HeaderMapKind::RequestHeaders && ref_->stream->engine->rerouteOnHeaderChange) {
      streamRouteCacheCleared(ref_->stream);
    }
  }

 private:
  HeadersRef* ref_;
  std::optional<HeaderName> name_;
  HeaderMap* map_ = nullptr;
  bool ok_ = false;
};

JSValue js_headers_get(JSContext* ctx, JSValueConst thisVal, int argc, JSValueConst* argv) {
  HeadersCall call(ctx, thisVal, argc, argv, MapAccess::Read);
  if (!call) return JS_EXCEPTION;
  std::string_view name = call.name();
  HeaderMap* map = call.map();
  std::string_view value;
  size_t n = map->get(name, 0, &value);
  if (n == 0) return JS_NULL;
  if (n == 1) return JS_NewStringLen(ctx, value.data(), value.size());
  std::string joined(value);
  for (size_t i = 1; i < n; i++) {
    map->get(name, i, &value);
    joined += ", ";
    joined += value;
  }
  return JS_NewStringLen(ctx, joined.data(), joined.size());
}

JSValue js_headers_getAll(JSContext* ctx, JSValueConst thisVal, int argc, JSValueConst* argv) {
  HeadersCall call(ctx, thisVal, argc, argv, MapAccess::Read);
  if (!call) return JS_EXCEPTION;
  std::string_view name = call.name();
  HeaderMap* map = call.map();
  std::string_view value;
  size_t n = map->get(name, 0, &value);
  JSValue arr = JS_NewArray(ctx);
  for (size_t i = 0; i < n; i++) {
    if (i > 0) map->get(name, i, &value);
    JS_SetPropertyUint32(ctx, arr, static_cast<uint32_t>(i), JS_NewStringLen(ctx, value.data(), value.size()));
  }
  return arr;
}

JSValue js_headers_has(JSContext* ctx, JSValueConst thisVal, int argc, JSValueConst* argv) {
  HeadersCall call(ctx, thisVal, argc, argv, MapAccess::Read);
  if (!call) return JS_EXCEPTION;
  std::string_view name = call.name();
  HeaderMap* map = call.map();
  std::string_view value;
  return JS_NewBool(ctx, map->get(name, 0, &value) > 0);
}

enum class HeaderWrite : int { Set, Append };

// The body's framing is Envoy's and the runtime's to state, never a filter's: a content-length
// that does not match the body, or one beside a transfer-encoding, is a request-smuggling or
// response-desync shape (Envoy sends a filter's content-length on as it is). Deleting them is
// allowed (Envoy then frames the body itself).
bool checkNotFraming(JSContext* ctx, std::string_view name) {
  if (name != "content-length" && name != "transfer-encoding") return true;
  JS_ThrowTypeError(ctx,
                    "%s is set by Envoy and envoy-js from the body, not by filters (change the body with "
                    "replace() or ctx.respond(); delete the header to let Envoy frame it)",
                    name == "content-length" ? "content-length" : "transfer-encoding");
  return false;
}

// magic: HeaderWrite
JSValue js_headers_write(JSContext* ctx, JSValueConst thisVal, int argc, JSValueConst* argv, int magic) {
  HeadersCall call(ctx, thisVal, argc, argv, MapAccess::Later);
  if (!call) return JS_EXCEPTION;
  std::string_view name = call.name();
  if (!checkNotFraming(ctx, name)) return JS_EXCEPTION;
  CString value(ctx, argc > 1 ? argv[1] : JS_UNDEFINED);
  if (!value.ptr || !checkValue(ctx, value.view()) || !call.openMap(ctx, true)) return JS_EXCEPTION;
  HeaderMap* map = call.map();
  if (static_cast<HeaderWrite>(magic) == HeaderWrite::Set) map->set(name, value.view());
  else map->append(name, value.view());
  call.written();
  return JS_UNDEFINED;
}

JSValue js_headers_delete(JSContext* ctx, JSValueConst thisVal, int argc, JSValueConst* argv) {
  HeadersCall call(ctx, thisVal, argc, argv, MapAccess::Write);
  if (!call) return JS_EXCEPTION;
  call.map()->remove(call.name());
  call.written();
  return JS_UNDEFINED;
}

struct EntriesBuilder {
  JSContext* ctx;
  JSValue array;
  uint32_t index;
};

// entries() snapshots the map into [name, value] pairs: iteration stays well-defined even
// when the loop body modifies the headers.
JSValue js_headers_entries(JSContext* ctx, JSValueConst thisVal, int, JSValueConst*) {
  HeadersRef* h = headersThis(ctx, thisVal);
  if (!h) return JS_EXCEPTION;
  HeaderMap* map = mapFor(ctx, h, false);
  if (!map) return JS_EXCEPTION;
  EntriesBuilder b{ctx, JS_NewArray(ctx), 0};
  map->forEach(
      [](void* opaque, std::string_view name, std::string_view value) {
        auto* b = static_cast<EntriesBuilder*>(opaque);
        JSValue pair = JS_NewArray(b->ctx);
        JS_SetPropertyUint32(b->ctx, pair, 0, JS_NewStringLen(b->ctx, name.data(), name.size()));
        JS_SetPropertyUint32(b->ctx, pair, 1, JS_NewStringLen(b->ctx, value.data(), value.size()));
        JS_SetPropertyUint32(b->ctx, b->array, b->index++, pair);
      },
      &b);
  JSValue iterFn = JS_GetPropertyStr(ctx, b.array, "values");
  JSValue iter = JS_Call(ctx, iterFn, b.array, 0, nullptr);
  JS_FreeValue(ctx, iterFn);
  JS_FreeValue(ctx, b.array);
  return iter;
}

const JSCFunctionListEntry kHeadersProto[] = {
    JS_CFUNC_DEF("get", 1, js_headers_get),
    JS_CFUNC_DEF("getAll", 1, js_headers_getAll),
    JS_CFUNC_DEF("has", 1, js_headers_has),
    JS_CFUNC_MAGIC_DEF("set", 2, js_headers_write, static_cast<int>(HeaderWrite::Set)),
    JS_CFUNC_MAGIC_DEF("append", 2, js_headers_write, static_cast<int>(HeaderWrite::Append)),
    JS_CFUNC_DEF("delete", 1, js_headers_delete),
    JS_CFUNC_DEF("entries", 0, js_headers_entries),
    JS_ALIAS_DEF("[Symbol.iterator]", "entries"),
    JS_PROP_STRING_DEF("[Symbol.toStringTag]", "Headers", JS_PROP_CONFIGURABLE),
};

void headersFinalizer(JSRuntime* rt, JSValueConst val) {
  Engine::Impl* e = engineOfRt(rt);
  auto* h = static_cast<HeadersRef*>(JS_GetOpaque(val, e->classes.headers));
  if (!h) return;
  e->releaseStream(h->stream);  // h is part of the stream state: nothing else to free
}

}  // namespace

JSValue headersObject(StreamState* s, HeaderMapKind kind) {
  return cachedWrapper(s, &s->headers[static_cast<int>(kind)], s->engine->classes.headers,
                       [&] { return &s->headerRefs[static_cast<int>(kind)]; });
}

bool registerHeadersClass(Engine::Impl* e) {
  return defineClass(e, &e->classes.headers, "Headers", headersFinalizer, kHeadersProto, countOf(kHeadersProto));
}

}  // namespace envoy_js
