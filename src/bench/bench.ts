import { spawn } from "node:child_process";
import { randomInt } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  BatchDeleteImageCommand,
  CreateRepositoryCommand,
  DeleteRepositoryCommand,
  DescribeRepositoriesCommand,
  type ECRClient,
} from "@aws-sdk/client-ecr";
import { EcrxError, isEcrxError, type ErrorCode } from "../errors.js";
import { parseReference, type EcrReference } from "../reference/reference.js";
import { DEFAULT_CONCURRENCY, DEFAULT_UPLOAD_CONCURRENCY } from "../transfer/engine.js";
import { MiB } from "../transfer/part-size.js";
import type { AwsOptions } from "../transports/aws/client-config.js";
import { ecrError, exceptionName } from "../transports/ecr/errors.js";
import { privateEcrClient } from "../transports/remote.js";
import { buildBenchLayout, type BenchContent } from "./layout.js";
import { startLocalServer, type LocalServer } from "./local-server.js";
import type { PullRunSpec, PushRunSpec, RunFigures, RunSpec } from "./measure.js";
import { latencyPercentiles, spread, type LatencyPercentiles, type Spread } from "./stats.js";
import { expandSweep, sizeLabel, type SweepPoint } from "./sweep.js";
import { READ_AHEAD } from "../transports/ecr/layer-upload.js";
import { DOWNLOAD_DEFAULTS } from "../transports/http/blob-download.js";

export interface BenchOptions {
  /**
   * A private ECR repository (`<account>.dkr.ecr.<region>.amazonaws.com/<repo>`, or a local
   * server's `...localhost:<port>/<repo>`); its tag or digest is ignored. Default: `ecrx serve` in a
   * child process, stopped at the end.
   */
  destination?: string;
  /** Sizes of the generated layers. Default one layer of 1 GiB. */
  layerSizes?: number[];
  /** Default `random`. */
  content?: BenchContent;
  /** An image to push instead of generated layers (any push source). */
  from?: string;
  /** Default [10 MiB]. */
  partSizes?: number[];
  /** Default: the commands' own (push's 10, pull's 4). */
  concurrencies?: number[];
  /** UploadLayerPart requests prepared ahead; default [1]. */
  readAheads?: number[];
  /**
   * Network profiles of the local server (`ecrx serve --network`), one server each; default: none
   * (loopback). Not with a destination, whose network is what it is.
   */
  networks?: string[];
  /**
   * Measure pulls instead of pushes: the image is pushed once (unmeasured), then every run pulls it
   * into a new OCI layout with these ranged-download settings.
   */
  pull?: { rangeSizes: number[]; rangeParallels: number[] };
  /** Measured runs per point, after one warm-up run. Default 5. */
  runs?: number;
  /** Seed of the generated content; run n uses seed + n. Default: a random one. */
  seed?: number;
  /** Leave what was pushed to `destination` in place. Default false. */
  keep?: boolean;
  aws?: Pick<AwsOptions, "region" | "endpointUrl" | "profile">;
  /** Told when a run starts and when it ends. */
  onRun?: (event: RunEvent) => void;
  signal?: AbortSignal;
}

export type BenchMode = "push" | "pull";

export type RunEvent =
  | { type: "run-start"; point: SweepPoint; run: number; warmup: boolean; index: number; total: number }
  | { type: "run-done"; point: SweepPoint; record: RunRecord; index: number; total: number };

/** Figures derived from one run's raw ones. */
export interface RunDerived {
  /** Layer bytes (10^6) per second. */
  mbps: number;
  partsPerSecond: number;
  partLatencyMs: LatencyPercentiles;
  cpuSecondsPerGiB: number;
}

export type RunRecord =
  | ({ run: number; warmup: boolean; ok: true } & RunFigures & RunDerived)
  | { run: number; warmup: boolean; ok: false; error: { code: ErrorCode; message: string } };

export interface PointSummary {
  /** Measured runs that succeeded (the warm-up is never counted). */
  runs: number;
  mbps: Spread;
  partsPerSecond: Spread;
  /** Over every UploadLayerPart of the point's measured runs. */
  partLatencyMs: LatencyPercentiles;
  cpuSecondsPerGiB: Spread;
  maxRssBytes: Spread;
  /** Totals over the measured runs. */
  retries: number;
  throttles: number;
  blobsSkipped: number;
}

export interface PointReport extends SweepPoint {
  runs: RunRecord[];
  summary: PointSummary;
}

export type Freshness = "new-content" | "new-repository" | "same-image";

export interface BenchScenario {
  mode: BenchMode;
  /** What is pushed where, in a few words, for titles. */
  title: string;
  /** `local` for the child `ecrx serve`, else the repository given. */
  target: string;
  source: string;
  content: BenchContent | undefined;
  layerSizes: number[] | undefined;
  freshness: Freshness;
  /** How every run's blobs are made new, in a sentence. */
  freshnessNote: string;
  seed: number | undefined;
  runs: number;
  warmups: number;
  partSizes: number[];
  concurrencies: number[];
  readAheads: number[];
  /** Network profiles of the local server; [null] when unshaped. */
  networks: (string | null)[];
  /** Pull sweeps only. */
  rangeSizes: number[] | undefined;
  rangeParallels: number[] | undefined;
  startedAt: string;
  machine: { cpus: number; model: string; node: string; loadAverage: { start: number[]; end: number[] } };
}

export interface BenchReport {
  scenario: BenchScenario;
  points: PointReport[];
  /** Runs that failed, warm-ups included. */
  failures: number;
  /** Runs not run because the sweep stopped after repeated failures or an interrupt. */
  skippedRuns: number;
  /** Every planned run succeeded. */
  ok: boolean;
  /** What became of what was pushed, in a sentence. */
  cleanup: string;
  cleanupError: { code: ErrorCode; message: string } | undefined;
}

const RUNNER = fileURLToPath(new URL("./runner.js", import.meta.url));
const GiB = 1024 * MiB;
const WARMUPS = 1;
/** A sweep that fails this many runs in a row is failing for a reason no later run will fix. */
const MAX_CONSECUTIVE_FAILURES = 3;

/**
 * Measures pushes (or pulls): for every point of the sweep (network profile, part size, read-ahead,
 * concurrency; range size and ranges in flight for pulls), one warm-up run and `runs` measured
 * runs, each in a fresh process (runner.ts) so that its CPU and peak memory are its own; a local
 * server runs in another process, a fresh one for each push and one per network profile for
 * pulls. Every push's blobs are new, or the availability check would skip them: generated content
 * takes a new seed each run; a given image (`from`) goes to a new repository each run. A pull
 * sweep pushes its image once and pulls it whole every run. What was pushed is deleted at the end
 * unless `keep`.
 */
export async function bench(options: BenchOptions = {}): Promise<BenchReport> {
  const mode: BenchMode = options.pull === undefined ? "push" : "pull";
  if (options.destination !== undefined && options.networks !== undefined) {
    throw new EcrxError("USAGE", "--network shapes the local server; it cannot apply to a destination", {
      hint: "leave out the destination to benchmark a local server with --network",
    });
  }
  const points = expandSweep({
    networks: options.networks ?? [undefined],
    concurrencies: options.concurrencies ?? [
      mode === "pull" ? DEFAULT_CONCURRENCY : DEFAULT_UPLOAD_CONCURRENCY,
    ],
    partSizes: options.partSizes ?? [10 * MiB],
    readAheads: options.readAheads ?? [READ_AHEAD.default],
    rangeSizes: options.pull?.rangeSizes,
    rangeParallels: options.pull?.rangeParallels,
  });
  const runs = options.runs ?? 5;
  if (!Number.isSafeInteger(runs) || runs < 1) throw new EcrxError("USAGE", "runs must be at least 1");
  const content = options.from === undefined ? (options.content ?? "random") : undefined;
  const layerSizes = options.from === undefined ? (options.layerSizes ?? [GiB]) : undefined;
  const seed = options.from === undefined ? (options.seed ?? randomInt(1, 2 ** 31)) : undefined;
  const freshness: Freshness =
    mode === "pull" ? "same-image" : options.from === undefined ? "new-content" : "new-repository";
  const loadStart = loadavg();
  const startedAt = new Date().toISOString();

  const work = await mkdtemp(join(tmpdir(), "ecrx-bench-"));
  let server: { network: string | undefined; running: LocalServer } | undefined;
  let client: ECRClient | undefined;
  let repo: EcrReference | undefined;
  /** Pull sweeps: the image the runs pull, pushed once per server (or once to the destination). */
  let pullSource: string | undefined;
  const cleanup = new Cleanup();
  const reports: PointReport[] = points.map((p) => ({ ...p, runs: [], summary: summarize([]) }));
  let failures = 0;
  let skippedRuns = 0;
  let cleanupNote: string;
  let cleanupError: { code: ErrorCode; message: string } | undefined;
  try {
    let runnerEnv: NodeJS.ProcessEnv = process.env;
    if (options.destination !== undefined) {
      repo = ecrReference(options.destination);
      client = privateEcrClient(repo, options.aws ?? {});
      if (freshness !== "new-repository" && !(await repositoryExists(client, repo))) {
        await createRepository(client, repo);
        cleanup.repositories.push(repo.repository);
      }
    }
    const runId = Date.now().toString(36);
    const total = points.length * (runs + WARMUPS);
    let index = 0;
    let consecutiveFailures = 0;
    const startServer = async (network: string | undefined): Promise<void> => {
      await server?.running.stop();
      server = undefined;
      pullSource = undefined;
      const running = await startLocalServer({ args: network === undefined ? [] : ["--network", network] });
      server = { network, running };
      runnerEnv = { ...process.env, ...running.env };
      repo = ecrReference(`${running.registryHost}/ecrx-bench`);
    };
    for (const [p, point] of points.entries()) {
      for (let run = 0; run < runs + WARMUPS; run++, index++) {
        if (options.signal?.aborted || consecutiveFailures >= MAX_CONSECUTIVE_FAILURES) {
          skippedRuns++;
          continue;
        }
        // A local server of the point's network profile. A push gets a fresh one each run, whose
        // data goes with it: a server that kept every run's gigabyte would make each later run
        // write into memory the machine has not touched yet, which on VMs costs several times
        // more (bench/README.md, "This machine's memory"), and later runs would measure that.
        if (
          options.destination === undefined &&
          (server === undefined || server.network !== point.network || mode === "push")
        ) {
          await startServer(point.network);
        }
        const warmup = run < WARMUPS;
        options.onRun?.({ type: "run-start", point, run, warmup, index, total });
        const layoutPath = join(work, `run-${index}`);
        let outcome: RunnerOutcome;
        if (mode === "pull") {
          pullSource ??= await pushPullImage(point, runnerEnv);
          outcome = await runProcess(
            pullSpec(point, pullSource, `oci:${layoutPath}`),
            runnerEnv,
            options.signal,
          );
        } else if (freshness === "new-content") {
          const layout = await buildBenchLayout(layoutPath, layerSizes!, {
            content: content!,
            seed: seed! + index,
          });
          const destination = `${repo!.registry}/${repo!.repository}:bench-${runId}-${index}`;
          outcome = await runProcess(
            pushSpec(point, layout.reference, destination),
            runnerEnv,
            options.signal,
          );
        } else {
          const repository = `${repo!.repository}-${runId}-${index}`;
          cleanup.repositories.push(repository);
          const destination = `${repo!.registry}/${repository}:bench`;
          outcome = await runProcess(pushSpec(point, options.from!, destination), runnerEnv, options.signal);
        }
        await rm(layoutPath, { recursive: true, force: true });
        const record: RunRecord = outcome.ok
          ? { run, warmup, ok: true, ...outcome.figures, ...derive(outcome.figures) }
          : { run, warmup, ok: false, error: outcome.error };
        if (record.ok && freshness === "new-content") cleanup.images.push(record.digest);
        consecutiveFailures = record.ok ? 0 : consecutiveFailures + 1;
        if (!record.ok) failures++;
        reports[p]!.runs.push(record);
        options.onRun?.({ type: "run-done", point, record, index, total });
      }
      reports[p]!.summary = summarize(reports[p]!.runs);
    }
  } finally {
    if (options.destination === undefined) {
      cleanupNote = "nothing to delete: the local server and its data went away with it";
    } else if (client === undefined || repo === undefined) {
      cleanupNote = "nothing was pushed";
    } else if (options.keep) {
      cleanupNote = `kept (--keep): ${cleanup.describe(repo)}`;
    } else {
      // Also after a failure or an interrupt: take away what was pushed. A failure here must not
      // hide the one that brought us here, so it is reported, not thrown.
      try {
        await cleanup.run(client, repo);
        cleanupNote = `deleted ${cleanup.describe(repo)}`;
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        cleanupError = { code: isEcrxError(err) ? err.code : "INTERNAL", message };
        cleanupNote = `could not delete ${cleanup.describe(repo)}: ${message}`;
      }
    }
    client?.destroy();
    await server?.running.stop();
    await rm(work, { recursive: true, force: true });
  }
  options.signal?.throwIfAborted();

  const title = scenarioTitle(options, mode, layerSizes, content);
  const distinct = <T>(values: T[]) => [...new Set(values)];
  return {
    scenario: {
      mode,
      title,
      target: options.destination === undefined ? "local" : options.destination,
      source: options.from ?? "generated",
      content,
      layerSizes,
      freshness,
      freshnessNote: FRESHNESS_NOTES[freshness](seed),
      seed,
      runs,
      warmups: WARMUPS,
      partSizes: distinct(points.map((p) => p.partSize)),
      concurrencies: distinct(points.map((p) => p.concurrency)),
      readAheads: distinct(points.map((p) => p.readAhead)),
      networks: distinct(points.map((p) => p.network ?? null)),
      rangeSizes: mode === "pull" ? distinct(points.map((p) => p.rangeSize!)) : undefined,
      rangeParallels: mode === "pull" ? distinct(points.map((p) => p.rangeParallel!)) : undefined,
      startedAt,
      machine: {
        cpus: cpus().length,
        model: cpus()[0]?.model ?? "unknown",
        node: process.version,
        loadAverage: { start: loadStart, end: loadavg() },
      },
    },
    points: reports,
    failures,
    skippedRuns,
    ok: failures === 0 && skippedRuns === 0 && cleanupError === undefined,
    cleanup: cleanupNote,
    cleanupError,
  };

  function pushSpec(point: SweepPoint, source: string, destination: string): PushRunSpec {
    return {
      kind: "push",
      source,
      destination,
      partSize: point.partSize,
      readAhead: point.readAhead,
      concurrency: point.concurrency,
      // Generated random layers are typed gzip and go as they are; uncompressed ones (compressible
      // content, a docker save) are compressed on the way, as `ecrx push` does by default.
      compression: "gzip",
      // A new repository each run (`from`) is the push's to create; the one content goes to exists.
      createRepository: freshness !== "new-content" || options.destination === undefined,
      aws: options.aws ?? {},
    };
  }

  function pullSpec(point: SweepPoint, source: string, destination: string): PullRunSpec {
    return {
      kind: "pull",
      source,
      destination,
      concurrency: point.concurrency,
      rangeSize: point.rangeSize ?? DOWNLOAD_DEFAULTS.rangeSize,
      rangeParallel: point.rangeParallel ?? DOWNLOAD_DEFAULTS.parallel,
      aws: options.aws ?? {},
    };
  }

  /** Pushes the image a pull sweep pulls (not measured) and returns its reference by digest. */
  async function pushPullImage(point: SweepPoint, env: NodeJS.ProcessEnv): Promise<string> {
    const layoutPath = join(work, "pull-image");
    let source = options.from;
    if (source === undefined) {
      source = (await buildBenchLayout(layoutPath, layerSizes!, { content: content!, seed: seed! }))
        .reference;
    }
    const repository = `${repo!.repository}-pull-${Date.now().toString(36)}`;
    const destination = `${repo!.registry}/${repository}:bench`;
    if (options.destination !== undefined) cleanup.repositories.push(repository);
    const outcome = await runProcess(
      { ...pushSpec(point, source, destination), createRepository: true },
      env,
      options.signal,
    );
    await rm(layoutPath, { recursive: true, force: true });
    if (!outcome.ok) {
      throw new EcrxError(outcome.error.code, `pushing the image to pull failed: ${outcome.error.message}`);
    }
    return `${repo!.registry}/${repository}@${outcome.figures.digest}`;
  }
}

const FRESHNESS_NOTES: Record<Freshness, (seed: number | undefined) => string> = {
  "new-content": (seed) =>
    `every run pushes new content (generated with seed ${seed} + run number), so no blob is ever already there`,
  "new-repository": () =>
    "every run pushes to a new repository (blobs are per repository), so no blob is ever already there",
  "same-image": () =>
    "the image is pushed once, then every run pulls all of it into a new OCI layout (a pull reuses nothing)",
};

function ecrReference(text: string): EcrReference {
  const ref = parseReference(text);
  if (ref.kind !== "ecr") {
    throw new EcrxError("USAGE", `bench pushes to a private ECR repository; ${text} is not one`, {
      hint: "use <account>.dkr.ecr.<region>.amazonaws.com/<repo>, or no destination for a local server",
    });
  }
  return ref;
}

function derive(f: RunFigures): RunDerived {
  return {
    mbps: f.layerBytes / 1e6 / f.seconds,
    partsPerSecond: f.parts / f.seconds,
    partLatencyMs: latencyPercentiles(f.partLatenciesMs),
    cpuSecondsPerGiB: (f.cpuUserSeconds + f.cpuSystemSeconds) / (f.layerBytes / GiB),
  };
}

/** The summary of a point over its measured runs that succeeded. */
export function summarize(records: readonly RunRecord[]): PointSummary {
  const measured = records.filter((r): r is Extract<RunRecord, { ok: true }> => r.ok && !r.warmup);
  const sum = (f: (r: (typeof measured)[number]) => number) => measured.reduce((s, r) => s + f(r), 0);
  return {
    runs: measured.length,
    mbps: spread(measured.map((r) => r.mbps)),
    partsPerSecond: spread(measured.map((r) => r.partsPerSecond)),
    partLatencyMs: latencyPercentiles(measured.flatMap((r) => r.partLatenciesMs)),
    cpuSecondsPerGiB: spread(measured.map((r) => r.cpuSecondsPerGiB)),
    maxRssBytes: spread(measured.map((r) => r.maxRssBytes)),
    retries: sum((r) => r.retries),
    throttles: sum((r) => r.throttles),
    blobsSkipped: sum((r) => r.blobsSkipped),
  };
}

type RunnerOutcome =
  { ok: true; figures: RunFigures } | { ok: false; error: { code: ErrorCode; message: string } };

/** One push or pull in a fresh process; never throws for the transfer's own failure. */
async function runProcess(
  spec: RunSpec,
  env: NodeJS.ProcessEnv,
  signal: AbortSignal | undefined,
): Promise<RunnerOutcome> {
  const child = spawn(process.execPath, [RUNNER, JSON.stringify(spec)], {
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const stop = () => child.kill("SIGTERM");
  signal?.addEventListener("abort", stop, { once: true });
  const code = await new Promise<number | null>((resolve) => {
    child.once("error", () => resolve(null));
    child.once("close", (c) => resolve(c));
  });
  signal?.removeEventListener("abort", stop);
  const last = stdout.trimEnd().split("\n").at(-1) ?? "";
  try {
    const outcome = JSON.parse(last) as
      { ok: true; figures: RunFigures } | { ok: false; code: ErrorCode; message: string };
    if (outcome.ok) return outcome;
    return { ok: false, error: { code: outcome.code, message: outcome.message } };
  } catch {
    const detail = crashLine(stderr);
    return {
      ok: false,
      error: {
        code: signal?.aborted ? "INTERRUPTED" : "INTERNAL",
        message: `the ${spec.kind} process ended with code ${code} and no result${detail ? `: ${detail}` : ""}`,
      },
    };
  }
}

/**
 * The line that names the error in what a crashed Node process printed: its uncaught exception
 * (`TypeError: ...`), not the source excerpt before it nor the `Node.js v20` trailer after it.
 */
export function crashLine(stderr: string): string {
  const lines = stderr
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !/^Node\.js v\d/.test(l));
  return lines.find((l) => /^([\w.]*(Error|Exception)\b|Uncaught|FATAL ERROR)/.test(l)) ?? lines.at(-1) ?? "";
}

async function repositoryExists(client: ECRClient, repo: EcrReference): Promise<boolean> {
  try {
    await client.send(
      new DescribeRepositoriesCommand({ registryId: repo.registryId, repositoryNames: [repo.repository] }),
    );
    return true;
  } catch (err) {
    if (exceptionName(err) === "RepositoryNotFoundException") return false;
    throw ecrError(err, `describing repository ${repo.repository}`);
  }
}

async function createRepository(client: ECRClient, repo: EcrReference): Promise<void> {
  try {
    await client.send(
      new CreateRepositoryCommand({ registryId: repo.registryId, repositoryName: repo.repository }),
    );
  } catch (err) {
    throw ecrError(err, `creating repository ${repo.repository}`);
  }
}

/** What the benchmark put into the destination registry, to take away at the end. */
class Cleanup {
  /** Images pushed into the destination repository, by digest. */
  readonly images: string[] = [];
  /** Repositories the benchmark created. */
  readonly repositories: string[] = [];

  describe(repo: EcrReference): string {
    const parts = [];
    const ownRepo = this.repositories.includes(repo.repository);
    if (this.images.length > 0 && !ownRepo) {
      parts.push(`${this.images.length} image(s) in ${repo.registry}/${repo.repository}`);
    }
    if (this.repositories.length > 0)
      parts.push(`${this.repositories.length} repository(ies) the benchmark created`);
    return parts.length === 0 ? "nothing was pushed" : parts.join(" and ");
  }

  /**
   * Deletes the images pushed to a repository that was there before, then every repository the
   * benchmark created (with what is in it). ECR drops the layers of deleted images in its own time.
   */
  async run(client: ECRClient, repo: EcrReference): Promise<void> {
    if (!this.repositories.includes(repo.repository)) {
      for (let i = 0; i < this.images.length; i += 100) {
        const imageIds = this.images.slice(i, i + 100).map((imageDigest) => ({ imageDigest }));
        try {
          await client.send(
            new BatchDeleteImageCommand({
              registryId: repo.registryId,
              repositoryName: repo.repository,
              imageIds,
            }),
          );
        } catch (err) {
          throw ecrError(err, `deleting the benchmark's images from ${repo.repository}`);
        }
      }
    }
    for (const repositoryName of this.repositories) {
      try {
        await client.send(
          new DeleteRepositoryCommand({ registryId: repo.registryId, repositoryName, force: true }),
        );
      } catch (err) {
        // A failed run may not have created its repository.
        if (exceptionName(err) !== "RepositoryNotFoundException") {
          throw ecrError(err, `deleting repository ${repositoryName}`);
        }
      }
    }
  }
}

function scenarioTitle(
  options: BenchOptions,
  mode: BenchMode,
  layerSizes: number[] | undefined,
  content: BenchContent | undefined,
): string {
  const local = options.destination === undefined;
  const networks = options.networks?.join(", ");
  const where = local
    ? `local ecrx serve${networks === undefined ? "" : ` (${networks})`}`
    : ecrReference(options.destination!).repository;
  let what: string;
  if (layerSizes === undefined) {
    what = options.from!;
  } else {
    const total = layerSizes.reduce((a, b) => a + b, 0);
    const same = layerSizes.every((s) => s === layerSizes[0]);
    const shape =
      layerSizes.length === 1
        ? `1 × ${sizeLabel(total)}`
        : same
          ? `${layerSizes.length} × ${sizeLabel(layerSizes[0]!)}`
          : `${layerSizes.length} layers, ${sizeLabel(total)}`;
    what = `${shape} ${content} layer${layerSizes.length === 1 ? "" : "s"}`;
  }
  return mode === "push" ? `${what} → ${where}` : `${what} ← ${where}`;
}
