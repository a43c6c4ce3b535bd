/**
 * Push throughput and peak memory of `ecrx push` against the local server, next to a minimal
 * client sending the same bytes to the same server in the same run (baseline-push-client.ts).
 *
 *   npm run build && npx tsx bench/push.ts [--runs 5] [--scenario 1gib|10x20mib]
 *
 * Each client run is a fresh process under /usr/bin/time (wall, user+sys CPU, peak RSS) pushing to
 * a fresh `ecrx serve` of its own (child process, data removed after it), so every blob is really
 * sent and no run writes into the memory earlier runs' stored gigabytes left cold (bench/README.md).
 * MB/s is layer bytes (10^6) per second of transfer, from the clients' own clocks (process
 * start-up excluded); CPU and RSS are of the whole client process.
 */
import { mkdtemp, rm, writeFile, mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { buildBenchLayout } from "../src/bench/layout.js";
import { startLocalServer, type LocalServer } from "../src/bench/local-server.js";
import { median } from "../src/bench/stats.js";
import { clientRow, ECRX, ROOT, measure, type ClientRow } from "./lib/processes.js";

const MiB = 1024 * 1024;
const SCENARIOS: Record<string, number[]> = {
  "1gib": [1024 * MiB],
  "10x20mib": Array.from({ length: 10 }, () => 20 * MiB),
};

const { values } = parseArgs({
  options: { runs: { type: "string", default: "5" }, scenario: { type: "string", multiple: true } },
});
const runs = Number(values.runs);
const scenarios = values.scenario ?? Object.keys(SCENARIOS);

const work = await mkdtemp(join(tmpdir(), "ecrx-bench-"));
/**
 * A fresh server for one client run, with the environment a client needs for it; stopped (and
 * its data removed) when `run` is done.
 */
async function withServer<T>(run: (server: LocalServer, env: NodeJS.ProcessEnv) => Promise<T>): Promise<T> {
  const server = await startLocalServer({ cli: ECRX });
  try {
    return await run(server, { ...process.env, ...server.env, ECRX_CACHE_DIR: join(work, "cache") });
  } finally {
    await server.stop();
  }
}
// A new seed for each run of each invocation: every push finds its blobs missing.
const seed = Date.now() % 2 ** 30;
const rows: ClientRow[] = [];
try {
  for (const scenario of scenarios) {
    const sizes = SCENARIOS[scenario];
    if (!sizes) throw new Error(`unknown scenario ${scenario}`);
    for (let run = 0; run <= runs; run++) {
      // Fresh bytes for each run; run 0 is the warm-up and is not counted.
      const layout = await buildBenchLayout(join(work, `${scenario}-${run}`), sizes, {
        content: "random",
        seed: seed + scenarios.indexOf(scenario) * 1000 + run,
      });
      const ecrx = await withServer((server, env) =>
        measure(
          "node",
          [
            ECRX,
            "push",
            `oci:${layout.path}:bench`,
            `${server.registryHost}/ecrx-${scenario}-${run}:bench`,
            "--create-repo",
            "--compression",
            "keep",
            "--json",
          ],
          env,
        ),
      );
      if (ecrx.code !== 0) throw new Error(`ecrx push failed: ${ecrx.stderr}`);
      const summary = JSON.parse(ecrx.stdout.trim().split("\n").at(-1)!) as {
        seconds: number;
        bytesSent: number;
      };

      const baseline = await withServer((server, env) =>
        measure(
          "node",
          [
            join(ROOT, "node_modules/tsx/dist/cli.mjs"),
            join(ROOT, "bench/baseline-push-client.ts"),
            server.url,
            `baseline-${scenario}-${run}`,
            layout.path,
          ],
          env,
        ),
      );
      if (baseline.code !== 0) throw new Error(`baseline failed: ${baseline.stderr}`);
      const base = JSON.parse(baseline.stdout.trim()) as { seconds: number; bytes: number };
      await rm(layout.path, { recursive: true, force: true });
      if (run === 0) continue;
      rows.push(
        clientRow("ecrx", scenario, layout.bytes, summary.seconds, ecrx),
        clientRow("baseline", scenario, layout.bytes, base.seconds, baseline),
      );
      process.stderr.write(
        `${scenario} run ${run}: ecrx ${rows.at(-2)!.mbps.toFixed(0)} MB/s, baseline ${rows.at(-1)!.mbps.toFixed(0)} MB/s\n`,
      );
    }
  }
} finally {
  await rm(work, { recursive: true, force: true });
}

const summary = scenarios.map((scenario) => {
  const of = (client: string, key: keyof ClientRow) =>
    median(rows.filter((r) => r.client === client && r.scenario === scenario).map((r) => r[key] as number));
  return {
    scenario,
    ecrxMBps: of("ecrx", "mbps"),
    baselineMBps: of("baseline", "mbps"),
    ratio: of("ecrx", "mbps") / of("baseline", "mbps"),
    ecrxCpuSecondsPerGiB: of("ecrx", "cpuSecondsPerGiB"),
    baselineCpuSecondsPerGiB: of("baseline", "cpuSecondsPerGiB"),
    ecrxMaxRssMB: of("ecrx", "maxRssMB"),
    baselineMaxRssMB: of("baseline", "maxRssMB"),
  };
});
console.table(
  summary.map((s) =>
    Object.fromEntries(
      Object.entries(s).map(([k, v]) => [k, typeof v === "number" ? Number(v.toFixed(2)) : v]),
    ),
  ),
);
await mkdir(join(ROOT, "bench/results"), { recursive: true });
await writeFile(
  join(ROOT, "bench/results/push.json"),
  JSON.stringify({ runs, date: new Date().toISOString(), rows, summary }, null, 2),
);
