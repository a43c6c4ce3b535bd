import type { BenchReport, PointReport } from "./bench.js";
import { pointLabel, sizeLabel, varyingKeys, type SweepPoint } from "./sweep.js";

/** A line chart: one series per line, each point a median with its range. */
export interface LineChart {
  title: string;
  subtitle: string;
  xLabel: string;
  yLabel: string;
  series: { label: string; points: { x: number; y: number; min: number; max: number }[] }[];
}

/**
 * The benchmark's chart: MB/s against concurrency (push) or ranges in flight (pull), one line per
 * combination of the other settings swept (part size, read-ahead, network profile, range size).
 */
export function throughputChart(report: BenchReport): LineChart {
  const s = report.scenario;
  // x: what a user turns to fill the pipe (blobs in flight for a push, ranges in flight for a
  // pull); one line per combination of the other settings that vary.
  const x: keyof SweepPoint = s.mode === "pull" ? "rangeParallel" : "concurrency";
  const varying = varyingKeys(report.points);
  varying.delete(x);
  const lines = new Map<string, PointReport[]>();
  for (const point of report.points) {
    const label = pointLabel(point, varying);
    lines.set(label, [...(lines.get(label) ?? []), point]);
  }
  return {
    title: `ecrx ${s.mode}: ${s.title}`,
    subtitle:
      `median of ${s.runs} run${s.runs === 1 ? "" : "s"} after ${s.warmups} warm-up; bars: min..max; ` +
      `${s.machine.cpus} CPUs, load average ${s.machine.loadAverage.start[0]?.toFixed(1)}..${s.machine.loadAverage.end[0]?.toFixed(1)}; ${s.startedAt.slice(0, 10)}`,
    xLabel: s.mode === "pull" ? "range requests in flight per blob" : "concurrency (blobs in flight)",
    yLabel: "MB/s of layer bytes",
    series: [...lines].map(([label, points]) => ({
      label:
        label === ""
          ? s.mode === "pull"
            ? `${sizeLabel(points[0]!.rangeSize!)} ranges`
            : `${sizeLabel(points[0]!.partSize)} parts`
          : label,
      points: points.map((p) => ({
        x: p[x] as number,
        y: p.summary.mbps.median,
        min: p.summary.mbps.min,
        max: p.summary.mbps.max,
      })),
    })),
  };
}

const WIDTH = 760;
const HEIGHT = 460;
const PLOT = { left: 78, right: 590, top: 78, bottom: 390 };
const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];

function escapeXml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

/**
 * A font size at most `max` at which `text` fits the chart's width, for a font whose characters
 * are about `widthPerSize` of its size wide (a long title with three network profiles in it).
 */
function fitFontSize(text: string, max: number, widthPerSize: number): number {
  const fits = (WIDTH - 20) / (text.length * widthPerSize);
  return Math.max(9, Math.min(max, Math.floor(fits * 10) / 10));
}

function round(n: number): string {
  return String(Math.round(n * 10) / 10);
}

/** A step of 1, 2 or 5 times a power of ten that cuts 0..max into about five intervals. */
export function niceStep(max: number): number {
  if (!(max > 0) || !Number.isFinite(max)) return 1;
  const raw = max / 5;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const scaled = raw / magnitude;
  return (scaled <= 1 ? 1 : scaled <= 2 ? 2 : scaled <= 5 ? 5 : 10) * magnitude;
}

/**
 * Renders the chart as a standalone SVG document. X is on a log2 scale (concurrency doubles from
 * tick to tick in the usual sweeps), with a tick at every x of the data; y starts at zero. Points
 * without a value (every run failed) are left out of their line.
 */
export function renderLineChart(chart: LineChart): string {
  const xs = [...new Set(chart.series.flatMap((s) => s.points.map((p) => p.x)))].sort((a, b) => a - b);
  const finite = (n: number) => Number.isFinite(n);
  const yMaxData = Math.max(
    0,
    ...chart.series.flatMap((s) => s.points.flatMap((p) => [p.y, p.max].filter(finite))),
  );
  const step = niceStep(yMaxData);
  const yTop = Math.max(step, Math.ceil(yMaxData / step) * step);

  const logMin = Math.log2(xs[0] ?? 1);
  const logMax = Math.log2(xs.at(-1) ?? 1);
  const inset = 24;
  const xAt = (x: number) =>
    logMax === logMin
      ? (PLOT.left + PLOT.right) / 2
      : PLOT.left +
        inset +
        ((Math.log2(x) - logMin) / (logMax - logMin)) * (PLOT.right - PLOT.left - 2 * inset);
  const yAt = (y: number) => PLOT.bottom - (y / yTop) * (PLOT.bottom - PLOT.top);

  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="Helvetica, Arial, sans-serif" font-size="13">`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="#ffffff"/>`,
    `<text x="${WIDTH / 2}" y="28" text-anchor="middle" font-size="${fitFontSize(chart.title, 17, 0.6)}" font-weight="bold">${escapeXml(chart.title)}</text>`,
    `<text x="${WIDTH / 2}" y="50" text-anchor="middle" font-size="${fitFontSize(chart.subtitle, 12, 0.55)}" fill="#555555">${escapeXml(chart.subtitle)}</text>`,
  );

  out.push(`<g class="y-axis">`);
  for (let y = 0; y <= yTop + step / 1e6; y += step) {
    const py = round(yAt(y));
    out.push(
      `<line x1="${PLOT.left}" y1="${py}" x2="${PLOT.right}" y2="${py}" stroke="#e3e3e3"/>`,
      `<text x="${PLOT.left - 8}" y="${py}" dy="4" text-anchor="end">${round(y)}</text>`,
    );
  }
  const yMid = (PLOT.top + PLOT.bottom) / 2;
  out.push(
    `<text x="22" y="${yMid}" text-anchor="middle" transform="rotate(-90 22 ${yMid})">${escapeXml(chart.yLabel)}</text>`,
    `</g>`,
  );

  out.push(`<g class="x-axis">`);
  for (const x of xs) {
    const px = round(xAt(x));
    out.push(
      `<line x1="${px}" y1="${PLOT.bottom}" x2="${px}" y2="${PLOT.bottom + 6}" stroke="#333333"/>`,
      `<text x="${px}" y="${PLOT.bottom + 22}" text-anchor="middle">${x}</text>`,
    );
  }
  out.push(
    `<text x="${(PLOT.left + PLOT.right) / 2}" y="${PLOT.bottom + 50}" text-anchor="middle">${escapeXml(chart.xLabel)}</text>`,
    `</g>`,
    `<line x1="${PLOT.left}" y1="${PLOT.top}" x2="${PLOT.left}" y2="${PLOT.bottom}" stroke="#333333"/>`,
    `<line x1="${PLOT.left}" y1="${PLOT.bottom}" x2="${PLOT.right}" y2="${PLOT.bottom}" stroke="#333333"/>`,
  );

  chart.series.forEach((series, i) => {
    const color = COLORS[i % COLORS.length]!;
    const points = series.points.filter((p) => finite(p.y)).sort((a, b) => a.x - b.x);
    out.push(`<g class="series" data-label="${escapeXml(series.label)}">`);
    // Ranges of different lines at one x side by side, so that none hides another.
    const dodge = (i - (chart.series.length - 1) / 2) * 7;
    for (const p of points.filter((q) => finite(q.min) && finite(q.max) && q.max > q.min)) {
      const px = round(xAt(p.x) + dodge);
      out.push(
        `<line class="range" x1="${px}" y1="${round(yAt(p.min))}" x2="${px}" y2="${round(yAt(p.max))}" stroke="${color}" stroke-opacity="0.45" stroke-width="5" stroke-linecap="round"/>`,
      );
    }
    out.push(
      `<polyline points="${points.map((p) => `${round(xAt(p.x))},${round(yAt(p.y))}`).join(" ")}" fill="none" stroke="${color}" stroke-width="2.5"/>`,
    );
    for (const p of points) {
      out.push(`<circle cx="${round(xAt(p.x))}" cy="${round(yAt(p.y))}" r="4" fill="${color}"/>`);
    }
    out.push(`</g>`);
  });

  out.push(`<g class="legend">`);
  chart.series.forEach((series, i) => {
    const color = COLORS[i % COLORS.length]!;
    const y = PLOT.top + 10 + i * 24;
    out.push(
      `<line x1="${PLOT.right + 20}" y1="${y}" x2="${PLOT.right + 48}" y2="${y}" stroke="${color}" stroke-width="2.5"/>`,
      `<circle cx="${PLOT.right + 34}" cy="${y}" r="4" fill="${color}"/>`,
      `<text x="${PLOT.right + 56}" y="${y}" dy="4">${escapeXml(series.label)}</text>`,
    );
  });
  out.push(`</g>`, `</svg>`);
  return `${out.join("\n")}\n`;
}
