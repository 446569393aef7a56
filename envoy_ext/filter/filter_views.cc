// The adapters the runtime reads and writes the stream through: header views, the data of the
// running data callback, and the body bytes this filter holds. Also every place where held
// bytes or added trailers go to Envoy.
//
// The rule for held body bytes (StreamHost::bufferedData)
// -------------------------------------------------------
// Envoy keeps one buffer per stream and direction for the filters (decodingBuffer() /
// encodingBuffer()) and restricts who may change it and when (source/common/http/
// filter_manager.cc):
//  - modifyDecodingBuffer()/modifyEncodingBuffer() ASSERT that this filter is the latest one to
//    have been handed data in that direction. Once data has gone on past this filter, or before
//    any data callback reached it (a body the filter added itself to a headers-only request),
//    the call aborts debug and ASan builds.
//  - addDecodedData()/addEncodedData() are allowed outside every callback of the stream, inside
//    its headers and data callbacks, and inside its trailers callback; anywhere else (e.g. while
//    the stream runs a callback of the other direction) they are IS_ENVOY_BUG and a 502.
// JS, however, writes to held bytes whenever it runs: in a promise continuation during another
// stream's callback, in a timer, in a callout answer. So the adapter never lets Envoy hold the
// bytes of a stopped direction:
//  1. A data callback that the runtime stops (StopIterationAndBuffer / ...AndWatermark) moves
//     the callback's data into HeldBody and returns StopIterationNoBuffer. Envoy's buffer stays
//     without our bytes; modify*Buffer is never called.
//  2. JS reads and writes only HeldBody (adapter memory): safe at any time.
//  3. The bytes go to Envoy exactly when they move on, from this stream's own callbacks:
//     prepended to the data of a data callback that returns Continue; with add*Data() in a
//     headers or trailers callback that returns Continue; with add*Data() right before
//     continueDecoding()/continueEncoding() in continueStream(), which the runtime calls only
//     from onScheduled(), our own dispatcher post, where no callback of the stream is running.
//  4. add*Data's streaming flag: false for a whole body (the headers are still held and the
//     direction has ended), so that a body over Envoy's buffer limit gets Envoy's 413/500 as for
//     any buffering filter, instead of read-disabling a stream that can no longer be read;
//     true for held chunks of a body that is still streaming.
//  5. Flow control: Envoy's buffer would read-disable the sender above its limit. Held bytes do
//     the same through on{De,En}coderFilterAboveWriteBufferHighWatermark() (above the stream's
//     buffer limit) and ...BelowWriteBufferLowWatermark() (under half of it, as Envoy's
//     watermark buffers do), evaluated in the stream's own callbacks only.
#include "envoy_ext/filter/filter.h"

#include "source/common/http/header_map_impl.h"

namespace Envoy {
namespace Extensions {
namespace HttpFilters {
namespace QuickJs {

namespace {

Http::LowerCaseString headerName(std::string_view name) {
  return Http::LowerCaseString(absl::string_view(name.data(), name.size()));
}

absl::string_view view(std::string_view data) {
  return absl::string_view(data.data(), data.size());
}

} // namespace

// ---- HeaderView --------------------------------------------------------------------------------

Http::HeaderMap* HeaderView::map() const {
  if (filter_.destroyed_) {
    return nullptr;
  }
  // Only maps this filter has been shown: the runtime sees the same stream on every host, and
  // other hosts have no map before its callback.
  switch (kind_) {
  case envoy_js::HeaderMapKind::RequestHeaders:
    return filter_.sides_[0].headers_seen ? filter_.decoder_callbacks_->requestHeaders().ptr()
                                          : nullptr;
  case envoy_js::HeaderMapKind::RequestTrailers:
    return filter_.sides_[0].trailers_seen ? filter_.decoder_callbacks_->requestTrailers().ptr()
                                           : nullptr;
  case envoy_js::HeaderMapKind::ResponseHeaders:
    return filter_.sides_[1].headers_seen ? filter_.encoder_callbacks_->responseHeaders().ptr()
                                          : nullptr;
  case envoy_js::HeaderMapKind::ResponseTrailers:
    return filter_.sides_[1].trailers_seen ? filter_.encoder_callbacks_->responseTrailers().ptr()
                                           : nullptr;
  }
  return nullptr;
}

size_t HeaderView::get(std::string_view name, size_t index, std::string_view* value) const {
  const Http::HeaderMap* headers = map();
  if (headers == nullptr) {
    return 0;
  }
  const Http::HeaderMap::GetResult result = headers->get(headerName(name));
  if (index < result.size()) {
    const absl::string_view v = result[index]->value().getStringView();
    *value = std::string_view(v.data(), v.size());
  }
  return result.size();
}

void HeaderView::forEach(Visitor fn, void* opaque) const {
  const Http::HeaderMap* headers = map();
  if (headers == nullptr) {
    return;
  }
  headers->iterate([fn, opaque](const Http::HeaderEntry& entry) -> Http::HeaderMap::Iterate {
    const absl::string_view key = entry.key().getStringView();
    const absl::string_view value = entry.value().getStringView();
    fn(opaque, std::string_view(key.data(), key.size()),
       std::string_view(value.data(), value.size()));
    return Http::HeaderMap::Iterate::Continue;
  });
}

size_t HeaderView::size() const {
  const Http::HeaderMap* headers = map();
  return headers == nullptr ? 0 : headers->size();
}

void HeaderView::set(std::string_view name, std::string_view value) {
  if (Http::HeaderMap* headers = map()) {
    headers->setCopy(headerName(name), view(value));
  }
}

void HeaderView::append(std::string_view name, std::string_view value) {
  if (Http::HeaderMap* headers = map()) {
    headers->addCopy(headerName(name), view(value));
  }
}

void HeaderView::remove(std::string_view name) {
  if (Http::HeaderMap* headers = map()) {
    headers->remove(headerName(name));
  }
}

// ---- CurrentData -------------------------------------------------------------------------------

size_t CurrentData::length() const { return data_->length(); }

void CurrentData::copyOut(size_t offset, size_t len, uint8_t* dst) const {
  data_->copyOut(offset, len, dst);
}

void CurrentData::replace(std::string_view data) {
  data_->drain(data_->length());
  data_->add(view(data));
}

void CurrentData::append(std::string_view data) { data_->add(view(data)); }

void CurrentData::prepend(std::string_view data) { data_->prepend(view(data)); }

// ---- HeldBody ----------------------------------------------------------------------------------

size_t HeldBody::length() const { return bytes_.length(); }

void HeldBody::copyOut(size_t offset, size_t len, uint8_t* dst) const {
  if (len > 0) {
    bytes_.copyOut(offset, len, dst);
  }
}

void HeldBody::replace(std::string_view data) {
  bytes_.drain(bytes_.length());
  bytes_.add(view(data));
}

void HeldBody::append(std::string_view data) { bytes_.add(view(data)); }

void HeldBody::prepend(std::string_view data) { bytes_.prepend(view(data)); }

// ---- Filter: held bytes and added trailers (rule at the top of this file) ----------------------

Http::FilterDataStatus Filter::settleData(envoy_js::Direction dir, envoy_js::DataStatus status,
                                          Buffer::Instance& data) {
  Side& s = side(dir);
  switch (status) {
  case envoy_js::DataStatus::Continue:
    // Whatever this filter held goes on first, then this callback's data (3.).
    if (s.held.length() > 0) {
      data.prepend(s.held.bytes());
    }
    updateWatermark(dir);
    return Http::FilterDataStatus::Continue;
  case envoy_js::DataStatus::StopIterationAndBuffer:
  case envoy_js::DataStatus::StopIterationAndWatermark:
    // Held here, not in Envoy's buffer (1.). When this callback ends the stream, Envoy keeps
    // an empty buffer for the end of stream, which a later continue sends on behind our bytes.
    s.held.bytes().move(data);
    updateWatermark(dir);
    return Http::FilterDataStatus::StopIterationNoBuffer;
  case envoy_js::DataStatus::StopIterationNoBuffer:
    // The stream got a local reply, failed or was reset: Envoy drops the data.
    return Http::FilterDataStatus::StopIterationNoBuffer;
  }
  return Http::FilterDataStatus::StopIterationNoBuffer;
}

void Filter::handOver(envoy_js::Direction dir) {
  Side& s = side(dir);
  if (s.held.length() == 0) {
    return;
  }
  const bool whole_body = !s.headers_continued && s.end_seen;
  if (dir == envoy_js::Direction::Request) {
    decoder_callbacks_->addDecodedData(s.held.bytes(), /*streaming_filter=*/!whole_body);
  } else {
    encoder_callbacks_->addEncodedData(s.held.bytes(), /*streaming_filter=*/!whole_body);
  }
  // Envoy moves the bytes into its buffer (or, in a trailers callback of a filter that is not
  // stopped, straight on to the next filters); nothing of them stays held.
  s.held.bytes().drain(s.held.bytes().length());
  updateWatermark(dir);
}

void Filter::dropHeld() {
  for (envoy_js::Direction dir : {envoy_js::Direction::Request, envoy_js::Direction::Response}) {
    Side& s = side(dir);
    s.held.bytes().drain(s.held.bytes().length());
    updateWatermark(dir);
  }
}

void Filter::updateWatermark(envoy_js::Direction dir) {
  Side& s = side(dir);
  const bool request = dir == envoy_js::Direction::Request;
  const uint64_t limit =
      request ? decoder_callbacks_->bufferLimit() : encoder_callbacks_->bufferLimit();
  const uint64_t held = s.held.length();
  if (!s.above_high_watermark && limit != 0 && held > limit) {
    s.above_high_watermark = true;
    if (request) {
      decoder_callbacks_->onDecoderFilterAboveWriteBufferHighWatermark();
    } else {
      encoder_callbacks_->onEncoderFilterAboveWriteBufferHighWatermark();
    }
  } else if (s.above_high_watermark && (limit == 0 || held < limit / 2)) {
    s.above_high_watermark = false;
    if (request) {
      decoder_callbacks_->onDecoderFilterBelowWriteBufferLowWatermark();
    } else {
      encoder_callbacks_->onEncoderFilterBelowWriteBufferLowWatermark();
    }
  }
}

envoy_js::HeaderMap* Filter::addTrailers(envoy_js::Direction dir, std::string* why_not) {
  Side& s = side(dir);
  if (destroyed_ || !s.in_end_data || s.trailers_seen) {
    *why_not = "only inside the data callback that ends the message";
    return nullptr;
  }
  // Envoy's encodeData/decodeData (filter_manager.cc): trailers added here make the data go on
  // without end of stream; they follow it at once when this callback continues, or with the
  // continue of a stopped direction (commonContinue: data, then trailers). Held bytes are added
  // with add*Data right before that continue, so they still precede the trailers.
  if (dir == envoy_js::Direction::Request) {
    decoder_callbacks_->addDecodedTrailers();
  } else {
    encoder_callbacks_->addEncodedTrailers();
  }
  s.trailers_seen = true;
  return &headers_[static_cast<int>(dir == envoy_js::Direction::Request
                                        ? envoy_js::HeaderMapKind::RequestTrailers
                                        : envoy_js::HeaderMapKind::ResponseTrailers)];
}

} // namespace QuickJs
} // namespace HttpFilters
} // namespace Extensions
} // namespace Envoy
