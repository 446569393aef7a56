#!/usr/bin/env node
// `make demo`: build the sample TypeScript filter with the envoy-js CLI, replay its scenario
// through the real QuickJS engine (native host stub) and print what happened to each request.
import { execFileSync } from "node:child_process";
import { readFileSync, statSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const cli = path.join(root, "sdk", "cli", "envoy-js.mjs");
const entry = process.argv[2] ?? "samples/hello/filter.ts";
const scenarioPath = process.argv[3] ?? "samples/hello/scenario.json";
const out = path.join("build", "demo", "filter.js");

const run = (args) => execFileSync(process.execPath, [cli, ...args], { cwd: root, encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });

console.log(`$ envoy-js build ${entry} -o ${out} --bytecode`);
process.stdout.write(run(["build", entry, "-o", out, "--bytecode"]));
console.log(`\n$ envoy-js replay ${out} ${scenarioPath} --engine native\n`);
const transcript = JSON.parse(run(["replay", out, scenarioPath, "--engine", "native"]));
const scenario = JSON.parse(readFileSync(path.join(root, scenarioPath), "utf8"));

const asList = (h) => Object.entries(h ?? {}).flatMap(([k, v]) => (Array.isArray(v) ? v.map((x) => [k, x]) : [[k, v]]));
function headerDiff(before, after) {
  const b = new Map(asList(before).map(([k, v]) => [k.toLowerCase(), v]));
  const a = new Map(asList(after));
  const changes = [];
  for (const [k, v] of a) if (b.get(k) !== v) changes.push(`+${k}: ${v}`);
  for (const k of b.keys()) if (!a.has(k)) changes.push(`-${k}`);
  return changes.length ? changes.join("  ") : "(headers unchanged)";
}
const bodyOf = (b) => (Array.isArray(b) ? b.join("") : b ?? "");
const short = (s) => (s.length > 70 ? s.slice(0, 67) + "..." : s);

transcript.streams.forEach((t, i) => {
  const rq = scenario.streams[i].request;
  const up = scenario.streams[i].upstream ?? { headers: { ":status": "200" } };
  console.log(`#${i + 1} ${rq.headers[":method"]} ${rq.headers[":path"]}`);
  if (t.upstreamRequest) {
    console.log(`   upstream got   ${headerDiff(rq.headers, t.upstreamRequest.headers)}`);
    const sent = bodyOf(rq.body);
    if (sent || t.upstreamRequest.body) {
      console.log(`                  body ${t.upstreamRequest.body === sent ? "unchanged" : "rewritten"}: ${short(t.upstreamRequest.body)}`);
    }
  }
  if (t.localReply) {
    const r = t.localReply;
    console.log(`   local reply    ${r.status} ${JSON.stringify(r.body)} (details: ${r.details})`);
  } else if (t.downstreamResponse) {
    const d = t.downstreamResponse;
    console.log(`   client got     ${d.headers[":status"]}  ${headerDiff(up.headers, d.headers)}`);
    if (d.body) console.log(`                  body: ${short(d.body)}`);
  }
  for (const l of t.logs) console.log(`   log            ${l}`);
  for (const e of t.errors) console.log(`   error          ${e.split("\n")[0]}`);
});
const counters = Object.entries(transcript.counters).map(([k, v]) => `${k}=${v}`).join(" ");
console.log(`\n${transcript.streams.length} requests replayed on QuickJS ${statSync(path.join(root, out)).size} B bundle${counters ? "; " + counters : ""}`);
