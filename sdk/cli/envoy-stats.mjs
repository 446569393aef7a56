// @ts-check
/**
 * The filter's metrics as Envoy's admin shows them, in the shape of the wasm
 * engine's transcript (docs/configuration.md, "Scenario format"): a metric
 * without labels under its name, a series of a metric with labels as
 * `name{label="value",...}` in the declared label order.
 *
 * The dynamic module's metrics live under `dynamicmodulescustom.`. `/stats`
 * names each series by flattening its tags into the name
 * (`dynamicmodulescustom.requests.method.GET.status.200`), which cannot be
 * split back when a value holds a dot; `/stats/prometheus` keeps the tags
 * apart but sanitises the metric's name (`envoy_dynamicmodulescustom_requests`).
 * So the labels come from the Prometheus text and the name from the `/stats`
 * entry whose flattened name they rebuild.
 *
 * @module
 */

export const STATS_PREFIX = "dynamicmodulescustom.";
const PROMETHEUS_PREFIX = "envoy_dynamicmodulescustom_";

/**
 * @typedef {object} PrometheusSample
 * @property {string} name the sample's metric name (a histogram's end in `_bucket`, `_sum`, `_count`)
 * @property {string} family the name of its `# TYPE` line
 * @property {string} type `counter`, `gauge`, `histogram`, ... (`untyped` without a `# TYPE` line)
 * @property {[string, string][]} labels in the order Envoy wrote them
 * @property {number} value
 */

/** Prometheus' escapes in a label value: `\\`, `\"`, `\n`. */
const unescapeLabel = (/** @type {string} */ v) => v.replace(/\\(.)/g, (_, c) => (c === "n" ? "\n" : c));

/**
 * The samples of a Prometheus text exposition (Envoy's `/stats/prometheus`).
 *
 * @param {string} text
 * @returns {PrometheusSample[]}
 */
export function parsePrometheus(text) {
  /** @type {Map<string, string>} */
  const types = new Map();
  /** @type {PrometheusSample[]} */
  const out = [];
  for (const line of text.split("\n")) {
    const type = /^# TYPE (\S+) (\S+)/.exec(line);
    if (type) types.set(type[1], type[2]);
    if (line === "" || line.startsWith("#")) continue;
    const head = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line);
    if (!head) continue;
    const name = head[0];
    let rest = line.slice(name.length);
    /** @type {[string, string][]} */
    const labels = [];
    if (rest.startsWith("{")) {
      const label = /^\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?/;
      rest = rest.slice(1);
      for (let m = label.exec(rest); m; m = label.exec(rest)) {
        labels.push([m[1], unescapeLabel(m[2])]);
        rest = rest.slice(m[0].length);
      }
      if (!rest.startsWith("}")) continue; // not a sample line this parser understands
      rest = rest.slice(1);
    }
    const value = Number(rest.trim().split(/\s+/)[0]);
    if (Number.isNaN(value)) continue;
    const family = [name, name.replace(/_(bucket|sum|count)$/, "")].find((f) => types.has(f)) ?? name;
    out.push({ name, family, type: types.get(family) ?? "untyped", labels, value });
  }
  return out;
}

/** A metric name as Envoy's Prometheus output writes it. */
const sanitise = (/** @type {string} */ name) => name.replace(/[^a-zA-Z0-9_]/g, "_");

/** The transcript's key of a series: `name{a="1",b="2"}`, as the wasm engine's host writes it. */
export const seriesKey = (/** @type {string} */ name, /** @type {[string, string][]} */ labels) =>
  labels.length === 0 ? name : `${name}{${labels.map(([k, v]) => `${k}="${v}"`).join(",")}}`;

/**
 * @typedef {object} StatsEntry
 * @property {string} name
 * @property {unknown} value
 */

/**
 * The engine counters (`envoy_js.*`) and the filter's metrics from Envoy's
 * admin output: counters that are not 0 and every gauge of the filter's
 * (the module's own `envoy_js.engines` is left out); histograms are left out
 * (their samples cannot be read back).
 *
 * @param {{ counters: StatsEntry[], gauges: StatsEntry[], prometheus: string }} admin
 *   `/stats?format=json&type=Counters` and `...Gauges` entries, and `/stats/prometheus`
 * @returns {{ counters: Record<string, number>, metrics: Record<string, number> }}
 */
export function envoyMetrics({ counters, gauges, prometheus }) {
  /** @type {Map<string, { value: number, counter: boolean }>} */
  const flat = new Map();
  for (const [list, counter] of /** @type {const} */ ([
    [counters, true],
    [gauges, false],
  ])) {
    for (const s of list) {
      const name = String(s.name);
      if (typeof s.value === "number" && name.startsWith(STATS_PREFIX))
        flat.set(name.slice(STATS_PREFIX.length), { value: s.value, counter });
    }
  }
  /** @type {Record<string, number>} */
  const counterOut = {};
  /** @type {Record<string, number>} */
  const metrics = {};
  const keep = (/** @type {string} */ key, /** @type {{ value: number, counter: boolean }} */ s) => {
    if (s.counter && s.value === 0) return;
    // The module's own gauge (worker engines alive) is no part of a filter's transcript.
    if (key.startsWith("envoy_js.") && !s.counter) return;
    if (key.startsWith("envoy_js.")) counterOut[key] = s.value;
    else metrics[key] = s.value;
  };
  // A labelled series: the flattened /stats name its Prometheus labels rebuild gives its name.
  for (const p of parsePrometheus(prometheus)) {
    if (p.labels.length === 0 || (p.type !== "counter" && p.type !== "gauge")) continue;
    if (!p.name.startsWith(PROMETHEUS_PREFIX)) continue;
    const sanitised = p.name.slice(PROMETHEUS_PREFIX.length);
    const suffix = p.labels.map(([k, v]) => `.${k}.${v}`).join("");
    for (const [flatName, s] of flat) {
      if (!flatName.endsWith(suffix)) continue;
      const name = flatName.slice(0, flatName.length - suffix.length);
      if (sanitise(name) !== sanitised) continue;
      flat.delete(flatName);
      keep(seriesKey(name, p.labels), s);
      break;
    }
  }
  for (const [name, s] of flat) keep(name, s);
  return { counters: counterOut, metrics };
}

/**
 * Histogram sample counts of the filter's metrics from `/stats/prometheus`,
 * keyed as the transcript keys series (the name as Prometheus writes it).
 * Envoy's admin shows a histogram's samples once its stats flush merged them.
 *
 * @param {string} prometheus
 * @returns {Record<string, number>}
 */
export function envoyHistogramCounts(prometheus) {
  /** @type {Record<string, number>} */
  const out = {};
  for (const p of parsePrometheus(prometheus)) {
    if (p.type !== "histogram" || !p.name.endsWith("_count") || !p.family.startsWith(PROMETHEUS_PREFIX)) continue;
    out[seriesKey(p.family.slice(PROMETHEUS_PREFIX.length), p.labels)] = p.value;
  }
  return out;
}
