/**
 * Pull throughput of `ecrx pull` (into an OCI layout) against the local server, next to a plain
 * sequential GET + sha256 of the same blobs from the same server in the same run
 * (baseline-pull-client.ts), and a sweep of the ranged-download settings for the large blob.
 *
 *   npm run build && npx tsx bench/pull.ts [--runs 5] [--scenario 1gib|10x20mib] [--sweep]
 *
 * The server runs in its own process; each client run is a fresh process under /usr/bin/time.
 * MB/s is blob bytes (10^6) per second of transfer, from the clients' own clocks.
 */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { buildBenchLayout } from "../src/bench/layout.js";
import { startLocalServer } from "../src/bench/local-server.js";
import { median } from "../src/bench/stats.js";
import { pull } from "../src/pull.js";
import { clientRow, ECRX, ROOT, measure, type ClientRow } from "./lib/processes.js";

const MiB = 1024 * 1024;
const SCENARIOS: Record<string, number[]> = {
  "1gib": [1024 * MiB],
  "10x20mib": Array.from({ length: 10 }, () => 20 * MiB),
};

const { values } = parseArgs({
  options: {
    runs: { type: "string", default: "5" },
    scenario: { type: "string", multiple: true },
    sweep: { type: "boolean", default: false },
  },
});
const runs = Number(values.runs);
const scenarios = values.scenario ?? Object.keys(SCENARIOS);

const work = await mkdtemp(join(tmpdir(), "ecrx-bench-pull-"));
const server = await startLocalServer({ cli: ECRX });
const env = {
  ...process.env,
  ...server.env,
  ECRX_CACHE_DIR: join(work, "cache"),
  AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
};
const rows: ClientRow[] = [];
const sweep: { rangeSize: number; parallel: number; mbps: number }[] = [];
try {
  for (const scenario of scenarios) {
    const sizes = SCENARIOS[scenario]!;
    const layout = await buildBenchLayout(join(work, scenario), sizes, {
      content: "random",
      seed: Date.now(),
    });
    const repo = `pull-${scenario}`;
    const pushed = await measure(
      "node",
      [
        ECRX,
        "push",
        layout.reference,
        `${server.registryHost}/${repo}:bench`,
        "--create-repo",
        "--compression",
        "keep",
        "-q",
      ],
      env,
    );
    if (pushed.code !== 0) throw new Error(`push failed: ${pushed.stderr}`);
    await rm(layout.path, { recursive: true, force: true });
    for (let run = 0; run <= runs; run++) {
      const out = join(work, `out-${scenario}-${run}`);
      const ecrx = await measure(
        "node",
        [ECRX, "pull", `${server.registryHost}/${repo}:bench`, `oci:${out}:bench`, "--json"],
        env,
      );
      if (ecrx.code !== 0) throw new Error(`ecrx pull failed: ${ecrx.stderr}`);
      await rm(out, { recursive: true, force: true });
      const summary = JSON.parse(ecrx.stdout.trim().split("\n").at(-1)!) as { seconds: number };
      const baseline = await measure(
        "node",
        [
          join(ROOT, "node_modules/tsx/dist/cli.mjs"),
          join(ROOT, "bench/baseline-pull-client.ts"),
          server.url,
          repo,
          "bench",
        ],
        env,
      );
      if (baseline.code !== 0) throw new Error(`baseline failed: ${baseline.stderr}`);
      const base = JSON.parse(baseline.stdout.trim()) as { seconds: number };
      if (run === 0) continue; // warm-up
      rows.push(
        clientRow("ecrx", scenario, layout.bytes, summary.seconds, ecrx),
        clientRow("baseline", scenario, layout.bytes, base.seconds, baseline),
      );
      process.stderr.write(
        `${scenario} run ${run}: ecrx ${rows.at(-2)!.mbps.toFixed(0)} MB/s, baseline ${rows.at(-1)!.mbps.toFixed(0)} MB/s\n`,
      );
    }
    if (values.sweep && scenario === "1gib") {
      // In-process: only the wall time matters here. Each setting 3 times, median.
      const aws = { region: "us-east-1", credentials: { accessKeyId: "test", secretAccessKey: "test" } };
      // One connection for the whole blob first (the range size means nothing then), then ranges.
      const settings: [number, number][] = [[8 * MiB, 1]];
      for (const rangeSize of [4 * MiB, 8 * MiB, 16 * MiB, 32 * MiB]) {
        for (const parallel of [2, 4, 8]) settings.push([rangeSize, parallel]);
      }
      for (const [rangeSize, parallel] of settings) {
        const speeds: number[] = [];
        for (let i = 0; i < 3; i++) {
          const out = join(work, `sweep-${rangeSize}-${parallel}-${i}`);
          const result = await pull(`${server.registryHost}/${repo}:bench`, `oci:${out}:bench`, {
            aws,
            download: {
              rangeThreshold: parallel === 1 ? Number.MAX_SAFE_INTEGER : rangeSize,
              rangeSize,
              parallel,
            },
          });
          speeds.push(layout.bytes / 1e6 / result.seconds);
          await rm(out, { recursive: true, force: true });
        }
        sweep.push({ rangeSize: rangeSize / MiB, parallel, mbps: median(speeds) });
        process.stderr.write(
          `sweep range ${rangeSize / MiB} MiB x ${parallel}: ${median(speeds).toFixed(0)} MB/s\n`,
        );
      }
    }
  }
} finally {
  await server.stop();
  await rm(work, { recursive: true, force: true });
}

const summary = scenarios.map((scenario) => {
  const of = (client: string, key: "mbps" | "cpuSecondsPerGiB" | "maxRssMB") =>
    median(rows.filter((r) => r.client === client && r.scenario === scenario).map((r) => r[key]));
  return {
    scenario,
    ecrxMBps: of("ecrx", "mbps"),
    baselineMBps: of("baseline", "mbps"),
    ratio: of("ecrx", "mbps") / of("baseline", "mbps"),
    ecrxCpuSecondsPerGiB: of("ecrx", "cpuSecondsPerGiB"),
    ecrxMaxRssMB: of("ecrx", "maxRssMB"),
  };
});
console.table(
  summary.map((s) =>
    Object.fromEntries(
      Object.entries(s).map(([k, v]) => [k, typeof v === "number" ? Number(v.toFixed(2)) : v]),
    ),
  ),
);
if (sweep.length) console.table(sweep.map((s) => ({ ...s, mbps: Number(s.mbps.toFixed(0)) })));
await mkdir(join(ROOT, "bench/results"), { recursive: true });
await writeFile(
  join(ROOT, "bench/results/pull.json"),
  JSON.stringify({ runs, date: new Date().toISOString(), rows, summary, sweep }, null, 2),
);
