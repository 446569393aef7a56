// The filter's own local reply through its own response hooks.
#include <cstdlib>
#include <cstring>
#include <string>

#include "internal.h"

namespace envoy_js {
namespace {

// Envoy sends a local reply through every encoder filter, the sender included. The
// dynamic-module ABI skips the sender's encode hooks for its own reply (Envoy's
// sent_local_reply_), so the runtime runs them itself, on every host alike, before the reply
// goes to the host: the response callbacks run on the reply as on any response, with its
// headers and body in a ReplyHost; the host's later callbacks for it pass it on untouched.

// A header map of the runtime's own (names lower-case, in order).
class ListMap : public HeaderMap {
 public:
  std::vector<std::pair<std::string, std::string>> entries;
  size_t get(std::string_view name, size_t index, std::string_view* value) const override {
    size_t n = 0;
    for (const auto& [k, v] : entries) {
      if (k != name) continue;
      if (n == index) *value = v;
      n++;
    }
    return n;
  }
  void forEach(Visitor fn, void* opaque) const override {
    for (const auto& [k, v] : entries) fn(opaque, k, v);
  }
  size_t size() const override { return entries.size(); }
  void set(std::string_view name, std::string_view value) override {
    auto it = std::find_if(entries.begin(), entries.end(), [&](const auto& e) { return e.first == name; });
    if (it == entries.end()) {
      append(name, value);
      return;
    }
    it->second.assign(value);
    entries.erase(std::remove_if(it + 1, entries.end(), [&](const auto& e) { return e.first == name; }), entries.end());
  }
  void append(std::string_view name, std::string_view value) override {
    entries.emplace_back(std::string(name), std::string(value));
  }
  void remove(std::string_view name) override {
    entries.erase(std::remove_if(entries.begin(), entries.end(), [&](const auto& e) { return e.first == name; }),
                  entries.end());
  }
};

class StringBody : public BodyBuffer {
 public:
  std::string data;
  size_t length() const override { return data.size(); }
  void copyOut(size_t offset, size_t len, uint8_t* dst) const override { std::memcpy(dst, data.data() + offset, len); }
  void replace(std::string_view d) override { data.assign(d); }
  void append(std::string_view d) override { data.append(d); }
  void prepend(std::string_view d) override { data.insert(0, d); }
};

// The real host, with the response played by the reply.
class ReplyHost : public StreamHost {
 public:
  ReplyHost(StreamHost* real, const LocalReply& reply) : real_(real), status_(reply.status), details_(reply.details) {
    headers_.append(":status", std::to_string(reply.status));
    for (const auto& [k, v] : reply.headers) headers_.append(k, v);
    body_.data = reply.body;
  }
  // Delivers the reply's body as one data callback's data.
  void startData() { current_ = &body_; }
  void endData() { current_ = nullptr; }
  // The reply as the hooks left it (Envoy sets content-length from the body itself).
  void result(LocalReply* reply) {
    for (const auto& [k, v] : headers_.entries) {
      if (k == ":status") {
        int status = std::atoi(v.c_str());
        if (status >= 200 && status <= 599) reply->status = status;
      }
    }
    reply->headers.clear();
    for (const auto& kv : headers_.entries) {
      if (!kv.first.empty() && kv.first[0] != ':' && kv.first != "content-length") reply->headers.push_back(kv);
    }
    reply->body = buffered_.data + body_.data;
  }

  HeaderMap* headerMap(HeaderMapKind kind) override {
    if (kind == HeaderMapKind::ResponseHeaders) return &headers_;
    if (kind == HeaderMapKind::ResponseTrailers) return nullptr;
    return real_->headerMap(kind);
  }
  BodyBuffer* currentData(Direction dir) override {
    return dir == Direction::Response ? current_ : real_->currentData(dir);
  }
  BodyBuffer* bufferedData(Direction dir) override {
    return dir == Direction::Response ? &buffered_ : real_->bufferedData(dir);
  }
  HeaderMap* addTrailers(Direction dir, std::string* whyNot) override {
    if (dir == Direction::Request) return real_->addTrailers(dir, whyNot);
    *whyNot = "a local reply (Envoy's sendLocalReply) ends with its body: it has no trailers";
    return nullptr;
  }
  void schedule() override { real_->schedule(); }
  void continueStream(Direction dir) override { real_->continueStream(dir); }
  void sendLocalReply(const LocalReply& reply) override { real_->sendLocalReply(reply); }
  void resetStream() override { real_->resetStream(); }
  void log(LogLevel level, std::string_view message) override { real_->log(level, message); }
  void recordError(std::string_view message) override { real_->recordError(message); }
  StreamInfo streamInfo() override { return real_->streamInfo(); }
  // The response is decided: the reply's code and details, as Envoy's stream info has them once
  // it sends a local reply (the host learns them only when the reply reaches it).
  std::optional<PropertyValue> property(Property which) override {
    if (which == Property::ResponseCode) return PropertyValue::of(static_cast<double>(status_));
    if (which == Property::ResponseCodeDetails && !details_.empty()) return PropertyValue::of(details_);
    return real_->property(which);
  }
  std::optional<MetadataValue> getRouteMetadata(std::string_view ns, std::string_view key) override {
    return real_->getRouteMetadata(ns, key);
  }
  bool setUpstreamOverrideHost(std::string_view host, bool strict) override {
    return real_->setUpstreamOverrideHost(host, strict);
  }
  std::optional<MetadataValue> getMetadata(std::string_view ns, std::string_view key) override {
    return real_->getMetadata(ns, key);
  }
  void setMetadata(std::string_view ns, std::string_view key, const MetadataValue& value) override {
    real_->setMetadata(ns, key, value);
  }
  std::optional<std::string> getFilterState(std::string_view key) override { return real_->getFilterState(key); }
  void setFilterState(std::string_view key, std::string_view value) override { real_->setFilterState(key, value); }
  void clearRouteCache() override { real_->clearRouteCache(); }
  RouteOverride routeOverride() override { return real_->routeOverride(); }
  CalloutStart startCallout(uint64_t id, const CalloutRequest& request) override {
    return real_->startCallout(id, request);
  }
  void cancelCallout(uint64_t id) override { real_->cancelCallout(id); }

 private:
  StreamHost* real_;
  int status_;
  std::string details_;
  ListMap headers_;
  StringBody body_, buffered_;
  BodyBuffer* current_ = nullptr;
};

}  // namespace

// Runs our response hooks on our own reply (when it is due), then sends it.
void streamDeliverReply(StreamState* s, LocalReply reply) {
  if (s->replyThroughHooks && !s->destroyed()) {
    s->replyThroughHooks = false;
    StreamHost* real = s->host;
    ReplyHost replyHost(real, reply);
    s->host = &replyHost;
    s->replyHooksRunning = true;
    streamOnHeaders(s, Direction::Response, reply.body.empty());
    if (!reply.body.empty() && s->host == &replyHost) {
      replyHost.startData();
      streamOnData(s, Direction::Response, true);
      replyHost.endData();
    }
    s->replyHooksRunning = false;
    if (s->host == &replyHost) s->host = real;  // (onDestroy inside sets it to nullptr)
    replyHost.result(&reply);
  }
  if (s->host != nullptr) s->host->sendLocalReply(reply);
}

}  // namespace envoy_js
