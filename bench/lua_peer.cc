#include "lua_peer.h"

#include <new>
#include <string_view>

extern "C" {
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
}

namespace bench {
namespace {

constexpr const char* kHandleType = "envoy_js_bench.stream_handle";
constexpr const char* kHeadersType = "envoy_js_bench.header_map";

// Envoy's wrappers are C++ objects placed in userdata with a __gc that runs their destructor;
// ours are too, so the collector does the same work per stream.
struct HeadersWrapper {
  envoy_js::HeaderMap* map;
  const bool* continued;  // the owning handle's "headers already went on" flag
  bool dead = false;
};

struct HandleWrapper {
  envoy_js::StreamHost* host;
  int headersRef = LUA_NOREF;
  bool headersContinued = false;
  bool dead = false;
};

template <class T>
int gcWrapper(lua_State* L) {
  static_cast<T*>(lua_touserdata(L, 1))->~T();
  return 0;
}

// Envoy turns every key into an Http::LowerCaseString (a lower-cased std::string copy).
std::string lowerCaseKey(lua_State* L, int index) {
  size_t len = 0;
  const char* p = luaL_checklstring(L, index, &len);
  std::string key(p, len);
  for (char& c : key) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return key;
}

HeadersWrapper* checkHeaders(lua_State* L) {
  auto* w = static_cast<HeadersWrapper*>(luaL_checkudata(L, 1, kHeadersType));
  if (w->dead) luaL_error(L, "object used outside of proper scope");
  return w;
}

void checkModifiable(lua_State* L, const HeadersWrapper* w) {
  if (*w->continued) luaL_error(L, "header map can no longer be modified");
}

// headers:get(name): every value joined by "," (Envoy's getAllOfHeaderAsString), nil if absent.
int headersGet(lua_State* L) {
  HeadersWrapper* w = checkHeaders(L);
  std::string key = lowerCaseKey(L, 2);
  std::string_view value;
  size_t n = w->map->get(key, 0, &value);
  if (n == 0) return 0;
  if (n == 1) {
    lua_pushlstring(L, value.data(), value.size());
    return 1;
  }
  std::string joined(value);
  for (size_t i = 1; i < n; i++) {
    w->map->get(key, i, &value);
    joined += ',';
    joined += value;
  }
  lua_pushlstring(L, joined.data(), joined.size());
  return 1;
}

int headersReplace(lua_State* L) {
  HeadersWrapper* w = checkHeaders(L);
  checkModifiable(L, w);
  std::string key = lowerCaseKey(L, 2);
  size_t len = 0;
  const char* value = luaL_checklstring(L, 3, &len);
  w->map->set(key, std::string_view(value, len));
  return 0;
}

int headersRemove(lua_State* L) {
  HeadersWrapper* w = checkHeaders(L);
  checkModifiable(L, w);
  std::string key = lowerCaseKey(L, 2);
  w->map->remove(key);
  return 0;
}

// handle:headers(): created on first use in this stream, then the same object.
int handleHeaders(lua_State* L) {
  auto* h = static_cast<HandleWrapper*>(luaL_checkudata(L, 1, kHandleType));
  if (h->dead) return luaL_error(L, "object used outside of proper scope");
  if (h->headersRef != LUA_NOREF) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->headersRef);
    return 1;
  }
  envoy_js::HeaderMap* map = h->host->headerMap(envoy_js::HeaderMapKind::RequestHeaders);
  if (map == nullptr) return luaL_error(L, "no request headers");
  void* mem = lua_newuserdata(L, sizeof(HeadersWrapper));
  new (mem) HeadersWrapper{map, &h->headersContinued};
  luaL_getmetatable(L, kHeadersType);
  lua_setmetatable(L, -2);
  lua_pushvalue(L, -1);
  h->headersRef = luaL_ref(L, LUA_REGISTRYINDEX);
  return 1;
}

void registerType(lua_State* L, const char* name, const luaL_Reg* methods, lua_CFunction gc) {
  luaL_newmetatable(L, name);
  lua_pushvalue(L, -1);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, gc);
  lua_setfield(L, -2, "__gc");
  luaL_register(L, nullptr, methods);
  lua_pop(L, 1);
}

const luaL_Reg kHeadersMethods[] = {
    {"get", headersGet}, {"replace", headersReplace}, {"remove", headersRemove}, {nullptr, nullptr}};
const luaL_Reg kHandleMethods[] = {{"headers", handleHeaders}, {nullptr, nullptr}};

}  // namespace

std::unique_ptr<LuaWorker> LuaWorker::create(const std::string& script, std::string* error) {
  std::unique_ptr<LuaWorker> w(new LuaWorker());
  w->L_ = luaL_newstate();
  if (w->L_ == nullptr) {
    *error = "luaL_newstate failed";
    return nullptr;
  }
  lua_State* L = w->L_;
  luaL_openlibs(L);
  registerType(L, kHeadersType, kHeadersMethods, gcWrapper<HeadersWrapper>);
  registerType(L, kHandleType, kHandleMethods, gcWrapper<HandleWrapper>);
  if (luaL_loadbuffer(L, script.data(), script.size(), "bench.lua") != 0 || lua_pcall(L, 0, 0, 0) != 0) {
    *error = lua_tostring(L, -1);
    return nullptr;
  }
  lua_getglobal(L, "envoy_on_request");
  if (!lua_isfunction(L, -1)) {
    *error = "the script defines no envoy_on_request";
    return nullptr;
  }
  w->onRequestRef_ = luaL_ref(L, LUA_REGISTRYINDEX);
  return w;
}

LuaWorker::~LuaWorker() {
  if (L_ != nullptr) lua_close(L_);
}

size_t LuaWorker::heapBytes() const {
  return static_cast<size_t>(lua_gc(L_, LUA_GCCOUNT, 0)) * 1024 + static_cast<size_t>(lua_gc(L_, LUA_GCCOUNTB, 0));
}

envoy_js::HeadersStatus LuaStream::onRequestHeaders(bool) {
  lua_State* L = worker_.state();
  // A coroutine per stream, anchored in the registry while the stream lives.
  lua_State* co = lua_newthread(L);
  coroutineRef_ = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_rawgeti(co, LUA_REGISTRYINDEX, worker_.onRequestRef());
  void* mem = lua_newuserdata(co, sizeof(HandleWrapper));
  new (mem) HandleWrapper{&host_};
  luaL_getmetatable(co, kHandleType);
  lua_setmetatable(co, -2);
  lua_pushvalue(co, -1);
  handleRef_ = luaL_ref(co, LUA_REGISTRYINDEX);
  int r = lua_resume(co, 1);
  if (r == LUA_YIELD) return envoy_js::HeadersStatus::StopIteration;  // not used by the benchmark
  if (r != 0) {
    const char* message = lua_tostring(co, -1);
    host_.recordError(message ? message : "lua error");
    host_.log(envoy_js::LogLevel::Error, message ? message : "lua error");
  }
  finishCall();
  return envoy_js::HeadersStatus::Continue;
}

// The request headers went on: later writes through the wrapper fail, like Envoy's.
void LuaStream::finishCall() {
  lua_State* L = worker_.state();
  lua_rawgeti(L, LUA_REGISTRYINDEX, handleRef_);
  auto* h = static_cast<HandleWrapper*>(lua_touserdata(L, -1));
  lua_pop(L, 1);
  if (h != nullptr) h->headersContinued = true;
}

envoy_js::HeadersStatus LuaStream::onResponseHeaders(bool) {
  return envoy_js::HeadersStatus::Continue;  // the script has no envoy_on_response
}

void LuaStream::onDestroy() {
  if (destroyed_) return;
  destroyed_ = true;
  lua_State* L = worker_.state();
  if (handleRef_ != LUA_NOREF) {
    // Mark the handle and the wrappers it created dead, then drop our references.
    lua_rawgeti(L, LUA_REGISTRYINDEX, handleRef_);
    auto* h = static_cast<HandleWrapper*>(lua_touserdata(L, -1));
    lua_pop(L, 1);
    if (h != nullptr) {
      h->dead = true;
      if (h->headersRef != LUA_NOREF) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, h->headersRef);
        static_cast<HeadersWrapper*>(lua_touserdata(L, -1))->dead = true;
        lua_pop(L, 1);
        luaL_unref(L, LUA_REGISTRYINDEX, h->headersRef);
        h->headersRef = LUA_NOREF;
      }
    }
    luaL_unref(L, LUA_REGISTRYINDEX, handleRef_);
    handleRef_ = LUA_NOREF;
  }
  if (coroutineRef_ != LUA_NOREF) {
    luaL_unref(L, LUA_REGISTRYINDEX, coroutineRef_);
    coroutineRef_ = LUA_NOREF;
  }
}

}  // namespace bench
