// Port of envoyproxy/dynamic-modules-examples go/passthrough.go: logs the request (the `foo`
// header, every header, the client and listener addresses, the protocol), rewrites each body
// to "hello world" and back (checking both steps), and marks the response with
// x-passthrough-response-header. A failed check throws, which fails the stream (the original
// panics).
import { defineFilter } from "@envoy-js/sdk";

interface Readable {
  text(): Promise<string>;
  replace(data: string): void;
}

// Replaces a whole body with "hello world", reads it back, then puts the original back.
async function roundTrip(body: Readable, what: string): Promise<string> {
  const original = await body.text();
  if (original === "") return original;
  body.replace("hello world");
  if ((await body.text()) !== "hello world") throw new Error(`${what} body should be modified`);
  body.replace(original);
  if ((await body.text()) !== original) throw new Error(`${what} body should be restored`);
  return original;
}

export default defineFilter({
  async onRequest(req, ctx) {
    ctx.log.info(`RequestHeaders, foo: ${req.headers.get("foo") ?? ""}`);
    for (const [name, value] of req.headers) ctx.log.info(`RequestHeaders, header: ${name}: ${value}`);
    ctx.log.info(`RequestHeaders, source address: ${ctx.stream.remoteAddress}`);
    ctx.log.info(`RequestHeaders, destination address: ${ctx.stream.localAddress}`);
    ctx.log.info(`RequestHeaders, request protocol: ${ctx.stream.protocol}`);
    const body = await roundTrip(req.body, "request");
    if (body !== "") ctx.log.info(`RequestBody, body: ${body}`);
  },

  async onResponse(res, ctx) {
    if (!res.headers.has(":status")) throw new Error(":status header should be set");
    ctx.log.info(`ResponseHeaders, status: ${res.status}`);
    res.headers.set("x-passthrough-response-header", "true");
    for (const [name, value] of res.headers) ctx.log.info(`ResponseHeaders, header: ${name}: ${value}`);
    const body = await roundTrip(res.body, "response");
    if (body !== "") ctx.log.info(`ResponseBody, body: ${body}`);
  },
});
