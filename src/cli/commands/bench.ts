import { writeFile } from "node:fs/promises";
import { InvalidArgumentError, Option, type Command } from "commander";
import { bench, type BenchReport, type PointReport, type RunEvent } from "../../bench/bench.js";
import { renderLineChart, throughputChart } from "../../bench/chart.js";
import type { BenchContent } from "../../bench/layout.js";
import type { Spread } from "../../bench/stats.js";
import {
  parseCountList,
  parsePartSizeList,
  parseSizeList,
  sizeLabel,
  splitSize,
  varyingKeys,
  type SweepPoint,
} from "../../bench/sweep.js";
import { DEFAULT_CONCURRENCY, DEFAULT_UPLOAD_CONCURRENCY } from "../../transfer/engine.js";
import { READ_AHEAD } from "../../transports/ecr/layer-upload.js";
import { DOWNLOAD_DEFAULTS } from "../../transports/http/blob-download.js";
import { networkProfile } from "../../emulator/network.js";
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
  concurrency?: number[];
  readAhead: number[];
  network?: string[];
  pull?: boolean;
  rangeSize?: number[];
  rangeParallel?: number[];
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
        "destination it pushes to `ecrx serve` started in a child process, a fresh one for every push; with one it pushes to that " +
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
      new Option(
        "--concurrency <list>",
        `blobs in flight to sweep (default ${DEFAULT_UPLOAD_CONCURRENCY}, with --pull ${DEFAULT_CONCURRENCY}: the commands' defaults)`,
      ).argParser(listArgument((v) => parseCountList(v, "--concurrency", 256))),
    )
    .addOption(
      new Option(
        "--read-ahead <list>",
        "UploadLayerPart requests prepared ahead of the one in flight, to sweep",
      )
        .argParser(listArgument((v) => parseCountList(v, "--read-ahead", READ_AHEAD.max, 0)))
        .default([READ_AHEAD.default], String(READ_AHEAD.default)),
    )
    .addOption(
      new Option(
        "--network <list>",
        "network profiles of the local server to sweep (see `ecrx serve --network`), e.g. in-region,far",
      ).argParser(listArgument(parseNetworkList)),
    )
    .option("--pull", "measure pulls: push the image once, then pull it into a new OCI layout each run")
    .addOption(
      new Option(
        "--range-size <list>",
        `with --pull: Range request sizes of big blobs to sweep (default ${sizeLabel(DOWNLOAD_DEFAULTS.rangeSize).replace(" ", "")})`,
      ).argParser(listArgument((v) => parseSizeList(v, "range size"))),
    )
    .addOption(
      new Option(
        "--range-parallel <list>",
        `with --pull: Range requests in flight per blob to sweep (default ${DOWNLOAD_DEFAULTS.parallel})`,
      ).argParser(listArgument((v) => parseCountList(v, "--range-parallel", 64))),
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
  $ ecrx bench --from docker-archive:app.tar --concurrency 2,4,8
  $ ecrx bench --network in-region,cross-region,far --layers 10 --size 200MiB --concurrency 1,4,10 --chart net.svg
  $ ecrx bench --network far --read-ahead 0,1,2 --part-size 5MiB,10MiB --concurrency 1
  $ ecrx bench --pull --network cross-region --range-size 8MiB,16MiB,32MiB --range-parallel 1,2,4,8`,
  );
  command.action(async (destination: string | undefined, flags: BenchFlags) => {
    const shape = layerShape(flags);
    const report = await withInterrupt((signal) =>
      bench({
        ...(destination === undefined ? {} : { destination }),
        ...shape,
        partSizes: flags.partSize,
        ...(flags.concurrency === undefined ? {} : { concurrencies: flags.concurrency }),
        readAheads: flags.readAhead,
        ...(flags.network === undefined ? {} : { networks: flags.network }),
        ...pullShape(flags),
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

/** --pull and its range lists: the range flags mean nothing to a push sweep. */
function pullShape(flags: BenchFlags): { pull?: { rangeSizes: number[]; rangeParallels: number[] } } {
  if (!flags.pull) {
    const stray =
      flags.rangeSize !== undefined
        ? "--range-size"
        : flags.rangeParallel !== undefined
          ? "--range-parallel"
          : undefined;
    if (stray !== undefined)
      throw new EcrxError("USAGE", `${stray} tunes pulls: add --pull to benchmark pulls`);
    return {};
  }
  return {
    pull: {
      rangeSizes: flags.rangeSize ?? [DOWNLOAD_DEFAULTS.rangeSize],
      rangeParallels: flags.rangeParallel ?? [DOWNLOAD_DEFAULTS.parallel],
    },
  };
}

/** Profile names, checked against the server's table so that a typo fails before any work. */
function parseNetworkList(text: string): string[] {
  const names = text.split(",").map((s) => s.trim());
  for (const name of names) networkProfile(name);
  return names;
}

function kebab(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/** The settings of a point, as the progress lines and failures name it. */
function settingsLabel(point: SweepPoint): string {
  const parts = point.network === undefined ? [] : [point.network];
  if (point.rangeSize !== undefined) {
    parts.push(
      `concurrency ${point.concurrency}`,
      `${sizeLabel(point.rangeSize)} ranges`,
      `${point.rangeParallel} at once`,
    );
  } else {
    parts.push(`${sizeLabel(point.partSize)} parts`);
    if (point.readAhead !== READ_AHEAD.default) parts.push(`read-ahead ${point.readAhead}`);
    parts.push(`concurrency ${point.concurrency}`);
  }
  return parts.join(", ");
}

function progressLine(event: RunEvent): string {
  const width = String(event.total).length;
  const prefix = `[${String(event.index + 1).padStart(width)}/${event.total}] ${settingsLabel(event.point)}`;
  if (event.type === "run-start") return "";
  const r = event.record;
  const which = r.warmup ? "warm-up" : `run ${r.run}`;
  if (!r.ok) return `${prefix}, ${which}: failed: ${r.error.message}\n`;
  const detail =
    r.parts > 0
      ? `${r.parts} parts, ${r.blobsSent} blobs sent, ${r.blobsSkipped} skipped`
      : `${r.blobsSent} blobs downloaded`;
  return `${prefix}, ${which}: ${r.mbps.toFixed(1)} MB/s (${formatBytes(r.layerBytes)} in ${r.seconds.toFixed(2)} s, ${detail})\n`;
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

/**
 * One row per point: the settings that make it (a network or read-ahead column only when the
 * sweep has them), then its figures; a pull has no parts to count.
 */
function pointTable(report: BenchReport): string {
  const pull = report.scenario.mode === "pull";
  const varying = varyingKeys(report.points);
  const columns: { header: string; right: boolean; cell: (p: PointReport) => string }[] = [];
  const add = (header: string, right: boolean, cell: (p: PointReport) => string) =>
    columns.push({ header, right, cell });
  if (report.points.some((p) => p.network !== undefined))
    add("network", false, (p) => p.network ?? "loopback");
  if (pull) {
    add("concurrency", true, (p) => String(p.concurrency));
    add("range size", true, (p) => sizeLabel(p.rangeSize!));
    add("ranges at once", true, (p) => String(p.rangeParallel));
  } else {
    add("part size", false, (p) => sizeLabel(p.partSize));
    if (varying.has("readAhead") || report.points.some((p) => p.readAhead !== READ_AHEAD.default)) {
      add("read-ahead", true, (p) => String(p.readAhead));
    }
    add("concurrency", true, (p) => String(p.concurrency));
  }
  add("MB/s", true, (p) => withRange(p.summary.mbps, 1));
  if (!pull) {
    add("parts/s", true, (p) => fixed(p.summary.partsPerSecond.median, 1));
    add("UploadLayerPart ms p50/p95/p99", true, (p) => {
      const l = p.summary.partLatencyMs;
      return [l.p50, l.p95, l.p99].map((x) => fixed(x, 0)).join(" / ");
    });
  }
  add("CPU s/GiB", true, (p) => fixed(p.summary.cpuSecondsPerGiB.median, 2));
  add("peak RSS", true, (p) =>
    Number.isFinite(p.summary.maxRssBytes.median) ? formatBytes(p.summary.maxRssBytes.median) : "-",
  );
  add("retries", true, (p) => String(p.summary.retries));
  add("throttles", true, (p) => String(p.summary.throttles));
  return table(
    columns.map((c) => c.header),
    report.points.map((p) => columns.map((c) => c.cell(p))),
    columns.map((c) => c.right),
  );
}

/** The terminal report: what was measured, under which conditions, and one row per point. */
export function renderReport(report: BenchReport): string {
  const s = report.scenario;
  const load = (l: number[]) => l.map((x) => x.toFixed(2)).join(" ");
  const lines = [
    `ecrx bench: ${s.title}`,
    `  blobs: ${s.freshnessNote}`,
    `  ${s.warmups} warm-up + ${s.runs} measured run(s) per point, each ${s.mode} in a fresh process${s.mode === "push" && s.target === "local" ? " to a fresh local server" : ""}; medians, (min..max)`,
    `  machine: ${s.machine.cpus} x ${s.machine.model}, node ${s.machine.node}; load average ${load(s.machine.loadAverage.start)} at start, ${load(s.machine.loadAverage.end)} at end`,
    "",
    pointTable(report),
    "",
  ];
  const skipped = report.points.reduce((n, p) => n + p.summary.blobsSkipped, 0);
  if (skipped > 0)
    lines.push(`warning: ${skipped} blob(s) were already there and skipped: those runs are too fast`);
  for (const p of report.points) {
    for (const r of p.runs) {
      if (!r.ok) {
        lines.push(
          `failed: ${settingsLabel(p)}, ${r.warmup ? "warm-up" : `run ${r.run}`}: ${r.error.message}`,
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
