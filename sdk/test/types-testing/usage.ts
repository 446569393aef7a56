// Type tests for @envoy-js/sdk/testing: every line without a directive must compile; every
// `// @ts-expect-error` line must not.
import {
  createHost,
  quickjsVersion,
  replayBundle,
  request,
  runScenario,
  type DataStatus,
  type EngineName,
  type HeadersStatus,
  type HeadersObject,
  type LocalReplyJson,
  type MetadataJson,
  type RequestResult,
  type Scenario,
  type Transcript,
} from "@envoy-js/sdk/testing";

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
function assertType<T extends true>(): T | void {}

const filter = "dist/filter.js";

// --- request(): every field optional, results typed --------------------------
const r = request(filter, {
  method: "POST",
  headers: { "x-a": "1", cookie: ["a", "b"], "x-n": 5 },
  body: ["a", new Uint8Array([1])],
  upstream: { headers: { ":status": 200 }, body: "ok" },
  settings: { failure_mode: "open", buffer_limit_bytes: 10 },
  engine: "wasm",
});
assertType<Equal<typeof r, RequestResult>>();
assertType<Equal<typeof r.localReply, LocalReplyJson | null>>();
assertType<Equal<typeof r.logs, string[]>>();
const status: number | undefined = r.localReply?.status;
request(new URL("file:///tmp/f.js"));
request({ source: "export default {};", filename: "f.js" });
// @ts-expect-error -- a definition object is not a filter source
request({ onRequest() {} });
// @ts-expect-error -- the engine is "wasm" ("stub" and "native" are its retired names)
request(filter, { engine: "module" });
request(filter, { engine: "native" });
// @ts-expect-error -- failure_mode is closed or open
request(filter, { settings: { failure_mode: "maybe" } });
// @ts-expect-error -- reset takes the scenario's values
request(filter, { reset: "later" });

// --- runScenario(): the DESIGN.md section 7 shapes ----------------------------
const scenario: Scenario = {
  config: { anything: true },
  streams: [{ request: { headers: { ":method": "GET", ":path": "/", ":authority": "h" } }, reset: "afterRequestBody" }],
};
const t = runScenario(filter, scenario, { engine: "stub" });
assertType<Equal<typeof t, Transcript>>();
const replayed = replayBundle({ source: "export default {};", filename: "f.js", sourceMap: "{}" }, scenario);
assertType<Equal<typeof replayed, Transcript>>();
// @ts-expect-error -- replayBundle takes a bundle already read: source and filename
replayBundle("dist/filter.js", scenario);
const version: string = quickjsVersion();
// @ts-expect-error -- streams is required
runScenario(filter, { config: {} });

// --- step API -------------------------------------------------------------------
const host = createHost(filter, { config: {}, settings: { buffer_limit_bytes: 1 } });
const s = host.newStream();
const hs = s.callOnRequestHeaders({ ":method": "GET" }, true);
assertType<Equal<typeof hs, HeadersStatus>>();
const ds = s.callOnResponseData("x", true);
assertType<Equal<typeof ds, DataStatus>>();
// @ts-expect-error -- data is a string or bytes
s.callOnRequestData(42);
host.advanceTime(10);
const withSetup = createHost(filter, { engine: "wasm" }).newStream({
  stream: { id: "s1", protocol: "HTTP/2" },
  metadata: { jwt: { sub: "bob" } },
  filterState: { tag: "blue" },
  clusters: { authz: { headers: { ":status": 200 }, body: "{}", delayMs: 5 }, slow: { timeout: true } },
  route: { config: { limit: 1 } },
});
assertType<Equal<ReturnType<typeof withSetup.getCallouts>[number]["headers"], HeadersObject>>();
// @ts-expect-error -- filter state values are strings
host.newStream({ filterState: { n: 1 } });
// @ts-expect-error -- a cluster's delay is a number of milliseconds
host.newStream({ clusters: { a: { delayMs: "5" } } });
const metrics: Record<string, number | number[]> = host.getMetrics();
assertType<Equal<typeof t.metrics, Record<string, number | number[]>>>();
assertType<Equal<(typeof t.streams)[number]["metadata"], MetadataJson>>();
request(filter, { clusters: { authz: { reset: true } }, route: { disabled: true } });
const engine: EngineName = "wasm";
const retired: EngineName[] = ["stub", "native"];
// @ts-expect-error -- module and envoy are engines of the CLI's replay, not of tests
const cliOnly: EngineName = "module";
assertType<Equal<ReturnType<typeof createHost>["engine"], EngineName>>();
export { cliOnly, engine, metrics, retired, status, version };
