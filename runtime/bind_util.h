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

// A JS value as UTF-8 text (JS_ToCString: ptr is nullptr with an exception pending when the
// conversion threw).
struct CString {
  CString(JSContext* ctx, JSValueConst v) : ctx(ctx) { ptr = JS_ToCStringLen(ctx, &len, v); }
  ~CString() {
    if (ptr) JS_FreeCString(ctx, ptr);
  }
  CString(const CString&) = delete;
  CString& operator=(const CString&) = delete;
  std::string_view view() const { return ptr ? std::string_view(ptr, len) : std::string_view(); }
  std::string str() const { return std::string(view()); }
  JSContext* ctx;
  const char* ptr;
  size_t len = 0;
};

// ---- body data -------------------------------------------------------------------------------

// The one conversion of body data to bytes, for every API that takes body data (chunk and body
// edits, ctx.respond()'s body, ctx.fetch()'s body): a string (as UTF-8), an ArrayBuffer, or a
// view of one (any typed array, a DataView: the bytes it covers). Anything else is a TypeError
// that starts with `what` ("body data", "fetch(): body", ...); a detached buffer is the
// engine's own TypeError.
bool bodyBytes(JSContext* ctx, JSValueConst v, const char* what, std::string* out);

// The binary half of bodyBytes (TextDecoder.decode takes only these): NotBuffer without an
// exception when `v` is neither an ArrayBuffer nor a view of one.
enum class BufferBytes : uint8_t { Copied, NotBuffer, Exception };
BufferBytes bufferBytes(JSContext* ctx, JSValueConst v, std::string* out);

// ---- errors ----------------------------------------------------------------------------------

// An Error object with its own `name` (StreamGone, FetchError, ...); throwStreamGone and
// newStreamGoneError (internal.h) are built on it. Plain TypeErrors and RangeErrors use
// JS_ThrowTypeError / JS_ThrowRangeError.
JSValue newError(JSContext* ctx, const char* name, const std::string& message);

inline const char* dirName(Direction d) { return d == Direction::Request ? "request" : "response"; }

// ---- header names and values: the checks of Headers, ctx.respond() and ctx.fetch() ----------

// Token characters of RFC 9110 as a table: one load per character instead of a strchr. Only
// lower-case letters: names are lower-cased before they are checked.
struct TokenTable {
  bool ok[256] = {};
  constexpr TokenTable() {
    for (int c = 'a'; c <= 'z'; c++) ok[c] = true;
    for (int c = '0'; c <= '9'; c++) ok[c] = true;
    for (const char* p = "!#$%&'*+-.^_`|~"; *p; p++) ok[static_cast<unsigned char>(*p)] = true;
  }
};
inline constexpr TokenTable kToken;

// A non-empty lower-case token (header names, methods).
inline bool isToken(std::string_view s) {
  for (char c : s) {
    if (!kToken.ok[static_cast<unsigned char>(c)]) return false;
  }
  return !s.empty();
}

// A lower-case header name: a token, or with `pseudo` also ':' and a token (":path").
inline bool isHeaderName(std::string_view name, bool pseudo) {
  if (pseudo && !name.empty() && name[0] == ':') name.remove_prefix(1);
  return isToken(name);
}

// A header value Envoy accepts: no CR, LF or NUL.
// One pass with one compare for most bytes: cheaper on short values than three memchr scans.
inline bool isHeaderValue(std::string_view value) {
  for (char ch : value) {
    auto c = static_cast<unsigned char>(ch);
    if (c <= '\r' && (c == '\r' || c == '\n' || c == '\0')) return false;
  }
  return true;
}

inline void lowerAscii(std::string& s) {
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
}

// A header name argument (pseudo-headers allowed), validated and lower-cased. Zero-copy when
// the string is already lower-case (the usual case): the view then points into the JS string.
class HeaderName {
 public:
  HeaderName(JSContext* ctx, JSValueConst v) : text_(ctx, v) {
    if (!text_.ptr) return;
    std::string_view raw = text_.view();
    // One pass: a lower-case token (the usual case) is valid as it is and needs no copy; any
    // other byte sends the name through the copying path, which lower-cases and re-checks it.
    size_t start = !raw.empty() && raw[0] == ':' ? 1 : 0;
    bool plain = raw.size() > start;
    for (size_t i = start; i < raw.size() && plain; i++) plain = kToken.ok[static_cast<unsigned char>(raw[i])];
    if (plain) {
      view_ = raw;
    } else {
      lowered_.assign(raw);
      lowerAscii(lowered_);
      view_ = lowered_;
    }
    if (!plain && !isHeaderName(view_, true)) {
      JS_ThrowTypeError(ctx, "invalid header name '%.80s'", text_.ptr);
      return;
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

// The HeaderName of `v`, copied; false with the TypeError pending.
bool normalizeName(JSContext* ctx, JSValueConst v, std::string* out);
// isHeaderValue, or false with a TypeError pending.
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
int countOf(const JSCFunctionListEntry (&)[N]) {
  return static_cast<int>(N);
}

// The stream's wrapper in `slot`, created on first use with the opaque `makeOpaque()` returns.
// After destroy the cache slots are never freed again: a wrapper cached now would keep itself
// and the stream state alive for good, so none is made then.
template <typename MakeOpaque>
JSValue cachedWrapper(StreamState* s, JSValue* slot, JSClassID id, MakeOpaque makeOpaque) {
  Engine::Impl* e = s->engine;
  if (JS_IsUndefined(*slot)) {
    if (s->destroyed()) return throwStreamGone(e->ctx);
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
bool registerHeadersClass(Engine::Impl* e);    // bind_headers.cc
bool registerMessageClasses(Engine::Impl* e);  // bind_messages.cc
bool registerBodyClasses(Engine::Impl* e);     // bind_body.cc
bool registerContextClasses(Engine::Impl* e);  // bind_context.cc
bool registerMetadataClass(Engine::Impl* e);   // bind_metadata.cc

}  // namespace envoy_js
