// Whole-body reads (`await req.body.text()` and friends): the direction buffers until its end,
// then every waiting reader gets the body; the data hooks do not see data read this way.
#include <string>

#include "internal.h"

namespace envoy_js {
namespace {

std::string readBuffer(BodyBuffer* b) {
  std::string out;
  if (b == nullptr || b->length() == 0) return out;
  out.resize(b->length());
  b->copyOut(0, out.size(), reinterpret_cast<uint8_t*>(out.data()));
  return out;
}

}  // namespace

// The body is whole (end of stream, or held whole already): resolve every waiting reader.
void streamCompleteBodyRead(StreamState* s, Direction dir) {
  Engine::Impl* e = s->engine;
  JSContext* ctx = e->ctx;
  DirectionState& d = s->dir(dir);
  d.bodyRead = BodyRead::Done;
  std::vector<BodyWaiter> waiters;
  waiters.swap(d.bodyWaiters);
  std::string body = waiters.empty() ? std::string() : streamWholeBody(s, dir);
  for (BodyWaiter& w : waiters) {
    JSValue value;
    bool ok = true;
    if (w.format == BodyFormat::Bytes) {
      value = JS_NewUint8ArrayCopy(ctx, reinterpret_cast<const uint8_t*>(body.data()), body.size());
    } else {
      value = JS_NewStringLen(ctx, body.data(), body.size());
      if (w.format == BodyFormat::Json && !JS_IsException(value)) {
        JS_FreeValue(ctx, value);
        std::string z = body;  // JS_ParseJSON wants a NUL-terminated buffer
        value = JS_ParseJSON(ctx, z.c_str(), z.size(), "<body>");
      }
    }
    if (JS_IsException(value)) {
      ok = false;
      value = JS_GetException(ctx);
    }
    JSValue r = JS_Call(ctx, ok ? w.resolve : w.reject, JS_UNDEFINED, 1, &value);
    JS_FreeValue(ctx, r);
    JS_FreeValue(ctx, value);
    JS_FreeValue(ctx, w.resolve);
    JS_FreeValue(ctx, w.reject);
  }
}

bool streamBodyReadAllowed(StreamState* s, Direction dir, std::string* why) {
  DirectionState& d = s->dir(dir);
  const char* what = dir == Direction::Request ? "request" : "response";
  if (!d.headersSeen()) {
    *why = std::string("the ") + what + " has not arrived yet";
    return false;
  }
  if (d.headersSent()) {
    *why = std::string("the ") + what +
           " headers were already sent on, so its body is streaming: read the whole body by "
           "awaiting it inside " +
           (dir == Direction::Request ? "onRequest" : "onResponse") + ", or use the " +
           (dir == Direction::Request ? "onRequestData" : "onResponseData") + " hook";
    return false;
  }
  return true;
}

void streamStartBodyRead(StreamState* s, Direction dir) {
  DirectionState& d = s->dir(dir);
  if (d.bodyRead == BodyRead::Done) {
    streamCompleteBodyRead(s, dir);  // held whole already: answer the new reader at once
    return;
  }
  if (d.bodyRead != BodyRead::None) return;
  d.bodyRead = BodyRead::Waiting;
  // Data that arrived while an earlier hook was pending, already in the host's buffer, belongs
  // to the body now (the data hooks are not called for data consumed by a body read).
  d.heldChunks.clear();
  // What arrived while an earlier hook was pending may already be over the limit: the later data
  // callbacks that would check it may never come (Envoy stops reading above its watermark).
  size_t held = s->host->bufferedData(dir)->length();
  if (d.inCallback) {
    if (BodyBuffer* current = s->host->currentData(dir)) held += current->length();
  }
  if (held > s->engine->program->settings().bufferLimitBytes) {
    streamOverLimit(s, dir);
    return;
  }
  if (d.endSeen()) streamCompleteBodyRead(s, dir);
}

std::string streamWholeBody(StreamState* s, Direction dir) {
  std::string body = readBuffer(s->host->bufferedData(dir));
  if (s->dir(dir).inCallback) body += readBuffer(s->host->currentData(dir));
  return body;
}

// The callback's data first: behind a filter that buffered the body, Envoy hands us its buffer
// as that data, so the two are one buffer and clearing it last would drop the new body.
void streamReplaceWholeBody(StreamState* s, Direction dir, std::string_view data) {
  if (s->dir(dir).inCallback) {
    if (BodyBuffer* current = s->host->currentData(dir)) current->replace("");
  }
  s->host->bufferedData(dir)->replace(data);
}

}  // namespace envoy_js
