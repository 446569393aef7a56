// The filter the chaos run loads, one file per version (filter-vN.js), and the broken version
// Envoy must refuse. Every deliberate failure is chosen by the client with `x-chaos`, so the
// checker knows which failures to expect. Its `background` refreshes from the upstream through
// `bg.fetch` every 50 ms (every 10th answer slow, every 10th reset, so that callouts are in
// flight whenever a reload destroys the config) and publishes the refresh to `bg.shared`, which
// every response carries in `x-bg` ("<version>:<refresh>").

/** Source of version `version` of the chaos filter. */
export function filterSource(version) {
  return String.raw`// chaos filter, version ${version}
const VERSION = "${version}";
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const describe = (e) => (e && e.name ? e.name + ": " + String(e.message).slice(0, 120) : String(e));

export default {
  background(config, bg) {
    let n = 0;
    const refresh = async () => {
      const i = ++n;
      const mode = i % 10 === 3 ? "slow" : i % 10 === 7 ? "reset" : "ok";
      try {
        const r = await bg.fetch("upstream", {
          path: "/bg?v=" + VERSION + "&n=" + i,
          headers: { "x-upstream": mode },
          timeoutMs: 2000,
        });
        if (r.status === 200) bg.shared.set("bg", VERSION + ":" + i);
      } catch (e) {
        if (e.code !== "reset" && e.code !== "timeout") bg.log.error("refresh", i, describe(e));
      }
    };
    refresh();
    setInterval(refresh, 50);
  },
  async onRequest(req, ctx) {
    const hold = Number(req.headers.get("x-hold-ms") ?? "0");
    if (hold > 0) await sleep(hold);
    switch (req.headers.get("x-chaos")) {
      case "heap": {
        const keep = [];
        for (;;) keep.push(new Array(100000).fill(hold));
      }
      case "loop":
        for (;;) {}
      case "text": {
        const t = await req.body.text();
        return ctx.respond(200, { body: JSON.stringify({ length: t.length, replaced: t.includes("\uFFFD") }) });
      }
      case "json":
      case "deep-json":
        try {
          const v = await req.body.json();
          const s = JSON.stringify(v);
          return ctx.respond(200, { body: JSON.stringify({ parsed: true, replaced: s.includes("\uFFFD") }) });
        } catch (e) {
          return ctx.respond(400, { body: describe(e) });
        }
      case "whole-body": {
        const t = await req.body.text();
        return ctx.respond(200, { body: String(t.length) });
      }
      case "header-injection": {
        const out = [];
        for (const v of ["a\r\nx-injected: 1", "a\nb", "a\rb", "a\u0000b"]) {
          try {
            req.headers.set("x-bad", v);
            out.push("accepted");
          } catch (e) {
            out.push(e.name);
          }
        }
        return ctx.respond(200, { body: out.join(",") });
      }
    }
  },
  onResponse(res, ctx) {
    res.headers.set("x-filter-version", VERSION);
    res.headers.set("x-bg", ctx.shared.get("bg")?.value ?? "none");
    if (res.headers.get("x-smuggle") === "1") {
      const out = [];
      for (const [k, v] of [["content-length", "5"], ["transfer-encoding", "chunked"]]) {
        try {
          res.headers.set(k, v);
          out.push(k + "=set");
        } catch (e) {
          out.push(k + "=" + e.name);
        }
      }
      res.headers.set("x-smuggle-result", out.join(","));
    }
  },
};
`;
}

/** A version Envoy must refuse (a syntax error): the old version keeps serving. */
export function brokenFilterSource(version) {
  return `// chaos filter, version ${version}: broken on purpose\nexport default { onRequest(req) { req.headers.set("x-v", ; } };\n`;
}
