// Body (the whole body: text(), json(), bytes(), replace()) and Chunk (one streaming chunk of
// a data hook, copied only on demand), and the chunk bookkeeping the state machine uses.
#include "bind_util.h"

namespace envoy_js {
namespace {

BodyRef* bodyThis(JSContext* ctx, JSValueConst thisVal) {
  return static_cast<BodyRef*>(JS_GetOpaque2(ctx, thisVal, engineOf(ctx)->classes.body));
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
  if (!bodyBytes(ctx, argc > 0 ? argv[0] : JS_UNDEFINED, "body data", &data)) return JS_EXCEPTION;
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

#define CHUNK_ACCESS(ctx, thisVal)       \
  ChunkRef* c = chunkThis(ctx, thisVal); \
  if (!c) return JS_EXCEPTION;           \
  BodyBuffer* buf = chunkBuffer(ctx, c); \
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

// magic: BodyFormat (Text or Bytes). The only place chunk bytes are copied: on demand.
JSValue js_chunk_read(JSContext* ctx, JSValueConst thisVal, int, JSValueConst*, int magic) {
  CHUNK_ACCESS(ctx, thisVal);
  std::string bytes(buf->length(), '\0');
  if (!bytes.empty()) buf->copyOut(0, bytes.size(), reinterpret_cast<uint8_t*>(bytes.data()));
  if (static_cast<BodyFormat>(magic) == BodyFormat::Text) return JS_NewStringLen(ctx, bytes.data(), bytes.size());
  return JS_NewUint8ArrayCopy(ctx, reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
}

enum class ChunkEdit : int { Replace, Append, Prepend, Clear };

// magic: ChunkEdit
JSValue js_chunk_write(JSContext* ctx, JSValueConst thisVal, int argc, JSValueConst* argv, int magic) {
  CHUNK_ACCESS(ctx, thisVal);
  auto edit = static_cast<ChunkEdit>(magic);
  std::string data;
  if (edit != ChunkEdit::Clear && !bodyBytes(ctx, argc > 0 ? argv[0] : JS_UNDEFINED, "body data", &data)) {
    return JS_EXCEPTION;
  }
  DirectionState& d = c->stream->dir(c->dir);
  if (d.lengthKept) {
    // content-length went on with the headers: a chunk of another size would make the message
    // malformed (body_length.cc, streamSettleContentLength).
    size_t before = buf->length();
    size_t after = edit == ChunkEdit::Replace ? data.size() : edit == ChunkEdit::Clear ? 0 : before + data.size();
    if (after != before) {
      const char* hook = c->dir == Direction::Request ? "onRequest" : "onResponse";
      return JS_ThrowTypeError(ctx,
                               "this %s chunk cannot change size: content-length went on with the headers, kept "
                               "because the first data kept its size. To change sizes in a streamed body, delete "
                               "content-length in %s (headers.delete(\"content-length\"))",
                               dirName(c->dir), hook);
    }
  }
  switch (edit) {
    case ChunkEdit::Replace: buf->replace(data); break;
    case ChunkEdit::Append: buf->append(data); break;
    case ChunkEdit::Prepend: buf->prepend(data); break;
    case ChunkEdit::Clear: buf->replace(""); break;
  }
  return JS_UNDEFINED;
}

// chunk.addTrailers(): the trailers of a message that ends with this chunk, for the hook to
// fill. Envoy adds trailers only inside the data callback that ends the message, so a chunk that
// waited behind a pending hook, or a hook past its first await, is refused with the reason.
JSValue js_chunk_add_trailers(JSContext* ctx, JSValueConst thisVal, int, JSValueConst*) {
  CHUNK_ACCESS(ctx, thisVal);
  (void)buf;
  StreamState* s = c->stream;
  const char* dir = dirName(c->dir);
  if (!c->endOfStream) {
    return JS_ThrowTypeError(ctx,
                             "chunk.addTrailers(): only the last chunk of the %s (endOfStream) can add "
                             "trailers; more data or the %s's own trailers follow this one",
                             dir, dir);
  }
  if (c->target != ChunkTarget::Current || !s->dir(c->dir).inCallback) {
    return JS_ThrowTypeError(ctx,
                             "chunk.addTrailers(): Envoy adds trailers only while the data callback of "
                             "the last %s chunk runs: call it before the hook's first await (this chunk "
                             "waited behind a pending hook, or the hook went async)",
                             dir);
  }
  HeaderMapKind kind = trailersKind(c->dir);
  if (s->host->headerMap(kind) == nullptr) {
    std::string whyNot;
    if (s->host->addTrailers(c->dir, &whyNot) == nullptr) {
      return JS_ThrowTypeError(ctx, "chunk.addTrailers(): %s", whyNot.c_str());
    }
  }
  return headersObject(s, kind);
}

// chunk.hold(): the value a data hook returns to keep the body so far in the host's buffer and
// see the next chunk (Envoy's StopIterationAndBuffer). The chunk stays usable until its hook
// ends, as any chunk.
JSValue js_chunk_hold(JSContext* ctx, JSValueConst thisVal, int, JSValueConst*) {
  ChunkRef* c = chunkThis(ctx, thisVal);
  if (!c) return JS_EXCEPTION;
  if (c->dead) {
    return JS_ThrowTypeError(ctx,
                             "chunk.hold(): this %s chunk was already passed on: return chunk.hold() from its "
                             "own data hook",
                             dirName(c->dir));
  }
  if (c->endOfStream) {
    return JS_ThrowTypeError(ctx,
                             "chunk.hold() on the last %s chunk: no chunk follows it; return nothing to pass "
                             "the held body on",
                             dirName(c->dir));
  }
  return JS_NewObjectClass(ctx, static_cast<int>(engineOf(ctx)->classes.bodyHold));
}

const JSCFunctionListEntry kChunkProto[] = {
    JS_CGETSET_DEF("size", js_chunk_size, nullptr),
    JS_CGETSET_DEF("endOfStream", js_chunk_eos, nullptr),
    JS_CFUNC_MAGIC_DEF("text", 0, js_chunk_read, static_cast<int>(BodyFormat::Text)),
    JS_CFUNC_MAGIC_DEF("bytes", 0, js_chunk_read, static_cast<int>(BodyFormat::Bytes)),
    JS_CFUNC_MAGIC_DEF("replace", 1, js_chunk_write, static_cast<int>(ChunkEdit::Replace)),
    JS_CFUNC_MAGIC_DEF("append", 1, js_chunk_write, static_cast<int>(ChunkEdit::Append)),
    JS_CFUNC_MAGIC_DEF("prepend", 1, js_chunk_write, static_cast<int>(ChunkEdit::Prepend)),
    JS_CFUNC_MAGIC_DEF("clear", 0, js_chunk_write, static_cast<int>(ChunkEdit::Clear)),
    JS_CFUNC_DEF("addTrailers", 0, js_chunk_add_trailers),
    JS_CFUNC_DEF("hold", 0, js_chunk_hold),
};

void chunkFinalizer(JSRuntime* rt, JSValueConst val) {
  Engine::Impl* e = engineOfRt(rt);
  auto* c = static_cast<ChunkRef*>(JS_GetOpaque(val, e->classes.chunk));
  if (!c) return;
  e->releaseStream(c->stream);
  delete c;
}

}  // namespace

JSValue bodyObject(StreamState* s, Direction dir) {
  return cachedWrapper(s, &s->bodies[static_cast<int>(dir)], s->engine->classes.body, [&] {
    return new BodyRef{s, dir};
  });
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

bool registerBodyClasses(Engine::Impl* e) {
  ClassIds& c = e->classes;
  return defineClass(e, &c.body, "Body", bodyFinalizer, kBodyProto, countOf(kBodyProto)) &&
         defineClass(e, &c.chunk, "Chunk", chunkFinalizer, kChunkProto, countOf(kChunkProto)) &&
         defineClass(e, &c.bodyHold, "BodyHold", nullptr, nullptr, 0);
}

}  // namespace envoy_js
