// The one normalisation of conformance: every string is cut at its first newline. Error
// messages (in errors, logs, workerLogs, load errors) carry the JS stack after it, and stacks
// differ between QuickJS and V8. Everything else must match exactly.
export function normalise(value) {
  if (typeof value === "string") return value.split("\n", 1)[0];
  if (Array.isArray(value)) return value.map(normalise);
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, normalise(v)]));
  }
  return value;
}
