// The globals of DESIGN.md section 3 (console, queueMicrotask, performance, crypto,
// TextEncoder/TextDecoder; the timers are in timers.cc) and the registration of every class.
#include <sys/random.h>  // getentropy (glibc and wasi-libc)

#include <cerrno>
#include <cstring>

#include "bind_util.h"

namespace envoy_js {
namespace {

// ---- console ---------------------------------------------------------------------------------

JSValue js_console(JSContext* ctx, JSValueConst, int argc, JSValueConst* argv, int magic) {
  Engine::Impl* e = engineOf(ctx);
  logTo(e, e->current, static_cast<LogLevel>(magic), formatArgs(ctx, argc, argv));
  return JS_UNDEFINED;
}

const JSCFunctionListEntry kConsole[] = {
    JS_CFUNC_MAGIC_DEF("log", 1, js_console, static_cast<int>(LogLevel::Info)),
    JS_CFUNC_MAGIC_DEF("info", 1, js_console, static_cast<int>(LogLevel::Info)),
    JS_CFUNC_MAGIC_DEF("debug", 1, js_console, static_cast<int>(LogLevel::Debug)),
    JS_CFUNC_MAGIC_DEF("trace", 1, js_console, static_cast<int>(LogLevel::Trace)),
    JS_CFUNC_MAGIC_DEF("warn", 1, js_console, static_cast<int>(LogLevel::Warn)),
    JS_CFUNC_MAGIC_DEF("error", 1, js_console, static_cast<int>(LogLevel::Error)),
};

// ---- crypto ------------------------------------------------------------------------------------

// getentropy (at most 256 bytes a call) rather than getrandom: it exists in glibc and in
// wasi-libc alike, so the wasm engine (DESIGN.md section 6) builds this file unchanged.
bool fillRandom(uint8_t* p, size_t n) {
  while (n > 0) {
    size_t take = n < 256 ? n : 256;
    if (getentropy(p, take) != 0) return false;
    p += take;
    n -= take;
  }
  return true;
}

JSValue js_get_random_values(JSContext* ctx, JSValueConst, int argc, JSValueConst* argv) {
  if (argc < 1) return JS_ThrowTypeError(ctx, "crypto.getRandomValues needs an integer typed array");
  int type = JS_GetTypedArrayType(argv[0]);
  if (type < 0 || type == JS_TYPED_ARRAY_FLOAT32 || type == JS_TYPED_ARRAY_FLOAT64 || type == JS_TYPED_ARRAY_FLOAT16) {
    return JS_ThrowTypeError(ctx, "crypto.getRandomValues needs an integer typed array");
  }
  size_t offset = 0, length = 0, bytesPerElement = 0;
  JSValue buffer = JS_GetTypedArrayBuffer(ctx, argv[0], &offset, &length, &bytesPerElement);
  if (JS_IsException(buffer)) return buffer;
  size_t size = 0;
  uint8_t* data = JS_GetArrayBuffer(ctx, &size, buffer);
  JS_FreeValue(ctx, buffer);
  if (length > 65536) return JS_ThrowRangeError(ctx, "crypto.getRandomValues: at most 65536 bytes at a time");
  if (data == nullptr && length > 0) return JS_EXCEPTION;
  if (length > 0 && !fillRandom(data + offset, length)) return JS_ThrowInternalError(ctx, "no randomness available");
  return JS_DupValue(ctx, argv[0]);
}

JSValue js_random_uuid(JSContext* ctx, JSValueConst, int, JSValueConst*) {
  uint8_t b[16];
  if (!fillRandom(b, sizeof b)) return JS_ThrowInternalError(ctx, "no randomness available");
  b[6] = static_cast<uint8_t>((b[6] & 0x0f) | 0x40);  // version 4
  b[8] = static_cast<uint8_t>((b[8] & 0x3f) | 0x80);  // RFC 4122 variant
  char out[37];
  snprintf(out, sizeof out, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2],
           b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
  return JS_NewStringLen(ctx, out, 36);
}

const JSCFunctionListEntry kCrypto[] = {
    JS_CFUNC_DEF("getRandomValues", 1, js_get_random_values),
    JS_CFUNC_DEF("randomUUID", 0, js_random_uuid),
};

// ---- globals: queueMicrotask, performance, TextEncoder/TextDecoder ---------------------------

JSValue runMicrotask(JSContext* ctx, int argc, JSValueConst* argv) {
  return JS_Call(ctx, argv[0], JS_UNDEFINED, 0, nullptr);
}

JSValue js_queueMicrotask(JSContext* ctx, JSValueConst, int argc, JSValueConst* argv) {
  if (argc < 1 || !JS_IsFunction(ctx, argv[0])) return JS_ThrowTypeError(ctx, "queueMicrotask needs a function");
  if (JS_EnqueueJob(ctx, runMicrotask, 1, argv) < 0) return JS_EXCEPTION;
  return JS_UNDEFINED;
}

JSValue js_performance_now(JSContext* ctx, JSValueConst, int, JSValueConst*) {
  Engine::Impl* e = engineOf(ctx);
  return JS_NewFloat64(ctx, e && e->host ? e->host->nowMs() : 0);
}

JSValue js_text_encoder_ctor(JSContext* ctx, JSValueConst newTarget, int, JSValueConst*) {
  Engine::Impl* e = engineOf(ctx);
  JSValue proto = JS_GetPropertyStr(ctx, newTarget, "prototype");
  JSValue obj = JS_NewObjectProtoClass(ctx, proto, e->classes.textEncoder);
  JS_FreeValue(ctx, proto);
  return obj;
}

JSValue js_text_encoder_encode(JSContext* ctx, JSValueConst thisVal, int argc, JSValueConst* argv) {
  if (!JS_GetOpaque2(ctx, thisVal, engineOf(ctx)->classes.textEncoder) && JS_HasException(ctx)) {
    JS_FreeValue(ctx, JS_GetException(ctx));  // opaque-less class: the class check is enough
  }
  if (argc < 1 || JS_IsUndefined(argv[0])) return JS_NewUint8ArrayCopy(ctx, nullptr, 0);
  CString s(ctx, argv[0]);
  if (!s.ptr) return JS_EXCEPTION;
  return JS_NewUint8ArrayCopy(ctx, reinterpret_cast<const uint8_t*>(s.ptr), s.len);
}

JSValue js_text_encoding(JSContext* ctx, JSValueConst) { return JS_NewString(ctx, "utf-8"); }

const JSCFunctionListEntry kTextEncoderProto[] = {
    JS_CFUNC_DEF("encode", 1, js_text_encoder_encode),
    JS_CGETSET_DEF("encoding", js_text_encoding, nullptr),
};

// Validates UTF-8; on an invalid sequence either fails (fatal) or substitutes U+FFFD.
bool decodeUtf8(std::string_view in, bool fatal, std::string* out) {
  out->clear();
  out->reserve(in.size());
  size_t i = 0;
  const auto* p = reinterpret_cast<const unsigned char*>(in.data());
  while (i < in.size()) {
    unsigned char c = p[i];
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    bool ok = n > 0 && i + n <= in.size();
    uint32_t cp = n == 1 ? c : n == 2 ? (c & 0x1f) : n == 3 ? (c & 0x0f) : (c & 0x07);
    for (size_t k = 1; ok && k < n; k++) {
      if ((p[i + k] & 0xc0) != 0x80) ok = false;
      else cp = (cp << 6) | (p[i + k] & 0x3f);
    }
    if (ok && ((n == 2 && cp < 0x80) || (n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
               (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))) {
      ok = false;
    }
    if (ok) {
      out->append(in.substr(i, n));
      i += n;
    } else {
      if (fatal) return false;
      out->append("\xef\xbf\xbd");
      i += 1;
    }
  }
  return true;
}

JSValue js_text_decoder_ctor(JSContext* ctx, JSValueConst newTarget, int argc, JSValueConst* argv) {
  Engine::Impl* e = engineOf(ctx);
  if (argc > 0 && !JS_IsUndefined(argv[0])) {
    CString label(ctx, argv[0]);
    if (!label.ptr) return JS_EXCEPTION;  // a label whose toString() threw, a Symbol
    std::string l = label.str();
    lowerAscii(l);
    if (l != "utf-8" && l != "utf8" && l != "unicode-1-1-utf-8") {
      return JS_ThrowRangeError(ctx, "TextDecoder: only utf-8 is supported, not '%s'", l.c_str());
    }
  }
  bool fatal = false;
  if (argc > 1 && JS_IsObject(argv[1])) {
    JSValue f = JS_GetPropertyStr(ctx, argv[1], "fatal");
    fatal = JS_ToBool(ctx, f);
    JS_FreeValue(ctx, f);
  }
  JSValue proto = JS_GetPropertyStr(ctx, newTarget, "prototype");
  JSValue obj = JS_NewObjectProtoClass(ctx, proto, e->classes.textDecoder);
  JS_FreeValue(ctx, proto);
  JS_DefinePropertyValueStr(ctx, obj, "fatal", JS_NewBool(ctx, fatal), JS_PROP_ENUMERABLE);
  return obj;
}

JSValue js_text_decoder_decode(JSContext* ctx, JSValueConst thisVal, int argc, JSValueConst* argv) {
  std::string bytes;
  if (argc > 0 && !JS_IsUndefined(argv[0])) {
    switch (bufferBytes(ctx, argv[0], &bytes)) {
      case BufferBytes::Copied: break;
      case BufferBytes::Exception: return JS_EXCEPTION;
      case BufferBytes::NotBuffer:
        return JS_ThrowTypeError(ctx, "TextDecoder.decode needs an ArrayBuffer, a typed array or a DataView");
    }
  }
  JSValue f = JS_GetPropertyStr(ctx, thisVal, "fatal");
  bool fatal = JS_ToBool(ctx, f);
  JS_FreeValue(ctx, f);
  std::string text;
  if (!decodeUtf8(bytes, fatal, &text)) return JS_ThrowTypeError(ctx, "TextDecoder: invalid UTF-8 data");
  return JS_NewStringLen(ctx, text.data(), text.size());
}

const JSCFunctionListEntry kTextDecoderProto[] = {
    JS_CFUNC_DEF("decode", 1, js_text_decoder_decode),
    JS_CGETSET_DEF("encoding", js_text_encoding, nullptr),
};

}  // namespace

bool registerClasses(Engine::Impl* e) {
  ClassIds& c = e->classes;
  return registerContextClasses(e) && registerMetadataClass(e) && registerSharedClass(e) && registerMessageClasses(e) &&
         registerHeadersClass(e) && registerBodyClasses(e) &&
         defineClass(e, &c.textEncoder, "TextEncoder", nullptr, kTextEncoderProto, countOf(kTextEncoderProto)) &&
         defineClass(e, &c.textDecoder, "TextDecoder", nullptr, kTextDecoderProto, countOf(kTextDecoderProto)) &&
         registerFetchClasses(e);
}

void ShapeKeepers::create(Engine::Impl* e) {
  const ClassIds& c = e->classes;
  auto keeper = [e](JSClassID id) { return JS_NewObjectClass(e->ctx, static_cast<int>(id)); };
  context = keeper(c.context);
  request = keeper(c.request);
  response = keeper(c.response);
  headers = keeper(c.headers);
  body = keeper(c.body);
  chunk = keeper(c.chunk);
  log = keeper(c.log);
  reply = keeper(c.reply);
  requestWithHeaders = keeper(c.request);
  responseWithHeaders = keeper(c.response);
  JS_DefinePropertyValue(e->ctx, requestWithHeaders, e->headersAtom, JS_UNDEFINED, 0);
  JS_DefinePropertyValue(e->ctx, responseWithHeaders, e->headersAtom, JS_UNDEFINED, 0);
}

void ShapeKeepers::release(JSContext* ctx) {
  for (JSValue* v : {&context, &request, &response, &headers, &body, &chunk, &log, &reply, &requestWithHeaders,
                     &responseWithHeaders}) {
    JS_FreeValue(ctx, *v);
    *v = JS_UNDEFINED;
  }
}

namespace {

// ---- code generation from strings ---------------------------------------------------------------

constexpr const char* kNoCodeFromStrings = "code generation from strings is disabled: eval() and new Function() need "
                                           "\"allow_code_from_strings\": true in the filter's settings";

// Stands in for eval and Function: throws an EvalError that names the setting. The engine
// itself cannot compile strings either (no eval intrinsic in the context), so the
// AsyncFunction and generator constructors, reachable only through a function's prototype
// chain, throw quickjs-ng's TypeError "eval is not supported".
JSValue js_no_code_from_strings(JSContext* ctx, JSValueConst, int, JSValueConst*) {
  JSValue global = JS_GetGlobalObject(ctx);
  JSValue ctor = JS_GetPropertyStr(ctx, global, "EvalError");
  JSValue message = JS_NewString(ctx, kNoCodeFromStrings);
  JSValue error = JS_CallConstructor(ctx, ctor, 1, &message);
  JS_FreeValue(ctx, message);
  JS_FreeValue(ctx, ctor);
  JS_FreeValue(ctx, global);
  if (JS_IsException(error)) return error;
  return JS_Throw(ctx, error);
}

// Replaces the global eval, the global Function and Function.prototype.constructor with
// throwers. `instanceof Function` keeps working: the stand-in's prototype is the original
// Function.prototype.
bool refuseCodeFromStrings(JSContext* ctx) {
  JSValue global = JS_GetGlobalObject(ctx);
  JSValue fnProto = JS_GetFunctionProto(ctx);
  JSValue evalStub = JS_NewCFunction(ctx, js_no_code_from_strings, "eval", 1);
  JSValue fnStub = JS_NewCFunction2(ctx, js_no_code_from_strings, "Function", 1, JS_CFUNC_constructor_or_func, 0);
  bool ok = !JS_IsException(evalStub) && !JS_IsException(fnStub);
  if (ok) {
    ok = JS_DefinePropertyValueStr(ctx, fnStub, "prototype", JS_DupValue(ctx, fnProto), 0) >= 0 &&
         JS_DefinePropertyValueStr(ctx, fnProto, "constructor", JS_DupValue(ctx, fnStub),
                                   JS_PROP_WRITABLE | JS_PROP_CONFIGURABLE) >= 0 &&
         JS_DefinePropertyValueStr(ctx, global, "Function", JS_DupValue(ctx, fnStub),
                                   JS_PROP_WRITABLE | JS_PROP_CONFIGURABLE) >= 0 &&
         JS_DefinePropertyValueStr(ctx, global, "eval", JS_DupValue(ctx, evalStub),
                                   JS_PROP_WRITABLE | JS_PROP_CONFIGURABLE) >= 0;
  }
  JS_FreeValue(ctx, evalStub);
  JS_FreeValue(ctx, fnStub);
  JS_FreeValue(ctx, fnProto);
  JS_FreeValue(ctx, global);
  return ok;
}

}  // namespace

JSContext* newFilterContext(JSRuntime* rt, bool allowCodeFromStrings) {
  // JS_NewContext's intrinsics, with eval only when the settings allow it: without it the
  // engine has no way to compile a string (the filter itself arrives as bytecode).
  JSContext* ctx = JS_NewContextRaw(rt);
  if (ctx == nullptr) return nullptr;
  if (JS_AddIntrinsicBaseObjects(ctx) || JS_AddIntrinsicDate(ctx) ||
      (allowCodeFromStrings && JS_AddIntrinsicEval(ctx)) || JS_AddIntrinsicRegExp(ctx) || JS_AddIntrinsicJSON(ctx) ||
      JS_AddIntrinsicProxy(ctx) || JS_AddIntrinsicMapSet(ctx) || JS_AddIntrinsicTypedArrays(ctx) ||
      JS_AddIntrinsicPromise(ctx) || JS_AddIntrinsicWeakRef(ctx) || JS_AddIntrinsicAToB(ctx) ||
      JS_AddPerformance(ctx) || (!allowCodeFromStrings && !refuseCodeFromStrings(ctx))) {
    JS_FreeContext(ctx);
    return nullptr;
  }
  return ctx;
}

bool installGlobals(JSContext* ctx, Engine::Impl* e) {
  JSValue global = JS_GetGlobalObject(ctx);
  JSValue console = JS_NewObject(ctx);
  JS_SetPropertyFunctionList(ctx, console, kConsole, countOf(kConsole));
  JS_SetPropertyStr(ctx, global, "console", console);
  JS_SetPropertyStr(ctx, global, "queueMicrotask", JS_NewCFunction(ctx, js_queueMicrotask, "queueMicrotask", 1));
  JSValue performance = JS_NewObject(ctx);
  JS_SetPropertyStr(ctx, performance, "now", JS_NewCFunction(ctx, js_performance_now, "now", 0));
  JS_SetPropertyStr(ctx, global, "performance", performance);
  JSValue crypto = JS_NewObject(ctx);
  JS_SetPropertyFunctionList(ctx, crypto, kCrypto, countOf(kCrypto));
  JS_SetPropertyStr(ctx, global, "crypto", crypto);
  struct Ctor {
    const char* name;
    JSCFunction* fn;
    JSClassID id;
  } ctors[] = {{"TextEncoder", js_text_encoder_ctor, e->classes.textEncoder},
               {"TextDecoder", js_text_decoder_ctor, e->classes.textDecoder}};
  for (const Ctor& c : ctors) {
    JSValue fn = JS_NewCFunction2(ctx, c.fn, c.name, 0, JS_CFUNC_constructor, 0);
    JSValue proto = JS_GetClassProto(ctx, c.id);
    JS_SetConstructor(ctx, fn, proto);
    JS_FreeValue(ctx, proto);
    JS_SetPropertyStr(ctx, global, c.name, fn);
  }
  JS_FreeValue(ctx, global);
  return true;
}

}  // namespace envoy_js
