import { EcrxError } from "../errors.js";
import { MAX_PART_SIZE_MODEL, MIN_PART_SIZE, parseSize } from "../transfer/part-size.js";

/** One combination of the sweep: every run of a point transfers with these settings. */
export interface SweepPoint {
  /** The local server's network profile (`ecrx serve --network`); undefined: no shaping. */
  network: string | undefined;
  /** Blobs in flight. */
  concurrency: number;
  /** Push: UploadLayerPart size (a pull's image is pushed with it too). */
  partSize: number;
  /** Push: parts prepared ahead of the one in flight. */
  readAhead: number;
  /** Pull only: the size of one Range request of a big blob, and how many go at once. */
  rangeSize?: number;
  rangeParallel?: number;
}

export interface SweepLists {
  networks: readonly (string | undefined)[];
  concurrencies: readonly number[];
  partSizes: readonly number[];
  readAheads: readonly number[];
  /** Both given for a pull sweep, neither for a push sweep. */
  rangeSizes?: readonly number[] | undefined;
  rangeParallels?: readonly number[] | undefined;
}

/**
 * Every combination of the lists, each in the order given with repeats dropped; the network is the
 * outermost loop (one server per profile) and the chart's x axis the innermost: concurrency for a
 * push (`5MiB,10MiB` x `1,2` is (5,1) (5,2) (10,1) (10,2)), the ranges in flight for a pull.
 */
export function expandSweep(lists: SweepLists): SweepPoint[] {
  const { networks, concurrencies, partSizes, readAheads, rangeSizes, rangeParallels } = lists;
  const pull = rangeSizes !== undefined && rangeParallels !== undefined;
  const empty = [
    networks,
    concurrencies,
    partSizes,
    readAheads,
    ...(pull ? [rangeSizes, rangeParallels] : []),
  ];
  if (empty.some((list) => list.length === 0)) {
    throw new EcrxError("USAGE", "every list of the sweep needs at least one value");
  }
  const points: SweepPoint[] = [];
  for (const network of new Set(networks)) {
    for (const partSize of new Set(partSizes)) {
      for (const readAhead of new Set(readAheads)) {
        if (!pull) {
          for (const concurrency of new Set(concurrencies)) {
            points.push({ network, concurrency, partSize, readAhead });
          }
          continue;
        }
        for (const concurrency of new Set(concurrencies)) {
          for (const rangeSize of new Set(rangeSizes)) {
            for (const rangeParallel of new Set(rangeParallels)) {
              points.push({ network, concurrency, partSize, readAhead, rangeSize, rangeParallel });
            }
          }
        }
      }
    }
  }
  return points;
}

/** What sets a point apart from the others of its sweep, for labels: `cross-region, 10 MiB parts`. */
export function pointLabel(point: SweepPoint, varying: ReadonlySet<keyof SweepPoint>): string {
  const parts: string[] = [];
  if (varying.has("network")) parts.push(point.network ?? "loopback");
  if (varying.has("partSize")) parts.push(`${sizeLabel(point.partSize)} parts`);
  if (varying.has("readAhead")) parts.push(`read-ahead ${point.readAhead}`);
  if (varying.has("concurrency")) parts.push(`concurrency ${point.concurrency}`);
  if (varying.has("rangeSize") && point.rangeSize !== undefined)
    parts.push(`${sizeLabel(point.rangeSize)} ranges`);
  if (varying.has("rangeParallel") && point.rangeParallel !== undefined)
    parts.push(`${point.rangeParallel} at once`);
  return parts.join(", ");
}

/** The settings that take more than one value over the points. */
export function varyingKeys(points: readonly SweepPoint[]): Set<keyof SweepPoint> {
  const keys: (keyof SweepPoint)[] = [
    "network",
    "partSize",
    "readAhead",
    "concurrency",
    "rangeSize",
    "rangeParallel",
  ];
  return new Set(keys.filter((k) => new Set(points.map((p) => p[k])).size > 1));
}

/** `total` bytes over `layers` layers as even as whole bytes allow (the first ones a byte larger). */
export function splitSize(total: number, layers: number): number[] {
  if (!Number.isSafeInteger(layers) || layers < 1) {
    throw new EcrxError("USAGE", `--layers must be a whole number of at least 1, not ${layers}`);
  }
  if (!Number.isSafeInteger(total) || total < layers) {
    throw new EcrxError("USAGE", `cannot split ${total} bytes into ${layers} non-empty layers`);
  }
  const base = Math.floor(total / layers);
  const extra = total % layers;
  return Array.from({ length: layers }, (_, i) => base + (i < extra ? 1 : 0));
}

function listItems(text: string, what: string): string[] {
  const items = text.split(",").map((s) => s.trim());
  if (items.some((s) => s === "")) {
    throw new EcrxError("USAGE", `cannot read the ${what} list "${text}"`, { hint: "write e.g. 5MiB,10MiB" });
  }
  return items;
}

/** `20MiB,20MiB,1GiB`: sizes as parseSize reads them, each at least one byte. */
export function parseSizeList(text: string, what = "size"): number[] {
  return listItems(text, what).map((item) => {
    const size = parseSize(item);
    if (size < 1) throw new EcrxError("USAGE", `a ${what} of 0 bytes is not a layer`);
    return size;
  });
}

/** Part sizes, each within what UploadLayerPart accepts (5..20 MiB). */
export function parsePartSizeList(text: string): number[] {
  const sizes = parseSizeList(text, "part size");
  for (const size of sizes) {
    if (size < MIN_PART_SIZE || size > MAX_PART_SIZE_MODEL) {
      throw new EcrxError("USAGE", `part size ${size} is outside ECR's limits of 5 MiB to 20 MiB`, {
        hint: "use part sizes between 5MiB and 20MiB (10MiB is ECR's default quota)",
      });
    }
  }
  return sizes;
}

/** `1,2,4,8`: whole numbers in min..max. */
export function parseCountList(text: string, what: string, max: number, min = 1): number[] {
  return listItems(text, what).map((item) => {
    const n = Number(item);
    if (!/^\d+$/.test(item) || n < min || n > max) {
      throw new EcrxError("USAGE", `${what} "${item}" must be a whole number from ${min} to ${max}`);
    }
    return n;
  });
}

/** `5 MiB`, `1 GiB`, `12.5 MiB`, `700 B`: a size as the sweep's labels show it (binary units). */
export function sizeLabel(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${Number.isInteger(value) ? value : Number(value.toFixed(1))} ${units[unit]}`;
}
