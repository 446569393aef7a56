// @ts-check
/**
 * `envoy-js run`: a real Envoy running a filter through the dynamic module
 * (`libenvoy_js.so`), in front of one upstream, reloading the filter on save.
 *
 * Envoy gets its one listener (127.0.0.1:<port>: envoy-js, then the router,
 * every path to the `--upstream` cluster) from a file, through LDS
 * (`dynamic_resources.lds_config.path_config_source`). A save rebuilds the
 * filter into a new file and rewrites the LDS file (atomically, by rename),
 * and Envoy updates the listener in place: the process keeps running, new
 * connections get the new filter, open ones finish on the old one (they are
 * drained). Envoy's `listener_manager.lds.update_success` / `update_rejected`
 * counters say whether it took the update; a filter Envoy refuses (it throws
 * while loading, for instance) leaves the previous listener serving, and the
 * reason is read from Envoy's log. A build that fails never reaches Envoy.
 *
 * @module
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";

import { buildFilter } from "./build.mjs";
import {
  EnvoyError,
  HOW_TO_GET_ENVOY,
  ROUTER_FILTER,
  bootstrap,
  envoyJsHttpFilter,
  envoySearchReport,
  filterConfigJson,
  findEnvoy,
  freePort,
  httpListener,
  ldsCounters,
  moduleDir,
  portInUse,
  sleep,
  startEnvoy,
  urlCluster,
  writeLdsFile,
} from "./envoy.mjs";
import { BuildError, readJson } from "./errors.mjs";
import { watchOneFile, watchTree } from "./watch.mjs";

/** The listener's name in Envoy (admin, stats: `http.envoy_js_run.*`). */
export const RUN_LISTENER = "envoy_js_run";
/** The cluster `--upstream` becomes. */
export const UPSTREAM_CLUSTER = "upstream";

/** Envoy's log lines, short: time, level, logger, message. */
const LOG_FORMAT = "[%T.%e][%l][%n] %v";
/** The start of one such line (anything else continues the line before). */
const LOG_LINE_START = /^\[\d\d:\d\d:\d\d\.\d{3}\]\[/;

/**
 * @typedef {object} RunOptions
 * @property {string} entry the filter's entry file (`src/filter.ts`)
 * @property {string} upstream where requests go after the filter: `http://host:port[/prefix]`
 * @property {number} [port] port on 127.0.0.1 (default 10000; 0 picks a free one)
 * @property {string} [configFile] JSON file with ctx.config
 * @property {string} [settingsFile] JSON file with the settings (failure_mode, limits)
 * @property {boolean} [typecheck] fail builds on type errors (default true)
 * @property {boolean} [watch] rebuild when files in the entry's directory change (default true)
 * @property {number} [debounceMs] wait this long after the last change before rebuilding (default 100)
 * @property {string} [logLevel] Envoy's log level (default "warn"); the filter's own
 *   log (Envoy's `dynamic_modules` logger) is shown from "debug" up whatever this says
 * @property {number} [drainTimeS] how long connections opened before a reload may
 *   keep the previous filter (Envoy's --drain-time-s, default 5)
 * @property {number} [concurrency] Envoy worker threads (default 1)
 * @property {import("./envoy.mjs").EnvoyBinary} [envoy] default: {@link findEnvoy}
 * @property {boolean} [envoyOutput] copy Envoy's log to stderr (default true)
 * @property {(line: string) => void} [log] progress lines (default: stdout)
 * @property {(line: string) => void} [logError] build errors and rejections (default: stderr)
 */

/**
 * @typedef {object} RunHandle
 * @property {string} url `http://127.0.0.1:<port>`
 * @property {number} port
 * @property {import("./envoy.mjs").EnvoyProcess} envoy the running Envoy
 * @property {() => boolean} serving whether a build of the filter is serving (not the 503 stand-in)
 * @property {() => Promise<boolean>} reload rebuild now; true when the new build serves
 * @property {() => Promise<void>} close stop watching, stop Envoy, remove the temporary files
 */

/** @param {string} file */
function shown(file) {
  const rel = path.relative(process.cwd(), file);
  return rel && !rel.startsWith("..") && !path.isAbsolute(rel) ? rel : file;
}

/**
 * Rewrites a source map's `sources` as they are shown here (relative to the
 * current directory), so that Envoy's messages name `src/filter.ts` and not
 * a path relative to the temporary build directory.
 *
 * @param {string} mapFile
 */
function showSourcesFromHere(mapFile) {
  const map = JSON.parse(readFileSync(mapFile, "utf8"));
  if (!Array.isArray(map.sources)) return;
  const base = path.resolve(path.dirname(mapFile), map.sourceRoot ?? "");
  map.sources = map.sources.map((/** @type {unknown} */ s) =>
    typeof s === "string" ? shown(path.resolve(base, s)) : s,
  );
  delete map.sourceRoot;
  writeFileSync(mapFile, JSON.stringify(map));
}

/**
 * The Envoy to run, or an {@link EnvoyError} saying where we looked and how
 * to get one.
 *
 * @param {NodeJS.ProcessEnv} [env]
 * @returns {import("./envoy.mjs").EnvoyBinary}
 */
export function requireEnvoy(env = process.env) {
  const envoy = findEnvoy(env);
  if (envoy) return envoy;
  const tried = envoySearchReport(env)
    .map((l) => `  - ${l}`)
    .join("\n");
  throw new EnvoyError(`${HOW_TO_GET_ENVOY}\nLooked at:\n${tried}`);
}

/**
 * The listener of one build: envoy-js, then the router to the upstream.
 *
 * @param {{ port: number, filterConfig: string, upstream: URL }} o
 */
function filterListener({ port, filterConfig, upstream }) {
  const prefix = upstream.pathname.replace(/\/+$/, "");
  const host = upstream.hostname.replace(/^\[(.*)\]$/, "$1");
  return httpListener({
    name: RUN_LISTENER,
    port,
    routes: [
      {
        match: { prefix: "/" },
        route: {
          cluster: UPSTREAM_CLUSTER,
          ...(prefix ? { prefix_rewrite: `${prefix}/` } : {}),
          // A named upstream gets its own name as Host (a virtual host may need it);
          // an address gets the client's Host, as Envoy does by default.
          ...(net.isIP(host) ? {} : { auto_host_rewrite: true }),
        },
      },
    ],
    httpFilters: [envoyJsHttpFilter(filterConfig), ROUTER_FILTER],
    hcm: HCM_OPTIONS,
  });
}

/**
 * What the connection manager does besides Envoy's defaults: the request id
 * goes back to the client (it names the stream in the filter's log lines),
 * and the upstream's `server` header is passed through instead of being
 * replaced by "envoy", so that a filter that changes it is seen doing so.
 */
const HCM_OPTIONS = { always_set_request_id_in_response: true, server_header_transformation: "PASS_THROUGH" };

/**
 * The stand-in listener while no build serves: every request gets 503 and
 * the reason.
 *
 * @param {{ port: number, text: string, name: string }} o the route's name marks this version
 */
function unavailableListener({ port, text, name }) {
  // Envoy limits a direct response body to 4 KiB.
  const body = text.length > 3800 ? `${text.slice(0, 3800)}\n...\n` : text;
  return httpListener({
    name: RUN_LISTENER,
    port,
    routes: [
      {
        name,
        match: { prefix: "/" },
        direct_response: { status: 503, body: { inline_string: body } },
        response_headers_to_add: [{ header: { key: "content-type", value: "text/plain; charset=utf-8" } }],
      },
    ],
    httpFilters: [ROUTER_FILTER],
    hcm: HCM_OPTIONS,
  });
}

/**
 * Starts Envoy with the filter and resolves once the listener serves (a
 * build of the filter, or the 503 stand-in when the first build fails: the
 * failure is reported and a save that fixes it brings the filter in).
 *
 * @param {RunOptions} options
 * @returns {Promise<RunHandle>}
 * @throws {EnvoyError} no Envoy, no module, the port is taken, Envoy does not start
 */
export async function startRun(options) {
  const startedAt = performance.now();
  const log = options.log ?? ((line) => process.stdout.write(`${line}\n`));
  const logError = options.logError ?? ((line) => process.stderr.write(`${line}\n`));
  const entry = path.resolve(options.entry);
  const upstream = new URL(options.upstream);
  const cluster = urlCluster({ name: UPSTREAM_CLUSTER, url: upstream });
  const envoyBinary = options.envoy ?? requireEnvoy();
  const modules = moduleDir();
  let port = options.port ?? 10000;
  if (port === 0) port = await freePort();
  else if (await portInUse(port)) {
    throw new EnvoyError(`127.0.0.1:${port} is already in use: stop what listens there, or choose another --port`);
  }

  const work = mkdtempSync(path.join(os.tmpdir(), "envoy-js-run-"));
  const ldsDir = path.join(work, "lds");
  mkdirSync(ldsDir);
  const ldsFile = path.join(ldsDir, "listeners.json");
  // Envoy starts with no listener; the first build is published like every later one.
  writeLdsFile(ldsFile, [], "0");

  let generation = 0;
  let serving = false;
  let closed = false;
  /** @type {import("./envoy.mjs").EnvoyProcess | null} */
  let envoy = null;

  /**
   * Builds generation `n` into its own directory (Envoy sees a new file, so
   * a new config, even when nothing changed).
   *
   * @param {number} n
   */
  async function build(n) {
    const config = options.configFile ? readJson(options.configFile, "config") : undefined;
    const settings = options.settingsFile ? readJson(options.settingsFile, "settings") : undefined;
    const dir = path.join(work, `build-${n}`);
    const result = await buildFilter({
      entry,
      outFile: path.join(dir, "filter.js"),
      typecheck: options.typecheck !== false,
      warn: (m) => logError(`envoy-js run: warning: ${m}`),
    });
    showSourcesFromHere(result.mapFile);
    return filterConfigJson({ source: result.outFile, sourceMap: result.mapFile, config, settings });
  }

  /**
   * Why Envoy refused the last update, from its log after `from`: the
   * module's own message (with file:line:col) when there is one.
   *
   * @param {import("./envoy.mjs").EnvoyProcess} e
   * @param {number} from
   */
  async function rejectionReason(e, from) {
    await e.waitForLog(/config update rejected: .*/, 2000, from).catch(() => null);
    const lines = e.log.slice(Math.max(0, from - e.logDropped)).split("\n");
    const own = lines.findIndex((l) => l.includes("filter_config rejected: "));
    if (own >= 0) {
      const out = [
        lines[own].slice(lines[own].indexOf("filter_config rejected: ") + "filter_config rejected: ".length),
      ];
      for (const l of lines.slice(own + 1)) {
        if (LOG_LINE_START.test(l) || l === "") break;
        out.push(l);
      }
      return out.join("\n");
    }
    const envoyLine = lines.find((l) => l.includes("config update rejected: "));
    if (envoyLine)
      return envoyLine.slice(envoyLine.indexOf("config update rejected: ") + "config update rejected: ".length);
    return "Envoy rejected the listener (its log above says why)";
  }

  /**
   * Hands a listener to Envoy and waits until Envoy took it (and it is the
   * active one) or refused it. `marker` is a string only this listener's
   * config holds: an in-place update of a listener keeps its old
   * `version_info` in Envoy's config dump, so the content tells which is active.
   *
   * @param {object} listener
   * @param {string} version
   * @param {string} marker
   * @returns {Promise<{ ok: true } | { ok: false, reason: string } | { ok: false, closed: true }>}
   */
  async function publish(listener, version, marker) {
    const e = /** @type {import("./envoy.mjs").EnvoyProcess} */ (envoy);
    const before = await ldsCounters(e);
    const from = e.logOffset();
    writeLdsFile(ldsFile, [listener], version);
    const deadline = Date.now() + 20000;
    let taken = false;
    while (Date.now() < deadline) {
      await sleep(20);
      if (closed) return { ok: false, closed: true };
      if (e.exited) throw new EnvoyError(`Envoy exited (${e.exitStatus}) while loading the listener`);
      if (!taken) {
        const now = await ldsCounters(e);
        if (now.rejected > before.rejected) return { ok: false, reason: await rejectionReason(e, from) };
        taken = now.success > before.success;
      }
      if (taken && (await activeListenerText(e)).includes(marker)) return { ok: true };
    }
    throw new EnvoyError(
      taken
        ? `Envoy took the listener of version ${version} but did not make it active within 20 s`
        : `Envoy did not read ${ldsFile} within 20 s`,
    );
  }

  /**
   * The active config of our listener in Envoy's config dump, as JSON text.
   *
   * @param {import("./envoy.mjs").EnvoyProcess} e
   */
  async function activeListenerText(e) {
    const dump = JSON.parse(await e.admin("/config_dump?resource=dynamic_listeners"));
    const mine = (dump.configs ?? []).find((/** @type {{ name: string }} */ c) => c.name === RUN_LISTENER);
    return JSON.stringify(mine?.active_state?.listener ?? null);
  }

  /**
   * One rebuild: build, publish, report. True when the new build serves.
   *
   * @param {Promise<string>} [built] a build already started (the first one)
   */
  async function rebuild(built) {
    const started = performance.now();
    const n = ++generation;
    const keeping = serving ? "still serving the previous build" : "answering 503 until it builds";
    let filterConfig;
    try {
      filterConfig = await (built ?? build(n));
    } catch (err) {
      if (!(err instanceof BuildError)) throw err;
      logError(`envoy-js run: build failed (${keeping}):\n  ${err.message.replaceAll("\n", "\n  ")}`);
      if (!serving) await publishUnavailable(n, `envoy-js run: ${shown(entry)} does not build:\n${err.message}\n`);
      return false;
    }
    if (closed) return false;
    // The bundle's path (build-<n>/filter.js) is in this listener's config only.
    const result = await publish(
      filterListener({ port, filterConfig, upstream }),
      String(n),
      path.join(work, `build-${n}`, "filter.js"),
    );
    if ("closed" in result) return false;
    if (!result.ok) {
      logError(`envoy-js run: Envoy rejected the filter (${keeping}):\n  ${result.reason.replaceAll("\n", "\n  ")}`);
      if (!serving) await publishUnavailable(n, `envoy-js run: Envoy rejected ${shown(entry)}:\n${result.reason}\n`);
      return false;
    }
    const ms = Math.round(performance.now() - (n === 1 ? startedAt : started));
    log(`envoy-js run: ${serving ? "reloaded" : "loaded"} ${shown(entry)} (${ms} ms)`);
    serving = true;
    // Builds before the previous one are no longer referenced by any listener.
    for (let old = n - 2; old >= 1; old--) rmSync(path.join(work, `build-${old}`), { recursive: true, force: true });
    return true;
  }

  /** @param {number} n @param {string} text */
  async function publishUnavailable(n, text) {
    const name = `envoy-js-run-unavailable-${n}-`;
    const r = await publish(unavailableListener({ port, text, name }), `${n}-unavailable`, name);
    if (!r.ok && !("closed" in r)) throw new EnvoyError(`Envoy refused the listener on 127.0.0.1:${port}: ${r.reason}`);
  }

  // Rebuilds are serialised: a change during a build queues one more build.
  /** @type {Promise<boolean> | null} */
  let building = null;
  let again = false;
  /**
   * @param {Promise<string>} [built]
   * @returns {Promise<boolean>}
   */
  function reload(built) {
    if (building) {
      again = true;
      return building.then(() => reload());
    }
    building = rebuild(built).finally(() => {
      building = null;
    });
    return building.then((ok) => {
      if (again) {
        again = false;
        return reload();
      }
      return ok;
    });
  }

  // Envoy starts while the first build runs.
  const firstBuild = build(1);
  firstBuild.catch(() => {}); // handled by rebuild(); Envoy may fail first
  try {
    envoy = await startEnvoy({
      envoy: envoyBinary,
      moduleDirectory: modules,
      config: bootstrap({
        clusters: [cluster],
        ldsFile,
        extra: {
          // Without a limit Envoy warns at every start; a development proxy needs few connections.
          overload_manager: {
            resource_monitors: [
              {
                name: "envoy.resource_monitors.global_downstream_max_connections",
                typed_config: {
                  "@type":
                    "type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig",
                  max_active_downstream_connections: 10000,
                },
              },
            ],
          },
        },
      }),
      workDir: work,
      concurrency: options.concurrency ?? 1,
      logLevel: options.logLevel ?? "warn",
      componentLogLevel: `dynamic_modules:${options.logLevel === "trace" ? "trace" : "debug"}`,
      inheritOutput: options.envoyOutput !== false,
      maxLogChars: 1 << 20,
      args: [
        "--log-format",
        LOG_FORMAT,
        "--drain-time-s",
        String(options.drainTimeS ?? 5),
        "--drain-strategy",
        "immediate",
      ],
    });
  } catch (err) {
    rmSync(work, { recursive: true, force: true });
    throw err;
  }
  const e = envoy;
  log(
    `envoy-js run: Envoy ${e.envoy.version} (${e.envoy.from}: ${e.envoy.bin}), pid ${e.child.pid}, admin ${e.adminUrl}`,
  );

  /** @type {Array<{ close: () => void }>} */
  const watchers = [];
  /** @type {NodeJS.Timeout | undefined} */
  let debounce;

  async function close() {
    closed = true;
    for (const w of watchers) w.close();
    clearTimeout(debounce);
    await building?.catch(() => false);
    await e.stop();
    rmSync(work, { recursive: true, force: true });
  }

  try {
    await reload(firstBuild);
  } catch (err) {
    await close();
    throw err;
  }

  if (options.watch !== false) {
    const onChange = () => {
      clearTimeout(debounce);
      debounce = setTimeout(() => {
        reload().catch((err) =>
          logError(`envoy-js run: reload failed: ${err instanceof Error ? err.message : String(err)}`),
        );
      }, options.debounceMs ?? 100);
    };
    const entryDir = path.dirname(entry);
    watchers.push(watchTree(entryDir, onChange));
    // The config and settings files are read again at every build; watch them where they are.
    for (const f of [options.configFile, options.settingsFile]) {
      if (!f) continue;
      const abs = path.resolve(f);
      if (!path.relative(entryDir, abs).startsWith("..")) continue;
      watchers.push(watchOneFile(abs, onChange));
    }
  }

  const url = `http://127.0.0.1:${port}`;
  const state = serving ? `saving ${shown(entry)} reloads it` : `answering 503 until ${shown(entry)} builds`;
  log(`envoy-js run: listening on ${url} -> ${upstream.href.replace(/\/$/, "")} (${state}; Ctrl-C stops Envoy)`);
  return {
    url,
    port,
    envoy: e,
    serving: () => serving,
    reload: () => reload(),
    close,
  };
}
