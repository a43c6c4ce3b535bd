/**
 * ecrx next to skopeo, the same image from the same file in the same run (issue 6, targets 5 and 7):
 *
 *   npm run build && npx tsx bench/compare.ts [--runs 5] [--only push|gzip]
 *
 * - push (target 5): an OCI layout of one 1 GiB pre-compressed layer (random bytes in a real gzip
 *   stream, bench/lib/gzip-layout.ts), pushed as it is: `ecrx push oci:… --compression keep` to
 *   `ecrx serve` (the ECR API), `skopeo copy --preserve-digests oci:… docker://…` to a Debian
 *   docker-registry. MB/s is of layer bytes.
 * - gzip (target 7): a docker-archive whose single layer is an uncompressed tar of ~200 MB of this
 *   machine's system files, compressed with gzip on the way by both: `ecrx push docker-archive:…`
 *   (default --compression gzip) and `skopeo copy docker-archive:… docker://…`. MB/s is of
 *   uncompressed layer bytes; the compressed sizes are reported next to it.
 *
 * Every run of each client is a fresh process under /usr/bin/time (wall, user+sys CPU, peak RSS);
 * MB/s is over the whole process's wall time, start-up included, for both (skopeo reports no
 * transfer time of its own; ecrx's own clock is in the JSON). Each run gets a fresh server: a new
 * `ecrx serve --rates off` for ecrx, a new docker-registry (empty storage) for skopeo, so that every
 * blob is really sent, and that server's CPU during the push is reported too. Each ecrx run has an
 * empty ECRX_CACHE_DIR. The order of the two clients alternates from run to run. Run 0 is a warm-up,
 * not counted (it checks the results: the pushed manifest, and for gzip that each tool's compressed
 * layer decompresses to the layer's diff_id); the figures are medians of the others.
 *
 * The images are built once and cached in $ECRX_BENCH_CACHE (default: $TMPDIR/ecrx-bench-cache).
 * --push-mib and --gzip-mb make them smaller while developing. Results: bench/results/compare-*.json.
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream, existsSync } from "node:fs";
import { lstat, mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { parseArgs, promisify } from "node:util";
import { createGunzip } from "node:zlib";
import { BatchGetImageCommand, GetDownloadUrlForLayerCommand } from "@aws-sdk/client-ecr";
import { startLocalServer } from "../src/bench/local-server.js";
import { median, spread, type Spread } from "../src/bench/stats.js";
import { DOCKER_REGISTRY, startDockerRegistry } from "../test/helpers/docker-registry.js";
import { buildGzipLayout, type GzipLayout } from "./lib/gzip-layout.js";
import {
  childPid,
  clientRow,
  cpuSecondsOf,
  localEcrClient,
  measure,
  ROOT,
  snapshotDist,
  type ClientRow,
  type Measured,
} from "./lib/processes.js";

const run = promisify(execFile);
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const TARGETS = ["push", "gzip"] as const;
type Target = (typeof TARGETS)[number];
const CLIENTS = ["ecrx", "skopeo"] as const;
type Client = (typeof CLIENTS)[number];

const { values } = parseArgs({
  options: {
    runs: { type: "string", default: "5" },
    only: { type: "string" },
    "push-mib": { type: "string", default: "1024" },
    "gzip-mb": { type: "string", default: "200" },
  },
});
const runs = Number(values.runs);
if (values.only !== undefined && !TARGETS.includes(values.only as Target))
  throw new Error(`--only ${values.only}: push or gzip`);
const targets: readonly Target[] = values.only === undefined ? TARGETS : [values.only as Target];
const pushBytes = Number(values["push-mib"]) * MiB;
const gzipBytes = Number(values["gzip-mb"]) * 1e6;
const cacheRoot = process.env.ECRX_BENCH_CACHE ?? join(tmpdir(), "ecrx-bench-cache");

// ---------------------------------------------------------------------------------------------
// The images, built once

/** The pre-compressed layout of target 5, cached: the seed is fixed, the content deterministic. */
async function pushImage(): Promise<GzipLayout> {
  const path = join(cacheRoot, `compare-push-${pushBytes}`);
  const done = join(path, "layout.json");
  if (existsSync(done)) return JSON.parse(await readFile(done, "utf8")) as GzipLayout;
  await rm(path, { recursive: true, force: true });
  process.stderr.write(`building ${path}\n`);
  const layout = await buildGzipLayout(path, [pushBytes], "ecrx compare push v1");
  await writeFile(done, JSON.stringify(layout));
  return layout;
}

interface DockerArchive {
  path: string;
  /** `docker-archive:PATH` */
  reference: string;
  /** The uncompressed layer's size and digest. */
  layerBytes: number;
  diffId: string;
  entries: number;
}

/**
 * The file system trees of target 7's layer: system libraries and some of /usr/share, walked in
 * name order, each up to its share of the layer's size (tar headers and padding counted). Files
 * over 16 MiB are left out, so that a couple of huge libraries (libLLVM-1x.so: 105-112 MB each
 * here) do not make the whole layer.
 */
const LAYER_TREES: [string, number][] = [
  ["/usr/lib/x86_64-linux-gnu", 0.75],
  ["/usr/share", 0.25],
];
const MAX_FILE = 16 * MiB;

/** Directories, symlinks and regular files, in walk order, and a stamp of what they are now. */
async function layerFiles(total: number): Promise<{ paths: string[]; stamp: string }> {
  const paths: string[] = [];
  const stamp = createHash("sha256").update(`v2 ${total} ${MAX_FILE}`);
  for (const [root, share] of LAYER_TREES) {
    const budget = total * share;
    let bytes = 0;
    const walk = async (dir: string): Promise<boolean> => {
      for (const name of (await readdir(dir)).sort()) {
        const path = join(dir, name);
        const s = await lstat(path);
        const file = s.isFile() && s.size <= MAX_FILE;
        if (!file && !s.isDirectory() && !s.isSymbolicLink()) continue;
        paths.push(path);
        stamp.update(`${path}\0${s.size}\0${s.mtimeMs}\0`);
        // What the entry takes in the tar: a header block, the content in 512-byte blocks.
        bytes += 512 + (file ? Math.ceil(s.size / 512) * 512 : 0);
        if (bytes >= budget) return false;
        if (s.isDirectory() && !(await walk(path))) return false;
      }
      return true;
    };
    await walk(root);
  }
  return { paths, stamp: stamp.digest("hex").slice(0, 16) };
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return `sha256:${hash.digest("hex")}`;
}

/**
 * A docker-archive (`docker save`'s legacy layout: manifest.json, <config>.json, <diff>/layer.tar)
 * of one uncompressed layer, written with GNU tar: deterministic owners and times, the walk's order.
 * Cached under the stamp of the files it holds.
 */
async function gzipImage(work: string): Promise<DockerArchive> {
  const { paths, stamp } = await layerFiles(gzipBytes);
  const path = join(cacheRoot, `compare-gzip-${stamp}.tar`);
  const done = `${path}.json`;
  if (existsSync(done) && existsSync(path)) return JSON.parse(await readFile(done, "utf8")) as DockerArchive;
  process.stderr.write(`building ${path} (${paths.length} entries)\n`);
  const staging = join(work, "docker-archive");
  await mkdir(staging, { recursive: true });
  const list = join(work, "layer-files");
  await writeFile(list, paths.map((p) => `${p.slice(1)}\0`).join(""));
  const common = ["--owner=0", "--group=0", "--numeric-owner", "--mtime=@0", "--format=gnu"];
  const layer = join(staging, "layer.tar");
  await run("tar", [
    "--create",
    `--file=${layer}`,
    "--directory=/",
    "--no-recursion",
    "--null",
    `--files-from=${list}`,
    ...common,
  ]);
  const diffId = await sha256File(layer);
  const layerBytes = (await lstat(layer)).size;
  const layerName = `${diffId.slice("sha256:".length)}/layer.tar`;
  await mkdir(join(staging, diffId.slice("sha256:".length)));
  await rename(layer, join(staging, layerName));
  const config = Buffer.from(
    JSON.stringify({
      architecture: "amd64",
      os: "linux",
      config: { Labels: { "ecrx.bench": "compare gzip" } },
      rootfs: { type: "layers", diff_ids: [diffId] },
    }),
  );
  const configName = `${createHash("sha256").update(config).digest("hex")}.json`;
  await writeFile(join(staging, configName), config);
  await writeFile(
    join(staging, "manifest.json"),
    JSON.stringify([{ Config: configName, RepoTags: ["bench/compare:v1"], Layers: [layerName] }]),
  );
  await mkdir(cacheRoot, { recursive: true });
  await run("tar", [
    "--create",
    `--file=${path}.tmp`,
    `--directory=${staging}`,
    ...common,
    "manifest.json",
    configName,
    layerName,
  ]);
  await rename(`${path}.tmp`, path);
  await rm(staging, { recursive: true, force: true });
  // skopeo must read it as it reads `docker save`'s output.
  await run("skopeo", ["inspect", `docker-archive:${path}`]);
  const archive: DockerArchive = {
    path,
    reference: `docker-archive:${path}`,
    layerBytes,
    diffId,
    entries: paths.length,
  };
  await writeFile(done, JSON.stringify(archive));
  return archive;
}

// ---------------------------------------------------------------------------------------------
// One push of one client, to a server of its own

interface Row extends ClientRow {
  client: Client;
  run: number;
  /** 1-minute load average when the push started. */
  load: number;
  wallSeconds: number;
  cpuSeconds: number;
  /** ecrx's own transfer clock (process start-up excluded); undefined for skopeo. */
  ownMbps: number | undefined;
  /** CPU of the receiving server (ecrx serve, docker-registry) during the push. */
  serverCpuSeconds: number;
  serverCpuSecondsPerGiB: number;
  /** The pushed layer blob(s), compressed. */
  layerBlobBytes: number;
}

interface PushedImage {
  manifest: string;
  layers: { digest: string; size: number }[];
}

function readManifest(manifest: string): PushedImage {
  const parsed = JSON.parse(manifest) as { layers: { digest: string; size: number }[] };
  return { manifest, layers: parsed.layers };
}

const digestOf = (text: string) => `sha256:${createHash("sha256").update(text).digest("hex")}`;

/** sha256 of a gzip body's decompressed content. */
async function gunzippedDigest(body: ReadableStream<Uint8Array> | null): Promise<string> {
  if (!body) throw new Error("no body");
  const hash = createHash("sha256");
  await pipeline(
    Readable.fromWeb(body),
    createGunzip(),
    new Writable({
      write(chunk: Buffer, _encoding, callback) {
        hash.update(chunk);
        callback();
      },
    }),
  );
  return `sha256:${hash.digest("hex")}`;
}

interface Job {
  target: Target;
  run: number;
  source: string;
  /** Layer bytes that MB/s and CPU per GiB count (uncompressed for gzip). */
  bytes: number;
  /** What the pushed image must be. */
  check: (image: PushedImage, fetchLayer: (digest: string) => Promise<Response>) => Promise<void>;
}

interface Pushed {
  measured: Measured;
  serverCpuSeconds: number;
  ownSeconds: number | undefined;
  image: PushedImage;
}

async function pushWithEcrx(ecrx: string, work: string, job: Job): Promise<Pushed> {
  const server = await startLocalServer({ cli: ecrx, args: ["--rates", "off"] });
  const ecr = localEcrClient(server);
  try {
    const pid = await childPid(`${ecrx} serve`);
    const repositoryName = `${job.target}-ecrx-${job.run}`;
    const cpuBefore = await cpuSecondsOf(pid);
    const measured = await measure(
      "node",
      [
        ecrx,
        "push",
        job.source,
        `${server.registryHost}/${repositoryName}:v1`,
        "--create-repo",
        ...(job.target === "push" ? ["--compression", "keep"] : []),
        "--json",
      ],
      { ...process.env, ...server.env, ECRX_CACHE_DIR: join(work, `cache-${job.target}-${job.run}`) },
    );
    const serverCpuSeconds = (await cpuSecondsOf(pid)) - cpuBefore;
    if (measured.code !== 0) throw new Error(`ecrx push failed: ${measured.stderr}`);
    const summary = JSON.parse(measured.stdout.trim().split("\n").at(-1)!) as { seconds: number };
    const found = await ecr.send(
      new BatchGetImageCommand({ repositoryName, imageIds: [{ imageTag: "v1" }] }),
    );
    const image = readManifest(found.images![0]!.imageManifest!);
    if (job.run === 0) {
      await job.check(image, async (layerDigest) => {
        const { downloadUrl } = await ecr.send(
          new GetDownloadUrlForLayerCommand({ repositoryName, layerDigest }),
        );
        return fetch(downloadUrl!);
      });
    }
    return { measured, serverCpuSeconds, ownSeconds: summary.seconds, image };
  } finally {
    ecr.destroy();
    await server.stop();
  }
}

async function pushWithSkopeo(job: Job): Promise<Pushed> {
  const registry = await startDockerRegistry();
  try {
    const pid = await childPid(DOCKER_REGISTRY);
    const repository = `${job.target}-skopeo-${job.run}`;
    const cpuBefore = await cpuSecondsOf(pid);
    const measured = await measure("skopeo", [
      "copy",
      // Fail rather than change a blob of the pre-compressed image.
      ...(job.target === "push" ? ["--preserve-digests"] : []),
      "--dest-tls-verify=false",
      job.source,
      `docker://${registry.host}/${repository}:v1`,
    ]);
    const serverCpuSeconds = (await cpuSecondsOf(pid)) - cpuBefore;
    if (measured.code !== 0) throw new Error(`skopeo copy failed: ${measured.stderr}`);
    const response = await fetch(`${registry.url}/v2/${repository}/manifests/v1`, {
      headers: {
        accept: [
          "application/vnd.oci.image.manifest.v1+json",
          "application/vnd.docker.distribution.manifest.v2+json",
        ].join(", "),
      },
    });
    if (!response.ok) throw new Error(`manifest: ${response.status}`);
    const image = readManifest(await response.text());
    if (job.run === 0) {
      await job.check(image, (digest) => fetch(`${registry.url}/v2/${repository}/blobs/${digest}`));
    }
    return { measured, serverCpuSeconds, ownSeconds: undefined, image };
  } finally {
    await registry.stop();
  }
}

// ---------------------------------------------------------------------------------------------
// The runs

/** `uptime`'s load averages (1, 5, 15 minutes). */
const uptime = async () => (await run("uptime")).stdout.trim().replace(/^.*load average:\s*/, "");
const work = await mkdtemp(join(tmpdir(), "ecrx-bench-compare-"));
const results: Record<string, unknown>[] = [];
try {
  const ecrx = await snapshotDist(work);
  // Every command module loads: the copy is whole.
  await run(process.execPath, [ecrx, "push", "--help"]);
  for (const target of targets) {
    let jobFor: (r: number) => Job;
    let image: Record<string, unknown>;
    if (target === "push") {
      const layout = await pushImage();
      image = { ...layout };
      jobFor = (r) => ({
        target,
        run: r,
        source: layout.reference,
        bytes: layout.layerBytes,
        check: async (pushed) => {
          if (digestOf(pushed.manifest) !== layout.manifestDigest)
            throw new Error(`the pushed manifest is not the layout's: ${pushed.manifest}`);
        },
      });
    } else {
      const archive = await gzipImage(work);
      image = { ...archive };
      jobFor = (r) => ({
        target,
        run: r,
        source: archive.reference,
        bytes: archive.layerBytes,
        check: async (pushed, fetchLayer) => {
          const response = await fetchLayer(pushed.layers[0]!.digest);
          if (!response.ok) throw new Error(`layer: ${response.status}`);
          const digest = await gunzippedDigest(response.body);
          if (pushed.layers.length !== 1 || digest !== archive.diffId)
            throw new Error(`the pushed layer decompresses to ${digest}, not ${archive.diffId}`);
        },
      });
    }
    const loadBefore = await uptime();
    const rows: Row[] = [];
    for (let r = 0; r <= runs; r++) {
      const job = jobFor(r);
      const order = r % 2 === 0 ? CLIENTS : [...CLIENTS].reverse();
      for (const client of order) {
        const load = loadavg()[0]!;
        const pushed = client === "ecrx" ? await pushWithEcrx(ecrx, work, job) : await pushWithSkopeo(job);
        const m = pushed.measured;
        const row: Row = {
          ...clientRow(client, target, job.bytes, m.wallSeconds, m),
          client,
          run: r,
          load,
          wallSeconds: m.wallSeconds,
          cpuSeconds: m.userSeconds + m.systemSeconds,
          ownMbps: pushed.ownSeconds === undefined ? undefined : job.bytes / 1e6 / pushed.ownSeconds,
          serverCpuSeconds: pushed.serverCpuSeconds,
          serverCpuSecondsPerGiB: pushed.serverCpuSeconds / (job.bytes / GiB),
          layerBlobBytes: pushed.image.layers.reduce((sum, l) => sum + l.size, 0),
        };
        process.stderr.write(
          `${target} run ${r}${r === 0 ? " (warm-up)" : ""}: ${client} ${row.mbps.toFixed(1)} MB/s, ` +
            `${row.wallSeconds.toFixed(2)} s, CPU ${row.cpuSeconds.toFixed(2)} s, ` +
            `server CPU ${row.serverCpuSeconds.toFixed(2)} s, layer ${(row.layerBlobBytes / 1e6).toFixed(1)} MB, ` +
            `load ${load.toFixed(2)}\n`,
        );
        if (r > 0) rows.push(row);
      }
    }
    const loadAfter = await uptime();
    results.push({
      target,
      runs,
      date: new Date().toISOString(),
      loadBefore,
      loadAfter,
      image,
      summary: summarise(target, rows),
      rows,
    });
  }
} finally {
  await rm(work, { recursive: true, force: true });
}

// ---------------------------------------------------------------------------------------------
// The report

interface ClientSummary {
  mbps: Spread;
  ownMbps: number | undefined;
  cpuSeconds: number;
  cpuSecondsPerGiB: number;
  maxRssMB: number;
  serverCpuSecondsPerGiB: number;
  layerBlobMB: number;
}

function summarise(target: Target, rows: Row[]) {
  const of = (client: Client): ClientSummary => {
    const mine = rows.filter((r) => r.client === client);
    const med = (key: "cpuSeconds" | "cpuSecondsPerGiB" | "maxRssMB" | "serverCpuSecondsPerGiB") =>
      median(mine.map((r) => r[key]));
    const own = mine.map((r) => r.ownMbps).filter((v): v is number => v !== undefined);
    return {
      mbps: spread(mine.map((r) => r.mbps)),
      ownMbps: own.length ? median(own) : undefined,
      cpuSeconds: med("cpuSeconds"),
      cpuSecondsPerGiB: med("cpuSecondsPerGiB"),
      maxRssMB: med("maxRssMB"),
      serverCpuSecondsPerGiB: med("serverCpuSecondsPerGiB"),
      layerBlobMB: median(mine.map((r) => r.layerBlobBytes)) / 1e6,
    };
  };
  const ecrx = of("ecrx");
  const skopeo = of("skopeo");
  const loads = rows.map((r) => r.load);
  return {
    target,
    ecrx,
    skopeo,
    mbpsRatio: ecrx.mbps.median / skopeo.mbps.median,
    cpuRatio: ecrx.cpuSecondsPerGiB / skopeo.cpuSecondsPerGiB,
    load: { median: median(loads), max: Math.max(...loads) },
  };
}

const f = (v: number, digits = 1) => v.toFixed(digits);
const range = (s: Spread) => `${f(s.median)} (${f(s.min)}..${f(s.max)})`;

function table(header: string[], lines: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(" | ")} |`;
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...lines.map(line)].join("\n");
}

// --runs 0: the images are built (and cached), a push of each checked; nothing to report.
for (const result of runs > 0 ? results : []) {
  const s = result.summary as ReturnType<typeof summarise>;
  const image = result.image as { layerBytes: number; entries?: number };
  const lines: string[] = [];
  if (s.target === "push") {
    lines.push(
      `### Target 5: one pre-compressed layer of ${f(image.layerBytes / GiB, 2)} GiB, ecrx push vs skopeo copy`,
      "",
      table(
        ["client", "MB/s (wall)", "ecrx's own clock", "CPU s/GiB", "peak RSS", "server CPU s/GiB"],
        CLIENTS.map((c) => [
          c === "ecrx" ? "ecrx push --compression keep (ECR API)" : "skopeo copy (registry API)",
          range(s[c].mbps),
          s[c].ownMbps === undefined ? "n/a" : f(s[c].ownMbps),
          f(s[c].cpuSecondsPerGiB, 2),
          `${f(s[c].maxRssMB, 0)} MB`,
          f(s[c].serverCpuSecondsPerGiB, 2),
        ]),
      ),
    );
  } else {
    lines.push(
      `### Target 7: docker-archive, ${f(image.layerBytes / 1e6, 0)} MB uncompressed layer, gzip on the way`,
      "",
      table(
        [
          "client",
          "MB/s (uncompressed, wall)",
          "ecrx's own clock",
          "CPU s",
          "CPU s/GiB",
          "layer gzip MB",
          "peak RSS",
          "server CPU s",
        ],
        CLIENTS.map((c) => [
          c === "ecrx" ? "ecrx push docker-archive: (ECR API)" : "skopeo copy docker-archive: (registry API)",
          range(s[c].mbps),
          s[c].ownMbps === undefined ? "n/a" : f(s[c].ownMbps),
          f(s[c].cpuSeconds, 2),
          f(s[c].cpuSecondsPerGiB, 2),
          f(s[c].layerBlobMB),
          `${f(s[c].maxRssMB, 0)} MB`,
          f((s[c].serverCpuSecondsPerGiB * image.layerBytes) / GiB, 2),
        ]),
      ),
    );
  }
  lines.push(
    "",
    `ecrx / skopeo: MB/s ${f(s.mbpsRatio, 2)}x, CPU ${f(s.cpuRatio, 2)}x. ` +
      `Load: ${String(result.loadBefore)} → ${String(result.loadAfter)}; ` +
      `1-minute load at each push: median ${f(s.load.median, 2)}, max ${f(s.load.max, 2)}.`,
    "",
  );
  console.log(lines.join("\n"));
  await mkdir(join(ROOT, "bench/results"), { recursive: true });
  await writeFile(join(ROOT, `bench/results/compare-${s.target}.json`), JSON.stringify(result, null, 2));
}
