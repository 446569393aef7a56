// The JS API of DESIGN.md section 3: one JSCFunctionListEntry table per class, next to the
// functions it binds. Wrappers hold plain pointers to their StreamState and count themselves
// in StreamState::jsRefs; every method checks that the stream still has a host.
#include <sys/random.h>  // getentropy (glibc and wasi-libc)

#include <cerrno>
#include <cstring>

#include "internal.h"

namespace envoy_js {
namespace {

Engine::Impl* engineOfRt(JSRuntime* rt) { return static_cast<Engine::Impl*>(JS_GetRuntimeOpaque(rt)); }

// ---- small helpers ---------------------------------------------------------------------------

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
bool toBytes(JSContext* ctx, JSValueConst v, std::string* out) {
  size_t len = 0;
  if (JS_IsString(v)) {
    CString s(ctx, v);
    if (!s.ptr) return false;
    out->assign(s.ptr, s.len);
    return true;
  }
  if (uint8_t* p = JS_GetUint8Array(ctx, &len, v)) {
    out->assign(reinterpret_cast<char*>(p), len);
    return true;
  }
  JS_FreeValue(ctx, JS_GetException(ctx));
  if (JS_IsArrayBuffer(v)) {
    uint8_t* p = JS_GetArrayBuffer(ctx, &len, v);
    if (p || len == 0) {
      out->assign(reinterpret_cast<char*>(p), len);
      return true;
    }
  }
  JS_ThrowTypeError(ctx, "body data must be a string or a Uint8Array");
  return false;
}

JSValue newError(JSContext* ctx, const char* name, const std::string& message) {
  JSValue err = JS_NewError(ctx);
  JS_SetPropertyStr(ctx, err, "name", JS_NewString(ctx, name));
  JS_SetPropertyStr(ctx, err, "message", JS_NewStringLen(ctx, message.data(), message.size()));
  return err;
}

const char* dirName(Direction d) { return d == Direction::Request ? "request" : "response"; }

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
constexpr TokenTable kToken;

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

bool normalizeName(JSContext* ctx, JSValueConst v, std::string* out) {
  HeaderName name(ctx, v);
  if (!name.ok()) return false;
  out->assign(name.view());
  return true;
}

bool checkValue(JSContext* ctx, std::string_view v) {
  for (char c : v) {
    if (c == '\r' || c == '\n' || c == '\0') {
      JS_ThrowTypeError(ctx, "header values may not contain CR, LF or NUL");
      return false;
    }
  }
  return true;
}

}  // namespace

JSValue newStreamGoneError(JSContext* ctx) {
  return newError(ctx, "StreamGone",
                  "the stream is gone (the client went away or the stream was destroyed); check "
                  "ctx.aborted");
}

JSValue throwStreamGone(JSContext* ctx) { return JS_Throw(ctx, newStreamGoneError(ctx)); }

namespace {

// ---- Headers ---------------------------------------------------------------------------------

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
                      ? Direction::Request : Direction::Response;
  if (forWrite) {
    DirectionState& d = s->dir(dir);
    bool late = trailers ? d.allSent() : d.headersSent();
    if (late || s->completed()) {
      JS_ThrowTypeError(ctx,
                        "%s were already sent on and can no longer be changed: change them in %s "
                        "before it returns or its promise settles",
                        mapName(h->kind),
                        trailers ? (dir == Direction::Request ? "onRequestTrailers" : "onResponseTrailers")
                                 : (dir == Direction::Request ? "onRequest" : "onResponse"));
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

// The receiver and the name argument of a Headers method, checked in that order; ok() is false
// with a JS exception pending. The live map is asked for separately (writes check their value
// first).
class HeadersCall {
 public:
  HeadersCall(JSContext* ctx, JSValueConst thisVal, int argc, JSValueConst* argv) : ref_(headersThis(ctx, thisVal)) {
    if (ref_) name_.emplace(ctx, argc > 0 ? argv[0] : JS_UNDEFINED);
  }
  bool ok() const { return ref_ != nullptr && name_->ok(); }
  std::string_view name() const { return name_->view(); }
  HeaderMap* map(JSContext* ctx, bool forWrite) const { return mapFor(ctx, ref_, forWrite); }

 private:
  HeadersRef* ref_;
  std::optional<HeaderName> name_;
};

JSValue js_headers_get(JSContext* ctx, JSValueConst thisVal, int argc, JSValueConst* argv) {
  HeadersCall call(ctx, thisVal, argc, argv);
  if (!call.ok()) return JS_EXCEPTION;
  std::string_view name = call.name();
  HeaderMap* map = call.map(ctx, false);
  if (!map) return JS_EXCEPTION;
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
  HeadersCall call(ctx, thisVal, argc, argv);
  if (!call.ok()) return JS_EXCEPTION;
  std::string_view name = call.name();
  HeaderMap* map = call.map(ctx, false);
  if (!map) return JS_EXCEPTION;
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
  HeadersCall call(ctx, thisVal, argc, argv);
  if (!call.ok()) return JS_EXCEPTION;
  std::string_view name = call.name();
  HeaderMap* map = call.map(ctx, false);
  if (!map) return JS_EXCEPTION;
  std::string_view value;
  return JS_NewBool(ctx, map->get(name, 0, &value) > 0);
}

// magic: 0 set, 1 append
JSValue js_headers_write(JSContext* ctx, JSValueConst thisVal, int argc, JSValueConst* argv, int magic) {
  HeadersCall call(ctx, thisVal, argc, argv);
  if (!call.ok()) return JS_EXCEPTION;
  std::string_view name = call.name();
  CString value(ctx, argc > 1 ? argv[1] : JS_UNDEFINED);
  if (!value.ptr || !checkValue(ctx, value.view())) return JS_EXCEPTION;
  HeaderMap* map = call.map(ctx, true);
  if (!map) return JS_EXCEPTION;
  if (magic == 0) map->set(name, value.view());
  else map->append(name, value.view());
  return JS_UNDEFINED;
}

JSValue js_headers_delete(JSContext* ctx, JSValueConst thisVal, int argc, JSValueConst* argv) {
  HeadersCall call(ctx, thisVal, argc, argv);
  if (!call.ok()) return JS_EXCEPTION;
  std::string_view name = call.name();
  HeaderMap* map = call.map(ctx, true);
  if (!map) return JS_EXCEPTION;
  map->remove(name);
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
    JS_CFUNC_MAGIC_DEF("set", 2, js_headers_write, 0),
    JS_CFUNC_MAGIC_DEF("append", 2, js_headers_write, 1),
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

// ---- Request / Response ----------------------------------------------------------------------

StreamState* streamOf(JSContext* ctx, JSValueConst thisVal, JSClassID id) {
  return static_cast<StreamState*>(JS_GetOpaque2(ctx, thisVal, id));
}

JSValue pseudoHeader(JSContext* ctx, StreamState* s, HeaderMapKind kind, const char* name) {
  if (s->host == nullptr) return throwStreamGone(ctx);
  HeaderMap* map = s->host->headerMap(kind);
  std::string_view value;
  if (map == nullptr || map->get(name, 0, &value) == 0) return JS_NewString(ctx, "");
  return JS_NewStringLen(ctx, value.data(), value.size());
}

// magic: 0 method, 1 path, 2 authority, 3 scheme
JSValue js_request_pseudo(JSContext* ctx, JSValueConst thisVal, int magic) {
  StreamState* s = streamOf(ctx, thisVal, engineOf(ctx)->classes.request);
  if (!s) return JS_EXCEPTION;
  static const char* const names[] = {":method", ":path", ":authority", ":scheme"};
  return pseudoHeader(ctx, s, HeaderMapKind::RequestHeaders, names[magic]);
}

JSValue bodyObject(StreamState* s, Direction dir);

// Getters shared by Request and Response; magic: the Direction.
StreamState* messageThis(JSContext* ctx, JSValueConst thisVal, int magic) {
  Engine::Impl* e = engineOf(ctx);
  return streamOf(ctx, thisVal, magic == 0 ? e->classes.request : e->classes.response);
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

const JSCFunctionListEntry kRequestProto[] = {
    JS_CGETSET_MAGIC_DEF("method", js_request_pseudo, nullptr, 0),
    JS_CGETSET_MAGIC_DEF("path", js_request_pseudo, nullptr, 1),
    JS_CGETSET_MAGIC_DEF("authority", js_request_pseudo, nullptr, 2),
    JS_CGETSET_MAGIC_DEF("scheme", js_request_pseudo, nullptr, 3),
    JS_CGETSET_MAGIC_DEF("headers", js_message_headers, nullptr, 0),
    JS_CGETSET_MAGIC_DEF("body", js_message_body, nullptr, 0),
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
    JS_CGETSET_MAGIC_DEF("headers", js_message_headers, nullptr, 1),
    JS_CGETSET_MAGIC_DEF("body", js_message_body, nullptr, 1),
};

// Finalizer of every class whose opaque is the StreamState itself.
void streamWrapperFinalizer(JSRuntime* rt, JSValueConst val) {
  Engine::Impl* e = engineOfRt(rt);
  JSClassID id = 0;
  auto* s = static_cast<StreamState*>(JS_GetAnyOpaque(val, &id));
  if (s) e->releaseStream(s);
}

// ---- Body (whole body) -----------------------------------------------------------------------

BodyRef* bodyThis(JSContext* ctx, JSValueConst thisVal) {
  return static_cast<BodyRef*>(JS_GetOpaque2(ctx, thisVal, engineOf(ctx)->classes.body));
}

JSValue rejected(JSContext* ctx, JSValue error) {
  JSValue p = JS_NewSettledPromise(ctx, true, error);
  JS_FreeValue(ctx, error);
  return p;
}

// magic: BodyFormat
JSValue js_body_read(JSContext* ctx, JSValueConst thisVal, int, JSValueConst*, int magic) {
  BodyRef* b = bodyThis(ctx, thisVal);
  if (!b) return JS_EXCEPTION;
  StreamState* s = b->stream;
  if (s->host == nullptr) return rejected(ctx, newStreamGoneError(ctx));
  std::string why;
  if (!streamBodyReadAllowed(s, b->dir, &why)) {
    return rejected(ctx, JS_NewTypeError(ctx, "cannot read the %s body: %s", dirName(b->dir), why.c_str()));
  }
  JSValue funcs[2];
  JSValue promise = JS_NewPromiseCapability(ctx, funcs);
  if (JS_IsException(promise)) return promise;
  s->dir(b->dir).bodyWaiters.push_back(BodyWaiter{funcs[0], funcs[1], static_cast<BodyFormat>(magic)});
  streamStartBodyRead(s, b->dir);
  return promise;
}

JSValue js_body_replace(JSContext* ctx, JSValueConst thisVal, int argc, JSValueConst* argv) {
  BodyRef* b = bodyThis(ctx, thisVal);
  if (!b) return JS_EXCEPTION;
  StreamState* s = b->stream;
  if (s->host == nullptr) return throwStreamGone(ctx);
  DirectionState& d = s->dir(b->dir);
  if (d.bodyRead != BodyRead::Done || d.headersSent()) {
    return JS_ThrowTypeError(ctx,
                             "body.replace() needs the whole %s body held: await body.text(), "
                             "json() or bytes() first, in the same hook",
                             dirName(b->dir));
  }
  std::string data;
  if (!toBytes(ctx, argc > 0 ? argv[0] : JS_UNDEFINED, &data)) return JS_EXCEPTION;
  streamReplaceWholeBody(s, b->dir, data);
  return JS_UNDEFINED;
}

const JSCFunctionListEntry kBodyProto[] = {
    JS_CFUNC_MAGIC_DEF("text", 0, js_body_read, static_cast<int>(BodyFormat::Text)),
    JS_CFUNC_MAGIC_DEF("json", 0, js_body_read, static_cast<int>(BodyFormat::Json)),
    JS_CFUNC_MAGIC_DEF("bytes", 0, js_body_read, static_cast<int>(BodyFormat::Bytes)),
    JS_CFUNC_DEF("replace", 1, js_body_replace),
};

void bodyFinalizer(JSRuntime* rt, JSValueConst val) {
  Engine::Impl* e = engineOfRt(rt);
  auto* b = static_cast<BodyRef*>(JS_GetOpaque(val, e->classes.body));
  if (!b) return;
  e->releaseStream(b->stream);
  delete b;
}

// ---- Chunk (streaming) -----------------------------------------------------------------------

ChunkRef* chunkThis(JSContext* ctx, JSValueConst thisVal) {
  return static_cast<ChunkRef*>(JS_GetOpaque2(ctx, thisVal, engineOf(ctx)->classes.chunk));
}

// Where the chunk's bytes are now; nullptr (exception set) when they are gone.
BodyBuffer* chunkBuffer(JSContext* ctx, ChunkRef* c) {
  if (c->dead) {
    JS_ThrowTypeError(ctx,
                      "this %s chunk was already passed on: use a chunk only inside its data hook, "
                      "before the hook returns or its promise settles",
                      dirName(c->dir));
    return nullptr;
  }
  if (c->stream->host == nullptr) {
    throwStreamGone(ctx);
    return nullptr;
  }
  if (c->target == ChunkTarget::Buffered) {
    c->window.base = c->stream->host->bufferedData(c->dir);
    return &c->window;
  }
  BodyBuffer* b = c->stream->host->currentData(c->dir);
  if (b == nullptr) JS_ThrowTypeError(ctx, "this %s chunk is no longer available", dirName(c->dir));
  return b;
}

#define CHUNK_ACCESS(ctx, thisVal)               \
  ChunkRef* c = chunkThis(ctx, thisVal);         \
  if (!c) return JS_EXCEPTION;                   \
  BodyBuffer* buf = chunkBuffer(ctx, c);         \
  if (!buf) return JS_EXCEPTION;

JSValue js_chunk_size(JSContext* ctx, JSValueConst thisVal) {
  CHUNK_ACCESS(ctx, thisVal);
  return JS_NewInt64(ctx, static_cast<int64_t>(buf->length()));
}

JSValue js_chunk_eos(JSContext* ctx, JSValueConst thisVal) {
  ChunkRef* c = chunkThis(ctx, thisVal);
  if (!c) return JS_EXCEPTION;
  return JS_NewBool(ctx, c->endOfStream);
}

// magic: 0 text, 1 bytes. The only place chunk bytes are copied: on demand.
JSValue js_chunk_read(JSContext* ctx, JSValueConst thisVal, int, JSValueConst*, int magic) {
  CHUNK_ACCESS(ctx, thisVal);
  std::string bytes(buf->length(), '\0');
  if (!bytes.empty()) buf->copyOut(0, bytes.size(), reinterpret_cast<uint8_t*>(bytes.data()));
  if (magic == 0) return JS_NewStringLen(ctx, bytes.data(), bytes.size());
  return JS_NewUint8ArrayCopy(ctx, reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
}

// magic: 0 replace, 1 append, 2 prepend, 3 clear
JSValue js_chunk_write(JSContext* ctx, JSValueConst thisVal, int argc, JSValueConst* argv, int magic) {
  CHUNK_ACCESS(ctx, thisVal);
  std::string data;
  if (magic != 3 && !toBytes(ctx, argc > 0 ? argv[0] : JS_UNDEFINED, &data)) return JS_EXCEPTION;
  switch (magic) {
    case 0: buf->replace(data); break;
    case 1: buf->append(data); break;
    case 2: buf->prepend(data); break;
    default: buf->replace("");
  }
  return JS_UNDEFINED;
}

const JSCFunctionListEntry kChunkProto[] = {
    JS_CGETSET_DEF("size", js_chunk_size, nullptr),
    JS_CGETSET_DEF("endOfStream", js_chunk_eos, nullptr),
    JS_CFUNC_MAGIC_DEF("text", 0, js_chunk_read, 0),
    JS_CFUNC_MAGIC_DEF("bytes", 0, js_chunk_read, 1),
    JS_CFUNC_MAGIC_DEF("replace", 1, js_chunk_write, 0),
    JS_CFUNC_MAGIC_DEF("append", 1, js_chunk_write, 1),
    JS_CFUNC_MAGIC_DEF("prepend", 1, js_chunk_write, 2),
    JS_CFUNC_MAGIC_DEF("clear", 0, js_chunk_write, 3),
};

void chunkFinalizer(JSRuntime* rt, JSValueConst val) {
  Engine::Impl* e = engineOfRt(rt);
  auto* c = static_cast<ChunkRef*>(JS_GetOpaque(val, e->classes.chunk));
  if (!c) return;
  e->releaseStream(c->stream);
  delete c;
}

// ---- Log (ctx.log) and console ---------------------------------------------------------------

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
  bool ok = JS_IsUndefined(body) || toBytes(ctx, body, &reply->body);
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

void sendReplyNow(StreamState* s);

JSValue js_ctx_respond(JSContext* ctx, JSValueConst thisVal, int argc, JSValueConst* argv) {
  StreamState* s = contextThis(ctx, thisVal);
  if (!s) return JS_EXCEPTION;
  if (s->host == nullptr) return throwStreamGone(ctx);
  double status = 0;
  if (argc < 1 || !JS_IsNumber(argv[0]) || JS_ToFloat64(ctx, &status, argv[0]) != 0 ||
      status != static_cast<int>(status) || status < 200 || status > 599) {
    return JS_ThrowRangeError(ctx, "respond(status): status must be an integer from 200 to 599");
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

// Object.freeze(obj); returns obj.
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
    return JS_ThrowTypeError(ctx, "clearRouteCache() after the request headers were sent on has no effect: call it in onRequest");
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

JSValue js_metadata_get(JSContext* ctx, JSValueConst thisVal, int argc, JSValueConst* argv) {
  StreamState* s = streamOf(ctx, thisVal, engineOf(ctx)->classes.metadata);
  if (!s) return JS_EXCEPTION;
  std::string ns, key;
  if (!stringArg(ctx, argc, argv, 0, "metadata namespace", &ns) || !stringArg(ctx, argc, argv, 1, "metadata key", &key)) {
    return JS_EXCEPTION;
  }
  if (s->host == nullptr) return throwStreamGone(ctx);
  std::optional<std::string> json = s->host->getMetadata(ns, key);
  if (!json) return JS_UNDEFINED;
  return JS_ParseJSON(ctx, json->c_str(), json->size(), "<metadata>");
}

JSValue js_metadata_set(JSContext* ctx, JSValueConst thisVal, int argc, JSValueConst* argv) {
  StreamState* s = streamOf(ctx, thisVal, engineOf(ctx)->classes.metadata);
  if (!s) return JS_EXCEPTION;
  std::string ns, key;
  if (!stringArg(ctx, argc, argv, 0, "metadata namespace", &ns) || !stringArg(ctx, argc, argv, 1, "metadata key", &key)) {
    return JS_EXCEPTION;
  }
  JSValue json = JS_JSONStringify(ctx, argc > 2 ? argv[2] : JS_UNDEFINED, JS_UNDEFINED, JS_UNDEFINED);
  if (JS_IsException(json)) return json;
  if (!JS_IsString(json)) {
    JS_FreeValue(ctx, json);
    return JS_ThrowTypeError(ctx, "metadata values must be JSON values (string, number, boolean, null, array, object)");
  }
  if (s->host == nullptr) {
    JS_FreeValue(ctx, json);
    return throwStreamGone(ctx);
  }
  CString text(ctx, json);
  s->host->setMetadata(ns, key, text.view());
  JS_FreeValue(ctx, json);
  return JS_UNDEFINED;
}

const JSCFunctionListEntry kMetadataProto[] = {
    JS_CFUNC_DEF("get", 2, js_metadata_get),
    JS_CFUNC_DEF("set", 3, js_metadata_set),
};

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
    return JS_ThrowTypeError(ctx, "metric `%s` is a %s: use %s", decl.name.c_str(),
                             names[static_cast<int>(decl.kind)], methods[static_cast<int>(decl.kind)]);
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
    std::string l(label.view());
    for (char& c : l) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
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
  if (argc > 0 && !JS_IsUndefined(argv[0]) && !JS_IsString(argv[0])) {
    size_t len = 0;
    uint8_t* p = JS_GetUint8Array(ctx, &len, argv[0]);
    if (p == nullptr) {
      JS_FreeValue(ctx, JS_GetException(ctx));
      p = JS_GetArrayBuffer(ctx, &len, argv[0]);
      if (p == nullptr && len == 0 && JS_HasException(ctx)) {
        JS_FreeValue(ctx, JS_GetException(ctx));
        return JS_ThrowTypeError(ctx, "TextDecoder.decode needs a Uint8Array or an ArrayBuffer");
      }
    }
    if (p) bytes.assign(reinterpret_cast<char*>(p), len);
  } else if (argc > 0 && JS_IsString(argv[0])) {
    return JS_ThrowTypeError(ctx, "TextDecoder.decode needs a Uint8Array or an ArrayBuffer");
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

template <size_t N>
int countOf(const JSCFunctionListEntry (&)[N]) { return static_cast<int>(N); }

}  // namespace

void sendReplyNowImpl(StreamState* s);

namespace {
void sendReplyNow(StreamState* s) { sendReplyNowImpl(s); }
}  // namespace

// ---- wrappers used by the state machine ------------------------------------------------------

namespace {
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

JSValue bodyObject(StreamState* s, Direction dir) {
  return cachedWrapper(s, &s->bodies[static_cast<int>(dir)], s->engine->classes.body,
                       [&] { return new BodyRef{s, dir}; });
}

JSValue cachedStreamWrapper(StreamState* s, JSValue* slot, JSClassID id) {
  return cachedWrapper(s, slot, id, [s] { return s; });
}
}  // namespace

JSValue headersObject(StreamState* s, HeaderMapKind kind) {
  return cachedWrapper(s, &s->headers[static_cast<int>(kind)], s->engine->classes.headers,
                       [&] { return &s->headerRefs[static_cast<int>(kind)]; });
}

JSValue makeRequest(StreamState* s) { return cachedStreamWrapper(s, &s->req, s->engine->classes.request); }
JSValue makeResponse(StreamState* s) { return cachedStreamWrapper(s, &s->res, s->engine->classes.response); }
JSValue makeContext(StreamState* s) {
  JSValue v = cachedStreamWrapper(s, &s->ctx, s->engine->classes.context);
  JS_FreeValue(s->engine->ctx, v);  // the cache slot holds the reference the caller uses
  return s->ctx;
}

JSValue makeChunk(StreamState* s, Direction d, bool endOfStream, ChunkTarget target, size_t start, size_t len) {
  Engine::Impl* e = s->engine;
  JSValue obj = JS_NewObjectClass(e->ctx, static_cast<int>(e->classes.chunk));
  auto* c = new ChunkRef{s, d, target, endOfStream};
  c->window.start = start;
  c->window.len = len;
  JS_SetOpaque(obj, c);
  s->jsRefs++;
  return obj;
}

void killChunk(StreamState* s, JSValue chunk) {
  auto* c = static_cast<ChunkRef*>(JS_GetOpaque(chunk, s->engine->classes.chunk));
  if (c) c->dead = true;
}

size_t chunkWindowEnd(StreamState* s, JSValue chunk) {
  auto* c = static_cast<ChunkRef*>(JS_GetOpaque(chunk, s->engine->classes.chunk));
  return c && c->target == ChunkTarget::Buffered ? c->window.start + c->window.len : 0;
}

void retargetChunk(StreamState* s, JSValue chunk, size_t start, size_t len) {
  auto* c = static_cast<ChunkRef*>(JS_GetOpaque(chunk, s->engine->classes.chunk));
  if (c == nullptr || c->target != ChunkTarget::Current) return;
  c->target = ChunkTarget::Buffered;
  c->window.start = start;
  c->window.len = len;
}

void BufferWindow::splice(size_t at, size_t remove, std::string_view data) {
  size_t total = base->length();
  start = std::min(start, total);
  len = std::min(len, total - start);
  at = std::min(at, len);
  remove = std::min(remove, len - at);
  if (start == 0 && len == total && at == 0 && remove == len) {
    base->replace(data);  // the window is the whole buffer
  } else if (start == 0 && at == 0 && remove == 0) {
    base->prepend(data);
  } else if (start + len == total && at == len && remove == 0) {
    base->append(data);  // the window ends the buffer
  } else {
    std::string all(total, '\0');
    if (total) base->copyOut(0, total, reinterpret_cast<uint8_t*>(all.data()));
    all.replace(start + at, remove, data);
    base->replace(all);
  }
  len = len - remove + data.size();
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

bool registerClasses(Engine::Impl* e) {
  ClassIds& c = e->classes;
  return defineClass(e, &c.context, "Context", streamWrapperFinalizer, kContextProto, countOf(kContextProto)) &&
         defineClass(e, &c.request, "Request", streamWrapperFinalizer, kRequestProto, countOf(kRequestProto)) &&
         defineClass(e, &c.response, "Response", streamWrapperFinalizer, kResponseProto, countOf(kResponseProto)) &&
         defineClass(e, &c.headers, "Headers", headersFinalizer, kHeadersProto, countOf(kHeadersProto)) &&
         defineClass(e, &c.body, "Body", bodyFinalizer, kBodyProto, countOf(kBodyProto)) &&
         defineClass(e, &c.chunk, "Chunk", chunkFinalizer, kChunkProto, countOf(kChunkProto)) &&
         defineClass(e, &c.log, "Log", streamWrapperFinalizer, kLogProto, countOf(kLogProto)) &&
         defineClass(e, &c.reply, "LocalReply", nullptr, nullptr, 0) &&
         defineClass(e, &c.metadata, "DynamicMetadata", streamWrapperFinalizer, kMetadataProto, countOf(kMetadataProto)) &&
         defineClass(e, &c.filterState, "FilterState", streamWrapperFinalizer, kFilterStateProto, countOf(kFilterStateProto)) &&
         defineClass(e, &c.metric, "Metric", nullptr, kMetricProto, countOf(kMetricProto)) &&
         defineClass(e, &c.textEncoder, "TextEncoder", nullptr, kTextEncoderProto, countOf(kTextEncoderProto)) &&
         defineClass(e, &c.textDecoder, "TextDecoder", nullptr, kTextDecoderProto, countOf(kTextDecoderProto)) &&
         registerFetchClasses(e);
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
