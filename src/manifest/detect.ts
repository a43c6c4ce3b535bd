import { readFileRange } from "../util/fs.js";
import type { Compression } from "./media-types.js";

/** How many leading bytes `sniffCompression` needs. */
export const SNIFF_BYTES = 4;

/** The compression of a blob from its first bytes: gzip (1f 8b), zstd (28 b5 2f fd), else none (tar). */
export function sniffCompression(head: Uint8Array): Compression {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return "gzip";
  if (head.length >= 4 && head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) {
    return "zstd";
  }
  return "none";
}

/** The compression of a file, from its first bytes. */
export async function sniffFileCompression(path: string): Promise<Compression> {
  return sniffCompression(await readFileRange(path, 0, SNIFF_BYTES));
}
