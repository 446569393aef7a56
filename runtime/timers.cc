// setTimeout / setInterval on the host's clock. A timer created while a stream's code runs
// belongs to that stream and dies with it; one created in `setup` belongs to the worker.
#include "internal.h"

namespace envoy_js {
namespace {

void forgetId(StreamState* s, uint64_t id) {
  auto& v = s->timerIds;
  for (size_t i = 0; i < v.size(); i++) {
    if (v[i] == id) {
      v[i] = v.back();
      v.pop_back();
      return;
    }
  }
}

constexpr double kMaxTimerDelayMs = 2147483647;

void freeTimer(Engine::Impl* e, Timer& t) {
  JS_FreeValue(e->ctx, t.callback);
  JS_FreeValue(e->ctx, t.args);
  if (t.owner) e->releaseStream(t.owner);
}

// magic: 0 setTimeout, 1 setInterval
JSValue js_set_timer(JSContext* ctx, JSValueConst, int argc, JSValueConst* argv, int magic) {
  Engine::Impl* e = engineOf(ctx);
  if (argc < 1 || !JS_IsFunction(ctx, argv[0])) {
    return JS_ThrowTypeError(ctx, "%s needs a function", magic ? "setInterval" : "setTimeout");
  }
  double delay = 0;
  if (argc > 1 && JS_ToFloat64(ctx, &delay, argv[1]) != 0) return JS_EXCEPTION;
  // NaN, negatives and delays past 2^31-1 ms (Infinity included) mean "as soon as possible",
  // as in browsers and Node; the host only ever sees a finite delay in [0, 2^31-1].
  if (!(delay >= 0) || delay > kMaxTimerDelayMs) delay = 0;
  StreamState* owner = e->current;
  if (owner != nullptr && owner->destroyed()) return throwStreamGone(ctx);
  JSValue args = JS_UNDEFINED;
  if (argc > 2) {
    args = JS_NewArray(ctx);
    for (int i = 2; i < argc; i++) JS_SetPropertyUint32(ctx, args, i - 2, JS_DupValue(ctx, argv[i]));
  }
  uint64_t id = e->nextTimerId++;
  if (owner) {
    owner->jsRefs++;
    owner->timerIds.push_back(id);
  }
  e->timers.emplace(id, Timer{JS_DupValue(ctx, argv[0]), args, owner, magic ? delay : -1});
  e->host->startTimer(id, delay);
  return JS_NewInt64(ctx, static_cast<int64_t>(id));
}

JSValue js_clear_timer(JSContext* ctx, JSValueConst, int argc, JSValueConst* argv) {
  Engine::Impl* e = engineOf(ctx);
  int64_t id = 0;
  if (argc < 1 || !JS_IsNumber(argv[0]) || JS_ToInt64(ctx, &id, argv[0]) != 0) return JS_UNDEFINED;
  auto it = e->timers.find(static_cast<uint64_t>(id));
  if (it == e->timers.end()) return JS_UNDEFINED;
  Timer t = it->second;
  e->timers.erase(it);
  if (t.owner) forgetId(t.owner, static_cast<uint64_t>(id));
  e->host->cancelTimer(static_cast<uint64_t>(id));
  freeTimer(e, t);
  return JS_UNDEFINED;
}

const JSCFunctionListEntry kTimerFunctions[] = {
    JS_CFUNC_MAGIC_DEF("setTimeout", 2, js_set_timer, 0),
    JS_CFUNC_MAGIC_DEF("setInterval", 2, js_set_timer, 1),
    JS_CFUNC_DEF("clearTimeout", 1, js_clear_timer),
    JS_CFUNC_DEF("clearInterval", 1, js_clear_timer),
};

}  // namespace

bool installTimers(JSContext* ctx) {
  JSValue global = JS_GetGlobalObject(ctx);
  int r = JS_SetPropertyFunctionList(ctx, global, kTimerFunctions, sizeof kTimerFunctions / sizeof kTimerFunctions[0]);
  JS_FreeValue(ctx, global);
  return r == 0;
}

void cancelStreamTimers(StreamState* s) {
  Engine::Impl* e = s->engine;
  std::vector<uint64_t> ids;
  ids.swap(s->timerIds);
  for (uint64_t id : ids) {
    auto it = e->timers.find(id);
    if (it == e->timers.end()) continue;
    e->host->cancelTimer(id);
    Timer t = it->second;
    e->timers.erase(it);
    freeTimer(e, t);
  }
}

void freeAllTimers(Engine::Impl* e) {
  for (auto& [id, t] : e->timers) {
    e->host->cancelTimer(id);
    JS_FreeValue(e->ctx, t.callback);
    JS_FreeValue(e->ctx, t.args);
    // Owners are released by the engine teardown itself.
  }
  e->timers.clear();
}

void Engine::fireTimer(uint64_t id) {
  Impl* e = impl_.get();
  auto it = e->timers.find(id);
  if (it == e->timers.end()) return;  // cancelled meanwhile
  Timer t = it->second;
  bool repeat = t.intervalMs >= 0;
  if (repeat) {
    JS_DupValue(e->ctx, t.callback);
    JS_DupValue(e->ctx, t.args);
    if (t.owner) t.owner->jsRefs++;
    e->host->startTimer(id, t.intervalMs);
  } else {
    e->timers.erase(it);
    if (t.owner) forgetId(t.owner, id);
  }
  StreamState* saved = e->current;
  e->current = t.owner;
  if (t.owner) t.owner->jsRefs++;
  e->armDeadline();
  std::vector<JSValue> args;
  if (!JS_IsUndefined(t.args)) {
    int64_t n = 0;
    JS_GetLength(e->ctx, t.args, &n);
    for (int64_t i = 0; i < n; i++) args.push_back(JS_GetPropertyInt64(e->ctx, t.args, i));
  }
  JSValue r = JS_Call(e->ctx, t.callback, JS_UNDEFINED, static_cast<int>(args.size()), args.data());
  for (JSValue& a : args) JS_FreeValue(e->ctx, a);
  if (JS_IsException(r)) {
    bool runaway = e->interrupted;
    std::string message = e->takeException();
    if (t.owner && !t.owner->finished()) {
      Direction d = t.owner->dirs[1].hookPending() ? Direction::Response : Direction::Request;
      streamFail(t.owner, d, "in a timer callback: " + message, runaway);
    } else {
      e->logEngine(LogLevel::Error, "error in a timer callback: " + message);
      e->countFailure(message, runaway);
    }
  }
  JS_FreeValue(e->ctx, r);
  e->disarmDeadline();
  e->runJobs();
  e->current = saved;
  freeTimer(e, t);
  if (t.owner) e->releaseStream(t.owner);
}

}  // namespace envoy_js
