// ctx.metrics: the Metric class (counters, gauges, histograms; their labelled series) and the
// per-engine series behind it. Gauges: each engine keeps its share, the process sums them.
#include <cmath>
#include <cstring>

#include "bind_util.h"
#include "process_state.h"

namespace envoy_js {
namespace {

// Metric objects carry their series index + 1 as opaque (0 would mean "no opaque"): the
// metric's own series (ctx.metrics.x) or one that labels() made.
const Engine::Impl::MetricSeries* seriesThis(JSContext* ctx, JSValueConst thisVal) {
  Engine::Impl* e = engineOf(ctx);
  auto slot = reinterpret_cast<uintptr_t>(JS_GetOpaque2(ctx, thisVal, e->classes.metric));
  if (slot == 0) return nullptr;
  return &e->metricSeries[slot - 1];
}

std::string joinLabels(const MetricDeclaration& decl) {
  std::string out;
  for (const std::string& l : decl.labels) out += (out.empty() ? "" : ", ") + l;
  return out;
}

// The series a recording method acts on; a TypeError for a labelled metric's own object,
// which has no value of its own: its series come from labels().
const Engine::Impl::MetricSeries* recordingSeries(JSContext* ctx, JSValueConst thisVal, const char* method) {
  const Engine::Impl::MetricSeries* series = seriesThis(ctx, thisVal);
  if (!series) return nullptr;
  const MetricDeclaration& decl = engineOf(ctx)->program->metrics()[series->metric];
  if (!decl.labels.empty() && series->values.empty()) {
    JS_ThrowTypeError(ctx, "metric `%s` has labels (%s): use ctx.metrics.%s.labels({ ... }).%s", decl.name.c_str(),
                      joinLabels(decl).c_str(), decl.name.c_str(), method);
    return nullptr;
  }
  return series;
}

const char* const kKindNames[] = {"counter", "gauge", "histogram"};
const char* const kKindMethods[] = {"inc(n)", "set(v), inc(n) or dec(n)", "record(v)"};

JSValue throwWrongKind(JSContext* ctx, const MetricDeclaration& decl) {
  int k = static_cast<int>(decl.kind);
  return JS_ThrowTypeError(ctx, "metric `%s` is a %s: use %s", decl.name.c_str(), kKindNames[k], kKindMethods[k]);
}

// The host sets its gauge to the process value under the process lock (process_state.h).
struct GaugeReport {
  EngineHost* host;
  const Engine::Impl::MetricSeries* series;
};
void reportGauge(void* opaque, double total) {
  auto* r = static_cast<GaugeReport*>(opaque);
  r->host->recordMetric(r->series->metric, MetricKind::Gauge, r->series->values, total);
}

void setGaugeShare(Engine::Impl* e, Engine::Impl::MetricSeries* series, double share) {
  series->gaugeShare = share;
  if (e->host->dryRun()) return;  // the process's gauges are the real engines'
  GaugeReport r{e->host, series};
  metricGaugeShare(series->key, e, share, reportGauge, &r);
}

// argv[0] as a finite number, `dflt` when absent; a RangeError naming the metric otherwise.
bool metricArg(JSContext* ctx, int argc, JSValueConst* argv, double dflt, const MetricDeclaration& decl, double* v) {
  *v = dflt;
  if (argc > 0 && !JS_IsUndefined(argv[0]) && JS_ToFloat64(ctx, v, argv[0]) != 0) return false;
  if (!(*v == *v)) {
    JS_ThrowRangeError(ctx, "metric `%s`: value is NaN", decl.name.c_str());
    return false;
  }
  // Envoy's metrics hold integers: the hosts round, and an infinity has no integer.
  if (*v == INFINITY || *v == -INFINITY) {
    JS_ThrowRangeError(ctx, "metric `%s`: value is not finite", decl.name.c_str());
    return false;
  }
  return true;
}

// magic: +1 inc, -1 dec.
JSValue js_metric_inc(JSContext* ctx, JSValueConst thisVal, int argc, JSValueConst* argv, int magic) {
  const Engine::Impl::MetricSeries* series = recordingSeries(ctx, thisVal, magic > 0 ? "inc()" : "dec()");
  if (!series) return JS_EXCEPTION;
  Engine::Impl* e = engineOf(ctx);
  const MetricDeclaration& decl = e->program->metrics()[series->metric];
  bool counter = decl.kind == MetricKind::Counter;
  if (decl.kind == MetricKind::Histogram || (counter && magic < 0)) return throwWrongKind(ctx, decl);
  double n = 0;
  if (!metricArg(ctx, argc, argv, 1, decl, &n)) return JS_EXCEPTION;
  if (counter) {
    if (n < 0) return JS_ThrowRangeError(ctx, "metric `%s`: counters only go up", decl.name.c_str());
    if (!e->host->dryRun()) metricCounterAdd(series->key, n);
    e->host->recordMetric(series->metric, MetricKind::Counter, series->values, n);
    return JS_UNDEFINED;
  }
  auto* mutableSeries = const_cast<Engine::Impl::MetricSeries*>(series);
  setGaugeShare(e, mutableSeries, series->gaugeShare + magic * n);
  return JS_UNDEFINED;
}

JSValue js_metric_set(JSContext* ctx, JSValueConst thisVal, int argc, JSValueConst* argv) {
  const Engine::Impl::MetricSeries* series = recordingSeries(ctx, thisVal, "set()");
  if (!series) return JS_EXCEPTION;
  Engine::Impl* e = engineOf(ctx);
  const MetricDeclaration& decl = e->program->metrics()[series->metric];
  if (decl.kind != MetricKind::Gauge) return throwWrongKind(ctx, decl);
  double v = 0;
  if (!metricArg(ctx, argc, argv, 0, decl, &v)) return JS_EXCEPTION;
  setGaugeShare(e, const_cast<Engine::Impl::MetricSeries*>(series), v);
  return JS_UNDEFINED;
}

JSValue js_metric_record(JSContext* ctx, JSValueConst thisVal, int argc, JSValueConst* argv) {
  const Engine::Impl::MetricSeries* series = recordingSeries(ctx, thisVal, "record()");
  if (!series) return JS_EXCEPTION;
  Engine::Impl* e = engineOf(ctx);
  const MetricDeclaration& decl = e->program->metrics()[series->metric];
  if (decl.kind != MetricKind::Histogram) return throwWrongKind(ctx, decl);
  double v = 0;
  if (!metricArg(ctx, argc, argv, 0, decl, &v)) return JS_EXCEPTION;
  e->host->recordMetric(series->metric, MetricKind::Histogram, series->values, v);
  return JS_UNDEFINED;
}

/// value: number. The process-wide value (every worker's engine), as Envoy shows it.
JSValue js_metric_value(JSContext* ctx, JSValueConst thisVal) {
  const Engine::Impl::MetricSeries* series = recordingSeries(ctx, thisVal, "value");
  if (!series) return JS_EXCEPTION;
  Engine::Impl* e = engineOf(ctx);
  const MetricDeclaration& decl = e->program->metrics()[series->metric];
  if (decl.kind == MetricKind::Histogram) {
    return JS_ThrowTypeError(ctx, "metric `%s` is a histogram: Envoy keeps its distribution, it has no value to read",
                             decl.name.c_str());
  }
  if (e->host->dryRun()) return JS_NewFloat64(ctx, 0);  // a config check counts nothing
  return JS_NewFloat64(ctx, metricValue(series->key, decl.kind));
}

// A metric object for series `slot` of the metric `name`. (The engine that checks a program
// while it is compiled builds ctx.metrics before the program holds its declarations.)
JSValue newMetricObject(Engine::Impl* e, size_t slot, const std::string& name) {
  JSContext* ctx = e->ctx;
  JSValue m = JS_NewObjectClass(ctx, static_cast<int>(e->classes.metric));
  if (JS_IsException(m)) return m;
  JS_SetOpaque(m, reinterpret_cast<void*>(static_cast<uintptr_t>(slot + 1)));
  JS_DefinePropertyValueStr(ctx, m, "name", JS_NewString(ctx, name.c_str()), 0);
  return m;
}

/// labels(values: Record<string, string>): Metric. The series of one label-value combination.
JSValue js_metric_labels(JSContext* ctx, JSValueConst thisVal, int argc, JSValueConst* argv) {
  const Engine::Impl::MetricSeries* base = seriesThis(ctx, thisVal);
  if (!base) return JS_EXCEPTION;
  Engine::Impl* e = engineOf(ctx);
  size_t metric = base->metric;
  const MetricDeclaration& decl = e->program->metrics()[metric];
  const char* name = decl.name.c_str();
  if (decl.labels.empty()) return JS_ThrowTypeError(ctx, "metric `%s` declares no labels", name);
  if (!base->values.empty()) return JS_ThrowTypeError(ctx, "metric `%s`: labels() is already applied", name);
  std::string all = joinLabels(decl);
  JSValueConst arg = argc > 0 ? argv[0] : JS_UNDEFINED;
  if (!JS_IsObject(arg) || JS_IsArray(arg) == 1 || JS_IsFunction(ctx, arg)) {
    return JS_ThrowTypeError(ctx, "metric `%s`: labels() takes an object with the labels %s", name, all.c_str());
  }
  JSPropertyEnum* props = nullptr;
  uint32_t count = 0;
  if (JS_GetOwnPropertyNames(ctx, &props, &count, arg, JS_GPN_STRING_MASK | JS_GPN_ENUM_ONLY) != 0) {
    return JS_EXCEPTION;
  }
  bool ok = true;
  for (uint32_t i = 0; i < count && ok; i++) {
    const char* key = JS_AtomToCString(ctx, props[i].atom);
    if (!key) {
      ok = false;
      break;
    }
    bool known = false;
    for (const std::string& l : decl.labels) known = known || l == key;
    if (!known) {
      JS_ThrowTypeError(ctx, "metric `%s`: unknown label `%s` (its labels: %s)", name, key, all.c_str());
      ok = false;
    }
    JS_FreeCString(ctx, key);
  }
  JS_FreePropertyEnum(ctx, props, count);
  if (!ok) return JS_EXCEPTION;
  std::vector<std::string> values;
  std::string seriesKey = decl.name;
  for (const std::string& l : decl.labels) {
    JSValue v = JS_GetPropertyStr(ctx, arg, l.c_str());
    if (JS_IsException(v)) return JS_EXCEPTION;
    if (JS_IsUndefined(v)) {
      return JS_ThrowTypeError(ctx, "metric `%s`: missing label `%s` (its labels: %s)", name, l.c_str(), all.c_str());
    }
    if (!JS_IsString(v) && !JS_IsNumber(v)) {
      JS_FreeValue(ctx, v);
      return JS_ThrowTypeError(ctx, "metric `%s`: label `%s` must be a string", name, l.c_str());
    }
    size_t len = 0;
    const char* text = JS_ToCStringLen(ctx, &len, v);
    JS_FreeValue(ctx, v);
    if (!text) return JS_EXCEPTION;
    std::string value(text, len);
    JS_FreeCString(ctx, text);
    if (value.empty() || value.size() > kMetricLabelValueMaxBytes || value.find('\0') != std::string::npos) {
      return JS_ThrowRangeError(ctx, "metric `%s`: label `%s` must be 1 to %zu bytes without NUL", name, l.c_str(),
                                kMetricLabelValueMaxBytes);
    }
    seriesKey += '\0';
    seriesKey += value;
    values.push_back(std::move(value));
  }
  auto found = e->seriesByKey.find(seriesKey);
  if (found != e->seriesByKey.end()) return newMetricObject(e, found->second, decl.name);
  bool admitted;
  if (e->host->dryRun()) {  // a config check keeps its series to itself
    size_t mine = 0;
    for (const Engine::Impl::MetricSeries& s : e->metricSeries) mine += s.metric == metric && !s.values.empty();
    admitted = mine < kMetricSeriesMax;
  } else {
    admitted = metricSeriesAdmit(decl.name, seriesKey, kMetricSeriesMax);
  }
  if (!admitted) {
    return JS_ThrowRangeError(ctx, "metric `%s`: more than %zu label-value combinations (see docs/limits.md)", name,
                              kMetricSeriesMax);
  }
  size_t slot = e->metricSeries.size();
  e->metricSeries.push_back({metric, std::move(values), seriesKey, 0});
  e->seriesByKey.emplace(std::move(seriesKey), slot);
  return newMetricObject(e, slot, decl.name);
}

const JSCFunctionListEntry kMetricProto[] = {
    JS_CFUNC_MAGIC_DEF("inc", 1, js_metric_inc, 1),
    JS_CFUNC_MAGIC_DEF("dec", 1, js_metric_inc, -1),
    JS_CFUNC_DEF("set", 1, js_metric_set),
    JS_CFUNC_DEF("record", 1, js_metric_record),
    JS_CGETSET_DEF("value", js_metric_value, nullptr),
    JS_CFUNC_DEF("labels", 1, js_metric_labels),
};

}  // namespace

bool buildMetrics(Engine::Impl* e, const std::vector<MetricDeclaration>& metrics) {
  JSContext* ctx = e->ctx;
  JSValue obj = JS_NewObject(ctx);
  e->metricSeries.clear();
  e->seriesByKey.clear();
  for (size_t i = 0; i < metrics.size(); i++) e->metricSeries.push_back({i, {}, metrics[i].name, 0});
  for (size_t i = 0; i < metrics.size(); i++) {
    JS_DefinePropertyValueStr(ctx, obj, metrics[i].name.c_str(), newMetricObject(e, i, metrics[i].name),
                              JS_PROP_ENUMERABLE);
  }
  e->metrics = freeze(ctx, obj);
  return true;
}

void releaseGaugeShares(Engine::Impl* e) {
  for (Engine::Impl::MetricSeries& s : e->metricSeries) {
    if (s.gaugeShare != 0) setGaugeShare(e, &s, 0);
  }
}

// One entry of `metrics`: "counter" | "gauge" | "histogram", or { kind, labels: [names] }.
// Returns what is wrong with it (empty when it is fine), to follow "metric `name` ".
std::string parseMetricDeclaration(JSContext* ctx, JSValueConst decl, MetricDeclaration* m) {
  const char* const kWant = "must be \"counter\", \"gauge\", \"histogram\" or { kind, labels: [names] }";
  JSValue kind = JS_IsString(decl) ? JS_DupValue(ctx, decl) : JS_UNDEFINED;
  JSValue labels = JS_UNDEFINED;
  if (JS_IsObject(decl) && JS_IsArray(decl) != 1) {
    kind = JS_GetPropertyStr(ctx, decl, "kind");
    labels = JS_GetPropertyStr(ctx, decl, "labels");
    if (JS_IsException(kind) || JS_IsException(labels)) return "";  // the caller reports the exception
  }
  const char* k = JS_IsString(kind) ? JS_ToCString(ctx, kind) : nullptr;
  std::string problem;
  if (k && std::strcmp(k, "counter") == 0) m->kind = MetricKind::Counter;
  else if (k && std::strcmp(k, "gauge") == 0) m->kind = MetricKind::Gauge;
  else if (k && std::strcmp(k, "histogram") == 0) m->kind = MetricKind::Histogram;
  else problem = kWant;
  if (k) JS_FreeCString(ctx, k);
  JS_FreeValue(ctx, kind);
  if (problem.empty() && !JS_IsUndefined(labels)) {
    int64_t n = 0;
    if (JS_IsArray(labels) != 1 || JS_GetLength(ctx, labels, &n) != 0) {
      problem = "labels must be an array of label names";
    } else if (n > static_cast<int64_t>(kMetricLabelsMax)) {
      problem = "has more than " + std::to_string(kMetricLabelsMax) + " labels";
    }
    for (int64_t i = 0; problem.empty() && i < n; i++) {
      JSValue item = JS_GetPropertyInt64(ctx, labels, i);
      const char* text = JS_IsString(item) ? JS_ToCString(ctx, item) : nullptr;
      std::string label = text ? text : "";
      if (text) JS_FreeCString(ctx, text);
      JS_FreeValue(ctx, item);
      bool valid = !label.empty() && label.size() <= kMetricLabelNameMaxBytes &&
                   !std::isdigit(static_cast<unsigned char>(label[0]));
      for (char c : label) valid = valid && (std::isalnum(static_cast<unsigned char>(c)) || c == '_');
      if (!valid) {
        problem = "label " + std::to_string(i) + " must be a name of letters, digits and _ (not first) of at most " +
                  std::to_string(kMetricLabelNameMaxBytes) + " bytes";
      }
      for (const std::string& seen : m->labels) {
        if (problem.empty() && seen == label) problem = "names label `" + label + "` twice";
      }
      if (problem.empty()) m->labels.push_back(std::move(label));
    }
  }
  JS_FreeValue(ctx, labels);
  return problem;
}

bool registerMetricClass(Engine::Impl* e) {
  return defineClass(e, &e->classes.metric, "Metric", nullptr, kMetricProto, countOf(kMetricProto));
}

}  // namespace envoy_js
