// ctx.setUpstreamOverrideHost(host, { strict }) reaches the host before the request headers go
// on; the last call wins; anything but an IP address (with an optional port) is a TypeError,
// and so is a call once the request headers went on.
export default {
  onRequest(req, ctx) {
    for (const bad of ["backend.local:80", "10.0.0.300", "10.0.0.7:99999", "[::1", 7]) {
      try {
        ctx.setUpstreamOverrideHost(bad);
      } catch (e) {
        ctx.log.info(`${e.name} ${String(bad)}`);
      }
    }
    try {
      ctx.setUpstreamOverrideHost("10.0.0.7", { strict: "yes" });
    } catch (e) {
      ctx.log.info(`${e.name} strict`);
    }
    ctx.setUpstreamOverrideHost("10.0.0.7:8080", { strict: true });
    // Not strict: a host outside the cluster leaves the choice to the load balancer (Envoy's
    // answer to a strict one, 503, is the real-Envoy test's: the scripted host has no balancer).
    ctx.setUpstreamOverrideHost(req.headers.get("x-pin") ?? "[::1]:9000", { strict: false });
  },
  onResponse(res, ctx) {
    try {
      ctx.setUpstreamOverrideHost("10.0.0.8");
    } catch (e) {
      ctx.log.info(`late: ${e.name}`);
    }
  },
};
