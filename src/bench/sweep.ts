import { EcrxError } from "../errors.js";
import { MAX_PART_SIZE_MODEL, MIN_PART_SIZE, parseSize } from "../transfer/part-size.js";

/** One combination of the sweep: every run of a point pushes with these settings. */
export interface SweepPoint {
  partSize: number;
  concurrency: number;
}

/**
 * Every combination of the part sizes and concurrencies, part size outer, each list in the order
 * given with repeats dropped: `5MiB,10MiB` x `1,2` is (5,1) (5,2) (10,1) (10,2).
 */
export function expandSweep(partSizes: readonly number[], concurrencies: readonly number[]): SweepPoint[] {
  if (partSizes.length === 0 || concurrencies.length === 0) {
    throw new EcrxError("USAGE", "the sweep needs at least one part size and one concurrency");
  }
  const points: SweepPoint[] = [];
  for (const partSize of new Set(partSizes)) {
    for (const concurrency of new Set(concurrencies)) points.push({ partSize, concurrency });
  }
  return points;
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

/** `1,2,4,8`: whole numbers in 1..max. */
export function parseCountList(text: string, what: string, max: number): number[] {
  return listItems(text, what).map((item) => {
    const n = Number(item);
    if (!/^\d+$/.test(item) || n < 1 || n > max) {
      throw new EcrxError("USAGE", `${what} "${item}" must be a whole number from 1 to ${max}`);
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
