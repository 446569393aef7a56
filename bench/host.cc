#include "host.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

namespace bench {

uint64_t gBytesCopied = 0;

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
  if (name == "envoy_js.errors") errors += delta;
}

void BenchWorker::cancelTimer(uint64_t id) {
  // Newest first: a stream usually cancels the timer it started last.
  for (size_t i = timers_.size(); i-- > 0;) {
    if (timers_[i].id == id) {
      timers_.erase(timers_.begin() + static_cast<std::ptrdiff_t>(i));
      return;
    }
  }
}

bool BenchWorker::fireNextTimer() {
  if (timers_.empty()) return false;
  size_t best = 0;
  for (size_t i = 1; i < timers_.size(); i++) {
    if (timers_[i].due < timers_[best].due) best = i;  // ties: the older one (lower index)
  }
  PendingTimer t = timers_[best];
  timers_.erase(timers_.begin() + static_cast<std::ptrdiff_t>(best));
  now_ = std::max(now_, t.due);
  engine->fireTimer(t.id);
  return true;
}

// ---- BenchStream ------------------------------------------------------------------------------

void BenchStream::begin(const HeaderList& request) {
  requestHeaders.assign(request);
  hasRequest = true;
  hasResponse = false;
  continues[0] = continues[1] = 0;
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
