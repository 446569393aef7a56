// content-length and the moment a direction's headers go on (DESIGN.md section 4): the one
// place that decides what content-length leaves with the headers, and when the headers wait
// for the body's first data so that it can.
#include <cstdio>
#include <string>

#include "internal.h"

namespace envoy_js {
namespace {

void setContentLength(HeaderMap* headers, size_t length) {
  char buf[24];
  int n = snprintf(buf, sizeof buf, "%zu", length);
  headers->set("content-length", std::string_view(buf, static_cast<size_t>(n)));
}

// The body bytes of `dir` that the host holds for us now, the running callback's data included.
size_t heldBodyLength(StreamState* s, Direction dir) {
  size_t length = s->host->bufferedData(dir)->length();
  if (s->dir(dir).inCallback) {
    if (BodyBuffer* current = s->host->currentData(dir)) length += current->length();
  }
  return length;
}

bool hasContentLength(HeaderMap* headers, std::string_view* value = nullptr) {
  std::string_view ignored;
  return headers != nullptr && headers->get("content-length", 0, value ? value : &ignored) != 0;
}

}  // namespace

// The headers of `dir` went on to the next filter (streamRelease, internal.h, marked them sent
// and skipped a message that ended with its headers and was given no body): from now on writes
// are late. content-length must match what follows them:
//  - the whole body went through the host's buffer while the headers were held: its length is
//    known exactly (a body given to a message that had none gets one too);
//  - a streamed body with a data hook: the headers left together with the first data, after
//    the data hooks saw it (streamHoldForLength). When that data is all content-length announced,
//    content-length is set to its size now; when it kept its size, content-length stays; in
//    both cases later chunks may not change size (bind_body.cc). Otherwise it is removed.
// The common cases (no body, or a body no hook can change) cost no header lookup.
void streamSettleContentLength(StreamState* s, Direction dir) {
  DirectionState& d = s->dir(dir);
  size_t length = 0;
  if (d.endSeen()) {
    length = heldBodyLength(s, dir);
    if (length == 0 && d.bodyRead != BodyRead::Done) return;
  } else if (!s->engine->hasHook[dataHook(dir)]) {
    return;
  }
  HeaderMap* headers = s->host->headerMap(headersKind(dir));
  if (headers == nullptr) return;
  // One lookup serves both paths: whether content-length is there, and what it announced.
  std::string_view declared;
  bool present = hasContentLength(headers, &declared);
  if (d.endSeen()) {
    if (present || (d.headersEnded && length > 0)) setContentLength(headers, length);
    return;
  }
  if (!present) return;
  size_t now = heldBodyLength(s, dir);
  if (d.bytesArrived > 0 && std::to_string(d.bytesArrived) == declared) {
    // Every byte content-length announced is here; only the end is still to come (HTTP/1.1
    // delivers it as an empty last chunk): the length is known exactly.
    if (now != d.bytesArrived) setContentLength(headers, now);
    d.lengthKept = true;
  } else if (d.bytesArrived > 0 && now == d.bytesArrived) {
    d.lengthKept = true;
  } else {
    headers->remove("content-length");
  }
}

// A streamed body with a content-length and a data hook: the headers wait for the first data
// (or the end), so that streamSettleContentLength knows whether the data hooks keep the body's
// size. Nothing else holds them: that data callback (or trailers) lets them go, no continue
// needed.
bool streamHoldForLength(StreamState* s, Direction dir) {
  DirectionState& d = s->dir(dir);
  if (d.endSeen() || d.headersSent() || d.bytesArrived > 0 || d.bodyRead != BodyRead::None ||
      !s->engine->hasHook[dataHook(dir)] || s->host == nullptr) {
    return false;
  }
  std::string_view value;
  return hasContentLength(s->host->headerMap(headersKind(dir)), &value) && value != "0";
}

}  // namespace envoy_js
