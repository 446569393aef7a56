#include "host.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

namespace bench {

uint64_t gBytesCopied = 0;
int gHostAllocating = 0;

// ---- BenchHeaderMap ---------------------------------------------------------------------------

size_t BenchHeaderMap::get(std::string_view name, size_t index, std::string_view* value) const {
  size_t n = 0;
  for (const auto& [k, v] : entries_) {
    if (k.size() != name.size() || std::memcmp(k.data(), name.data(), name.size()) != 0) continue;
    if (n == index) *value = v;
    n++;
  }
  return n;
}

void BenchHeaderMap::forEach(Visitor fn, void* opaque) const {
  for (const auto& [k, v] : entries_) fn(opaque, k, v);
}

void BenchHeaderMap::set(std::string_view name, std::string_view value) {
  auto same = [&](const std::pair<std::string, std::string>& e) { return e.first == name; };
  auto it = std::find_if(entries_.begin(), entries_.end(), same);
  if (it == entries_.end()) {
    entries_.emplace_back(std::string(name), std::string(value));
    return;
  }
  it->second.assign(value.data(), value.size());
  entries_.erase(std::remove_if(it + 1, entries_.end(), same), entries_.end());
}

void BenchHeaderMap::append(std::string_view name, std::string_view value) {
  entries_.emplace_back(std::string(name), std::string(value));
}

void BenchHeaderMap::remove(std::string_view name) {
  entries_.erase(std::remove_if(entries_.begin(), entries_.end(),
                                [&](const std::pair<std::string, std::string>& e) { return e.first == name; }),
                 entries_.end());
}

// ---- BenchBuffer ------------------------------------------------------------------------------

void BenchBuffer::copyOut(size_t offset, size_t len, uint8_t* dst) const {
  std::string_view b = bytes();
  std::memcpy(dst, b.data() + offset, len);
  gBytesCopied += len;
}

void BenchBuffer::own() {
  if (owned_) return;
  own_.assign(view_.data(), view_.size());
  owned_ = true;
}

void BenchBuffer::replace(std::string_view data) {
  own_.assign(data.data(), data.size());
  owned_ = true;
}

void BenchBuffer::append(std::string_view data) {
  own();
  own_.append(data.data(), data.size());
}

void BenchBuffer::prepend(std::string_view data) {
  own();
  own_.insert(0, data.data(), data.size());
}

// ---- BenchWorker ------------------------------------------------------------------------------

void BenchWorker::log(LogLevel level, std::string_view message) {
  if (level >= LogLevel::Error) {
    errors++;
    lastError.assign(message);
  }
}

void BenchWorker::incrementCounter(std::string_view name, uint64_t delta) {
  if (name == envoy_js::kCounterErrors) errors += delta;
}

void BenchWorker::cancelTimer(uint64_t id) { timers_.erase(id); }

bool BenchWorker::fireNextTimer() {
  if (timers_.empty()) return false;
  auto best = timers_.begin();
  for (auto it = timers_.begin(); it != timers_.end(); ++it) {
    // Earliest due first; on a tie the one started first (ids grow).
    if (it->second < best->second || (it->second == best->second && it->first < best->first)) best = it;
  }
  uint64_t id = best->first;
  now_ = std::max(now_, best->second);
  timers_.erase(best);
  engine->fireTimer(id);
  return true;
}

// ---- BenchStream ------------------------------------------------------------------------------

void BenchStream::begin(const HeaderList& request) {
  requestHeaders.assign(request);
  hasRequest = true;
  hasResponse = false;
  continues[0] = continues[1] = 0;
  scheduled = false;
  localReplies = resets = errors = 0;
  buffered_[0].clear();
  buffered_[1].clear();
  current_[0] = current_[1] = nullptr;
}

void BenchStream::setResponse(const HeaderList& response) {
  responseHeaders.assign(response);
  hasResponse = true;
}

HeaderMap* BenchStream::headerMap(HeaderMapKind kind) {
  switch (kind) {
    case HeaderMapKind::RequestHeaders: return hasRequest ? &requestHeaders : nullptr;
    case HeaderMapKind::ResponseHeaders: return hasResponse ? &responseHeaders : nullptr;
    default: return nullptr;  // the benchmarks send no trailers
  }
}

void BenchStream::sendLocalReply(const envoy_js::LocalReply& reply) {
  localReplies++;
  if (reply.status >= 500) {
    errors++;
    lastError = "local reply " + std::to_string(reply.status) + " " + reply.details;
  }
}

envoy_js::StreamInfo BenchStream::streamInfo() {
  return envoy_js::StreamInfo{"bench", "HTTP/1.1", "10.1.2.3:40000", "10.0.0.1:8080", "bench_route"};
}

envoy_js::CalloutStart BenchStream::startCallout(uint64_t, const envoy_js::CalloutRequest& request) {
  errors++;
  lastError = "the bench host has no clusters (callout to " + request.cluster + ")";
  return envoy_js::CalloutStart::UnknownCluster;
}

void BenchStream::log(LogLevel level, std::string_view message) {
  if (level >= LogLevel::Error) {
    errors++;
    lastError.assign(message);
  }
}

void BenchStream::recordError(std::string_view message) {
  errors++;
  lastError.assign(message);
}

}  // namespace bench
