// Declared metrics: counters add, gauges keep the last value, histograms record every
// sample; the wrong method for a kind is a TypeError, a bad value a RangeError.
let first;
export default {
  metrics: { requests: "counter", inflight: "gauge", latency: "histogram", unused: "counter" },
  onRequest(req, ctx) {
    const m = ctx.metrics;
    if (first === undefined) first = m;
    m.requests.inc();
    m.requests.inc(2);
    m.requests.inc("3");
    m.requests.inc(undefined);
    m.inflight.set(5);
    m.inflight.set(-2.5);
    m.inflight.set();
    m.latency.record(12.5);
    m.latency.record(0);
    const tries = [
      () => m.requests.set(1),
      () => m.requests.record(1),
      () => m.inflight.inc(),
      () => m.latency.set(1),
      () => m.requests.inc(-1),
      () => m.requests.inc(NaN),
      () => m.inflight.set(NaN),
      () => m.latency.record("x"),
      () => m.requests.inc.call({}),
    ];
    for (const t of tries) {
      try { t(); ctx.log.info("ok?!"); } catch (e) { ctx.log.info(e.name + ": " + e.message); }
    }
    ctx.log.info(Object.keys(m).join(","), m.requests.name, Object.isFrozen(m), first === m, typeof m.nope);
    ctx.log.info(JSON.stringify(Object.getOwnPropertyDescriptor(m, "latency") && { e: Object.getOwnPropertyDescriptor(m, "latency").enumerable, w: Object.getOwnPropertyDescriptor(m, "latency").writable }));
    try { m.extra = 1; } catch (e) { ctx.log.info(e.name); }
    ctx.log.info("extra" in m);
  },
};
