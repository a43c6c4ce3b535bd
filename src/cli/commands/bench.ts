import { writeFile } from "node:fs/promises";
import { InvalidArgumentError, Option, type Command } from "commander";
import { bench, type BenchReport, type RunEvent } from "../../bench/bench.js";
import { renderLineChart, throughputChart } from "../../bench/chart.js";
import type { BenchContent } from "../../bench/layout.js";
import type { Spread } from "../../bench/stats.js";
import { parseCountList, parsePartSizeList, parseSizeList, sizeLabel, splitSize } from "../../bench/sweep.js";
import { EcrxError } from "../../errors.js";
import { MiB } from "../../transfer/part-size.js";
import {
  addAwsOptions,
  awsOptionsFrom,
  positiveInt,
  sizeArgument,
  withInterrupt,
  type AwsFlags,
} from "../common.js";
import { formatBytes } from "../format.js";

interface BenchFlags extends AwsFlags {
  size?: number;
  layers?: number;
  layerSizes?: number[];
  content?: BenchContent;
  partSize: number[];
  concurrency: number[];
  runs: number;
  seed?: number;
  json?: boolean;
  chart?: string;
  keep?: boolean;
  from?: string;
}

/** Commander parsers for the list flags: our USAGE errors become commander's usage errors. */
function listArgument<T>(parse: (text: string) => T) {
  return (value: string): T => {
    try {
      return parse(value);
    } catch (err) {
      throw new InvalidArgumentError(err instanceof Error ? err.message : String(err));
    }
  };
}

export function registerBench(program: Command): void {
  const command = program
    .command("bench")
    .summary(
      "measure push throughput into ECR or a local server, over a sweep of part sizes and concurrencies",
    )
    .description(
      "Push generated layers (or --from an image) again and again and report throughput (MB/s of layer bytes), " +
        "UploadLayerPart rate and latency, client CPU per GiB, peak memory, retries and throttles. Without a " +
        "destination it pushes to `ecrx serve` started in a child process; with one it pushes to that " +
        "repository and deletes what it pushed afterwards (unless --keep). Every combination of --part-size and " +
        "--concurrency is a point: one warm-up run, then --runs measured runs, each push in a fresh process so " +
        "that its CPU and memory are its own. Every run's blobs are new: generated content gets a new seed per " +
        "run; a --from image goes to a new repository per run (created and deleted by the benchmark).",
    )
    .argument(
      "[destination]",
      "<account>.dkr.ecr.<region>.amazonaws.com/<repo> (or a local server's ...localhost:<port>/<repo>); default: a local server",
    )
    .addOption(
      new Option("--size <size>", "total bytes of generated layers (default 1GiB)").argParser(sizeArgument),
    )
    .addOption(
      new Option("--layers <n>", "layers the --size is split into (default 1)").argParser(
        positiveInt("--layers", 1000),
      ),
    )
    .addOption(
      new Option(
        "--layer-sizes <list>",
        "explicit layer sizes instead of --size/--layers, e.g. 20MiB,20MiB",
      ).argParser(listArgument((v) => parseSizeList(v, "layer size"))),
    )
    .addOption(
      new Option(
        "--content <kind>",
        "random: incompressible layers pushed as they are; compressible: tar-like text layers gzip-compressed on the way (default random)",
      ).choices(["random", "compressible"]),
    )
    .addOption(
      new Option("--part-size <list>", "UploadLayerPart sizes to sweep, 5MiB..20MiB")
        .argParser(listArgument(parsePartSizeList))
        .default([10 * MiB], "10MiB"),
    )
    .addOption(
      new Option("--concurrency <list>", "blobs in flight to sweep")
        .argParser(listArgument((v) => parseCountList(v, "--concurrency", 256)))
        .default([4], "4"),
    )
    .addOption(
      new Option("--runs <n>", "measured runs per point, after one warm-up")
        .argParser(positiveInt("--runs", 1000))
        .default(5),
    )
    .addOption(
      new Option(
        "--seed <n>",
        "seed of the generated content, to repeat a benchmark (default: random)",
      ).argParser(positiveInt("--seed", 2 ** 31 - 1)),
    )
    .option("--from <source>", "benchmark this image (any push source) instead of generated layers")
    .option("--keep", "leave what was pushed to the destination in place")
    .option("--json", "print every run's figures and the summaries as JSON on stdout")
    .option("--chart <file.svg>", "write an SVG chart of MB/s against concurrency, one line per part size");
  addAwsOptions(command);
  command.addHelpText(
    "after",
    `
Examples:
  $ ecrx bench                                                 # 1 GiB, one layer, to a local server
  $ ecrx bench --size 200MiB --layers 10 --part-size 5MiB,10MiB,20MiB --concurrency 1,2,4,8 --chart sweep.svg
  $ ecrx bench --layer-sizes 100MiB,20MiB,5MiB --content compressible --runs 3 --json > bench.json
  $ ecrx bench 123456789012.dkr.ecr.eu-west-1.amazonaws.com/ecrx-bench --size 1GiB --concurrency 1,4
  $ ecrx bench --from docker-archive:app.tar --concurrency 2,4,8`,
  );
  command.action(async (destination: string | undefined, flags: BenchFlags) => {
    const shape = layerShape(flags);
    const report = await withInterrupt((signal) =>
      bench({
        ...(destination === undefined ? {} : { destination }),
        ...shape,
        partSizes: flags.partSize,
        concurrencies: flags.concurrency,
        runs: flags.runs,
        ...(flags.seed === undefined ? {} : { seed: flags.seed }),
        keep: flags.keep ?? false,
        aws: awsOptionsFrom(flags),
        onRun: (event) => process.stderr.write(progressLine(event)),
        signal,
      }),
    );
    if (flags.chart !== undefined) await writeFile(flags.chart, renderLineChart(throughputChart(report)));
    process.stdout.write(flags.json ? `${JSON.stringify(report, null, 2)}\n` : renderReport(report));
    if (flags.chart !== undefined) process.stderr.write(`chart: ${flags.chart}\n`);
    if (!report.ok) throw failureOf(report);
  });
}

/** The layer flags as bench options; --from excludes the others, --layer-sizes excludes --size/--layers. */
function layerShape(flags: BenchFlags): { from: string } | { layerSizes: number[]; content: BenchContent } {
  const generated = ["size", "layers", "layerSizes", "content"] as const;
  if (flags.from !== undefined) {
    const clash = generated.find((k) => flags[k] !== undefined);
    if (clash !== undefined) {
      throw new EcrxError(
        "USAGE",
        `--from benchmarks an existing image: it cannot be combined with --${kebab(clash)}`,
      );
    }
    return { from: flags.from };
  }
  if (flags.layerSizes !== undefined && (flags.size !== undefined || flags.layers !== undefined)) {
    throw new EcrxError("USAGE", "give either --layer-sizes or --size/--layers, not both");
  }
  return {
    layerSizes: flags.layerSizes ?? splitSize(flags.size ?? 1024 * MiB, flags.layers ?? 1),
    content: flags.content ?? "random",
  };
}

function kebab(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

function progressLine(event: RunEvent): string {
  const width = String(event.total).length;
  const prefix = `[${String(event.index + 1).padStart(width)}/${event.total}] ${sizeLabel(event.point.partSize)} parts, concurrency ${event.point.concurrency}`;
  if (event.type === "run-start") return "";
  const r = event.record;
  const which = r.warmup ? "warm-up" : `run ${r.run}`;
  if (!r.ok) return `${prefix}, ${which}: failed: ${r.error.message}\n`;
  return (
    `${prefix}, ${which}: ${r.mbps.toFixed(1)} MB/s (${formatBytes(r.layerBytes)} in ${r.seconds.toFixed(2)} s, ` +
    `${r.parts} parts, ${r.blobsSent} blobs sent, ${r.blobsSkipped} skipped)\n`
  );
}

function fixed(n: number, digits: number): string {
  return Number.isFinite(n) ? n.toFixed(digits) : "-";
}

function withRange(s: Spread, digits: number): string {
  return `${fixed(s.median, digits)} (${fixed(s.min, digits)}..${fixed(s.max, digits)})`;
}

/** Columns padded to their widest cell; numbers right-aligned. */
function table(header: string[], rows: string[][], rightAligned: boolean[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (rightAligned[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd();
  return [line(header), ...rows.map(line)].join("\n");
}

/** The terminal report: what was measured, under which conditions, and one row per point. */
export function renderReport(report: BenchReport): string {
  const s = report.scenario;
  const load = (l: number[]) => l.map((x) => x.toFixed(2)).join(" ");
  const lines = [
    `ecrx bench: ${s.title}`,
    `  blobs: ${s.freshnessNote}`,
    `  ${s.warmups} warm-up + ${s.runs} measured run(s) per point, each push in a fresh process; medians, (min..max)`,
    `  machine: ${s.machine.cpus} x ${s.machine.model}, node ${s.machine.node}; load average ${load(s.machine.loadAverage.start)} at start, ${load(s.machine.loadAverage.end)} at end`,
    "",
    table(
      [
        "part size",
        "concurrency",
        "MB/s",
        "parts/s",
        "UploadLayerPart ms p50/p95/p99",
        "CPU s/GiB",
        "peak RSS",
        "retries",
        "throttles",
      ],
      report.points.map((p) => {
        const m = p.summary;
        return [
          sizeLabel(p.partSize),
          String(p.concurrency),
          withRange(m.mbps, 1),
          fixed(m.partsPerSecond.median, 1),
          [m.partLatencyMs.p50, m.partLatencyMs.p95, m.partLatencyMs.p99].map((x) => fixed(x, 0)).join(" / "),
          fixed(m.cpuSecondsPerGiB.median, 2),
          Number.isFinite(m.maxRssBytes.median) ? formatBytes(m.maxRssBytes.median) : "-",
          String(m.retries),
          String(m.throttles),
        ];
      }),
      [false, true, true, true, true, true, true, true, true],
    ),
    "",
  ];
  const skipped = report.points.reduce((n, p) => n + p.summary.blobsSkipped, 0);
  if (skipped > 0)
    lines.push(`warning: ${skipped} blob(s) were already there and skipped: those runs are too fast`);
  for (const p of report.points) {
    for (const r of p.runs) {
      if (!r.ok) {
        lines.push(
          `failed: ${sizeLabel(p.partSize)} parts, concurrency ${p.concurrency}, ${r.warmup ? "warm-up" : `run ${r.run}`}: ${r.error.message}`,
        );
      }
    }
  }
  if (report.skippedRuns > 0)
    lines.push(`not run: ${report.skippedRuns} run(s), after repeated failures or an interrupt`);
  lines.push(`cleanup: ${report.cleanup}`);
  return `${lines.join("\n")}\n`;
}

function failureOf(report: BenchReport): EcrxError {
  const firstFailure = report.points.flatMap((p) => p.runs).find((r) => !r.ok);
  const total = report.points.reduce((n, p) => n + p.runs.length, 0) + report.skippedRuns;
  if (firstFailure !== undefined && !firstFailure.ok) {
    return new EcrxError(
      firstFailure.error.code,
      `${report.failures} of ${total} benchmark runs failed; the first: ${firstFailure.error.message}`,
    );
  }
  if (report.cleanupError !== undefined) {
    return new EcrxError(
      report.cleanupError.code,
      `the benchmark could not clean up: ${report.cleanupError.message}`,
    );
  }
  return new EcrxError("INTERNAL", `${report.skippedRuns} benchmark run(s) were not run`);
}
