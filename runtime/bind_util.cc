// The helpers of bind_util.h.
#include "bind_util.h"

namespace envoy_js {

BufferBytes bufferBytes(JSContext* ctx, JSValueConst v, std::string* out) {
  size_t size = 0;
  if (JS_IsArrayBuffer(v)) {
    uint8_t* p = JS_GetArrayBuffer(ctx, &size, v);
    if (p == nullptr && JS_HasException(ctx)) return BufferBytes::Exception;  // detached
    if (p != nullptr) out->assign(reinterpret_cast<const char*>(p), size);
    else out->clear();
    return BufferBytes::Copied;
  }
  size_t offset = 0, length = 0;
  JSValue buffer = JS_UNDEFINED;
  if (JS_GetTypedArrayType(v) >= 0) {
    buffer = JS_GetTypedArrayBuffer(ctx, v, &offset, &length, nullptr);  // throws when detached
  } else if (JS_IsDataView(v)) {
    // No C API for a DataView's window: its own getters (they throw when detached).
    JSValue off = JS_GetPropertyStr(ctx, v, "byteOffset");
    JSValue len = JS_GetPropertyStr(ctx, v, "byteLength");
    int64_t o = 0, l = 0;
    if (JS_ToInt64(ctx, &o, off) == 0 && JS_ToInt64(ctx, &l, len) == 0 && o >= 0 && l >= 0) {
      offset = static_cast<size_t>(o);
      length = static_cast<size_t>(l);
      buffer = JS_GetPropertyStr(ctx, v, "buffer");
    } else if (!JS_HasException(ctx)) {
      JS_ThrowTypeError(ctx, "not a DataView");
    }
    JS_FreeValue(ctx, off);
    JS_FreeValue(ctx, len);
    if (JS_HasException(ctx)) return BufferBytes::Exception;
  } else {
    return BufferBytes::NotBuffer;
  }
  if (JS_IsException(buffer)) return BufferBytes::Exception;
  uint8_t* p = JS_GetArrayBuffer(ctx, &size, buffer);
  JS_FreeValue(ctx, buffer);
  if (p == nullptr && JS_HasException(ctx)) return BufferBytes::Exception;
  if (length == 0) {
    out->clear();
    return BufferBytes::Copied;
  }
  if (p == nullptr || offset > size || length > size - offset) {
    JS_ThrowRangeError(ctx, "the view is outside its buffer");
    return BufferBytes::Exception;
  }
  out->assign(reinterpret_cast<const char*>(p) + offset, length);
  return BufferBytes::Copied;
}

bool bodyBytes(JSContext* ctx, JSValueConst v, const char* what, std::string* out) {
  if (JS_IsString(v)) {
    CString s(ctx, v);
    if (!s.ptr) return false;
    out->assign(s.ptr, s.len);
    return true;
  }
  switch (bufferBytes(ctx, v, out)) {
    case BufferBytes::Copied: return true;
    case BufferBytes::Exception: return false;
    case BufferBytes::NotBuffer: break;
  }
  JS_ThrowTypeError(ctx, "%s must be a string, an ArrayBuffer, a typed array (Uint8Array, ...) or a DataView", what);
  return false;
}

JSValue newError(JSContext* ctx, const char* name, const std::string& message) {
  JSValue err = JS_NewError(ctx);
  JS_SetPropertyStr(ctx, err, "name", JS_NewString(ctx, name));
  JS_SetPropertyStr(ctx, err, "message", JS_NewStringLen(ctx, message.data(), message.size()));
  return err;
}

bool normalizeName(JSContext* ctx, JSValueConst v, std::string* out) {
  HeaderName name(ctx, v);
  if (!name.ok()) return false;
  out->assign(name.view());
  return true;
}

bool checkValue(JSContext* ctx, std::string_view v) {
  if (isHeaderValue(v)) return true;
  JS_ThrowTypeError(ctx, "header values may not contain CR, LF or NUL");
  return false;
}

JSValue newStreamGoneError(JSContext* ctx) {
  return newError(ctx, "StreamGone",
                  "the stream is gone (the client went away or the stream was destroyed); check "
                  "ctx.aborted");
}

JSValue throwStreamGone(JSContext* ctx) { return JS_Throw(ctx, newStreamGoneError(ctx)); }

void streamWrapperFinalizer(JSRuntime* rt, JSValueConst val) {
  Engine::Impl* e = engineOfRt(rt);
  JSClassID id = 0;
  auto* s = static_cast<StreamState*>(JS_GetAnyOpaque(val, &id));
  if (s) e->releaseStream(s);
}

JSValue rejected(JSContext* ctx, JSValue error) {
  JSValue p = JS_NewSettledPromise(ctx, true, error);
  JS_FreeValue(ctx, error);
  return p;
}

std::string formatArgs(JSContext* ctx, int argc, JSValueConst* argv) {
  std::string out;
  for (int i = 0; i < argc; i++) {
    if (i > 0) out += ' ';
    JSValueConst v = argv[i];
    if (JS_IsError(v)) {
      out += engineOf(ctx)->describeException(JS_DupValue(ctx, v));
      continue;
    }
    if (JS_IsObject(v) && !JS_IsFunction(ctx, v)) {
      JSValue json = JS_JSONStringify(ctx, v, JS_UNDEFINED, JS_UNDEFINED);
      if (JS_IsException(json)) {
        JS_FreeValue(ctx, JS_GetException(ctx));
      } else if (JS_IsString(json)) {
        CString s(ctx, json);
        out += s.view();
        JS_FreeValue(ctx, json);
        continue;
      }
      JS_FreeValue(ctx, json);
    }
    CString s(ctx, v);
    if (s.ptr) out += s.view();
    else JS_FreeValue(ctx, JS_GetException(ctx));
  }
  return out;
}

void logTo(Engine::Impl* e, StreamState* s, LogLevel level, const std::string& text) {
  if (s != nullptr && s->host != nullptr) s->host->log(level, text);
  else e->logEngine(level, text);
}

JSValue freeze(JSContext* ctx, JSValue obj) {
  JSValue global = JS_GetGlobalObject(ctx);
  JSValue object = JS_GetPropertyStr(ctx, global, "Object");
  JSValue fn = JS_GetPropertyStr(ctx, object, "freeze");
  JS_FreeValue(ctx, JS_Call(ctx, fn, object, 1, &obj));
  JS_FreeValue(ctx, fn);
  JS_FreeValue(ctx, object);
  JS_FreeValue(ctx, global);
  return obj;
}

bool stringArg(JSContext* ctx, int argc, JSValueConst* argv, int i, const char* what, std::string* out) {
  if (i >= argc || !JS_IsString(argv[i])) {
    JS_ThrowTypeError(ctx, "%s must be a string", what);
    return false;
  }
  CString c(ctx, argv[i]);
  if (!c.ptr) return false;
  out->assign(c.ptr, c.len);
  return true;
}

bool defineClass(Engine::Impl* e, JSClassID* id, const char* name, JSClassFinalizer* finalizer,
                 const JSCFunctionListEntry* list, int count) {
  JS_NewClassID(e->rt, id);
  JSClassDef def{};
  def.class_name = name;
  def.finalizer = finalizer;
  if (JS_NewClass(e->rt, *id, &def) < 0) return false;
  if (list == nullptr) return true;
  JSValue proto = JS_NewObject(e->ctx);
  JS_SetPropertyFunctionList(e->ctx, proto, list, count);
  JS_SetClassProto(e->ctx, *id, proto);
  return true;
}

}  // namespace envoy_js
