// Local replies from both sides, sync and async, with body, headers and details.
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export default {
  async onRequest(req, ctx) {
    if (req.path === "/deny") {
      return ctx.respond(403, { body: "denied", headers: { "x-why": "policy", "set-cookie": ["a=1", "b=2"] }, details: "by policy" });
    }
    if (req.path === "/slow-deny") {
      await sleep(10);
      return ctx.respond(429, { body: "slow down", headers: { "retry-after": "1" } });
    }
    if (req.path === "/then-deny") {
      // Not awaited: the reply comes from a promise callback after the hook returned.
      req.body.text().then((body) => {
        if (body.includes("forbidden")) ctx.respond(400, { body: "checked later" });
      });
      return;
    }
    if (req.path === "/inspect") {
      const body = await req.body.text();
      if (body.includes("forbidden")) return ctx.respond(400, { body: "bad body" });
    }
  },
  async onResponse(res, ctx) {
    if (res.status >= 500) {
      await sleep(1);
      return ctx.respond(502, { body: "upstream failed with " + res.status });
    }
    if (res.headers.has("x-replace")) return ctx.respond(200, { body: "replaced" });
  },
};
