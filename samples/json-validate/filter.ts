// JSON request validation and field redaction with the whole body. Requests with a body
// must be JSON (415 otherwise), parse (400), and match a small per-route schema (422, with
// every problem listed). Sensitive fields are masked wherever they occur, in the request
// before the upstream sees it and in JSON responses before the client does.
import { defineFilter } from "@envoy-js/sdk";

type FieldType = "string" | "number" | "integer" | "boolean" | "object" | "array";

interface Schema {
  /** Fields that must be present, with their type. */
  required?: Record<string, FieldType>;
  /** Fields that may be present, with their type. */
  optional?: Record<string, FieldType>;
  /** Refuse fields not listed above (default false). */
  closed?: boolean;
}

interface Config {
  /** Schemas by "METHOD /path-prefix"; the longest matching prefix wins. */
  schemas?: Record<string, Schema>;
  /** Field names to mask, matched case-insensitively at any depth. */
  redact?: string[];
  /** Keep this many trailing characters of a masked string (default 0). */
  keepLast?: number;
  /** Also mask JSON responses (default true). */
  redactResponses?: boolean;
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

function typeOf(v: Json): FieldType | "null" {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  if (typeof v === "number") return Number.isInteger(v) ? "integer" : "number";
  return typeof v as FieldType;
}

function matches(v: Json, want: FieldType): boolean {
  const t = typeOf(v);
  return t === want || (want === "number" && t === "integer");
}

function validate(body: Json, schema: Schema): string[] {
  if (typeOf(body) !== "object") return ["the body must be a JSON object"];
  const obj = body as Record<string, Json>;
  const problems: string[] = [];
  for (const [field, type] of Object.entries(schema.required ?? {})) {
    if (!(field in obj)) problems.push(`${field}: required`);
    else if (!matches(obj[field], type)) problems.push(`${field}: must be ${type}, is ${typeOf(obj[field])}`);
  }
  for (const [field, type] of Object.entries(schema.optional ?? {})) {
    if (field in obj && !matches(obj[field], type))
      problems.push(`${field}: must be ${type}, is ${typeOf(obj[field])}`);
  }
  if (schema.closed) {
    for (const field of Object.keys(obj)) {
      if (!(field in (schema.required ?? {})) && !(field in (schema.optional ?? {})))
        problems.push(`${field}: not allowed`);
    }
  }
  return problems;
}

/** Masks the listed fields in place, at any depth; returns how many were masked. */
function redact(value: Json, names: Set<string>, keepLast: number): number {
  let count = 0;
  if (Array.isArray(value)) {
    for (const item of value) count += redact(item, names, keepLast);
  } else if (value !== null && typeof value === "object") {
    for (const [key, v] of Object.entries(value)) {
      if (names.has(key.toLowerCase())) {
        const s = typeof v === "string" ? v : JSON.stringify(v);
        value[key] = keepLast > 0 && s.length > keepLast * 2 ? "*".repeat(4) + s.slice(-keepLast) : "[redacted]";
        count++;
      } else {
        count += redact(v, names, keepLast);
      }
    }
  }
  return count;
}

function schemaFor(schemas: Record<string, Schema>, method: string, path: string): Schema | undefined {
  let best: [number, Schema] | undefined;
  for (const [key, schema] of Object.entries(schemas)) {
    const [m, prefix] = key.split(" ", 2);
    if (m === method && path.startsWith(prefix) && (!best || prefix.length > best[0])) best = [prefix.length, schema];
  }
  return best?.[1];
}

const isJson = (type: string | null) => type !== null && /^application\/([\w.+-]*\+)?json\b/i.test(type);

export default defineFilter<Config, unknown, { rejected: "counter"; redacted: "counter" }>({
  metrics: { rejected: "counter", redacted: "counter" },

  async onRequest(req, ctx) {
    // POST, PUT and PATCH are checked always; other methods when they declare a body.
    const bodyMethod = req.method === "POST" || req.method === "PUT" || req.method === "PATCH";
    const declared = (req.headers.get("content-length") ?? "0") !== "0" || req.headers.has("transfer-encoding");
    if (!bodyMethod && !declared) return;
    if (!isJson(req.headers.get("content-type"))) {
      ctx.metrics.rejected.inc();
      return ctx.respond(415, { body: "expected application/json\n", details: "json_content_type" });
    }
    let body: Json;
    try {
      body = await req.body.json<Json>(); // holds the request until its last byte
    } catch {
      ctx.metrics.rejected.inc();
      return ctx.respond(400, { body: "body is not valid JSON\n", details: "json_invalid" });
    }
    const pathname = req.path.split("?", 1)[0];
    const schema = schemaFor(ctx.config.schemas ?? {}, req.method, pathname);
    const problems = schema ? validate(body, schema) : [];
    if (problems.length > 0) {
      ctx.metrics.rejected.inc();
      return ctx.respond(422, {
        body: JSON.stringify({ error: "invalid request", problems }),
        headers: { "content-type": "application/json" },
        details: "json_schema",
      });
    }
    const masked = redact(
      body,
      new Set((ctx.config.redact ?? []).map((n) => n.toLowerCase())),
      ctx.config.keepLast ?? 0,
    );
    if (masked > 0) {
      req.body.replace(JSON.stringify(body));
      ctx.metrics.redacted.inc(masked);
    }
  },

  async onResponse(res, ctx) {
    if (ctx.config.redactResponses === false || !isJson(res.headers.get("content-type"))) return;
    // Compressed bodies are left alone: this filter would need to inflate them first.
    if (res.headers.has("content-encoding")) return;
    let body: Json;
    try {
      body = await res.body.json<Json>();
    } catch {
      return; // not our business to fix the upstream's JSON
    }
    const masked = redact(
      body,
      new Set((ctx.config.redact ?? []).map((n) => n.toLowerCase())),
      ctx.config.keepLast ?? 0,
    );
    if (masked > 0) {
      res.body.replace(JSON.stringify(body));
      ctx.metrics.redacted.inc(masked);
    }
  },
});
