#!/usr/bin/env node
// @ts-check
/**
 * `envoy-js`: scaffold filter projects, build filters, replay scenarios
 * against them, and run them in a real Envoy.
 *
 * Exit codes: 0 success; 1 the work failed (build error, filter or scenario
 * cannot be loaded, no Envoy to run, Envoy failed); 2 usage error (unknown
 * command or option, engine not available).
 *
 * @module
 */
import path from "node:path";
import { parseArgs } from "node:util";

import { EnvoyError, findEnvoy, moduleDir } from "./envoy.mjs";
import { BuildError } from "./errors.mjs";
import { InitError, initProject, packageName } from "./init.mjs";
import { ENGINES, ReplayError, replay } from "./replay.mjs";
import { WasmEngineError } from "./wasm.mjs";

const HELP = {
  main: `Usage: envoy-js <command> [options]

Commands:
  init <dir>                        scaffold a filter project (TypeScript, uvu tests on the wasm engine)
  build <entry.ts>                  bundle a filter into one ES module for Envoy
  replay <bundle.js> <scenario.json>  run a scenario on the wasm engine or a real Envoy, print the transcript
  run <filter.ts> --upstream URL    a real Envoy running the filter, reloading it on save
  dev <filter.ts> --upstream URL    the same for development: Envoy when there is one, else a Node proxy
  help [command]                    show help for a command

Options:
  -h, --help                        show help (also: envoy-js <command> --help)

Run 'envoy-js help <command>' for a command's options.
`,
  build: `Usage: envoy-js build <entry.ts> [-o dist/filter.js] [--bytecode] [--no-typecheck]

Bundles a filter and everything it imports (npm packages and @envoy-js/sdk
included) into one ES module (ES2023), with a source map beside it
(<out>.map). Type errors and syntax errors fail the build with file:line:col.

Options:
  -o, --out <file>   output file (default: dist/<entry name>.js)
  --bytecode         also write QuickJS bytecode (<out without .js>.qjsbc),
                     compiled by the wasm engine (the quickjs-ng Envoy runs)
  --no-typecheck     skip the type check (syntax is still checked)
  -h, --help         show this help
`,
  replay: `Usage: envoy-js replay <bundle.js> <scenario.json> [--engine wasm|module|envoy]
                       [--bytecode file.qjsbc]

Runs the scenario's streams through the filter on the wasm engine or a real
Envoy and prints the transcript (JSON) on stdout. <bundle>.map is used when
it exists. Exit 0 even when the filter failed a stream; 1 when the filter or
scenario cannot be loaded (for envoy: Envoy refused the config; the reason
quotes Envoy's log line); 2 on a usage error.

Engines: wasm (the default) is envoy-js's C++ runtime with quickjs-ng and a
scripted model of Envoy's filter manager, compiled to WebAssembly and shipped
in this package (what @envoy-js/sdk/testing runs); module is libenvoy_js.so, loaded
through Envoy's dynamic-module ABI by the ABI host stub (build both with
'make module'); envoy runs the scenario through a real Envoy that loads
libenvoy_js.so (Envoy from ENVOY_BIN, 'make envoy' or PATH): Node servers
play the upstream and the clusters, streams go one after another over
HTTP/1.1 (HTTP/2 with "protocol": "h2" or trailers), and the transcript has
what they received, with Envoy's own headers taken out (events and the other
host-only fields are not in it).

Options:
  --engine <name>    ${ENGINES.join(", ")} (default: wasm; stub and native are
                     retired names of wasm)
  --bytecode <file>  load this bytecode instead of the bundle's source
  -h, --help         show this help
`,
  init: `Usage: envoy-js init <dir> [--name <package name>]

Creates a filter project in <dir> (a new or empty directory): package.json
depending on this SDK through a file: path to this checkout, tsconfig.json,
src/filter.ts, test/filter.test.mjs (uvu, on the wasm engine), test/scenario.json
and a README. Then: cd <dir> && npm install && npm test.

Options:
  --name <name>      package name (default: from <dir>)
  -h, --help         show this help
`,
  help: `Usage: envoy-js help [command]

Shows the help of a command (init, build, replay, run, dev), or the list of commands.
`,
  run: `Usage: envoy-js run <filter.ts> --upstream URL [--port 10000] [--config file.json]
                    [--settings file.json] [--log-level warn] [--no-typecheck]

Builds the filter and starts a real Envoy with it: the envoy-js dynamic module
(libenvoy_js.so, 'make module'), a listener on 127.0.0.1:<port> running the
filter and then Envoy's router, every path to --upstream. Prints the URL and
the Envoy version once it serves. Envoy's log goes to stderr, the filter's own
log lines (ctx.log, console) included.

Saving anything in the filter's directory (or the --config and --settings
files) rebuilds it and hands Envoy a new listener through a file (LDS): Envoy
keeps running, new connections get the new filter and open ones finish on the
previous one. A build error, or a filter Envoy refuses, is printed with its
file:line:col and the previous build keeps serving (503 with the reason until a
first build works). Ctrl-C stops Envoy.

Envoy is found through ENVOY_BIN, then the envoy-js repository's 'make envoy'
install (build/envoy/<version>/envoy, ENVOY_VERSION picks the version), then
PATH. Envoy adds x-request-id to every response (the filter's log lines name
the stream by it) and passes the upstream's server header through.

Options:
  --upstream <url>     where requests go after the filter (http://host:port[/prefix])
  --port <n>           port on 127.0.0.1 (default 10000; 0 picks a free one)
  --config <file>      JSON: ctx.config
  --settings <file>    JSON: failure_mode, max_cpu_ms_per_event, max_heap_bytes, buffer_limit_bytes,
                       allow_code_from_strings
  --log-level <level>  Envoy's log level (default warn; the filter's log always shows)
  --no-typecheck       build without the type check (syntax is still checked)
  -h, --help           show this help
`,
  dev: `Usage: envoy-js dev <filter.ts> --upstream URL [--port 8000] [--config file.json]
                    [--settings file.json] [--clusters file.json] [--proxy envoy|node]
                    [--no-typecheck]

A development tool, not a production proxy: serves the filter on 127.0.0.1
in front of --upstream, so you can try it with curl or a browser while you
write it, and rebuilds it on save (a build error is printed while the previous
build keeps serving). It says at start which of two proxies it uses:

- envoy: when an Envoy is found (see 'envoy-js run --help'), this is
  'envoy-js run': a real Envoy with the filter, reloaded on save.
- node: otherwise, or with --clusters or --proxy node: a Node proxy running
  the filter on the wasm engine (the runtime Envoy runs). One log line
  per request says what the filter did; requests and responses are held whole
  before they are passed on, bodies are carried as UTF-8 text, and ctx.fetch
  is answered from --clusters.

Options:
  --upstream <url>     where requests go after the filter (http://host:port[/prefix])
  --port <n>           port on 127.0.0.1 (default 8000; 0 picks a free one)
  --config <file>      JSON: ctx.config
  --settings <file>    JSON: failure_mode, max_cpu_ms_per_event, max_heap_bytes, buffer_limit_bytes,
                       allow_code_from_strings
  --clusters <file>    JSON answering ctx.fetch, as scenario "clusters" (Node proxy):
                       { "authz": { "headers": { ":status": "200" }, "body": "ok", "delayMs": 5 } }
  --proxy <name>       envoy or node (default: envoy when one is found, else node)
  --no-typecheck       build without the type check (syntax is still checked)
  -h, --help           show this help
`,
};

/** A command-line mistake: message plus the command whose help applies. */
class UsageError extends Error {
  /**
   * @param {string} message
   * @param {keyof typeof HELP} topic
   */
  constructor(message, topic) {
    super(message);
    this.topic = topic;
  }
}

/**
 * `parseArgs` with its errors turned into {@link UsageError}s.
 *
 * @template {import("node:util").ParseArgsConfig["options"]} O
 * @param {string[]} args
 * @param {O} options
 * @param {keyof typeof HELP} topic
 */
function parse(args, options, topic) {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err), topic);
  }
}

/** @param {number} bytes */
function formatSize(bytes) {
  return bytes < 1024 ? `${bytes} B` : `${(bytes / 1024).toFixed(1)} KiB`;
}

/** @param {string} file */
function shown(file) {
  const rel = path.relative(process.cwd(), file);
  return rel && !rel.startsWith("..") && !path.isAbsolute(rel) ? rel : file;
}

/**
 * @param {string[]} args
 * @returns {Promise<number>} exit code
 */
async function buildCommand(args) {
  const { values, positionals } = parse(
    args,
    {
      out: { type: "string", short: "o" },
      bytecode: { type: "boolean" },
      "no-typecheck": { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
    "build",
  );
  if (values.help) {
    process.stdout.write(HELP.build);
    return 0;
  }
  const [entry, ...extra] = positionals;
  if (!entry) throw new UsageError("missing <entry.ts>", "build");
  if (extra.length > 0) throw new UsageError(`unexpected argument '${extra[0]}'`, "build");
  const outFile = values.out ?? path.join("dist", `${path.parse(entry).name}.js`);
  // Loaded here: rollup and TypeScript take a while to load, replay needs neither.
  const { buildFilter } = await import("./build.mjs");
  const result = await buildFilter({
    entry,
    outFile,
    bytecode: values.bytecode === true,
    typecheck: values["no-typecheck"] !== true,
  });
  const ms = Math.round(result.ms);
  process.stdout.write(
    `${shown(result.outFile)}  ${formatSize(result.bytes)}  (map: ${shown(result.mapFile)})  ${ms} ms\n`,
  );
  if (result.bytecodeFile) process.stdout.write(`${shown(result.bytecodeFile)}  bytecode\n`);
  return 0;
}

/**
 * @param {string[]} args
 * @returns {Promise<number>} exit code
 */
async function replayCommand(args) {
  const { values, positionals } = parse(
    args,
    {
      engine: { type: "string" },
      bytecode: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    "replay",
  );
  if (values.help) {
    process.stdout.write(HELP.replay);
    return 0;
  }
  const [bundleFile, scenarioFile, ...extra] = positionals;
  if (!bundleFile || !scenarioFile) throw new UsageError("expected <bundle.js> <scenario.json>", "replay");
  if (extra.length > 0) throw new UsageError(`unexpected argument '${extra[0]}'`, "replay");
  const transcript = await replay({
    bundleFile,
    scenarioFile,
    engine: values.engine ?? "wasm",
    ...(values.bytecode ? { bytecodeFile: values.bytecode } : {}),
    onWarning: (message) => process.stderr.write(`envoy-js replay: warning: ${message}\n`),
  });
  process.stdout.write(`${JSON.stringify(transcript, null, 2)}\n`);
  return 0;
}

/**
 * @param {string[]} args
 * @returns {Promise<number>} exit code
 */
async function initCommand(args) {
  const { values, positionals } = parse(
    args,
    { name: { type: "string" }, help: { type: "boolean", short: "h" } },
    "init",
  );
  if (values.help) {
    process.stdout.write(HELP.init);
    return 0;
  }
  const [dir, ...extra] = positionals;
  if (!dir) throw new UsageError("missing <dir>", "init");
  if (extra.length > 0) throw new UsageError(`unexpected argument '${extra[0]}'`, "init");
  const files = initProject(dir, values.name ? { name: values.name } : {});
  process.stdout.write(`created ${values.name ?? packageName(dir)} in ${shown(path.resolve(dir))}:\n`);
  for (const f of files) process.stdout.write(`  ${f}\n`);
  process.stdout.write(`\nnext: cd ${shown(path.resolve(dir))} && npm install && npm test\n`);
  return 0;
}

/**
 * What `run` and `dev` both take: the entry, --upstream, --port (default
 * `defaultPort`), --config, --settings and --no-typecheck.
 *
 * @param {{ upstream?: string, port?: string, config?: string, settings?: string, "no-typecheck"?: boolean }} values
 * @param {string[]} positionals
 * @param {"run" | "dev"} command for usage errors
 * @param {number} defaultPort
 */
function serveOptions(values, positionals, command, defaultPort) {
  const [entry, ...extra] = positionals;
  if (!entry) throw new UsageError("missing <filter.ts>", command);
  if (extra.length > 0) throw new UsageError(`unexpected argument '${extra[0]}'`, command);
  if (!values.upstream) throw new UsageError("missing --upstream URL", command);
  const upstream = upstreamUrl(values.upstream, command);
  const port = values.port === undefined ? defaultPort : Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`bad --port '${values.port}'`, command);
  return {
    entry,
    upstream,
    port,
    ...(values.config ? { configFile: values.config } : {}),
    ...(values.settings ? { settingsFile: values.settings } : {}),
    typecheck: values["no-typecheck"] !== true,
  };
}

/**
 * `envoy-js dev`: see HELP.dev.
 *
 * @param {string[]} args
 * @returns {Promise<number>} exit code (after SIGINT or SIGTERM)
 */
async function devCommand(args) {
  const { values, positionals } = parse(
    args,
    {
      upstream: { type: "string" },
      port: { type: "string" },
      config: { type: "string" },
      settings: { type: "string" },
      clusters: { type: "string" },
      proxy: { type: "string" },
      "no-typecheck": { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
    "dev",
  );
  if (values.help) {
    process.stdout.write(HELP.dev);
    return 0;
  }
  const served = serveOptions(values, positionals, "dev", 8000);
  const { entry, upstream } = served;
  const proxy = values.proxy ?? "auto";
  if (!["auto", "envoy", "node"].includes(proxy)) throw new UsageError(`bad --proxy '${proxy}': envoy or node`, "dev");
  if (proxy !== "node") {
    let reason = "";
    if (values.clusters) reason = "--clusters is answered by the Node proxy only";
    else if (!findEnvoy())
      reason = "no Envoy found ('envoy-js run --help' says where it looks; `make envoy` installs one)";
    else {
      try {
        moduleDir();
      } catch (err) {
        reason = err instanceof Error ? err.message : String(err);
      }
    }
    if (!reason) {
      process.stderr.write("envoy-js dev: using a real Envoy (envoy-js run; --proxy node for the Node proxy)\n");
      return serveRun(served);
    }
    if (proxy === "envoy") {
      if (values.clusters) throw new UsageError("--clusters needs the Node proxy (--proxy node)", "dev");
      const { requireEnvoy } = await import("./run.mjs");
      requireEnvoy(); // throws the how-to when there is no Envoy
      throw new EnvoyError(reason);
    }
    process.stderr.write(`envoy-js dev: using the Node proxy: ${reason}\n`);
  } else {
    process.stderr.write("envoy-js dev: using the Node proxy (--proxy node)\n");
  }
  const { startDevServer } = await import("./dev.mjs");
  const server = await startDevServer({ ...served, ...(values.clusters ? { clustersFile: values.clusters } : {}) });
  // Listen for the signals before saying that Ctrl-C stops it: a SIGINT in between would kill
  // the process (Node's default) instead of closing the server.
  const stopped = new Promise((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  process.stderr.write(
    `envoy-js dev: ${shown(path.resolve(entry))} on ${server.url} -> ${upstream} ` +
      "(a development tool, not a production proxy; Ctrl-C stops it)\n",
  );
  await stopped;
  await server.close();
  return 0;
}

/**
 * `--upstream`, checked: an http:// URL (Envoy and the Node proxy speak
 * plain HTTP to it).
 *
 * @param {string} value
 * @param {keyof typeof HELP} topic
 */
function upstreamUrl(value, topic) {
  let url;
  try {
    url = new URL(value);
  } catch {
    throw new UsageError(`bad --upstream '${value}': expected a URL like http://127.0.0.1:8080`, topic);
  }
  if (url.protocol !== "http:") {
    throw new UsageError(
      `bad --upstream '${value}': only http:// upstreams are supported (not ${url.protocol}//), e.g. http://127.0.0.1:8080`,
      topic,
    );
  }
  return value;
}

/**
 * Starts `envoy-js run` and serves until SIGINT or SIGTERM (0), or until
 * Envoy exits on its own (1).
 *
 * @param {import("./run.mjs").RunOptions} options
 * @returns {Promise<number>} exit code
 */
async function serveRun(options) {
  /** @type {(value: string) => void} */
  let stop = () => {};
  const stopped = new Promise((resolve) => {
    stop = resolve;
  });
  let starting = true;
  let signals = 0;
  const onSignal = () => {
    // While Envoy starts, the first Ctrl-C stops it once started; a second one exits at once
    // (a terminal's Ctrl-C reaches Envoy too: same process group).
    if (starting && ++signals > 1) process.exit(130);
    stop("signal");
  };
  // Installed before startRun prints "listening" and kept until Envoy is stopped: a Ctrl-C
  // right after that line (a busy machine may run this process only after the caller has
  // already used the proxy and pressed it), or a second one while Envoy stops, must not kill
  // this process by the default handler (the CLI then exited by SIGINT instead of 0).
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  let run;
  try {
    // Loaded here: run needs rollup and TypeScript (through build.mjs).
    const { startRun } = await import("./run.mjs");
    run = await startRun(options);
    starting = false;
  } catch (err) {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    throw err;
  }
  const why = await Promise.race([stopped, run.envoy.done.then(() => "envoy")]);
  // Ctrl-C in a terminal reaches Envoy too (same process group): it stops with 0.
  const status = run.envoy.exitStatus;
  await run.close();
  process.off("SIGINT", onSignal);
  process.off("SIGTERM", onSignal);
  if (why === "signal" || status === 0 || status === "SIGINT" || status === "SIGTERM") {
    process.stdout.write("envoy-js run: Envoy stopped\n");
    return 0;
  }
  process.stderr.write(`envoy-js run: Envoy exited on its own (${status}); its log is above\n`);
  return 1;
}

/**
 * `envoy-js run`: see HELP.run.
 *
 * @param {string[]} args
 * @returns {Promise<number>} exit code (after SIGINT or SIGTERM)
 */
async function runCommand(args) {
  const { values, positionals } = parse(
    args,
    {
      upstream: { type: "string" },
      port: { type: "string" },
      config: { type: "string" },
      settings: { type: "string" },
      "log-level": { type: "string" },
      "no-typecheck": { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
    "run",
  );
  if (values.help) {
    process.stdout.write(HELP.run);
    return 0;
  }
  const served = serveOptions(values, positionals, "run", 10000);
  const levels = ["trace", "debug", "info", "warning", "warn", "error", "critical", "off"];
  const logLevel = values["log-level"];
  if (logLevel !== undefined && !levels.includes(logLevel)) {
    throw new UsageError(`bad --log-level '${logLevel}': one of ${levels.join(", ")}`, "run");
  }
  return serveRun({ ...served, ...(logLevel ? { logLevel } : {}) });
}

/**
 * @param {string[]} argv arguments after the program name
 * @returns {Promise<number>} exit code
 */
async function main(argv) {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case "build":
        return await buildCommand(rest);
      case "replay":
        return await replayCommand(rest);
      case "init":
        return await initCommand(rest);
      case "run":
        return await runCommand(rest);
      case "dev":
        return await devCommand(rest);
      case "help": {
        const topic = rest[0] === "-h" || rest[0] === "--help" ? "help" : (rest[0] ?? "main");
        if (!Object.hasOwn(HELP, topic)) throw new UsageError(`unknown command '${topic}'`, "main");
        process.stdout.write(HELP[/** @type {keyof typeof HELP} */ (topic)]);
        return 0;
      }
      case undefined:
        process.stderr.write(HELP.main);
        return 2;
      case "-h":
      case "--help":
        process.stdout.write(HELP.main);
        return 0;
      default:
        throw new UsageError(`unknown command '${command}'`, "main");
    }
  } catch (err) {
    if (err instanceof UsageError) {
      const hint = err.topic === "main" ? "envoy-js --help" : `envoy-js ${err.topic} --help`;
      process.stderr.write(`envoy-js: ${err.message} (see '${hint}')\n`);
      return 2;
    }
    if (err instanceof ReplayError) {
      process.stderr.write(`envoy-js replay: ${err.message}\n`);
      return err.exitCode;
    }
    if (
      err instanceof BuildError ||
      err instanceof WasmEngineError ||
      err instanceof InitError ||
      err instanceof EnvoyError
    ) {
      process.stderr.write(`envoy-js ${command}: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}

process.exitCode = await main(process.argv.slice(2));
