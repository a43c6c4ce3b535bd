import { randomBytes } from "node:crypto";
import { lstat, open, rename, rm, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

/** Reads `length` bytes at `position` of a file (fewer at the end of the file). */
export async function readFileRange(path: string, position: number, length: number): Promise<Buffer> {
  const handle = await open(path, "r");
  try {
    const buffer = Buffer.alloc(length);
    const { bytesRead } = await handle.read(buffer, 0, length, position);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

/**
 * A hidden, unique name next to `path`: on the same file system, so that a rename publishes it
 * atomically, and recognisable as ours.
 */
export function temporarySibling(path: string): string {
  return join(dirname(path), `.${basename(path)}.ecrx-${randomBytes(6).toString("hex")}`);
}

/** Writes a file under a temporary name and renames it into place, so readers never see half of it. */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const temporary = temporarySibling(path);
  try {
    await writeFile(temporary, data);
    await rename(temporary, path);
  } catch (err) {
    await rm(temporary, { force: true });
    throw err;
  }
}

export async function pathExists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * The work folder of a destination that is written in place of `path`: hidden, beside it, and
 * named after it, so that a run interrupted (killed, Ctrl-C, network down) finds its verified
 * blobs again when run with the same destination.
 */
export function partialSibling(path: string): string {
  return join(dirname(path), `.${basename(path)}.ecrx-partial`);
}
