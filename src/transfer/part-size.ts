import { EcrxError } from "../errors.js";

export const MiB = 1024 * 1024;

/** ECR's part rules (ecr-spec.md section 2). */
export const MIN_PART_SIZE = 5 * MiB;
/** The quota's maximum part; the API model allows up to MAX_PART_SIZE_MODEL. */
export const MAX_PART_SIZE_QUOTA = 10 * MiB;
export const MAX_PART_SIZE_MODEL = 20 * MiB;
/** The default: the largest part the quota allows, so a 1 GiB layer takes 103 requests. */
export const DEFAULT_PART_SIZE = 10 * MiB;

/**
 * The part size for a layer of `size` bytes (an upper bound when it is not known exactly): the
 * requested size (5..20 MiB), grown in whole MiB only when the layer would need more than
 * `maxParts` parts, up to the model's 20 MiB.
 */
export function choosePartSize(size: number, maxParts: number, requested = DEFAULT_PART_SIZE): number {
  if (!Number.isSafeInteger(requested) || requested < MIN_PART_SIZE || requested > MAX_PART_SIZE_MODEL) {
    throw new EcrxError("USAGE", `part size ${requested} is outside ECR's limits of 5 MiB to 20 MiB`, {
      hint: "use --part-size between 5MiB and 20MiB (10MiB is ECR's default quota)",
    });
  }
  if (Math.ceil(size / requested) <= maxParts) return requested;
  const grown = Math.ceil(size / maxParts / MiB) * MiB;
  if (grown > MAX_PART_SIZE_MODEL) {
    throw new EcrxError(
      "UNSUPPORTED",
      `a layer of ${size} bytes needs more than ${maxParts} parts of 20 MiB, the most ECR accepts`,
    );
  }
  return grown;
}

/**
 * Parses sizes like `10MiB`, `10M` (binary, as dd and most CLIs read it), `5MB` (decimal), `1GiB`,
 * `1048576`.
 */
export function parseSize(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(?:([kmgt])(i)?(b)?|b)?\s*$/i.exec(text);
  if (!match) throw new EcrxError("USAGE", `cannot read the size "${text}"`, { hint: "write e.g. 10MiB" });
  const [, number, unit, binary, bytesSuffix] = match;
  const power = unit === undefined ? 0 : " kmgt".indexOf(unit.toLowerCase());
  const base = binary !== undefined || bytesSuffix === undefined ? 1024 : 1000;
  const bytes = Math.round(Number(number) * base ** power);
  if (!Number.isSafeInteger(bytes)) throw new EcrxError("USAGE", `the size "${text}" is too large`);
  return bytes;
}
