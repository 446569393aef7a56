// Helpers shared by the binding files (bind_*.cc) and fetch.cc: string arguments, body data,
// header names and values, errors, class definition and the per-stream wrapper caches, plus
// the one entry point of each binding file. Wrappers hold plain pointers to their StreamState
// and count themselves in StreamState::jsRefs; every method checks that the stream still has
// a host.
#pragma once

#include <string>
#include <string_view>

#include "internal.h"

namespace envoy_js {

inline Engine::Impl* engineOfRt(JSRuntime* rt) { return static_cast<Engine::Impl*>(JS_GetRuntimeOpaque(rt)); }

struct CString {
  CString(JSContext* ctx, JSValueConst v) : ctx(ctx) { ptr = JS_ToCStringLen(ctx, &len, v); }
  ~CString() {
    if (ptr) JS_FreeCString(ctx, ptr);
  }
  std::string_view view() const { return ptr ? std::string_view(ptr, len) : std::string_view(); }
  JSContext* ctx;
  const char* ptr;
  size_t len = 0;
};

// Body data arguments: a string (UTF-8) or a Uint8Array / ArrayBuffer.
bool toBytes(JSContext* ctx, JSValueConst v, std::string* out);

JSValue newError(JSContext* ctx, const char* name, const std::string& message);

inline const char* dirName(Direction d) { return d == Direction::Request ? "request" : "response"; }

// Header names: lower-case ASCII tokens (pseudo-headers start with ':').
// Token characters of RFC 9110 as a table: one load per character instead of a strchr.
struct TokenTable {
  bool ok[256] = {};
  constexpr TokenTable() {
    for (int c = 'a'; c <= 'z'; c++) ok[c] = true;
    for (int c = '0'; c <= '9'; c++) ok[c] = true;
    for (const char* p = "!#$%&'*+-.^_`|~"; *p; p++) ok[static_cast<unsigned char>(*p)] = true;
  }
};
inline constexpr TokenTable kToken;

// A header name argument, validated and lower-cased. Zero-copy when the string is already a
// lower-case token (the usual case): the view then points into the JS string itself.
class HeaderName {
 public:
  HeaderName(JSContext* ctx, JSValueConst v) : text_(ctx, v) {
    if (!text_.ptr) return;
    const char* p = text_.ptr;
    size_t n = text_.len;
    bool valid = n > 0 && !(n == 1 && p[0] == ':');
    bool upper = false;
    for (size_t i = 0; i < n; i++) {
      unsigned char c = static_cast<unsigned char>(p[i]);
      if (c >= 'A' && c <= 'Z') {
        upper = true;
        c = static_cast<unsigned char>(c - 'A' + 'a');
      }
      valid = valid && (kToken.ok[c] || (i == 0 && c == ':'));
    }
    if (!valid) {
      JS_ThrowTypeError(ctx, "invalid header name '%.80s'", p);
      return;
    }
    if (upper) {
      lowered_.assign(p, n);
      for (char& c : lowered_) {
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
      }
      view_ = lowered_;
    } else {
      view_ = std::string_view(p, n);
    }
    ok_ = true;
  }
  HeaderName(const HeaderName&) = delete;
  HeaderName& operator=(const HeaderName&) = delete;
  bool ok() const { return ok_; }  // false: a JS exception is pending
  std::string_view view() const { return view_; }

 private:
  CString text_;
  std::string lowered_;
  std::string_view view_;
  bool ok_ = false;
};

bool normalizeName(JSContext* ctx, JSValueConst v, std::string* out);
bool checkValue(JSContext* ctx, std::string_view v);

inline StreamState* streamOf(JSContext* ctx, JSValueConst thisVal, JSClassID id) {
  return static_cast<StreamState*>(JS_GetOpaque2(ctx, thisVal, id));
}

// Finalizer of every class whose opaque is the StreamState itself.
void streamWrapperFinalizer(JSRuntime* rt, JSValueConst val);

// A promise rejected with `error` (consumed).
JSValue rejected(JSContext* ctx, JSValue error);

// console.log-style formatting, and where a log line goes (the stream's host, or the engine's).
std::string formatArgs(JSContext* ctx, int argc, JSValueConst* argv);
void logTo(Engine::Impl* e, StreamState* s, LogLevel level, const std::string& text);

// Object.freeze(obj); returns obj.
JSValue freeze(JSContext* ctx, JSValue obj);

// argv[i] as a string; a TypeError "<what> must be a string" otherwise.
bool stringArg(JSContext* ctx, int argc, JSValueConst* argv, int i, const char* what, std::string* out);

bool defineClass(Engine::Impl* e, JSClassID* id, const char* name, JSClassFinalizer* finalizer,
                 const JSCFunctionListEntry* list, int count);

template <size_t N>
int countOf(const JSCFunctionListEntry (&)[N]) { return static_cast<int>(N); }

// The stream's wrapper in `slot`, created on first use with the opaque `makeOpaque()` returns.
// After destroy the cache slots are never freed again: a wrapper cached now would keep itself
// and the stream state alive for good, so none is made then.
template <typename MakeOpaque>
JSValue cachedWrapper(StreamState* s, JSValue* slot, JSClassID id, MakeOpaque makeOpaque) {
  Engine::Impl* e = s->engine;
  if (JS_IsUndefined(*slot)) {
    if (s->destroyed) return throwStreamGone(e->ctx);
    *slot = JS_NewObjectClass(e->ctx, static_cast<int>(id));
    JS_SetOpaque(*slot, makeOpaque());
    s->jsRefs++;
  }
  return JS_DupValue(e->ctx, *slot);
}

inline JSValue cachedStreamWrapper(StreamState* s, JSValue* slot, JSClassID id) {
  return cachedWrapper(s, slot, id, [s] { return s; });
}

// bind_body.cc: the stream's Body wrapper of `dir`.
JSValue bodyObject(StreamState* s, Direction dir);

// stream.cc: sends the reply that ctx.respond() left in StreamState::pendingReply.
void sendReplyNowImpl(StreamState* s);

// The entry point of each binding file: defines its classes (registerClasses in
// bind_globals.cc calls them in turn).
bool registerHeadersClass(Engine::Impl* e);   // bind_headers.cc
bool registerMessageClasses(Engine::Impl* e); // bind_messages.cc
bool registerBodyClasses(Engine::Impl* e);    // bind_body.cc
bool registerContextClasses(Engine::Impl* e); // bind_context.cc

}  // namespace envoy_js
