/**
 * Copy throughput: `ecrx copy` next to `skopeo copy` for the same image between the same two
 * servers in one run: from a Debian `docker-registry` on loopback to the local ECR server.
 *
 *   npm run build && npx tsx bench/copy.ts [--runs 5] [--scenario 1gib|10x20mib]
 *
 * Clients, each a fresh process under /usr/bin/time, in turn within every run:
 * - `skopeo copy docker://127.0.0.1:<reg>/… docker://127.0.0.1:<ecr>/…` (the ECR server's registry
 *   endpoint, with GetAuthorizationToken's password);
 * - `ecrx copy <reg>/… <ecr host>/… --via registry`: the same endpoint;
 * - `ecrx copy <reg>/… <ecr host>/…`: the ECR API (layer upload parts, PutImage), reported apart.
 * Each copy goes to a fresh repository, so every blob is really sent. MB/s is the image's bytes
 * (10^6) per second of the whole process's wall time, start-up included, the same for all three
 * (skopeo reports no transfer time of its own); ecrx's own clock is in the JSON results too.
 * Run 0 is a warm-up and is not counted; the figure is the median of the others.
 *
 * The layers are random bytes inside real gzip streams (stored blocks, lib/gzip-layout.ts):
 * skopeo looks at a layer's first bytes and would gzip a layer that does not start like gzip,
 * which would be another benchmark. skopeo runs with --preserve-digests, which fails rather
 * than change a blob.
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs, promisify } from "node:util";
import { CreateRepositoryCommand, GetAuthorizationTokenCommand } from "@aws-sdk/client-ecr";
import { startLocalServer } from "../src/bench/local-server.js";
import { median } from "../src/bench/stats.js";
import { startDockerRegistry } from "../test/helpers/docker-registry.js";
import { buildGzipLayout } from "./lib/gzip-layout.js";
import { ROOT, localEcrClient, measure, snapshotDist, type Measured } from "./lib/processes.js";

const run = promisify(execFile);
const MiB = 1024 * 1024;
const SCENARIOS: Record<string, number[]> = {
  "1gib": [1024 * MiB],
  "10x20mib": Array.from({ length: 10 }, () => 20 * MiB),
};
const CLIENTS = ["skopeo", "ecrx-registry", "ecrx-api"] as const;
type Client = (typeof CLIENTS)[number];

const { values } = parseArgs({
  options: { runs: { type: "string", default: "5" }, scenario: { type: "string", multiple: true } },
});
const runs = Number(values.runs);
const scenarios = values.scenario ?? Object.keys(SCENARIOS);

interface Row {
  client: Client;
  scenario: string;
  run: number;
  mbps: number;
  /** ecrx's own transfer clock (process start-up excluded); undefined for skopeo. */
  ownMbps: number | undefined;
  wallSeconds: number;
  cpuSeconds: number;
  maxRssMB: number;
}

const uptime = async () => (await run("uptime")).stdout.trim();
const loadBefore = await uptime();
const work = await mkdtemp(join(tmpdir(), "ecrx-bench-copy-"));
// The measured ecrx is a copy of dist taken now: a rebuild in the checkout during the run (other
// work goes on there) changes neither the figures nor the server.
const ECRX = await snapshotDist(work);
// Every command module loads: the copy is whole.
await run(process.execPath, [ECRX, "copy", "--help"]);
const registry = await startDockerRegistry();
const server = await startLocalServer({ cli: ECRX });
const ecrHost = `127.0.0.1:${new URL(server.url).port}`;
const ecr = localEcrClient(server);
const token = (await ecr.send(new GetAuthorizationTokenCommand({}))).authorizationData![0]!
  .authorizationToken!;
const ecrCreds = Buffer.from(token, "base64").toString();
const env = { ...process.env, ...server.env, ECRX_CACHE_DIR: join(work, "cache"), HOME: work };
const rows: Row[] = [];
const loads: number[] = [];

async function copyWith(client: Client, source: string, repo: string): Promise<Measured> {
  await ecr.send(new CreateRepositoryCommand({ repositoryName: repo }));
  if (client === "skopeo") {
    return measure(
      "skopeo",
      [
        "copy",
        "--preserve-digests",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        "--dest-creds",
        ecrCreds,
        `docker://${source}`,
        `docker://${ecrHost}/${repo}:v1`,
      ],
      env,
    );
  }
  return measure(
    "node",
    [
      ECRX,
      "copy",
      source,
      `${server.registryHost}/${repo}:v1`,
      "--via",
      client === "ecrx-registry" ? "registry" : "api",
      "--json",
    ],
    env,
  );
}

async function digestAt(repo: string): Promise<string> {
  const { stdout } = await run(
    "skopeo",
    ["inspect", "--raw", "--tls-verify=false", "--creds", ecrCreds, `docker://${ecrHost}/${repo}:v1`],
    { maxBuffer: 16 * MiB },
  );
  return `sha256:${createHash("sha256").update(stdout).digest("hex")}`;
}

try {
  const seed = String(Date.now());
  for (const scenario of scenarios) {
    const sizes = SCENARIOS[scenario];
    if (!sizes) throw new Error(`unknown scenario ${scenario}`);
    const layout = await buildGzipLayout(join(work, scenario), sizes, `${seed}/${scenario}`);
    // What a copy sends: the layers and the config.
    const bytes = layout.layerBytes + layout.config.size;
    const source = `${registry.host}/bench/${scenario}:v1`;
    await run("skopeo", ["copy", "--dest-tls-verify=false", layout.reference, `docker://${source}`]);
    await rm(layout.path, { recursive: true, force: true });
    for (let r = 0; r <= runs; r++) {
      for (const client of CLIENTS) {
        const repo = `${client}-${scenario}-${r}`;
        loads.push(loadavg()[0]!);
        const m = await copyWith(client, source, repo);
        if (m.code !== 0) throw new Error(`${client} failed: ${m.stderr}`);
        let own: number | undefined;
        if (client !== "skopeo") {
          const summary = JSON.parse(m.stdout.trim().split("\n").at(-1)!) as {
            digest: string;
            seconds: number;
            bytesSent: number;
          };
          if (summary.digest !== layout.manifestDigest)
            throw new Error(`${client}: digest ${summary.digest}`);
          if (summary.bytesSent !== bytes) throw new Error(`${client}: sent ${summary.bytesSent} bytes`);
          own = bytes / 1e6 / summary.seconds;
        }
        const digest = await digestAt(repo);
        if (digest !== layout.manifestDigest) throw new Error(`${client}: ${repo} has ${digest}`);
        const row: Row = {
          client,
          scenario,
          run: r,
          mbps: bytes / 1e6 / m.wallSeconds,
          ownMbps: own,
          wallSeconds: m.wallSeconds,
          cpuSeconds: m.userSeconds + m.systemSeconds,
          maxRssMB: m.maxRssBytes / 1e6,
        };
        process.stderr.write(
          `${scenario} run ${r}${r === 0 ? " (warm-up)" : ""}: ${client} ${row.mbps.toFixed(0)} MB/s` +
            `${own === undefined ? "" : ` (own clock ${own.toFixed(0)})`}, ${row.wallSeconds.toFixed(2)} s\n`,
        );
        if (r > 0) rows.push(row);
      }
    }
  }
} finally {
  ecr.destroy();
  await server.stop();
  await registry.stop();
  await rm(work, { recursive: true, force: true });
}
const loadAfter = await uptime();

const summary = scenarios.flatMap((scenario) =>
  CLIENTS.map((client) => {
    const of = (key: "mbps" | "ownMbps" | "cpuSeconds" | "maxRssMB") => {
      const values = rows
        .filter((r) => r.client === client && r.scenario === scenario)
        .map((r) => r[key])
        .filter((v): v is number => v !== undefined);
      return values.length ? median(values) : undefined;
    };
    return {
      scenario,
      client,
      mbps: of("mbps"),
      ownClockMbps: of("ownMbps"),
      cpuSeconds: of("cpuSeconds"),
      maxRssMB: of("maxRssMB"),
    };
  }),
);
console.table(
  summary.map((s) =>
    Object.fromEntries(
      Object.entries(s).map(([k, v]) => [k, typeof v === "number" ? Number(v.toFixed(1)) : (v ?? "")]),
    ),
  ),
);
console.log(`load before: ${loadBefore}`);
console.log(`load after:  ${loadAfter}`);
console.log(
  `1-min load average at each copy: median ${median(loads).toFixed(2)}, max ${Math.max(...loads).toFixed(2)}`,
);
await mkdir(join(ROOT, "bench/results"), { recursive: true });
await writeFile(
  join(ROOT, "bench/results/copy.json"),
  JSON.stringify(
    { runs, date: new Date().toISOString(), loadBefore, loadAfter, loads, rows, summary },
    null,
    2,
  ),
);
