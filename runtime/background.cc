// The background engine of a filter config: `background(config, bg)` of the filter definition,
// run once per filter config in an engine of its own, with no stream (host.h, BackgroundHost).
// Its timers are the global setTimeout/setInterval, owned by no stream; `bg.fetch` is ctx.fetch
// (fetch.cc) with the callout started through the BackgroundHost; `bg.shared` is the process's
// store (bind_shared.cc), the same namespace as the workers' ctx.shared.
//
// Failures have no stream to fail: a throw in `background`, in a timer callback or a job, and a
// rejection that nothing handles, are logged at error level with the stack and counted in
// envoy_js.errors (envoy_js.cpu_limit when the CPU deadline interrupted it). The engine goes on:
// the next timer runs.
#include "bind_util.h"

namespace envoy_js {
namespace {

// bg.log.<level>(...args): console-style text to the host's log.
// magic: LogLevel
JSValue js_bg_log(JSContext* ctx, JSValueConst, int argc, JSValueConst* argv, int magic) {
  logTo(engineOf(ctx), nullptr, static_cast<LogLevel>(magic), formatArgs(ctx, argc, argv));
  return JS_UNDEFINED;
}

const JSCFunctionListEntry kBackgroundLog[] = {
    JS_CFUNC_MAGIC_DEF("trace", 1, js_bg_log, static_cast<int>(LogLevel::Trace)),
    JS_CFUNC_MAGIC_DEF("debug", 1, js_bg_log, static_cast<int>(LogLevel::Debug)),
    JS_CFUNC_MAGIC_DEF("info", 1, js_bg_log, static_cast<int>(LogLevel::Info)),
    JS_CFUNC_MAGIC_DEF("warn", 1, js_bg_log, static_cast<int>(LogLevel::Warn)),
    JS_CFUNC_MAGIC_DEF("error", 1, js_bg_log, static_cast<int>(LogLevel::Error)),
};

// bg.fetch(cluster, init) -> Promise<response>: ctx.fetch without a stream.
JSValue js_bg_fetch(JSContext* ctx, JSValueConst, int argc, JSValueConst* argv) {
  return jsFetch(ctx, nullptr, argc, argv);
}

// The `bg` argument: {fetch, shared, log}, frozen.
JSValue makeBackgroundObject(Engine::Impl* e) {
  JSContext* ctx = e->ctx;
  JSValue bg = JS_NewObject(ctx);
  if (JS_IsException(bg)) return bg;
  JS_SetPropertyStr(ctx, bg, "fetch", JS_NewCFunction(ctx, js_bg_fetch, "fetch", 2));
  JSValue shared = sharedObject(e);
  if (JS_IsException(shared)) {
    JS_FreeValue(ctx, bg);
    return shared;
  }
  JS_SetPropertyStr(ctx, bg, "shared", shared);
  JSValue log = JS_NewObject(ctx);
  JS_SetPropertyFunctionList(ctx, log, kBackgroundLog, countOf(kBackgroundLog));
  JS_SetPropertyStr(ctx, bg, "log", freeze(ctx, log));
  return freeze(ctx, bg);
}

// A failure of background work: logged with its stack and counted.
void backgroundFailed(Engine::Impl* e, const std::string& what, bool runaway) {
  e->logEngine(LogLevel::Error, "error in background work: " + what);
  e->countFailure(what, runaway);
}

}  // namespace

std::unique_ptr<Engine> Engine::createBackground(std::shared_ptr<const FilterProgram> program, BackgroundHost& host,
                                                 std::string* error) {
  std::unique_ptr<Engine> engine(new Engine());
  engine->impl_ = std::make_unique<Impl>();
  Impl* e = engine->impl_.get();
  e->program = std::move(program);
  e->host = &host;
  e->backgroundHost = &host;
  if (!loadForBackground(e, error)) {
    destroyEngineImpl(e);
    engine->impl_.reset();
    return nullptr;
  }
  if (JS_IsUndefined(e->backgroundFn)) {
    *error = e->program->filename() + ": the filter has no `background` function";
    destroyEngineImpl(e);
    engine->impl_.reset();
    return nullptr;
  }
  JSContext* ctx = e->ctx;
  JS_SetGCThreshold(e->rt, std::max<size_t>(e->heapUsed + e->heapUsed / 2, 256u << 10));
  JSValue bg = makeBackgroundObject(e);
  if (JS_IsException(bg)) {
    *error = e->program->filename() + ": could not build the background object: " + e->takeException();
    destroyEngineImpl(e);
    engine->impl_.reset();
    return nullptr;
  }
  JSValueConst args[2] = {e->config, bg};
  // `background` is one event: the CPU deadline of a hook, not the load budget of setup().
  e->armDeadline();
  JSValue r = JS_Call(ctx, e->backgroundFn, JS_UNDEFINED, 2, args);
  JS_FreeValue(ctx, bg);
  if (JS_IsException(r)) {
    bool runaway = e->interrupted;
    backgroundFailed(e, "background() threw: " + e->takeException(), runaway);
  }
  e->disarmDeadline();
  // An async `background` that rejects: reportUnhandledRejections counts it after the drain
  // (the promise is dropped here, so nothing handles its rejection).
  JS_FreeValue(ctx, r);
  e->runJobs();
  e->reportUnhandledRejections();
  return engine;
}

}  // namespace envoy_js
