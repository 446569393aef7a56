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
#include "process_state.h"
#include "source_map.h"

namespace envoy_js {
namespace {

// quickjs calls this with isHandled=false when a promise rejects without a handler, and with
// isHandled=true when one is attached later. Only what is still unhandled once the job queue
// is drained gets logged: `await`ing a rejected promise, catching it a tick later or a hook
// promise that the runtime settles itself are not unhandled rejections.
void rejectionTracker(JSContext* ctx, JSValueConst promise, JSValueConst reason, bool isHandled, void* opaque) {
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

// A value's own property as a JS value; JS_UNDEFINED when absent.

}  // namespace

JSModuleDef* refuseImports(JSContext* ctx, const char* name, void*) {
  JS_ThrowReferenceError(ctx,
                         "cannot import '%s' at run time: bundle the filter with `envoy-js build` "
                         "so that every dependency is inside one file",
                         name);
  return nullptr;
}

void Engine::Impl::logEngine(LogLevel level, std::string_view message) {
  if (host != nullptr) host->log(level, message);
}

void Engine::Impl::countFailure(const std::string& message, bool runaway) {
  bool heap = heapLimitHit || message.find("out of memory") != std::string::npos;
  heapLimitHit = false;
  host->incrementCounter(kCounterErrors, 1);
  if (runaway) host->incrementCounter(kCounterCpuLimit, 1);
  if (heap) {
    host->incrementCounter(kCounterHeapLimit, 1);
    JS_RunGC(rt);
  }
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
      countFailure(message, runaway);
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
    if (backgroundHost != nullptr) {
      // No stream and no caller sees a background engine's failures: a rejection that nothing
      // handles is its error (a `setInterval(async () => ...)` that throws).
      std::string message = describeException(reason);
      logEngine(LogLevel::Error, "error in background work: unhandled promise rejection: " + message);
      countFailure(message, false);
      continue;
    }
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
  JSValue* values[] = {&s->ctx,
                       &s->req,
                       &s->res,
                       &s->log,
                       &s->info,
                       &s->metadata,
                       &s->filterState,
                       &s->routeConfig,
                       &s->headers[0],
                       &s->headers[1],
                       &s->headers[2],
                       &s->headers[3],
                       &s->bodies[0],
                       &s->bodies[1],
                       &s->dirs[0].pendingPromise,
                       &s->dirs[1].pendingPromise,
                       &s->dirs[0].pendingChunk,
                       &s->dirs[1].pendingChunk};
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

bool loadModule(Engine::Impl* e, std::string* error, std::vector<MetricDeclaration>* metricsOut, bool withSetup);
bool createImpl(Engine::Impl* e, std::string* error);
void destroyImpl(Engine::Impl* e);
bool callSetup(Engine::Impl* e, JSValueConst filter, std::string* error);
}  // namespace

// ---- Engine ----------------------------------------------------------------------------------

namespace {

// Loading a module and running setup() are not events: they get at least a second (the
// deadline is wall-clock time, and a busy machine must not fail a config load that a hook's
// 50 ms would cover on a quiet one), while a runaway top level is still stopped.
constexpr uint32_t kMinLoadBudgetMs = 1000;
uint32_t loadBudgetMs(const Settings& settings) { return std::max(settings.maxCpuMsPerEvent, kMinLoadBudgetMs); }

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
  e->ctx = newFilterContext(e->rt, e->program->settings().allowCodeFromStrings);
  if (e->ctx == nullptr) {
    *error = "could not create a quickjs context (max_heap_bytes too small?)";
    return false;
  }
  JS_SetContextOpaque(e->ctx, e);
  if (!registerClasses(e) || !installGlobals(e->ctx, e) || !installTimers(e->ctx)) {
    *error = "could not install the envoy-js API: " + e->takeException();
    return false;
  }
  e->headersAtom = JS_NewAtom(e->ctx, "headers");
  e->shapeKeepers.create(e);
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
    JS_FreeValue(e->ctx, e->backgroundFn);
    e->backgroundFn = JS_UNDEFINED;
    JS_FreeValue(e->ctx, e->streamGoneProto);
    e->shapeKeepers.release(e->ctx);
    JS_FreeAtom(e->ctx, e->headersAtom);
    e->headersAtom = JS_ATOM_NULL;
    JS_FreeValue(e->ctx, e->metrics);
    JS_FreeValue(e->ctx, e->shared);
    for (auto& [k, v] : e->routeConfigs) JS_FreeValue(e->ctx, v);
    e->routeConfigs.clear();
    e->config = e->worker = e->streamGoneProto = e->metrics = e->shared = JS_UNDEFINED;
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
  if (e->privateShared != nullptr) freePrivateNamespace(e->privateShared);
  e->privateShared = nullptr;
}

bool loadModule(Engine::Impl* e, std::string* error, std::vector<MetricDeclaration>* metricsOut, bool withSetup) {
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
    *error = file + ": the module threw while loading: " + e->describeException(JS_PromiseResult(ctx, evaluated));
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
    JSValue reroute = JS_GetPropertyStr(ctx, filter, "rerouteOnHeaderChange");
    if (JS_IsException(reroute)) {
      fail("reading `rerouteOnHeaderChange` of the default export threw: " + e->takeException());
    } else if (!JS_IsUndefined(reroute) && !JS_IsBool(reroute)) {
      fail("`rerouteOnHeaderChange` must be true or false");
    } else {
      e->rerouteOnHeaderChange = JS_ToBool(ctx, reroute) == 1;
    }
    JS_FreeValue(ctx, reroute);
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
          JSValue decl = JS_GetProperty(ctx, metrics, props[i].atom);
          MetricDeclaration m{name ? name : "", MetricKind::Counter, {}};
          std::string problem = parseMetricDeclaration(ctx, decl, &m);
          if (JS_HasException(ctx)) problem = "reading it threw: " + e->takeException();
          if (!problem.empty()) fail("metric `" + m.name + "` " + problem);
          else metricsOut->push_back(std::move(m));
          JS_FreeValue(ctx, decl);
          if (name) JS_FreeCString(ctx, name);
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
  JSValue background = ok ? JS_GetPropertyStr(ctx, filter, "background") : JS_UNDEFINED;
  if (JS_IsException(background)) {
    background = JS_UNDEFINED;
    fail("reading `background` of the default export threw: " + e->takeException());
  }
  if (ok && !JS_IsUndefined(background) && !JS_IsFunction(ctx, background)) {
    fail("`background` must be a function");
  } else if (ok && !JS_IsUndefined(background)) {
    e->backgroundFn = JS_DupValue(ctx, background);
  }
  JS_FreeValue(ctx, background);
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
  JSValue shared = sharedObject(e);
  if (JS_IsException(shared)) {
    JS_FreeValue(ctx, info);
    JS_FreeValue(ctx, setup);
    *error = e->program->filename() + ": could not build worker.shared: " + e->takeException();
    return false;
  }
  JS_SetPropertyStr(ctx, info, "shared", shared);
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

std::unique_ptr<Engine> Engine::create(std::shared_ptr<const FilterProgram> program, EngineHost& host,
                                       uint32_t workerIndex, std::string* error) {
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
  if (impl_ && impl_->host != nullptr) releaseGaugeShares(impl_.get());
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

bool loadForBackground(Engine::Impl* e, std::string* error) {
  std::vector<MetricDeclaration> metrics;
  return createImpl(e, error) && loadModule(e, error, &metrics, /*withSetup=*/false);
}
void destroyEngineImpl(Engine::Impl* e) { destroyImpl(e); }

bool loadInScratchEngine(Engine::Impl* e, std::string* error, std::vector<MetricDeclaration>* metrics) {
  return createImpl(e, error) && loadModule(e, error, metrics, /*withSetup=*/false);
}
void destroyScratchEngine(Engine::Impl* e) { destroyImpl(e); }

}  // namespace envoy_js
