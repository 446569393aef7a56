// Envoy configs of `make bench-envoy`: the upstream (a second Envoy whose routes are all
// direct_response, so that answering costs next to nothing), and the Envoy under test, whose
// listeners run one peer filter per job in front of it. Built with the same helpers as
// `envoy-js run` and the real-Envoy suite (sdk/cli/envoy.mjs).
import { readFileSync } from "node:fs";
import path from "node:path";

import {
  ROUTER_FILTER,
  bootstrap,
  envoyJsHttpFilter,
  filterConfigJson,
  httpListener,
  loopbackCluster,
} from "../../sdk/cli/envoy.mjs";

export const JOBS = ["header_rewrite", "async_callout", "body_transform", "passthrough_1mib"];
export const FILTERS = ["none", "lua", "envoy_js", "wasm_go", "dynmod"];

/** The upstream path each job asks for (all answered by the upstream's direct_response). */
export const JOB_PATH = {
  header_rewrite: "/small",
  async_callout: "/small",
  body_transform: "/body16k",
  passthrough_1mib: "/body1m",
};

export const BODY_16K = 16 * 1024;
export const BODY_1M = 1024 * 1024;

/** Request headers every request carries (header_rewrite reads one, removes another). */
export const REQUEST_HEADERS = { "x-bench-in": "abc", "x-bench-drop": "1" };

/**
 * The upstream Envoy: one listener, every route a direct_response. /body16k and /body1m answer
 * lower-case ASCII bodies (read from files; Envoy's 4 KiB default cap on direct_response bodies
 * is raised), /small and /callout a 3-byte body.
 */
export function upstreamConfig({ body16k, body1m }) {
  const direct = (prefix, body) => ({ match: { prefix }, direct_response: { status: 200, body } });
  return bootstrap({
    listeners: [
      httpListener({
        name: "upstream",
        virtualHosts: [{
          name: "all",
          domains: ["*"],
          routes: [
            direct("/body16k", { filename: body16k }),
            direct("/body1m", { filename: body1m }),
            direct("/callout", { inline_string: "ok\n" }),
            direct("/", { inline_string: "ok\n" }),
          ],
        }],
        httpFilters: [ROUTER_FILTER],
      }),
    ].map(raiseDirectResponseLimit),
  });
}

function raiseDirectResponseLimit(listener) {
  const hcm = listener.filter_chains[0].filters[0].typed_config;
  hcm.route_config.max_direct_response_body_size_bytes = 2 * BODY_1M;
  return listener;
}

/** The http_filters entry of one peer for one job (null for the baseline). */
export function peerFilter(filter, job, peers) {
  switch (filter) {
    case "none":
      return null;
    case "lua":
      return {
        name: "envoy.filters.http.lua",
        typed_config: {
          "@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua",
          default_source_code: { inline_string: readFileSync(path.join(peers.luaDir, `${job}.lua`), "utf8") },
        },
      };
    case "envoy_js":
      return envoyJsHttpFilter(filterConfigJson({ source: peers.envoyJs[job].outFile, bytecode: peers.envoyJs[job].bytecodeFile ?? undefined }));
    case "wasm_go":
      return {
        name: "envoy.filters.http.wasm",
        typed_config: {
          "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
          config: {
            name: `bench_${job}`,
            root_id: "",
            configuration: { "@type": "type.googleapis.com/google.protobuf.StringValue", value: job },
            fail_open: false,
            vm_config: {
              vm_id: "bench",
              runtime: "envoy.wasm.runtime.v8",
              code: { local: { filename: peers.wasm } },
            },
          },
        },
      };
    case "dynmod":
      return {
        name: "bench_dynmod",
        typed_config: {
          "@type": "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter",
          dynamic_module_config: { name: "bench_dynmod" },
          filter_name: job,
          filter_config: { "@type": "type.googleapis.com/google.protobuf.StringValue", value: "" },
        },
      };
    default:
      throw new Error(`unknown filter ${filter}`);
  }
}

const route = (cluster) => ({ match: { prefix: "/" }, route: { cluster, timeout: "30s" } });

/**
 * The Envoy under test for one peer: a listener per job (`<job>`) routing to the upstream Envoy,
 * and, for the two header jobs, a `verify_<job>` listener with the same filter in front of the
 * driver's echo server, so that a check can see what reached the upstream. Clusters: `upstream`
 * and `callout` (both the upstream Envoy; the callout gets its own pool), `echo`.
 */
export function frontConfig({ filter, jobs = JOBS, peers, upstreamPort, echoPort, verify = true }) {
  const chain = (job) => {
    const f = peerFilter(filter, job, peers);
    return f ? [f, ROUTER_FILTER] : [ROUTER_FILTER];
  };
  const listeners = [];
  for (const job of jobs) {
    listeners.push(httpListener({ name: job, routes: [route("upstream")], httpFilters: chain(job) }));
    if (verify && (job === "header_rewrite" || job === "async_callout")) {
      listeners.push(httpListener({ name: `verify_${job}`, routes: [route("echo")], httpFilters: chain(job) }));
    }
  }
  const clusters = [
    loopbackCluster({ name: "upstream", port: upstreamPort }),
    loopbackCluster({ name: "callout", port: upstreamPort }),
  ];
  if (verify) clusters.push(loopbackCluster({ name: "echo", port: echoPort }));
  return bootstrap({ listeners, clusters });
}

/** A listener that only loads a Wasm filter: the check of whether an Envoy build has Wasm. */
export function wasmCheckConfig(wasm) {
  return bootstrap({
    listeners: [httpListener({
      name: "wasm_check",
      routes: [{ match: { prefix: "/" }, direct_response: { status: 200 } }],
      httpFilters: [peerFilter("wasm_go", "header_rewrite", { wasm }), ROUTER_FILTER],
    })],
  });
}
