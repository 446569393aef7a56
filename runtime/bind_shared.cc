// `ctx.shared` / `worker.shared` (class SharedData): the process-wide key-value store of
// process_state.h, one namespace per filter bundle, with compare-and-swap by version. The
// object belongs to the engine, not to a stream: it works in setup(), in worker timers and
// after the stream is gone.
#include "bind_util.h"
#include "process_state.h"

namespace envoy_js {
namespace {

// Versions travel as JS numbers: exact up to 2^53, more writes than one process makes.
constexpr double kMaxVersion = 9007199254740991.0;

SharedNamespace* sharedThis(JSContext* ctx, JSValueConst thisVal) {
  return static_cast<SharedNamespace*>(JS_GetOpaque2(ctx, thisVal, engineOf(ctx)->classes.shared));
}

// argv[i]: absent/undefined -> no expectation; else an integer version >= 0.
bool expectedArg(JSContext* ctx, int argc, JSValueConst* argv, int i, const char* method,
                 std::optional<uint64_t>* out) {
  if (argc <= i || JS_IsUndefined(argv[i])) return true;
  double v = 0;
  if (!JS_IsNumber(argv[i]) || JS_ToFloat64(ctx, &v, argv[i]) != 0 || !(v >= 0 && v <= kMaxVersion) ||
      v != static_cast<double>(static_cast<uint64_t>(v))) {
    JS_ThrowTypeError(ctx,
                      "shared.%s(): expectedVersion must be a version from shared.get() (an integer >= 0; "
                      "0 means the key must be absent)",
                      method);
    return false;
  }
  *out = static_cast<uint64_t>(v);
  return true;
}

bool keyArg(JSContext* ctx, int argc, JSValueConst* argv, const char* method, std::string* key) {
  if (argc < 1 || !JS_IsString(argv[0])) {
    JS_ThrowTypeError(ctx, "shared.%s(): key must be a string", method);
    return false;
  }
  CString k(ctx, argv[0]);
  if (!k.ptr) return false;
  if (k.len == 0 || k.len > kSharedKeyMaxBytes) {
    JS_ThrowRangeError(ctx, "shared.%s(): key must be 1 to %zu bytes of UTF-8, got %zu", method, kSharedKeyMaxBytes,
                       k.len);
    return false;
  }
  *key = k.str();
  return true;
}

// { ok, version }: the answer of set() and delete().
JSValue writeResult(JSContext* ctx, bool ok, uint64_t version) {
  JSValue o = JS_NewObject(ctx);
  JS_DefinePropertyValueStr(ctx, o, "ok", JS_NewBool(ctx, ok), JS_PROP_C_W_E);
  JS_DefinePropertyValueStr(ctx, o, "version", JS_NewFloat64(ctx, static_cast<double>(version)), JS_PROP_C_W_E);
  return o;
}

JSValue throwFull(JSContext* ctx, SharedNamespace* ns, const char* method) {
  SharedUsage u = sharedUsage(ns);
  return JS_ThrowRangeError(ctx,
                            "shared.%s(): the shared data of this filter is full (%zu of %zu entries, %zu of %zu "
                            "bytes): delete entries first (docs/limits.md)",
                            method, u.entries, kSharedMaxEntries, u.bytes, kSharedMaxBytes);
}

/// get(key: string): { value: string, version: number } | null
JSValue js_shared_get(JSContext* ctx, JSValueConst thisVal, int argc, JSValueConst* argv) {
  SharedNamespace* ns = sharedThis(ctx, thisVal);
  if (!ns) return JS_EXCEPTION;
  std::string key;
  if (!keyArg(ctx, argc, argv, "get", &key)) return JS_EXCEPTION;
  std::optional<SharedEntry> entry = sharedGet(ns, key);
  if (!entry) return JS_NULL;
  JSValue o = JS_NewObject(ctx);
  JS_DefinePropertyValueStr(ctx, o, "value", JS_NewStringLen(ctx, entry->value.data(), entry->value.size()),
                            JS_PROP_C_W_E);
  JS_DefinePropertyValueStr(ctx, o, "version", JS_NewFloat64(ctx, static_cast<double>(entry->version)), JS_PROP_C_W_E);
  return o;
}

/// set(key: string, value: string, expectedVersion?: number): { ok: boolean, version: number }
JSValue js_shared_set(JSContext* ctx, JSValueConst thisVal, int argc, JSValueConst* argv) {
  SharedNamespace* ns = sharedThis(ctx, thisVal);
  if (!ns) return JS_EXCEPTION;
  std::string key;
  if (!keyArg(ctx, argc, argv, "set", &key)) return JS_EXCEPTION;
  if (argc < 2 || !JS_IsString(argv[1])) {
    return JS_ThrowTypeError(ctx, "shared.set(): value must be a string (JSON.stringify an object first)");
  }
  CString value(ctx, argv[1]);
  if (!value.ptr) return JS_EXCEPTION;
  std::optional<uint64_t> expected;
  if (!expectedArg(ctx, argc, argv, 2, "set", &expected)) return JS_EXCEPTION;
  uint64_t version = 0;
  switch (sharedSet(ns, key, value.view(), expected, &version)) {
    case SharedWrite::Ok: return writeResult(ctx, true, version);
    case SharedWrite::VersionMismatch: return writeResult(ctx, false, version);
    case SharedWrite::ValueTooLarge:
      return JS_ThrowRangeError(ctx, "shared.set(): value is %zu bytes of UTF-8, over the limit of %zu", value.len,
                                kSharedValueMaxBytes);
    case SharedWrite::Full: return throwFull(ctx, ns, "set");
    case SharedWrite::KeyInvalid: break;  // checked by keyArg
  }
  return JS_ThrowRangeError(ctx, "shared.set(): invalid key");
}

/// delete(key: string, expectedVersion?: number): { ok: boolean, version: number }
JSValue js_shared_delete(JSContext* ctx, JSValueConst thisVal, int argc, JSValueConst* argv) {
  SharedNamespace* ns = sharedThis(ctx, thisVal);
  if (!ns) return JS_EXCEPTION;
  std::string key;
  if (!keyArg(ctx, argc, argv, "delete", &key)) return JS_EXCEPTION;
  std::optional<uint64_t> expected;
  if (!expectedArg(ctx, argc, argv, 1, "delete", &expected)) return JS_EXCEPTION;
  uint64_t version = 0;
  SharedWrite r = sharedDelete(ns, key, expected, &version);
  return writeResult(ctx, r == SharedWrite::Ok, version);
}

const JSCFunctionListEntry kSharedProto[] = {
    JS_CFUNC_DEF("get", 1, js_shared_get),
    JS_CFUNC_DEF("set", 3, js_shared_set),
    JS_CFUNC_DEF("delete", 2, js_shared_delete),
};

}  // namespace

bool registerSharedClass(Engine::Impl* e) {
  return defineClass(e, &e->classes.shared, "SharedData", nullptr, kSharedProto, countOf(kSharedProto));
}

JSValue sharedObject(Engine::Impl* e) {
  if (JS_IsUndefined(e->shared)) {
    JSValue o = JS_NewObjectClass(e->ctx, static_cast<int>(e->classes.shared));
    if (JS_IsException(o)) return o;
    if (e->host->dryRun()) e->privateShared = newPrivateNamespace();
    JS_SetOpaque(o, e->privateShared ? e->privateShared : sharedNamespace(e->program->filename()));
    e->shared = o;
  }
  return JS_DupValue(e->ctx, e->shared);
}

}  // namespace envoy_js
