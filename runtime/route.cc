// The stream's route: whether the filter runs, the per-route config, and reading it again
// after the filter cleared the route cache.
#include "internal.h"

namespace envoy_js {

// The route decides whether the filter runs and which config it sees.
void streamApplyRoute(StreamState* s) {
  if (s->host == nullptr || !JS_IsUndefined(s->routeConfig)) return;
  RouteOverride route = s->host->routeOverride();
  if (route.disabled) {
    s->disabled = true;
    return;
  }
  if (route.configJson.empty()) return;
  std::string error;
  JSValue config = s->engine->configFor(route.configJson, &error);
  if (JS_IsException(config)) {
    streamFail(s, Direction::Request, error, false);
    return;
  }
  s->routeConfig = config;
}

void streamRouteCacheCleared(StreamState* s) {
  if (s->host == nullptr) return;
  s->host->clearRouteCache();
  s->routeStale = true;
}

bool streamRereadRoute(StreamState* s, std::string* error) {
  s->routeStale = false;
  if (s->host == nullptr) return true;
  RouteOverride route = s->host->routeOverride();
  JSValue config = JS_UNDEFINED;
  if (!route.disabled && !route.configJson.empty()) {
    config = s->engine->configFor(route.configJson, error);
    if (JS_IsException(config)) return false;
  }
  JS_FreeValue(s->engine->ctx, s->routeConfig);
  s->routeConfig = config;
  return true;
}

}  // namespace envoy_js
