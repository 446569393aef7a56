// Engine life cycle: compiling a program once, loading it per worker, the job pump and the
// CPU/heap limits.
#include <malloc.h>

#include <algorithm>
#include <bit>
#include <cctype>
#include <cinttypes>
#include <cstdlib>
#include <cstring>
#include <new>
#include <optional>
#include <string>

#include "internal.h"
#include "source_map.h"

namespace envoy_js {
namespace {

// Version 2 carries what the build's scratch engine checked (metrics, load heap), so that a
// configuration loads it without running the module once more. Version 1 files still load,
// through that scratch run.
constexpr std::string_view kBytecodeMagic = "envoy-js-bytecode 2\n";
constexpr std::string_view kBytecodeMagicV1 = "envoy-js-bytecode 1\n";

const char* const kHookNames[kHookCount] = {
    "onRequest", "onRequestData", "onRequestTrailers", "onResponse",
    "onResponseData", "onResponseTrailers", "onDone",
};

constexpr uint64_t kFnvOffset = 14695981039346656037ull;
constexpr uint64_t kFnvPrime = 1099511628211ull;

uint64_t fnv1a(const uint8_t* data, size_t len, uint64_t h = kFnvOffset) {
  for (size_t i = 0; i < len; i++) {
    h ^= data[i];
    h *= kFnvPrime;
  }
  return h;
}

// The .qjsbc integrity digest ("sum64"): four FNV-style lanes over little-endian 64-bit words
// (independent, so the CPU runs them in parallel: ~20x faster than byte-wise FNV-1a, which
// took 90 us on a 90 KiB bundle), then FNV-1a over the lanes, the tail bytes and the length.
// Every step is injective in its input word, so any single changed word changes the digest.
// An integrity check against damage, not a signature.
static_assert(std::endian::native == std::endian::little, "sum64 reads little-endian words");
uint64_t sum64(const uint8_t* data, size_t len) {
  uint64_t lanes[4] = {0x243f6a8885a308d3ull, 0x13198a2e03707344ull, 0xa4093822299f31d0ull,
                       0x082efa98ec4e6c89ull};
  size_t i = 0;
  for (; i + 32 <= len; i += 32) {
    for (int k = 0; k < 4; k++) {
      uint64_t word;
      std::memcpy(&word, data + i + 8 * k, 8);  // the build and the load are both little-endian
      lanes[k] = (lanes[k] ^ word) * kFnvPrime;
    }
  }
  uint64_t h = fnv1a(reinterpret_cast<const uint8_t*>(lanes), sizeof lanes);
  h = fnv1a(data + i, len - i, h);
  uint64_t length = len;
  return fnv1a(reinterpret_cast<const uint8_t*>(&length), sizeof length, h);
}

// The heap limit is enforced here rather than with JS_SetMemoryLimit so that hitting it is
// known for certain: when quickjs cannot even allocate the "out of memory" error, the
// exception it leaves behind is a bare null.
void* heapMalloc(void* opaque, size_t size) {
  auto* e = static_cast<Engine::Impl*>(opaque);
  if (e->heapUsed + size > e->heapLimit) {
    e->heapLimitHit = true;
    return nullptr;
  }
  void* p = malloc(size);
  if (p) e->heapUsed += malloc_usable_size(p);
  return p;
}

void* heapCalloc(void* opaque, size_t count, size_t size) {
  auto* e = static_cast<Engine::Impl*>(opaque);
  if (size != 0 && count > (SIZE_MAX / size)) return nullptr;
  if (e->heapUsed + count * size > e->heapLimit) {
    e->heapLimitHit = true;
    return nullptr;
  }
  void* p = calloc(count, size);
  if (p) e->heapUsed += malloc_usable_size(p);
  return p;
}

void heapFree(void* opaque, void* ptr) {
  if (ptr == nullptr) return;
  auto* e = static_cast<Engine::Impl*>(opaque);
  e->heapUsed -= malloc_usable_size(ptr);
  free(ptr);
}

void* heapRealloc(void* opaque, void* ptr, size_t size) {
  auto* e = static_cast<Engine::Impl*>(opaque);
  size_t old = ptr ? malloc_usable_size(ptr) : 0;
  if (size > old && e->heapUsed + (size - old) > e->heapLimit) {
    e->heapLimitHit = true;
    return nullptr;
  }
  void* p = realloc(ptr, size);
  if (p == nullptr) return nullptr;
  e->heapUsed = e->heapUsed - old + malloc_usable_size(p);
  return p;
}

size_t heapUsableSize(const void* ptr) { return malloc_usable_size(const_cast<void*>(ptr)); }

const JSMallocFunctions kHeapFunctions = {heapCalloc, heapMalloc, heapFree, heapRealloc, heapUsableSize};

int interruptHandler(JSRuntime* rt, void* opaque) {
  auto* engine = static_cast<Engine::Impl*>(opaque);
  if (!engine->deadlineArmed) return 0;
  if (std::chrono::steady_clock::now() < engine->deadline) return 0;
  engine->interrupted = true;
  return 1;
}

// quickjs calls this with isHandled=false when a promise rejects without a handler, and with
// isHandled=true when one is attached later. Only what is still unhandled once the job queue
// is drained gets logged: `await`ing a rejected promise, catching it a tick later or a hook
// promise that the runtime settles itself are not unhandled rejections.
void rejectionTracker(JSContext* ctx, JSValueConst promise, JSValueConst reason, bool isHandled,
                      void* opaque) {
  auto* engine = static_cast<Engine::Impl*>(opaque);
  if (engine == nullptr || engine->ctx == nullptr) return;
  if (isHandled) {
    engine->forgetRejection(promise);
    return;
  }
  if (engine->unhandledIndex.count(JS_VALUE_GET_PTR(promise))) return;
  engine->unhandledIndex[JS_VALUE_GET_PTR(promise)] = engine->unhandledRejections.size();
  engine->unhandledRejections.emplace_back(JS_DupValue(ctx, promise), JS_DupValue(ctx, reason));
}

JSModuleDef* refuseImports(JSContext* ctx, const char* name, void*) {
  JS_ThrowReferenceError(ctx,
                         "cannot import '%s' at run time: bundle the filter with `envoy-js build` "
                         "so that every dependency is inside one file",
                         name);
  return nullptr;
}

// A value's own property as a JS value; JS_UNDEFINED when absent.
JSValue getProp(JSContext* ctx, JSValueConst obj, const char* name) {
  return JS_GetPropertyStr(ctx, obj, name);
}

}  // namespace

std::string FilterProgram::engineVersion() { return JS_GetVersion(); }

void Engine::Impl::logEngine(LogLevel level, std::string_view message) {
  if (host != nullptr) host->log(level, message);
}

namespace {

// Text of a value, or nullopt when reading or converting it throws (a getter, a toString, a
// symbol). Whatever was thrown meanwhile is dropped: describing one error must not leave
// another pending for the next API call to report by mistake.
std::optional<std::string> readableText(JSContext* ctx, JSValue v) {
  std::optional<std::string> out;
  if (JS_IsException(v)) {
    JS_FreeValue(ctx, JS_GetException(ctx));
    return out;
  }
  if (!JS_IsSymbol(v)) {
    size_t len = 0;
    if (const char* p = JS_ToCStringLen(ctx, &len, v)) {
      out.emplace(p, len);
      JS_FreeCString(ctx, p);
    } else {
      JS_FreeValue(ctx, JS_GetException(ctx));
    }
  }
  JS_FreeValue(ctx, v);
  return out;
}

}  // namespace

std::string Engine::Impl::describeException(JSValue exc) {
  std::string out;
  if (JS_IsError(exc)) {
    std::optional<std::string> name = readableText(ctx, JS_GetPropertyStr(ctx, exc, "name"));
    std::optional<std::string> message = readableText(ctx, JS_GetPropertyStr(ctx, exc, "message"));
    out = name.value_or("Error") + ": " + message.value_or("(unreadable message)");
    JSValue stackValue = JS_GetPropertyStr(ctx, exc, "stack");
    std::optional<std::string> stack;
    if (JS_IsString(stackValue)) stack = readableText(ctx, stackValue);
    else readableText(ctx, stackValue);  // drops an exception from a throwing getter
    if (stack && !stack->empty()) {
      out += "\n";
      out += *stack;
      while (!out.empty() && out.back() == '\n') out.pop_back();
    }
  } else if (JS_IsNull(exc) && heapLimitHit) {
    // Out of memory so deep that not even an error object could be allocated.
    out = "InternalError: out of memory (max_heap_bytes reached)";
  } else if (JS_IsSymbol(exc)) {
    out = "thrown value: a symbol";
  } else {
    std::optional<std::string> text = readableText(ctx, JS_DupValue(ctx, exc));
    out = "thrown value: " + text.value_or("an object that cannot be printed");
  }
  JS_FreeValue(ctx, exc);
  // Stacks name the bundle; point them at the TypeScript source when there is a map.
  if (program) out = program->mapLocations(out);
  return out;
}

std::string Engine::Impl::takeException() { return describeException(JS_GetException(ctx)); }

void Engine::Impl::armDeadline(uint32_t budgetMs) {
  if (budgetMs == 0) budgetMs = program->settings().maxCpuMsPerEvent;
  deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(budgetMs);
  deadlineArmed = true;
  interrupted = false;
}

void Engine::Impl::drainJobQueue() {
  for (;;) {
    JSContext* jobCtx = nullptr;
    int r = JS_ExecutePendingJob(rt, &jobCtx);
    if (r == 0) break;
    if (r > 0) continue;
    // Only uncatchable errors (interrupt, out of memory in the job machinery) get here:
    // ordinary exceptions in reactions reject their promise instead.
    bool runaway = interrupted;
    if (runaway) interruptedJobs++;
    std::string message = takeException();
    if (current != nullptr && !current->finished()) {
      Direction d = current->dirs[1].hookPending() ? Direction::Response : Direction::Request;
      streamFail(current, d, message, runaway);
      // failure_mode open: the killed job may have been the pending hook's continuation, whose
      // promise then never settles. Settle it as "returned nothing" (after this drain, like a
      // reaction would) so that the stream goes on instead of waiting forever.
      DirectionState& ds = current->dir(d);
      if (!current->finished() && ds.hook == HookState::Pending) {
        ds.hook = HookState::Settled;
        ds.settledRejected = false;
        ds.settledValue = JS_UNDEFINED;
        current->jsRefs++;  // released by processSettled
        settledQueue.push_back(current);
      }
    } else {
      logEngine(LogLevel::Error, "error in a pending job: " + message);
      host->incrementCounter("envoy_js.errors", 1);
      if (runaway) host->incrementCounter("envoy_js.cpu_limit", 1);
    }
    armDeadline();  // the remaining jobs get a budget of their own
  }
}

void Engine::Impl::processSettled() {
  while (!settledQueue.empty()) {
    std::vector<StreamState*> batch;
    batch.swap(settledQueue);
    for (StreamState* s : batch) {
      StreamState* saved = current;
      current = s;
      for (Direction dir : {Direction::Request, Direction::Response}) {
        DirectionState& d = s->dir(dir);
        if (d.hook != HookState::Settled) continue;
        JSValue value = d.settledValue;
        d.settledValue = JS_UNDEFINED;
        streamHookSettled(s, dir, false, d.settledRejected, value);
        JS_FreeValue(ctx, value);
      }
      current = saved;
      releaseStream(s);  // the reference taken when it was queued
    }
  }
}

namespace {
// Deep merge for plain objects: `over` wins; arrays and other values replace.
JSValue mergeConfig(JSContext* ctx, JSValueConst base, JSValueConst over) {
  bool bothObjects = JS_IsObject(base) && !JS_IsArray(base) && JS_IsObject(over) && !JS_IsArray(over);
  if (!bothObjects) return JS_DupValue(ctx, over);
  JSValue out = JS_NewObject(ctx);
  for (int pass = 0; pass < 2; pass++) {
    JSValueConst src = pass == 0 ? base : over;
    JSPropertyEnum* props = nullptr;
    uint32_t count = 0;
    if (JS_GetOwnPropertyNames(ctx, &props, &count, src, JS_GPN_STRING_MASK | JS_GPN_ENUM_ONLY) != 0) continue;
    for (uint32_t i = 0; i < count; i++) {
      JSValue v = JS_GetProperty(ctx, src, props[i].atom);
      JSValue prev = JS_GetProperty(ctx, out, props[i].atom);
      JSValue merged = JS_IsUndefined(prev) || pass == 0 ? JS_DupValue(ctx, v) : mergeConfig(ctx, prev, v);
      JS_SetProperty(ctx, out, props[i].atom, merged);
      JS_FreeValue(ctx, prev);
      JS_FreeValue(ctx, v);
    }
    JS_FreePropertyEnum(ctx, props, count);
  }
  return out;
}
}  // namespace

JSValue Engine::Impl::configFor(const std::string& overrideJson, std::string* error) {
  auto it = routeConfigs.find(overrideJson);
  if (it != routeConfigs.end()) return JS_DupValue(ctx, it->second);
  JSValue over = JS_ParseJSON(ctx, overrideJson.c_str(), overrideJson.size(), "<route config>");
  if (JS_IsException(over)) {
    *error = "invalid per-route config JSON: " + takeException();
    return JS_EXCEPTION;
  }
  JSValue merged = mergeConfig(ctx, config, over);
  JS_FreeValue(ctx, over);
  if (routeConfigs.size() < 4096) routeConfigs.emplace(overrideJson, JS_DupValue(ctx, merged));
  return merged;
}

void Engine::Impl::runJobs() {
  if (pumpDepth > 0) return;  // the outer pump will drain what this call would have
  // The sync fast path: a hook that returned without awaiting left nothing to run.
  if (!JS_IsJobPending(rt) && settledQueue.empty() && unhandledRejections.empty()) return;
  ++pumpDepth;
  armDeadline();
  do {
    drainJobQueue();
    processSettled();
  } while (JS_IsJobPending(rt));
  disarmDeadline();
  --pumpDepth;
  reportUnhandledRejections();
}

// By index, not by scanning: a filter may reject (and then handle) many promises at once.
void Engine::Impl::forgetRejection(JSValueConst promise) {
  auto it = unhandledIndex.find(JS_VALUE_GET_PTR(promise));
  if (it == unhandledIndex.end()) return;
  auto& entry = unhandledRejections[it->second];
  unhandledIndex.erase(it);
  JS_FreeValue(ctx, entry.first);
  JS_FreeValue(ctx, entry.second);
  entry = {JS_UNDEFINED, JS_UNDEFINED};
}

void Engine::Impl::reportUnhandledRejections() {
  std::vector<std::pair<JSValue, JSValue>> pending;
  pending.swap(unhandledRejections);
  unhandledIndex.clear();
  for (auto& [promise, reason] : pending) {
    if (JS_IsUndefined(promise)) continue;  // handled meanwhile
    JS_FreeValue(ctx, promise);
    logEngine(LogLevel::Warn, "unhandled promise rejection: " + describeException(reason));
  }
}

StreamState* Engine::Impl::newStreamState(StreamHost& streamHost) {
  void* memory = spareStateCount > 0 ? spareStates[--spareStateCount] : ::operator new(sizeof(StreamState));
  auto* s = new (memory) StreamState();
  s->engine = this;
  s->host = &streamHost;
  s->id = nextStreamId++;
  liveStreams++;
  return s;
}

void Engine::Impl::freeStreamValues(StreamState* s) {
  JSValue* values[] = {&s->ctx, &s->req, &s->res, &s->log, &s->info, &s->metadata, &s->filterState, &s->routeConfig,
                       &s->headers[0], &s->headers[1],
                       &s->headers[2], &s->headers[3], &s->bodies[0], &s->bodies[1],
                       &s->dirs[0].pendingPromise, &s->dirs[1].pendingPromise,
                       &s->dirs[0].pendingChunk, &s->dirs[1].pendingChunk};
  for (JSValue* v : values) {
    JSValue old = *v;
    *v = JS_UNDEFINED;
    JS_FreeValue(ctx, old);
  }
}

void Engine::Impl::releaseStream(StreamState* s) {
  if (--s->jsRefs > 0 || !s->destroyed()) return;
  liveStreams--;
  s->~StreamState();
  if (spareStateCount < kSpareStates) spareStates[spareStateCount++] = s;
  else ::operator delete(s);
}

// ---- Settings --------------------------------------------------------------------------------

bool Settings::fromJson(std::string_view json, Settings* out, std::string* error) {
  JSRuntime* rt = JS_NewRuntime();
  limitJsStack(rt);
  JSContext* ctx = JS_NewContext(rt);
  bool ok = true;
  std::string text(json);
  JSValue obj = JS_ParseJSON(ctx, text.c_str(), text.size(), "<settings>");
  auto fail = [&](std::string message) {
    *error = std::move(message);
    ok = false;
  };
  if (JS_IsException(obj)) {
    JSValue exc = JS_GetException(ctx);
    const char* m = JS_ToCString(ctx, exc);
    fail(std::string("invalid settings JSON: ") + (m ? m : "parse error"));
    if (m) JS_FreeCString(ctx, m);
    JS_FreeValue(ctx, exc);
  } else if (!JS_IsObject(obj) || JS_IsArray(obj)) {
    fail("settings must be a JSON object");
  } else {
    JSValue mode = getProp(ctx, obj, "failure_mode");
    if (!JS_IsUndefined(mode)) {
      const char* m = JS_IsString(mode) ? JS_ToCString(ctx, mode) : nullptr;
      if (m && std::strcmp(m, "closed") == 0) out->failureMode = FailureMode::Closed;
      else if (m && std::strcmp(m, "open") == 0) out->failureMode = FailureMode::Open;
      else fail("failure_mode must be \"closed\" or \"open\"");
      if (m) JS_FreeCString(ctx, m);
    }
    JS_FreeValue(ctx, mode);
    struct Limit {
      const char* key;
      double min, max;
    } limits[] = {{"max_heap_bytes", 1 << 20, 1ull << 34},
                  {"max_cpu_ms_per_event", 1, 60000},
                  {"buffer_limit_bytes", 0, 1ull << 32}};
    for (const Limit& l : limits) {
      if (!ok) break;
      JSValue v = getProp(ctx, obj, l.key);
      if (!JS_IsUndefined(v)) {
        double d = 0;
        if (!JS_IsNumber(v) || JS_ToFloat64(ctx, &d, v) != 0 || d != static_cast<double>(static_cast<uint64_t>(d)) ||
            d < l.min || d > l.max) {
          char buf[200];
          snprintf(buf, sizeof buf, "%s must be an integer between %.0f and %.0f", l.key, l.min, l.max);
          fail(buf);
        } else if (std::strcmp(l.key, "max_heap_bytes") == 0) {
          out->maxHeapBytes = static_cast<size_t>(d);
        } else if (std::strcmp(l.key, "max_cpu_ms_per_event") == 0) {
          out->maxCpuMsPerEvent = static_cast<uint32_t>(d);
        } else {
          out->bufferLimitBytes = static_cast<size_t>(d);
        }
      }
      JS_FreeValue(ctx, v);
    }
  }
  JS_FreeValue(ctx, obj);
  JS_FreeContext(ctx);
  JS_FreeRuntime(rt);
  return ok;
}

// ---- FilterProgram ---------------------------------------------------------------------------

namespace {

// "    at src/filter.ts:3:13" -> "src/filter.ts:3:13"
std::string firstStackLocation(const std::string& stack) {
  size_t at = stack.find("at ");
  if (at == std::string::npos) return "";
  size_t start = at + 3;
  size_t end = stack.find('\n', start);
  std::string loc = stack.substr(start, end == std::string::npos ? std::string::npos : end - start);
  // "fn (file:1:2)" -> "file:1:2"
  size_t open = loc.find('(');
  if (open != std::string::npos && loc.back() == ')') loc = loc.substr(open + 1, loc.size() - open - 2);
  return loc;
}

}  // namespace

std::string FilterProgram::mapLocations(std::string_view text) const {
  return sourceMap_ ? sourceMap_->rewrite(text, filename_) : std::string(text);
}

std::shared_ptr<const FilterProgram> FilterProgram::compile(std::string_view source,
                                                            std::string filename,
                                                            std::string configJson,
                                                            Settings settings, std::string* error,
                                                            std::string_view sourceMapJson) {
  JSRuntime* rt = JS_NewRuntime();
  limitJsStack(rt);
  JS_SetModuleLoaderFunc(rt, nullptr, refuseImports, nullptr);
  JSContext* ctx = JS_NewContext(rt);
  std::string text(source);
  JSValue module = JS_Eval(ctx, text.c_str(), text.size(), filename.c_str(),
                           JS_EVAL_TYPE_MODULE | JS_EVAL_FLAG_COMPILE_ONLY);
  std::vector<uint8_t> bytecode;
  if (JS_IsException(module)) {
    JSValue exc = JS_GetException(ctx);
    JSValue stack = JS_GetPropertyStr(ctx, exc, "stack");
    const char* m = JS_ToCString(ctx, exc);
    const char* st = JS_IsString(stack) ? JS_ToCString(ctx, stack) : nullptr;
    std::string loc = st ? firstStackLocation(st) : "";
    *error = (loc.empty() ? filename : loc) + ": " + (m ? m : "compile error");
    if (!sourceMapJson.empty()) {
      std::string ignored;
      if (auto map = SourceMap::parse(sourceMapJson, &ignored)) *error = map->rewrite(*error, filename);
    }
    if (m) JS_FreeCString(ctx, m);
    if (st) JS_FreeCString(ctx, st);
    JS_FreeValue(ctx, stack);
    JS_FreeValue(ctx, exc);
  } else {
    size_t size = 0;
    // Without the functions' source text (kept only for Function.prototype.toString): it
    // doubled the bytecode, and every worker engine read and kept a copy (docs/limits.md).
    uint8_t* buf = JS_WriteObject(ctx, &size, module, JS_WRITE_OBJ_BYTECODE | JS_WRITE_OBJ_STRIP_SOURCE);
    if (buf == nullptr) {
      *error = filename + ": could not serialize the compiled module";
    } else {
      bytecode.assign(buf, buf + size);
      js_free(ctx, buf);
    }
    JS_FreeValue(ctx, module);
  }
  JS_FreeContext(ctx);
  JS_FreeRuntime(rt);
  if (bytecode.empty()) return nullptr;
  return finish(std::move(bytecode), std::move(filename), std::move(configJson), settings, error,
                sourceMapJson);
}

namespace {
// Metric names go into a header line: bytes outside [A-Za-z0-9_.-] are %XX-escaped.
std::string escapeName(const std::string& name) {
  std::string out;
  for (unsigned char c : name) {
    if (std::isalnum(c) || c == '_' || c == '.' || c == '-') {
      out += static_cast<char>(c);
    } else {
      char buf[4];
      snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

bool unescapeName(std::string_view text, std::string* out) {
  out->clear();
  for (size_t i = 0; i < text.size(); i++) {
    if (text[i] != '%') {
      out->push_back(text[i]);
      continue;
    }
    auto hex = [](char c) {
      return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
    };
    if (i + 2 >= text.size() || hex(text[i + 1]) < 0 || hex(text[i + 2]) < 0) return false;
    out->push_back(static_cast<char>(hex(text[i + 1]) * 16 + hex(text[i + 2])));
    i += 2;
  }
  return !out->empty();
}

const char* metricKindName(MetricKind k) {
  switch (k) {
    case MetricKind::Counter: return "counter";
    case MetricKind::Gauge: return "gauge";
    case MetricKind::Histogram: return "histogram";
  }
  return "counter";
}

// "metrics a:counter,b:gauge\nload-heap 123\n" (metrics "-" when none).
std::string checkedFacts(const std::vector<MetricDeclaration>& metrics, size_t loadHeapBytes) {
  std::string text = "metrics ";
  if (metrics.empty()) text += "-";
  for (size_t i = 0; i < metrics.size(); i++) {
    if (i > 0) text += ",";
    text += escapeName(metrics[i].name) + ":" + metricKindName(metrics[i].kind);
  }
  text += "\nload-heap " + std::to_string(loadHeapBytes) + "\n";
  return text;
}

bool parseMetrics(std::string_view list, std::vector<MetricDeclaration>* out) {
  out->clear();
  if (list == "-") return true;
  while (!list.empty()) {
    size_t comma = list.find(',');
    std::string_view item = list.substr(0, comma);
    size_t colon = item.rfind(':');
    if (colon == std::string_view::npos) return false;
    MetricDeclaration m;
    if (!unescapeName(item.substr(0, colon), &m.name)) return false;
    std::string_view kind = item.substr(colon + 1);
    if (kind == "counter") m.kind = MetricKind::Counter;
    else if (kind == "gauge") m.kind = MetricKind::Gauge;
    else if (kind == "histogram") m.kind = MetricKind::Histogram;
    else return false;
    out->push_back(std::move(m));
    if (comma == std::string_view::npos) break;
    list = list.substr(comma + 1);
  }
  return true;
}

// The filter config must be JSON (Envoy hands over a Struct as JSON; other hosts raw text).
// Checked once per configuration in a bare context; the workers parse it again for ctx.config.
bool checkConfigJson(const std::string& json, const std::string& filename, std::string* error) {
  if (json.empty() || json == "{}") return true;
  JSRuntime* rt = JS_NewRuntime();
  limitJsStack(rt);
  JSContext* ctx = JS_NewContextRaw(rt);
  bool ok = ctx != nullptr && JS_AddIntrinsicBaseObjects(ctx) == 0;
  if (ok) {
    JSValue value = JS_ParseJSON(ctx, json.c_str(), json.size(), "<filter config>");
    if (JS_IsException(value)) {
      ok = false;
      JSValue exc = JS_GetException(ctx);
      JSValue name = JS_GetPropertyStr(ctx, exc, "name");
      JSValue message = JS_GetPropertyStr(ctx, exc, "message");
      const char* n = JS_ToCString(ctx, name);
      const char* m = JS_ToCString(ctx, message);
      *error = filename + ": invalid filter config JSON: " + (n ? n : "SyntaxError") + ": " + (m ? m : "");
      if (n) JS_FreeCString(ctx, n);
      if (m) JS_FreeCString(ctx, m);
      JS_FreeValue(ctx, name);
      JS_FreeValue(ctx, message);
      JS_FreeValue(ctx, exc);
    }
    JS_FreeValue(ctx, value);
  } else {
    *error = filename + ": could not create a quickjs context to check the filter config";
  }
  if (ctx) JS_FreeContext(ctx);
  JS_FreeRuntime(rt);
  return ok;
}

// Loading a module and running setup() are not events: they get at least a second (the
// deadline is wall-clock time, and a busy machine must not fail a config load that a hook's
// 50 ms would cover on a quiet one), while a runaway top level is still stopped.
constexpr uint32_t kMinLoadBudgetMs = 1000;
uint32_t loadBudgetMs(const Settings& settings) { return std::max(settings.maxCpuMsPerEvent, kMinLoadBudgetMs); }

// quickjs-ng's bytecode starts with a version byte and a 32-bit checksum of the rest, which
// JS_ReadObject recomputes on every load unless it is 0xffffffff (its documented escape
// hatch). The program's bytecode is checked once when it enters the process (compiled here,
// or a .qjsbc file whose sum64 matched), so the workers' loads skip it: ~2 % of Engine::create.
void skipReaderChecksum(std::vector<uint8_t>* bytecode) {
  if (bytecode->size() > 5) std::memset(bytecode->data() + 1, 0xff, 4);
}

// Splits off the first line of `*rest` (without its newline); false when there is none.
bool takeLine(std::string_view* rest, std::string_view* line) {
  size_t eol = rest->find('\n');
  if (eol == std::string_view::npos) return false;
  *line = rest->substr(0, eol);
  *rest = rest->substr(eol + 1);
  return true;
}
}  // namespace

std::vector<uint8_t> FilterProgram::serializedBytecode() const {
  std::string facts = checkedFacts(metrics_, loadHeapBytes_);
  uint64_t digest = fnv1a(reinterpret_cast<const uint8_t*>(facts.data()), facts.size(),
                          sum64(bytecode_.data(), bytecode_.size()));
  char sizeLine[96];
  snprintf(sizeLine, sizeof sizeLine, "size %zu sum64 %016" PRIx64 "\n", bytecode_.size(), digest);
  std::string header = std::string(kBytecodeMagic) + "quickjs-ng " + JS_GetVersion() + "\n" + facts + sizeLine;
  std::vector<uint8_t> out(header.begin(), header.end());
  out.insert(out.end(), bytecode_.begin(), bytecode_.end());
  return out;
}

std::shared_ptr<const FilterProgram> FilterProgram::fromBytecodeFile(std::string_view file,
                                                                     std::string filename,
                                                                     std::string configJson,
                                                                     Settings settings,
                                                                     std::string* error,
                                                                     std::string_view sourceMapJson) {
  bool v1 = file.substr(0, kBytecodeMagicV1.size()) == kBytecodeMagicV1;
  if (!v1 && file.substr(0, kBytecodeMagic.size()) != kBytecodeMagic) {
    *error = filename + ": not an envoy-js bytecode file (build it with `envoy-js build --bytecode`)";
    return nullptr;
  }
  std::string_view rest = file.substr(kBytecodeMagic.size());
  std::string_view versionLine;
  bool hasVersion = takeLine(&rest, &versionLine);
  std::string expected = std::string("quickjs-ng ") + JS_GetVersion();
  if (!hasVersion || versionLine != expected) {
    versionLine = hasVersion ? versionLine : rest;
    *error = filename + ": bytecode was built for " + std::string(versionLine.substr(0, 64)) +
             " but this runtime embeds " + expected +
             "; rebuild it with `envoy-js build --bytecode` from the same envoy-js release";
    return nullptr;
  }
  auto damaged = [&] {
    *error = filename + ": bytecode header is damaged";
    return nullptr;
  };
  std::string_view factsStart = rest;
  std::vector<MetricDeclaration> metrics;
  size_t loadHeapBytes = 0;
  if (!v1) {
    std::string_view metricsLine, heapLine;
    if (!takeLine(&rest, &metricsLine) || !takeLine(&rest, &heapLine)) return damaged();
    if (metricsLine.substr(0, 8) != "metrics " || !parseMetrics(metricsLine.substr(8), &metrics)) return damaged();
    std::string heapText(heapLine);
    if (sscanf(heapText.c_str(), "load-heap %zu", &loadHeapBytes) != 1) return damaged();
  }
  std::string_view facts = factsStart.substr(0, factsStart.size() - rest.size());
  std::string_view sizeView;
  if (!takeLine(&rest, &sizeView)) return damaged();
  size_t size = 0;
  uint64_t sum = 0;
  std::string sizeLine(sizeView);
  if (sscanf(sizeLine.c_str(), v1 ? "size %zu fnv1a %" SCNx64 : "size %zu sum64 %" SCNx64, &size, &sum) != 2) {
    return damaged();
  }
  const auto* data = reinterpret_cast<const uint8_t*>(rest.data());
  uint64_t digest = 0;
  if (rest.size() == size) {
    digest = v1 ? fnv1a(data, size)
                : fnv1a(reinterpret_cast<const uint8_t*>(facts.data()), facts.size(), sum64(data, size));
  }
  if (rest.size() != size || digest != sum) {
    *error = filename + ": bytecode is truncated or corrupt (expected " + std::to_string(size) +
             " bytes, found " + std::to_string(rest.size()) + ")";
    return nullptr;
  }
  if (v1) {
    return finish(std::vector<uint8_t>(data, data + size), std::move(filename), std::move(configJson),
                  settings, error, sourceMapJson);
  }
  // What the build's scratch run established about this exact bytecode holds here too (same
  // quickjs-ng, same runtime); what depends on this configuration is checked now.
  if (loadHeapBytes > settings.maxHeapBytes) {
    *error = filename + ": max_heap_bytes " + std::to_string(settings.maxHeapBytes) +
             " is too small: loading this bundle takes " + std::to_string(loadHeapBytes) + " bytes";
    return nullptr;
  }
  if (!checkConfigJson(configJson, filename, error)) return nullptr;
  auto program = assemble(std::vector<uint8_t>(data, data + size), std::move(filename), std::move(configJson),
                          settings, sourceMapJson);
  program->metrics_ = std::move(metrics);
  program->loadHeapBytes_ = loadHeapBytes;
  return program;
}

namespace {
// `fn.length`: the parameters before the first default or rest one. 0 (rest-style wrappers
// such as `(...args) => inner(...args)`) counts as "may use ctx".
int declaredParameters(JSContext* ctx, JSValueConst fn) {
  JSValue length = JS_GetPropertyStr(ctx, fn, "length");
  int32_t n = -1;
  if (JS_IsException(length) || JS_ToInt32(ctx, &n, length) != 0) {
    JS_FreeValue(ctx, JS_GetException(ctx));
    n = -1;
  }
  JS_FreeValue(ctx, length);
  return n;
}

bool loadModule(Engine::Impl* e, std::string* error, std::vector<MetricDeclaration>* metricsOut,
                bool withSetup);
bool createImpl(Engine::Impl* e, std::string* error);
void destroyImpl(Engine::Impl* e);
bool callSetup(Engine::Impl* e, JSValueConst filter, std::string* error);
}  // namespace

std::shared_ptr<FilterProgram> FilterProgram::assemble(std::vector<uint8_t> bytecode, std::string filename,
                                                      std::string configJson, Settings settings,
                                                      std::string_view sourceMapJson) {
  auto program = std::make_shared<FilterProgram>();
  if (!sourceMapJson.empty()) program->sourceMap_ = SourceMap::parse(sourceMapJson, &program->sourceMapError_);
  program->bytecode_ = std::move(bytecode);
  skipReaderChecksum(&program->bytecode_);
  program->filename_ = std::move(filename);
  program->configJson_ = configJson.empty() ? "{}" : std::move(configJson);
  program->settings_ = settings;
  return program;
}

std::shared_ptr<const FilterProgram> FilterProgram::finish(std::vector<uint8_t> bytecode,
                                                           std::string filename,
                                                           std::string configJson,
                                                           Settings settings, std::string* error,
                                                           std::string_view sourceMapJson) {
  auto program = assemble(std::move(bytecode), std::move(filename), std::move(configJson), settings,
                          sourceMapJson);
  // Validate in a scratch engine: the module runs, exports a filter, declares sane metrics.
  // Logs of this scratch engine are dropped; errors end up in *error.
  DiscardingEngineHost scratch;
  Engine::Impl impl;
  impl.program = program;
  impl.host = &scratch;
  std::vector<MetricDeclaration> metrics;
  bool ok = false;
  ok = createImpl(&impl, error) && loadModule(&impl, error, &metrics, /*withSetup=*/false);
  size_t loadHeapBytes = impl.heapUsed;
  destroyImpl(&impl);
  if (!ok) return nullptr;
  program->metrics_ = std::move(metrics);
  program->loadHeapBytes_ = loadHeapBytes;
  return program;
}

// ---- Engine ----------------------------------------------------------------------------------

namespace {

bool createImpl(Engine::Impl* e, std::string* error) {
  for (auto& h : e->hooks) h = JS_UNDEFINED;
  e->heapLimit = e->program->settings().maxHeapBytes;
  e->rt = JS_NewRuntime2(&kHeapFunctions, e);
  if (e->rt == nullptr) {
    *error = "could not create a quickjs runtime";
    return false;
  }
  JS_SetRuntimeOpaque(e->rt, e);
  limitJsStack(e->rt);
  // The heap a load takes is known from the build's scratch run: no garbage collection while
  // loading (one full mark of a freshly loaded bundle was ~4 % of Engine::create).
  if (size_t known = e->program->loadHeapBytes(); known > 0) JS_SetGCThreshold(e->rt, known + (256u << 10));
  JS_SetInterruptHandler(e->rt, interruptHandler, e);
  JS_SetHostPromiseRejectionTracker(e->rt, rejectionTracker, e);
  JS_SetModuleLoaderFunc(e->rt, nullptr, refuseImports, e);
  e->ctx = JS_NewContext(e->rt);
  if (e->ctx == nullptr) {
    *error = "could not create a quickjs context (max_heap_bytes too small?)";
    return false;
  }
  JS_SetContextOpaque(e->ctx, e);
  if (!registerClasses(e) || !installGlobals(e->ctx, e) || !installTimers(e->ctx)) {
    *error = "could not install the envoy-js API: " + e->takeException();
    return false;
  }
  {
    const ClassIds& c = e->classes;
    JSClassID ids[8] = {c.context, c.request, c.response, c.headers, c.body, c.chunk, c.log, c.reply};
    for (int i = 0; i < 8; i++) e->shapeKeepers[i] = JS_NewObjectClass(e->ctx, static_cast<int>(ids[i]));
    e->headersAtom = JS_NewAtom(e->ctx, "headers");
    for (int i = 8; i < 10; i++) {
      e->shapeKeepers[i] = JS_NewObjectClass(e->ctx, static_cast<int>(i == 8 ? c.request : c.response));
      JS_DefinePropertyValue(e->ctx, e->shapeKeepers[i], e->headersAtom, JS_UNDEFINED, 0);
    }
  }
  return true;
}

void destroyImpl(Engine::Impl* e) {
  if (e->ctx != nullptr) {
    freeAllTimers(e);
    freeAllCallouts(e);
    for (auto& [promise, reason] : e->unhandledRejections) {
      JS_FreeValue(e->ctx, promise);
      JS_FreeValue(e->ctx, reason);
    }
    e->unhandledRejections.clear();
    e->unhandledIndex.clear();
    for (auto& h : e->hooks) JS_FreeValue(e->ctx, h);
    JS_FreeValue(e->ctx, e->config);
    JS_FreeValue(e->ctx, e->worker);
    JS_FreeValue(e->ctx, e->streamGoneProto);
    for (auto& k : e->shapeKeepers) {
      JS_FreeValue(e->ctx, k);
      k = JS_UNDEFINED;
    }
    JS_FreeAtom(e->ctx, e->headersAtom);
    e->headersAtom = JS_ATOM_NULL;
    JS_FreeValue(e->ctx, e->metrics);
    for (auto& [k, v] : e->routeConfigs) JS_FreeValue(e->ctx, v);
    e->routeConfigs.clear();
    e->config = e->worker = e->streamGoneProto = e->metrics = JS_UNDEFINED;
    for (auto& h : e->hooks) h = JS_UNDEFINED;
    JS_FreeContext(e->ctx);
    e->ctx = nullptr;
  }
  if (e->rt != nullptr) {
    JS_RunGC(e->rt);
    JS_FreeRuntime(e->rt);
    e->rt = nullptr;
  }
  while (e->spareStateCount > 0) ::operator delete(e->spareStates[--e->spareStateCount]);
}

bool loadModule(Engine::Impl* e, std::string* error, std::vector<MetricDeclaration>* metricsOut,
                bool withSetup) {
  JSContext* ctx = e->ctx;
  const auto& bc = e->program->bytecode();
  const std::string& file = e->program->filename();
  JSValue module = JS_ReadObject(ctx, bc.data(), bc.size(), JS_READ_OBJ_BYTECODE);
  if (JS_IsException(module)) {
    *error = file + ": could not load bytecode: " + e->takeException();
    return false;
  }
  if (JS_VALUE_GET_TAG(module) != JS_TAG_MODULE) {
    JS_FreeValue(ctx, module);
    *error = file + ": bytecode does not hold an ES module";
    return false;
  }
  auto* def = static_cast<JSModuleDef*>(JS_VALUE_GET_PTR(module));
  if (JS_ResolveModule(ctx, module) < 0) {
    JS_FreeValue(ctx, module);
    *error = file + ": " + e->takeException();
    return false;
  }
  e->armDeadline(loadBudgetMs(e->program->settings()));
  JSValue evaluated = JS_EvalFunction(ctx, module);  // consumes `module`
  if (JS_IsException(evaluated)) {
    e->disarmDeadline();
    *error = file + ": the module threw while loading: " + e->takeException();
    return false;
  }
  while (JS_IsJobPending(e->rt)) {
    JSContext* c;
    if (JS_ExecutePendingJob(e->rt, &c) < 0) {
      e->disarmDeadline();
      JS_FreeValue(ctx, evaluated);
      *error = file + ": the module threw while loading: " + e->takeException();
      return false;
    }
  }
  e->disarmDeadline();
  if (JS_IsPromise(evaluated) && JS_PromiseState(ctx, evaluated) == JS_PROMISE_REJECTED) {
    *error = file + ": the module threw while loading: " +
             e->describeException(JS_PromiseResult(ctx, evaluated));
    JS_FreeValue(ctx, evaluated);
    return false;
  }
  if (JS_IsPromise(evaluated) && JS_PromiseState(ctx, evaluated) == JS_PROMISE_PENDING) {
    // Reading the exports now would only say "no default export" (its binding is not set yet).
    JS_FreeValue(ctx, evaluated);
    *error = file + ": the module did not finish loading: a top-level await waits for something that cannot "
                    "happen while a filter loads (timers and callouts do not run then); move that work into "
                    "setup() or a hook";
    return false;
  }
  JS_FreeValue(ctx, evaluated);

  JSValue ns = JS_GetModuleNamespace(ctx, def);
  JSValue filter = JS_GetPropertyStr(ctx, ns, "default");
  JS_FreeValue(ctx, ns);
  bool ok = true;
  auto fail = [&](std::string message) {
    if (ok) *error = file + ": " + message;
    ok = false;
  };
  if (JS_IsException(filter)) {
    filter = JS_UNDEFINED;
    fail("reading the default export threw: " + e->takeException());
  } else if (!JS_IsObject(filter)) {
    fail("the filter module has no default export object: write `export default defineFilter({ ... })`");
  } else if (JS_IsFunction(ctx, filter)) {
    fail("the default export is a function: export the filter object itself, "
         "`export default defineFilter({ ... })`, not a function that returns it");
  }
  for (int i = 0; ok && i < kHookCount; i++) {
    JSValue hook = JS_GetPropertyStr(ctx, filter, kHookNames[i]);
    if (JS_IsException(hook)) {
      fail(std::string("reading `") + kHookNames[i] + "` of the default export threw: " + e->takeException());
      break;
    }
    if (JS_IsUndefined(hook) || JS_IsNull(hook)) {
      JS_FreeValue(ctx, hook);
      continue;
    }
    if (!JS_IsFunction(ctx, hook)) {
      JS_FreeValue(ctx, hook);
      fail(std::string("`") + kHookNames[i] + "` must be a function");
      break;
    }
    e->hooks[i] = hook;
    e->hasHook[i] = true;
    e->hookTakesCtx[i] = i == kOnDone || declaredParameters(ctx, hook) != 1;
  }
  // A misspelt hook would otherwise be silently ignored.
  if (ok) {
    JSPropertyEnum* props = nullptr;
    uint32_t count = 0;
    if (JS_GetOwnPropertyNames(ctx, &props, &count, filter, JS_GPN_STRING_MASK | JS_GPN_ENUM_ONLY) == 0) {
      for (uint32_t i = 0; i < count; i++) {
        const char* name = JS_AtomToCString(ctx, props[i].atom);
        bool known = false;
        for (const char* h : kHookNames) known = known || std::strcmp(h, name) == 0;
        if (!known && std::strncmp(name, "on", 2) == 0 && name[2] >= 'A' && name[2] <= 'Z') {
          fail(std::string("unknown hook `") + name +
               "`: hooks are onRequest, onRequestData, onRequestTrailers, onResponse, "
               "onResponseData, onResponseTrailers, onDone");
        }
        JS_FreeCString(ctx, name);
      }
      JS_FreePropertyEnum(ctx, props, count);
    }
  }
  if (ok) {
    JSValue metrics = JS_GetPropertyStr(ctx, filter, "metrics");
    if (JS_IsException(metrics)) {
      metrics = JS_UNDEFINED;
      fail("reading `metrics` of the default export threw: " + e->takeException());
    }
    if (ok && !JS_IsUndefined(metrics)) {
      JSPropertyEnum* props = nullptr;
      uint32_t count = 0;
      if (!JS_IsObject(metrics) ||
          JS_GetOwnPropertyNames(ctx, &props, &count, metrics, JS_GPN_STRING_MASK | JS_GPN_ENUM_ONLY) != 0) {
        fail("`metrics` must be an object like { requests: \"counter\" }");
      } else {
        for (uint32_t i = 0; i < count && ok; i++) {
          const char* name = JS_AtomToCString(ctx, props[i].atom);
          JSValue kind = JS_GetProperty(ctx, metrics, props[i].atom);
          const char* k = JS_IsString(kind) ? JS_ToCString(ctx, kind) : nullptr;
          MetricKind mk = MetricKind::Counter;
          if (k && std::strcmp(k, "counter") == 0) mk = MetricKind::Counter;
          else if (k && std::strcmp(k, "gauge") == 0) mk = MetricKind::Gauge;
          else if (k && std::strcmp(k, "histogram") == 0) mk = MetricKind::Histogram;
          else fail(std::string("metric `") + name + "` must be \"counter\", \"gauge\" or \"histogram\"");
          if (ok) metricsOut->push_back({name, mk});
          if (k) JS_FreeCString(ctx, k);
          JS_FreeValue(ctx, kind);
          JS_FreeCString(ctx, name);
        }
        JS_FreePropertyEnum(ctx, props, count);
      }
    }
    JS_FreeValue(ctx, metrics);
  }
  if (ok && !buildMetrics(e, *metricsOut)) fail("could not build ctx.metrics: " + e->takeException());
  if (ok) {
    const std::string& cfg = e->program->configJson();
    e->config = JS_ParseJSON(ctx, cfg.c_str(), cfg.size(), "<filter config>");
    if (JS_IsException(e->config)) {
      e->config = JS_UNDEFINED;
      fail("invalid filter config JSON: " + e->takeException());
    }
  }
  JSValue setup = ok ? JS_GetPropertyStr(ctx, filter, "setup") : JS_UNDEFINED;
  if (JS_IsException(setup)) {
    setup = JS_UNDEFINED;
    fail("reading `setup` of the default export threw: " + e->takeException());
  }
  if (ok && !JS_IsUndefined(setup) && !JS_IsFunction(ctx, setup)) fail("`setup` must be a function");
  JS_FreeValue(ctx, setup);
  if (ok && withSetup) ok = callSetup(e, filter, error);
  JS_FreeValue(ctx, filter);
  return ok;
}

// Calls the filter's optional `setup(config, worker)`; its result becomes ctx.worker.
bool callSetup(Engine::Impl* e, JSValueConst filter, std::string* error) {
  JSContext* ctx = e->ctx;
  JSValue setup = JS_GetPropertyStr(ctx, filter, "setup");
  if (JS_IsUndefined(setup)) return true;
  JSValue info = JS_NewObject(ctx);
  JS_SetPropertyStr(ctx, info, "index", JS_NewUint32(ctx, e->workerIndex));
  JSValueConst args[2] = {e->config, info};
  e->armDeadline(loadBudgetMs(e->program->settings()));
  JSValue result = JS_Call(ctx, setup, filter, 2, args);
  JS_FreeValue(ctx, setup);
  JS_FreeValue(ctx, info);
  const std::string& file = e->program->filename();
  if (JS_IsException(result)) {
    e->disarmDeadline();
    *error = file + ": setup() threw: " + e->takeException();
    return false;
  }
  e->drainJobQueue();
  e->disarmDeadline();
  if (JS_IsPromise(result)) {
    JSPromiseStateEnum st = JS_PromiseState(ctx, result);
    if (st == JS_PROMISE_PENDING) {
      JS_FreeValue(ctx, result);
      *error = file + ": setup() returned a promise that did not settle: setup runs before any "
                      "stream, so it cannot wait for timers or callouts";
      return false;
    }
    JSValue value = JS_PromiseResult(ctx, result);
    JS_FreeValue(ctx, result);
    if (st == JS_PROMISE_REJECTED) {
      *error = file + ": setup() failed: " + e->describeException(value);
      return false;
    }
    result = value;
  }
  e->worker = result;
  return true;
}

}  // namespace

std::unique_ptr<Engine> Engine::create(std::shared_ptr<const FilterProgram> program,
                                       EngineHost& host, uint32_t workerIndex,
                                       std::string* error) {
  std::unique_ptr<Engine> engine(new Engine());
  engine->impl_ = std::make_unique<Impl>();
  Impl* e = engine->impl_.get();
  e->program = std::move(program);
  e->host = &host;
  e->workerIndex = workerIndex;
  std::vector<MetricDeclaration> metrics;
  if (!createImpl(e, error) || !loadModule(e, error, &metrics, /*withSetup=*/true)) {
    destroyImpl(e);
    engine->impl_.reset();
    return nullptr;
  }
  // From here quickjs's own policy: collect when the heap grows by half.
  JS_SetGCThreshold(e->rt, std::max<size_t>(e->heapUsed + e->heapUsed / 2, 256u << 10));
  e->reportUnhandledRejections();
  return engine;
}

Engine::~Engine() {
  if (impl_) destroyImpl(impl_.get());
}

EngineStats Engine::stats() const {
  EngineStats st;
  JSMemoryUsage usage;
  JS_ComputeMemoryUsage(impl_->rt, &usage);
  st.heapBytes = static_cast<size_t>(usage.malloc_size);
  st.liveStreams = impl_->liveStreams;
  return st;
}

const Settings& Engine::settings() const { return impl_->program->settings(); }

void Engine::collectGarbage() { JS_RunGC(impl_->rt); }

}  // namespace envoy_js
