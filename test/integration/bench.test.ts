/**
 * `ecrx bench` as a user runs it (the built binary): a small sweep against its own child server
 * with --json and --chart, then against an in-process server given as the destination, which must
 * be left as it was found (or keep what was pushed with --keep).
 */
import { mkdtemp, open, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  CreateRepositoryCommand,
  DescribeRepositoriesCommand,
  ListImagesCommand,
  type ECRClient,
} from "@aws-sdk/client-ecr";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BenchReport } from "../../src/bench/bench.js";
import { buildBenchLayout } from "../../src/bench/layout.js";
import { serve, type RunningServer } from "../../src/emulator/server.js";
import { MiB } from "../../src/transfer/part-size.js";
import { ensureBuilt, runCli } from "../helpers/cli.js";
import { ecrClient } from "../helpers/emulator-clients.js";

let work: string;
let server: RunningServer;
let ecr: ECRClient;

function env(): Record<string, string> {
  return {
    HOME: work,
    AWS_CONFIG_FILE: join(work, "no-aws-config"),
    AWS_SHARED_CREDENTIALS_FILE: join(work, "no-aws-credentials"),
    AWS_EC2_METADATA_DISABLED: "true",
    AWS_ACCESS_KEY_ID: server.env.AWS_ACCESS_KEY_ID!,
    AWS_SECRET_ACCESS_KEY: server.env.AWS_SECRET_ACCESS_KEY!,
  };
}

async function images(repositoryName: string): Promise<number> {
  const out = await ecr.send(new ListImagesCommand({ repositoryName }));
  return out.imageIds?.length ?? 0;
}

async function repositoryExists(repositoryName: string): Promise<boolean> {
  try {
    await ecr.send(new DescribeRepositoriesCommand({ repositoryNames: [repositoryName] }));
    return true;
  } catch (err) {
    if ((err as Error).name === "RepositoryNotFoundException") return false;
    throw err;
  }
}

beforeAll(async () => {
  ensureBuilt();
  work = await mkdtemp(join(tmpdir(), "ecrx-bench-test-"));
  server = await serve({ port: 0 });
  ecr = ecrClient(server);
}, 180_000);

afterAll(async () => {
  ecr?.destroy();
  await server?.close();
  if (work) await rm(work, { recursive: true, force: true });
});

describe("ecrx bench", () => {
  it("sweeps part sizes x concurrencies against its own server: figures for every point, every blob sent, a chart", async () => {
    const chart = join(work, "out.svg");
    const args = ["bench", "--size", "24MiB", "--layers", "2", "--part-size", "5MiB,10MiB"];
    const run = await runCli(
      [...args, "--concurrency", "1,2", "--runs", "2", "--json", "--chart", chart],
      env(),
    );
    expect(run.code, run.stderr).toBe(0);
    const report = JSON.parse(run.stdout) as BenchReport;
    expect(report.ok).toBe(true);
    expect(report.scenario.freshness).toBe("new-content");
    expect(report.scenario.target).toBe("local");
    expect(report.points.map((p) => [p.partSize / MiB, p.concurrency])).toEqual([
      [5, 1],
      [5, 2],
      [10, 1],
      [10, 2],
    ]);
    const digests = new Set<string>();
    const servers = new Set<string>();
    for (const point of report.points) {
      expect(point.runs).toHaveLength(3);
      expect(point.runs.map((r) => r.warmup)).toEqual([true, false, false]);
      // Two 12 MiB layers in parts of this size, and the config in one part.
      const expectedParts = 2 * Math.ceil((12 * MiB) / point.partSize) + 1;
      for (const r of point.runs) {
        if (!r.ok) throw new Error(`run failed: ${r.error.message}`);
        expect(r.blobsSent).toBe(3);
        expect(r.blobsSkipped).toBe(0);
        expect(r.layerBytes).toBe(24 * MiB);
        expect(r.parts).toBe(expectedParts);
        expect(r.partLatenciesMs).toHaveLength(expectedParts);
        expect(r.partsPerSecond).toBeCloseTo(r.parts / r.seconds, 6);
        expect(r.mbps).toBeCloseTo(r.layerBytes / 1e6 / r.seconds, 6);
        expect(r.cpuUserSeconds + r.cpuSystemSeconds).toBeGreaterThan(0);
        expect(r.maxRssBytes).toBeGreaterThan(20 * MiB);
        digests.add(r.digest);
        servers.add(r.repository.split("/")[0]!);
      }
      const s = point.summary;
      expect(s.runs).toBe(2);
      expect(s.mbps.median).toBeGreaterThan(0);
      expect(s.mbps.min).toBeLessThanOrEqual(s.mbps.median);
      expect(s.mbps.max).toBeGreaterThanOrEqual(s.mbps.median);
      expect(s.partsPerSecond.median).toBeGreaterThan(0);
      expect(s.partLatencyMs.p50).toBeGreaterThan(0);
      expect(s.partLatencyMs.p99).toBeGreaterThanOrEqual(s.partLatencyMs.p95);
      expect(s.partLatencyMs.p95).toBeGreaterThanOrEqual(s.partLatencyMs.p50);
      expect(s.cpuSecondsPerGiB.median).toBeGreaterThan(0);
      expect(s.blobsSkipped).toBe(0);
    }
    // New content every run: 12 different images, each pushed to a server of its own (its port).
    expect(digests.size).toBe(12);
    expect(servers.size).toBe(12);
    const svg = await readFile(chart, "utf8");
    expect(svg).toMatch(/^<svg /);
    expect(svg.match(/<polyline /g)).toHaveLength(2);
    expect(run.stderr).toMatch(/\[12\/12\] 10 MiB parts, concurrency 2, run 2: [\d.]+ MB\/s/);
  }, 60_000);

  it("sweeps pulls over range sizes x ranges in flight: the image pushed once, pulled whole by every run", async () => {
    const chart = join(work, "pull.svg");
    const run = await runCli(
      [
        "bench",
        "--pull",
        "--size",
        "40MiB",
        "--range-size",
        "8MiB,16MiB",
        "--range-parallel",
        "1,2",
        "--runs",
        "1",
        "--json",
        "--chart",
        chart,
      ],
      env(),
    );
    expect(run.code, run.stderr).toBe(0);
    const report = JSON.parse(run.stdout) as BenchReport;
    expect(report.ok).toBe(true);
    expect(report.scenario).toMatchObject({ mode: "pull", freshness: "same-image", networks: [null] });
    expect(report.points.map((p) => [p.rangeSize! / MiB, p.rangeParallel])).toEqual([
      [8, 1],
      [8, 2],
      [16, 1],
      [16, 2],
    ]);
    const digests = new Set<string>();
    for (const point of report.points) {
      for (const r of point.runs) {
        if (!r.ok) throw new Error(`run failed: ${r.error.message}`);
        expect(r.layerBytes).toBe(40 * MiB);
        expect(r.parts).toBe(0);
        expect(r.mbps).toBeCloseTo(r.layerBytes / 1e6 / r.seconds, 6);
        digests.add(r.digest);
      }
    }
    // One image, pulled by every run.
    expect(digests.size).toBe(1);
    const svg = await readFile(chart, "utf8");
    expect(svg).toContain("range requests in flight per blob");
    expect(svg.match(/<polyline /g)).toHaveLength(2);
    expect(run.stderr).toMatch(/\[8\/8\] concurrency 4, 16 MiB ranges, 2 at once, run 1: [\d.]+ MB\/s/);
  }, 120_000);

  it("runs each network profile against a local server shaped by it, and refuses what cannot be measured", async () => {
    const run = await runCli(
      ["bench", "--network", "far", "--size", "6MiB", "--part-size", "5MiB", "--runs", "1", "--json"],
      env(),
    );
    expect(run.code, run.stderr).toBe(0);
    const report = JSON.parse(run.stdout) as BenchReport;
    expect(report.scenario.networks).toEqual(["far"]);
    const r = report.points[0]!.runs[1]!;
    if (!r.ok) throw new Error(`run failed: ${r.error.message}`);
    // 6 MiB go as 8.4 MB of base64 over far's 16 MB/s connections, after round trips of 150 ms.
    expect(r.seconds).toBeGreaterThan((6 * MiB * 4) / 3 / 16e6);
    expect(run.stderr).toMatch(/\[2\/2\] far, 5 MiB parts, concurrency 10, run 1/);

    const refusals: [string[], RegExp][] = [
      [["--network", "moon"], /unknown network profile "moon": expected one of .*in-region/],
      [["--range-size", "8MiB"], /--range-size tunes pulls: add --pull/],
      [["--read-ahead", "5"], /--read-ahead "5" must be a whole number from 0 to 4/],
      [[`${server.registryHost}/bench/x`, "--network", "far"], /--network shapes the local server/],
    ];
    for (const [args, message] of refusals) {
      const refused = await runCli(["bench", ...args], env());
      expect(refused.code, refused.stderr).toBe(2);
      expect(refused.stderr).toMatch(message);
    }
  }, 120_000);

  it("pushes to a destination and deletes what it pushed: the images, and the repository it created", async () => {
    const small = ["--size", "6MiB", "--part-size", "5MiB", "--concurrency", "1", "--runs", "1"];
    await ecr.send(new CreateRepositoryCommand({ repositoryName: "bench/existing" }));
    const existing = await runCli(["bench", `${server.registryHost}/bench/existing`, ...small], env());
    expect(existing.code, existing.stderr).toBe(0);
    expect(existing.stdout).toMatch(/cleanup: deleted 2 image\(s\) in .*bench\/existing/);
    expect(await repositoryExists("bench/existing")).toBe(true);
    expect(await images("bench/existing")).toBe(0);

    const created = await runCli(["bench", `${server.registryHost}/bench/new`, ...small], env());
    expect(created.code, created.stderr).toBe(0);
    expect(await repositoryExists("bench/new")).toBe(false);

    const kept = await runCli(
      ["bench", `${server.registryHost}/bench/existing`, ...small, "--keep", "--json"],
      env(),
    );
    expect(kept.code, kept.stderr).toBe(0);
    expect((JSON.parse(kept.stdout) as BenchReport).cleanup).toMatch(/^kept/);
    expect(await images("bench/existing")).toBe(2);
  }, 60_000);

  it("reports each failed run with its error, stops after three in a row, and exits with their code", async () => {
    // An image whose layer does not match its digest: every push of it fails its integrity check.
    const layout = await buildBenchLayout(join(work, "corrupt"), [MiB], { content: "random", seed: 1 });
    const file = await open(layout.layers[0]!.file, "r+");
    await file.write(Buffer.from([0]), 0, 1, 1000);
    await file.close();
    const run = await runCli(
      ["bench", "--from", layout.reference, "--concurrency", "1,2", "--runs", "1"],
      env(),
    );
    expect(run.code, run.stderr).toBe(8);
    const failed = run.stdout.match(/^failed: 10 MiB parts, concurrency \d, (warm-up|run 1): .*digest/gm);
    expect(failed, run.stdout).toHaveLength(3);
    expect(run.stdout).toMatch(/^not run: 1 run\(s\)/m);
    expect(run.stderr).toMatch(/^ecrx: 3 of 4 benchmark runs failed; the first: .*digest/m);
  }, 60_000);
});
