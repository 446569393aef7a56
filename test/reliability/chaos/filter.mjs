// The filter the chaos run loads, one file per version (filter-vN.js), and the broken version
// Envoy must refuse. Every deliberate failure is chosen by the client with `x-chaos`, so the
// checker knows which failures to expect.

/** Source of version `version` of the chaos filter. */
export function filterSource(version) {
  return String.raw`// chaos filter, version ${version}
const VERSION = "${version}";
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const describe = (e) => (e && e.name ? e.name + ": " + String(e.message).slice(0, 120) : String(e));

export default {
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
