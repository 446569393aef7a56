// The demo filter: API-key authentication, credential stripping, JSON order validation with
// the whole body, and a response header. Built with `envoy-js build`, run by QuickJS.
import { defineFilter } from "@envoy-js/sdk";

interface Config {
  header: string;
  keys: Record<string, string>; // api key -> client name
}

interface Order {
  item?: unknown;
  quantity?: unknown;
  card?: unknown;
}

export default defineFilter<Config>({
  async onRequest(req, ctx) {
    const key = req.headers.get(ctx.config.header);
    if (key === null) return ctx.respond(401, { body: `missing ${ctx.config.header}\n`, details: "no_api_key" });
    const client = ctx.config.keys[key];
    if (client === undefined) return ctx.respond(403, { body: "unknown api key\n", details: "bad_api_key" });

    // Never leak the credential upstream; tell the upstream who called instead.
    req.headers.delete(ctx.config.header);
    req.headers.set("x-client", client);

    if (req.method === "POST" && req.path.startsWith("/orders")) {
      let order: Order;
      try {
        order = await req.body.json<Order>();
      } catch {
        return ctx.respond(400, { body: "body is not JSON\n", details: "invalid_json" });
      }
      if (typeof order.item !== "string" || typeof order.quantity !== "number" || order.quantity < 1) {
        return ctx.respond(422, { body: "an order needs an item and a positive quantity\n" });
      }
      // Card numbers never reach the order service.
      if (typeof order.card === "string") order.card = "****" + order.card.slice(-4);
      req.body.replace(JSON.stringify(order));
      ctx.log.info(`order from ${client}: ${order.quantity} x ${order.item}`);
    }
  },

  onResponse(res) {
    res.headers.set("x-filtered-by", "envoy-js");
    res.headers.delete("server");
  },
});
