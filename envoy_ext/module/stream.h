// One HTTP stream over the ABI: ModuleStream is the runtime's StreamHost, with Envoy's header
// maps and bodies reached through the ABI's callbacks.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "../../runtime/engine.h"
#include "abi_util.h"
#include "worker.h"

namespace envoy_js::module {

// A header map that lives in Envoy, reached through the header callbacks.
class AbiHeaderMap : public HeaderMap {
 public:
  void bind(FilterPtr filter, HeaderMapKind kind);
  size_t get(std::string_view name, size_t index, std::string_view* value) const override;
  void forEach(Visitor fn, void* opaque) const override;
  size_t size() const override { return envoy_dynamic_module_callback_http_get_headers_size(filter_, type_); }
  // Envoy's set_header removes the header for an empty value: there is no empty value here.
  void set(std::string_view name, std::string_view value) override;
  void append(std::string_view name, std::string_view value) override;
  void remove(std::string_view name) override;

 private:
  FilterPtr filter_ = nullptr;
  envoy_dynamic_module_type_http_header_type type_ = envoy_dynamic_module_type_http_header_type_RequestHeader;
};

// Body bytes in Envoy: the data of the running body hook, or the filter's buffered body.
class AbiBody : public BodyBuffer {
 public:
  void bind(FilterPtr filter, envoy_dynamic_module_type_http_body_type type, const bool* hidden);
  size_t length() const override;
  void copyOut(size_t offset, size_t len, uint8_t* dst) const override;
  void replace(std::string_view data) override;
  void append(std::string_view data) override;
  void prepend(std::string_view data) override;

 private:
  FilterPtr filter_ = nullptr;
  envoy_dynamic_module_type_http_body_type type_ = envoy_dynamic_module_type_http_body_type_ReceivedRequestBody;
  const bool* hidden_ = nullptr;
};

// One HTTP stream: the StreamHost of its envoy_js::Stream.
class ModuleStream : public StreamHost {
 public:
  ModuleStream(WorkerEngine* worker, FilterPtr filter);

  WorkerEngine* worker() { return worker_; }
  FilterPtr filter() { return filter_; }
  // Hooks of this stream on the stack; Envoy's destroy inside one only marks the stream.
  void enter() { depth_++; }
  bool leave() { return --depth_ == 0 && destroyed_; }  // true: delete it now
  bool busy() const { return depth_ > 0; }
  void markDestroyed() { destroyed_ = true; }
  bool destroyed() const { return destroyed_; }
  Stream* stream() { return stream_.get(); }
  void attach(std::unique_ptr<Stream> s) { stream_ = std::move(s); }

  // Under g.mutex: the clock thread may commit at any time.
  void commitLocked(uint64_t event) { envoy_dynamic_module_callback_http_filter_scheduler_commit(scheduler_, event); }
  void commit(uint64_t event);

  // Called by the hooks around the runtime's callbacks.
  void seenHeaders(Direction dir) { seen_[dir == Direction::Request ? 0 : 2] = true; }
  void seenTrailers(Direction dir) { seen_[dir == Direction::Request ? 1 : 3] = true; }
  void enterData(Direction dir);
  void leaveData(Direction dir);
  // Envoy 1.38 keeps one "in continue" flag for both directions and sets it after
  // continueDecoding() returns (fixed in 1.39, envoyproxy/envoy#45591). A response that Envoy
  // makes inside our continue (direct_response, 404, 503) and that our response hook holds
  // would then never be continued: continue_encoding is dropped. On such an Envoy a held
  // response that is complete is sent on as a local reply of what the hooks made of it.
  void continueDecoding();
  void encodeReturned(bool stopped, bool endOfStream);
  void continueEncoding();

  void raiseBufferLimit(size_t limit);

  void calloutDone(uint64_t envoyId, envoy_dynamic_module_type_http_callout_result result,
                   envoy_dynamic_module_type_envoy_http_header* headers, size_t headersSize,
                   envoy_dynamic_module_type_envoy_buffer* chunks, size_t chunksSize);

  void calloutDeadline(uint64_t key);

  void sendHeldResponse();

  // Forgets pending callouts and deadlines; Envoy cancels the requests when it destroys the
  // filter.
  void dropCallouts();

  ~ModuleStream() override;

  // ---- StreamHost ----
  HeaderMap* headerMap(HeaderMapKind kind) override;
  BodyBuffer* currentData(Direction dir) override;
  BodyBuffer* bufferedData(Direction dir) override { return &buffered_[static_cast<int>(dir)]; }
  // The ABI (Envoy 1.38 to 1.40) reaches only trailers that exist: its header calls fail on a
  // missing map and it has no call that makes one.
  HeaderMap* addTrailers(Direction, std::string* whyNot) override {
    *whyNot = "the Envoy dynamic module cannot add trailers to a message that has none (the module ABI "
              "of Envoy 1.38 to 1.40 has no call for it); the native extension can";
    return nullptr;
  }
  // One scheduler event at a time: requests coalesce until it runs.
  void schedule() override;
  void scheduledRan() { scheduled_ = false; }
  // The runtime calls this only from onScheduled(), inside Envoy's on_scheduled callback.
  void continueStream(Direction dir) override;
  void sendLocalReply(const LocalReply& reply) override;
  void resetStream() override;
  void log(LogLevel level, std::string_view message) override;
  void recordError(std::string_view message) override;
  StreamInfo streamInfo() override;
  // Envoy's dynamic metadata holds strings, numbers and booleans: those round-trip. Other JSON
  // values are stored as their JSON text (a string).
  std::optional<MetadataValue> getMetadata(std::string_view ns, std::string_view key) override;
  void setMetadata(std::string_view ns, std::string_view key, const MetadataValue& value) override;
  std::optional<std::string> getFilterState(std::string_view key) override;
  // Envoy stores these values read-only: the first write of a key wins.
  void setFilterState(std::string_view key, std::string_view value) override;
  void clearRouteCache() override { envoy_dynamic_module_callback_http_clear_route_cache(filter_); }
  RouteOverride routeOverride() override;
  CalloutStart startCallout(uint64_t id, const CalloutRequest& request) override;
  void cancelCallout(uint64_t id) override;

 private:
  std::string attribute(envoy_dynamic_module_type_attribute_id id);
  // Envoy's request id (x-request-id); "w<worker>-<n>" when the stream has none.
  const std::string& requestId();
  std::string prefix() { return "envoy_js(" + worker_->config().name + ") stream " + requestId(); }

  struct Pending {
    uint64_t runtimeId;
    uint64_t deadline;  // timer key
  };

  WorkerEngine* worker_;
  FilterPtr filter_;
  envoy_dynamic_module_type_http_filter_scheduler_module_ptr scheduler_ = nullptr;
  std::unique_ptr<Stream> stream_;
  AbiHeaderMap maps_[4];
  bool seen_[4] = {false, false, false, false};
  AbiBody received_[2], buffered_[2];
  bool inData_[2] = {false, false};
  // The data of the running body hook is the buffered body itself: the buffered view is empty.
  bool receivedIsBuffered_[2] = {false, false};
  int depth_ = 0;
  bool destroyed_ = false;
  bool scheduled_ = false;  // a kScheduled event is committed and has not run yet
  bool inDecodeContinue_ = false;
  bool encodeHeldInDecodeContinue_ = false;
  bool responseEnded_ = false;
  std::string requestId_;
  std::unordered_map<uint64_t, Pending> callouts_;    // Envoy's callout id -> ours
  std::unordered_map<uint64_t, uint64_t> deadlines_;  // deadline key -> Envoy's callout id
};

}  // namespace envoy_js::module
