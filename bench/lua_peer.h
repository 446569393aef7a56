// The LuaJIT peer: the header_rewrite work done the way Envoy's Lua filter does it, so that
// envoy-js is compared with the thing people run today. Modelled on Envoy's design (not its
// code): one lua_State per worker with the script loaded once; per stream a new coroutine
// that calls `envoy_on_request(handle)`; a per-stream handle userdata whose `headers()`
// creates (once per stream) a header-map userdata with get/replace/remove; both wrappers are
// marked dead when the stream's call finishes and are then left to Lua's garbage collector.
// The header maps are the same BenchHeaderMap the JS benchmark uses, reached through the
// same StreamHost.
#pragma once

#include <memory>
#include <string>

#include "../runtime/host.h"

struct lua_State;

namespace bench {

class LuaWorker {
 public:
  // Loads `script` into a fresh LuaJIT state; nullptr with *error on failure.
  static std::unique_ptr<LuaWorker> create(const std::string& script, std::string* error);
  ~LuaWorker();
  lua_State* state() const { return L_; }
  int onRequestRef() const { return onRequestRef_; }
  size_t heapBytes() const;

 private:
  LuaWorker() = default;
  lua_State* L_ = nullptr;
  int onRequestRef_ = -2;  // LUA_NOREF
};

// One stream, with the same entry points as envoy_js::Stream.
class LuaStream {
 public:
  LuaStream(LuaWorker& worker, envoy_js::StreamHost& host) : worker_(worker), host_(host) {}
  ~LuaStream() { onDestroy(); }
  envoy_js::HeadersStatus onRequestHeaders(bool endStream);
  envoy_js::HeadersStatus onResponseHeaders(bool endStream);
  void onComplete() {}
  void onDestroy();

 private:
  void finishCall();
  LuaWorker& worker_;
  envoy_js::StreamHost& host_;
  int coroutineRef_ = -2;
  int handleRef_ = -2;
  bool destroyed_ = false;
};

}  // namespace bench
