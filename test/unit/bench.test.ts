/**
 * The pieces of `ecrx bench` that are plain functions: percentile / median / spread, the sweep and
 * its list flags, the per-point summary, the SVG chart (parsed as XML) and the generated layouts.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { crashLine, summarize, type RunRecord } from "../../src/bench/bench.js";
import { niceStep, renderLineChart, type LineChart } from "../../src/bench/chart.js";
import { buildBenchLayout } from "../../src/bench/layout.js";
import { latencyPercentiles, median, percentile, spread } from "../../src/bench/stats.js";
import {
  expandSweep,
  pointLabel,
  varyingKeys,
  parseCountList,
  parsePartSizeList,
  parseSizeList,
  sizeLabel,
  splitSize,
} from "../../src/bench/sweep.js";
import { MiB } from "../../src/transfer/part-size.js";

describe("percentile, median, spread", () => {
  it("interpolates between the closest ranks", () => {
    const values = [40, 10, 30, 20]; // sorted: 10 20 30 40
    expect(percentile(values, 0)).toBe(10);
    expect(percentile(values, 100)).toBe(40);
    expect(percentile(values, 50)).toBe(25);
    expect(percentile(values, 25)).toBeCloseTo(17.5);
    expect(percentile([7], 99)).toBe(7);
  });

  it("p50/p95/p99 of 1..100", () => {
    const values = Array.from({ length: 100 }, (_, i) => 100 - i);
    expect(latencyPercentiles(values)).toEqual({
      p50: 50.5,
      p95: expect.closeTo(95.05, 5),
      p99: expect.closeTo(99.01, 5),
    });
  });

  it("median of odd and even counts, spread as min..max; NaN for nothing", () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(spread([5, 1, 9, 3])).toEqual({ median: 4, min: 1, max: 9 });
    expect(spread([])).toEqual({ median: NaN, min: NaN, max: NaN });
    expect(percentile([], 50)).toBeNaN();
    expect(() => percentile([1], 101)).toThrow(RangeError);
  });

  it("does not reorder its input", () => {
    const values = [3, 1, 2];
    median(values);
    expect(values).toEqual([3, 1, 2]);
  });
});

describe("the sweep", () => {
  const lists = { networks: [undefined], partSizes: [10 * MiB], concurrencies: [4], readAheads: [1] };

  it("expands every part size with every concurrency, part size outer, repeats dropped", () => {
    const points = expandSweep({
      ...lists,
      partSizes: [5 * MiB, 10 * MiB, 5 * MiB],
      concurrencies: [1, 2, 2],
    });
    expect(points.map((p) => [p.partSize / MiB, p.concurrency])).toEqual([
      [5, 1],
      [5, 2],
      [10, 1],
      [10, 2],
    ]);
    expect(points[0]).toEqual({ network: undefined, partSize: 5 * MiB, concurrency: 1, readAhead: 1 });
    expect(
      expandSweep({ ...lists, partSizes: [5 * MiB, 10 * MiB, 20 * MiB], concurrencies: [1, 2, 4, 8] }),
    ).toHaveLength(12);
    expect(() => expandSweep({ ...lists, partSizes: [] })).toThrow(/at least one/);
  });

  it("puts the network outermost and, for a pull, the ranges in flight innermost", () => {
    const points = expandSweep({
      ...lists,
      networks: ["in-region", "far"],
      readAheads: [0, 1],
      rangeSizes: [8 * MiB, 16 * MiB],
      rangeParallels: [2, 4, 8],
    });
    expect(points).toHaveLength(2 * 2 * 2 * 3);
    expect(
      points.slice(0, 4).map((p) => [p.network, p.readAhead, p.rangeSize! / MiB, p.rangeParallel]),
    ).toEqual([
      ["in-region", 0, 8, 2],
      ["in-region", 0, 8, 4],
      ["in-region", 0, 8, 8],
      ["in-region", 0, 16, 2],
    ]);
    expect(points.at(-1)).toMatchObject({
      network: "far",
      readAhead: 1,
      rangeSize: 16 * MiB,
      rangeParallel: 8,
    });
    expect(() => expandSweep({ ...lists, rangeSizes: [8 * MiB], rangeParallels: [] })).toThrow(
      /at least one/,
    );
  });

  it("labels a point by the settings that vary in its sweep", () => {
    const points = expandSweep({ ...lists, networks: ["in-region", "far"], partSizes: [5 * MiB, 10 * MiB] });
    const varying = varyingKeys(points);
    expect([...varying].sort()).toEqual(["network", "partSize"]);
    expect(pointLabel(points[2]!, varying)).toBe("far, 5 MiB parts");
  });

  it("splits a total over layers to the byte", () => {
    expect(splitSize(24 * MiB, 2)).toEqual([12 * MiB, 12 * MiB]);
    expect(splitSize(10, 3)).toEqual([4, 3, 3]);
    expect(splitSize(200 * MiB, 10).reduce((a, b) => a + b)).toBe(200 * MiB);
    expect(() => splitSize(2, 3)).toThrow(/cannot split/);
  });

  it("reads list flags and refuses what ECR or sense refuse", () => {
    expect(parseSizeList("20MiB, 1GiB,512")).toEqual([20 * MiB, 1024 * MiB, 512]);
    expect(parsePartSizeList("5MiB,10MiB,20MiB")).toEqual([5 * MiB, 10 * MiB, 20 * MiB]);
    expect(() => parsePartSizeList("4MiB")).toThrow(/5 MiB to 20 MiB/);
    expect(() => parsePartSizeList("21MiB")).toThrow(/5 MiB to 20 MiB/);
    expect(() => parseSizeList("5MiB,,6MiB")).toThrow(/cannot read/);
    expect(() => parseSizeList("0")).toThrow(/0 bytes/);
    expect(parseCountList("1,2,4,8", "--concurrency", 256)).toEqual([1, 2, 4, 8]);
    expect(() => parseCountList("0", "--concurrency", 256)).toThrow(/1 to 256/);
    expect(() => parseCountList("1.5", "--concurrency", 256)).toThrow(/whole number/);
  });

  it("labels sizes in binary units", () => {
    expect(sizeLabel(5 * MiB)).toBe("5 MiB");
    expect(sizeLabel(1024 * MiB)).toBe("1 GiB");
    expect(sizeLabel(12.5 * MiB)).toBe("12.5 MiB");
    expect(sizeLabel(700)).toBe("700 B");
  });
});

describe("summarize", () => {
  const ok = (run: number, mbps: number, latencies: number[], extra: Partial<RunRecord> = {}): RunRecord =>
    ({
      run,
      warmup: run === 0,
      ok: true,
      digest: "sha256:x",
      repository: "r",
      seconds: 1,
      layerBytes: mbps * 1e6,
      bytesSent: mbps * 1e6,
      blobsSent: 2,
      blobsSkipped: 0,
      parts: latencies.length,
      partLatenciesMs: latencies,
      cpuUserSeconds: 1,
      cpuSystemSeconds: 0,
      maxRssBytes: 100 * MiB,
      retries: 1,
      throttles: 1,
      blobRetries: 0,
      mbps,
      partsPerSecond: latencies.length,
      partLatencyMs: latencyPercentiles(latencies),
      cpuSecondsPerGiB: 1,
      ...extra,
    }) as RunRecord;

  it("counts measured runs that succeeded, pools their part latencies, leaves the warm-up out", () => {
    const summary = summarize([
      ok(0, 1000, [1000]),
      ok(1, 100, [10, 20]),
      { run: 2, warmup: false, ok: false, error: { code: "NETWORK", message: "down" } },
      ok(3, 300, [30]),
      ok(4, 200, [40, 50]),
    ]);
    expect(summary.runs).toBe(3);
    expect(summary.mbps).toEqual({ median: 200, min: 100, max: 300 });
    expect(summary.partLatencyMs.p50).toBe(30);
    expect(summary.partLatencyMs.p99).toBeLessThanOrEqual(50);
    expect(summary.retries).toBe(3);
    expect(summary.throttles).toBe(3);
  });
});

describe("crashLine", () => {
  it("finds the uncaught exception in a crashed Node process's output", () => {
    const stderr = [
      "file:///work/dist/x.js:10",
      "    throw new TypeError('bad');",
      "    ^",
      "",
      "TypeError: bad",
      "    at f (file:///work/dist/x.js:10:11)",
      "",
      "Node.js v20.20.2",
      "",
    ].join("\n");
    expect(crashLine(stderr)).toBe("TypeError: bad");
    expect(crashLine("killed\nNode.js v20.20.2\n")).toBe("killed");
    expect(crashLine("")).toBe("");
  });
});

/**
 * A strict reader of the XML the chart writes: elements, attributes in double quotes, text and
 * the five entities. Throws on anything not well-formed.
 */
interface XmlElement {
  name: string;
  attributes: Record<string, string>;
  children: XmlElement[];
  text: string;
}

function parseXml(xml: string): XmlElement {
  const token = /<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>|([^<]+)/y;
  const unescape = (s: string) => {
    if (/&(?!(amp|lt|gt|quot|apos);)/.test(s)) throw new Error(`bad entity in ${s}`);
    return s.replace(
      /&(amp|lt|gt|quot|apos);/g,
      (_, e: string) => ({ amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" })[e]!,
    );
  };
  const root: XmlElement = { name: "#document", attributes: {}, children: [], text: "" };
  const stack = [root];
  let at = 0;
  while (at < xml.length) {
    token.lastIndex = at;
    const m = token.exec(xml);
    if (!m) throw new Error(`not well-formed at ${at}: ${xml.slice(at, at + 40)}`);
    at = token.lastIndex;
    const [, closing, name, attrs, selfClosing, text] = m;
    const top = stack.at(-1)!;
    if (text !== undefined) {
      if (text.includes(">")) throw new Error("stray > in text");
      top.text += unescape(text);
    } else if (closing) {
      if (top.name !== name) throw new Error(`</${name}> closes <${top.name}>`);
      stack.pop();
    } else {
      const attributes: Record<string, string> = {};
      for (const a of attrs!.matchAll(/([\w:-]+)="([^"]*)"/g)) {
        if (a[1]! in attributes) throw new Error(`attribute ${a[1]} twice`);
        attributes[a[1]!] = unescape(a[2]!);
      }
      const element = { name: name!, attributes, children: [], text: "" };
      top.children.push(element);
      if (!selfClosing) stack.push(element);
    }
  }
  if (stack.length !== 1) throw new Error(`<${stack.at(-1)!.name}> never closed`);
  const elements = root.children;
  if (elements.length !== 1 || root.text.trim() !== "") throw new Error("not exactly one root element");
  return elements[0]!;
}

function all(element: XmlElement, name: string): XmlElement[] {
  return [...(element.name === name ? [element] : []), ...element.children.flatMap((c) => all(c, name))];
}

describe("the chart", () => {
  const chart: LineChart = {
    title: "ecrx push: 10 × 20 MiB random layers → local <ecrx> serve & co",
    subtitle: "median of 5 runs",
    xLabel: "concurrency (blobs in flight)",
    yLabel: "MB/s of layer bytes",
    series: [
      {
        label: "5 MiB parts",
        points: [
          { x: 8, y: 180, min: 170, max: 190 },
          { x: 1, y: 60, min: 55, max: 65 },
          { x: 2, y: 110, min: 100, max: 120 },
          { x: 4, y: 150, min: 150, max: 150 },
        ],
      },
      {
        label: "10 MiB parts",
        points: [
          { x: 1, y: 70, min: 60, max: 80 },
          { x: 2, y: 120, min: 110, max: 125 },
          { x: 4, y: NaN, min: NaN, max: NaN },
          { x: 8, y: 210, min: 200, max: 230 },
        ],
      },
    ],
  };
  const svg = parseXml(renderLineChart(chart));

  it("is one well-formed SVG document with the title, axis labels and legend", () => {
    expect(svg.name).toBe("svg");
    expect(svg.attributes.xmlns).toBe("http://www.w3.org/2000/svg");
    const texts = all(svg, "text").map((t) => t.text);
    expect(texts).toContain(chart.title);
    expect(texts).toContain(chart.xLabel);
    expect(texts).toContain(chart.yLabel);
    expect(texts).toEqual(expect.arrayContaining(["5 MiB parts", "10 MiB parts", "1", "2", "4", "8"]));
    expect(() => parseXml("<svg><g></svg>")).toThrow();
  });

  it("draws one polyline per part size, its points left to right, higher MB/s higher up", () => {
    const series = all(svg, "g").filter((g) => g.attributes.class === "series");
    expect(series.map((g) => g.attributes["data-label"])).toEqual(["5 MiB parts", "10 MiB parts"]);
    expect(all(svg, "polyline")).toHaveLength(2);
    const points = series.map((g) =>
      all(g, "polyline")[0]!
        .attributes.points!.split(" ")
        .map((p) => p.split(",").map(Number) as [number, number]),
    );
    const [fives, tens] = points as [[number, number][], [number, number][]];
    expect(fives).toHaveLength(4);
    expect(tens).toHaveLength(3); // the point without a value is left out
    for (const line of [fives, tens]) {
      for (let i = 1; i < line.length; i++) expect(line[i]![0]).toBeGreaterThan(line[i - 1]![0]);
    }
    // y grows downwards in SVG; these series rise with concurrency.
    expect(fives.map(([, y]) => y)).toEqual([...fives.map(([, y]) => y)].sort((a, b) => b - a));
    // Doubling concurrency is one equal step on the x axis.
    expect(fives[1]![0] - fives[0]![0]).toBeCloseTo(fives[2]![0] - fives[1]![0], 0);
    // The same x for the same concurrency in both lines.
    expect(tens[0]![0]).toBe(fives[0]![0]);
  });

  it("picks y ticks of 1, 2 or 5 times a power of ten", () => {
    expect(niceStep(230)).toBe(50);
    expect(niceStep(96)).toBe(20);
    expect(niceStep(9)).toBe(2);
    expect(niceStep(0)).toBe(1);
  });
});

describe("generated layouts", () => {
  let work: string;
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), "ecrx-bench-layout-"));
  });
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it("are the same for a seed and new for another; random bytes do not compress, compressible ones are text", async () => {
    const a = await buildBenchLayout(join(work, "a"), [1 * MiB, 3000], { content: "random", seed: 7 });
    const b = await buildBenchLayout(join(work, "b"), [1 * MiB, 3000], { content: "random", seed: 7 });
    const c = await buildBenchLayout(join(work, "c"), [1 * MiB, 3000], { content: "random", seed: 8 });
    expect(a.layers.map((l) => l.digest)).toEqual(b.layers.map((l) => l.digest));
    expect(a.manifestDigest).toBe(b.manifestDigest);
    expect(c.layers.map((l) => l.digest)).not.toContain(a.layers[0]!.digest);
    expect(a.bytes).toBe(1 * MiB + 3000);
    expect(a.reference).toBe(`oci:${join(work, "a")}:bench`);

    const t = await buildBenchLayout(join(work, "t"), [256 * 1024], { content: "compressible", seed: 7 });
    const tar = await readFile(t.layers[0]!.file);
    expect(t.bytes).toBeGreaterThanOrEqual(256 * 1024);
    expect(tar.subarray(257, 262).toString()).toBe("ustar");
    const { gzipSync } = await import("node:zlib");
    expect(gzipSync(tar).length).toBeLessThan(tar.length / 2);
    expect(gzipSync(await readFile(a.layers[0]!.file)).length).toBeGreaterThan(MiB);
  });
});
