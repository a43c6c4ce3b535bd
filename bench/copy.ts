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
 * The layers are random bytes inside real gzip streams (stored blocks): skopeo looks at a
 * layer's first bytes and would gzip a layer that does not start like gzip, which would be
 * another benchmark. skopeo runs with --preserve-digests, which fails rather than change a blob.
 */
import { execFile } from "node:child_process";
import { createCipheriv, createHash } from "node:crypto";
import { once } from "node:events";
import { createWriteStream } from "node:fs";
import { cp, mkdir, mkdtemp, rename, rm, symlink, writeFile } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough, Transform, type TransformCallback } from "node:stream";
import { pipeline } from "node:stream/promises";
import { parseArgs, promisify } from "node:util";
import { createGzip } from "node:zlib";
import { CreateRepositoryCommand, ECRClient, GetAuthorizationTokenCommand } from "@aws-sdk/client-ecr";
import { startLocalServer } from "../src/bench/local-server.js";
import { median } from "../src/bench/stats.js";
import { startDockerRegistry } from "../test/helpers/docker-registry.js";
import { ROOT, measure, type Measured } from "./lib/processes.js";

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

interface Layout {
  path: string;
  manifestDigest: string;
  /** Layers and config: what a copy sends. */
  bytes: number;
}

/** Counts and hashes what passes. */
class Tap extends Transform {
  readonly hash = createHash("sha256");
  bytes = 0;
  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    callback(null, chunk);
  }
}

/** A layer of `size` random bytes as a gzip stream of stored blocks (level 0): fast to make. */
async function writeLayer(
  blobs: string,
  size: number,
  seed: string,
): Promise<{ digest: string; size: number }> {
  const key = createHash("sha256").update(seed).digest();
  const cipher = createCipheriv("aes-256-ctr", key, key.subarray(0, 16));
  const source = new PassThrough();
  const tap = new Tap();
  const temporary = join(blobs, `${key.toString("hex").slice(0, 12)}.tmp`);
  const written = pipeline(source, createGzip({ level: 0 }), tap, createWriteStream(temporary));
  const zeros = Buffer.alloc(4 * MiB);
  for (let left = size; left > 0;) {
    const n = Math.min(zeros.length, left);
    if (!source.write(cipher.update(zeros.subarray(0, n)))) await once(source, "drain");
    left -= n;
  }
  source.end();
  await written;
  const digest = `sha256:${tap.hash.digest("hex")}`;
  await rename(temporary, join(blobs, digest.slice("sha256:".length)));
  return { digest, size: tap.bytes };
}

async function buildLayout(path: string, sizes: number[], seed: string): Promise<Layout> {
  const blobs = join(path, "blobs", "sha256");
  await mkdir(blobs, { recursive: true });
  const layers = [];
  for (const [i, size] of sizes.entries()) layers.push(await writeLayer(blobs, size, `${seed}/${i}`));
  const putJson = async (doc: unknown) => {
    const bytes = Buffer.from(JSON.stringify(doc));
    const digest = `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
    await writeFile(join(blobs, digest.slice("sha256:".length)), bytes);
    return { digest, size: bytes.length };
  };
  // The diff_ids are made up: nothing here decompresses the layers.
  const config = await putJson({
    architecture: "amd64",
    os: "linux",
    config: { Labels: { "ecrx.bench.seed": seed } },
    rootfs: {
      type: "layers",
      diff_ids: layers.map(
        (_, i) => `sha256:${createHash("sha256").update(`${seed} diff ${i}`).digest("hex")}`,
      ),
    },
  });
  const manifest = await putJson({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config },
    layers: layers.map((l) => ({ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", ...l })),
  });
  await writeFile(join(path, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  await writeFile(
    join(path, "index.json"),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: "application/vnd.oci.image.manifest.v1+json",
          ...manifest,
          annotations: { "org.opencontainers.image.ref.name": "bench" },
        },
      ],
    }),
  );
  return {
    path,
    manifestDigest: manifest.digest,
    bytes: layers.reduce((sum, l) => sum + l.size, config.size),
  };
}

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
const snapshot = join(work, "ecrx");
await cp(join(ROOT, "dist"), join(snapshot, "dist"), { recursive: true });
await writeFile(join(snapshot, "package.json"), JSON.stringify({ type: "module" }));
await symlink(join(ROOT, "node_modules"), join(snapshot, "node_modules"));
const ECRX = join(snapshot, "dist", "cli", "main.js");
// Every command module loads: the copy is whole.
await run(process.execPath, [ECRX, "copy", "--help"]);
const registry = await startDockerRegistry();
const server = await startLocalServer({ cli: ECRX });
const ecrHost = `127.0.0.1:${new URL(server.url).port}`;
const ecr = new ECRClient({
  endpoint: server.url,
  region: "us-east-1",
  credentials: {
    accessKeyId: server.env.AWS_ACCESS_KEY_ID!,
    secretAccessKey: server.env.AWS_SECRET_ACCESS_KEY!,
  },
});
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
    const layout = await buildLayout(join(work, scenario), sizes, `${seed}/${scenario}`);
    const source = `${registry.host}/bench/${scenario}:v1`;
    await run("skopeo", [
      "copy",
      "--dest-tls-verify=false",
      `oci:${layout.path}:bench`,
      `docker://${source}`,
    ]);
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
          if (summary.bytesSent !== layout.bytes)
            throw new Error(`${client}: sent ${summary.bytesSent} bytes`);
          own = layout.bytes / 1e6 / summary.seconds;
        }
        const digest = await digestAt(repo);
        if (digest !== layout.manifestDigest) throw new Error(`${client}: ${repo} has ${digest}`);
        const row: Row = {
          client,
          scenario,
          run: r,
          mbps: layout.bytes / 1e6 / m.wallSeconds,
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
