// Metrics with labels: each combination of label values is a series of its own, keyed
// name{label="value",...} in the declared label order (whatever the order of the keys given to
// labels()); a value may hold a dot. A metric without labels next to them keeps its plain name.
export default {
  metrics: {
    requests: { kind: "counter", labels: ["method", "status"] },
    inflight: { kind: "gauge", labels: ["route"] },
    sizes: { kind: "histogram", labels: ["route"] },
    total: "counter",
  },
  onRequest(req, ctx) {
    const m = ctx.metrics;
    const route = req.path.slice(1);
    const status = route === "missing" ? "404" : "200";
    const series = m.requests.labels({ status, method: req.method });
    series.inc();
    m.inflight.labels({ route }).set(route.length);
    m.sizes.labels({ route: "all" }).record(7);
    m.total.inc();
    ctx.log.info(`${route}: ${series.value}`);
  },
};
