import { createReadStream, createWriteStream } from "node:fs";
import { mkdtemp, readFile, realpath, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, sep } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGunzip } from "node:zlib";
import zstd from "zstd-napi";
import { EcrxError } from "../errors.js";
import { FileRangeStream } from "./byte-source.js";
import { decompressionLimit, ExpansionLimit } from "./expansion-limit.js";
import { sniffFileCompression } from "../manifest/detect.js";
import { readFileRange } from "./fs.js";
import { indexTar, normalizeMemberName, resolveMember, type TarIndex } from "./tar.js";

/** Inclusive byte range. */
export interface Range {
  start: number;
  end: number;
}

/**
 * A read-only tree of files: a folder on disk or the members of a tar archive. Paths are relative
 * and use `/`; no path ever resolves outside the tree (symlinks included).
 */
export interface FileTree {
  /** The folder or archive, for messages. */
  readonly location: string;
  /** The size of the regular file at `path`; undefined when there is none. */
  size(path: string): Promise<number | undefined>;
  /** A stream of the file (or of `range` of it); INVALID_INPUT when missing. */
  open(path: string, range?: Range): Promise<Readable>;
  /** The whole file, refused (INVALID_INPUT) when over `maxBytes`. */
  read(path: string, maxBytes: number): Promise<Buffer>;
  close(): Promise<void>;
}

/** A folder on disk; symlinks are followed only while they stay inside it. */
export async function openFolderTree(root: string): Promise<FileTree> {
  const rootReal = await realpath(root);
  const resolve = async (path: string): Promise<{ file: string; size: number } | undefined> => {
    const relative = normalizeMemberName(path, root);
    let real: string;
    try {
      real = await realpath(join(rootReal, relative));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw err;
    }
    if (!real.startsWith(rootReal + sep)) {
      throw new EcrxError("INVALID_INPUT", `${root}: "${relative}" links outside the folder`, {
        hint: "the layout is unsafe; copy it without symlinks that leave it",
      });
    }
    const info = await stat(real);
    return info.isFile() ? { file: real, size: info.size } : undefined;
  };
  const existing = async (path: string) => (await resolve(path)) ?? missing(root, path);
  return {
    location: root,
    size: async (path) => (await resolve(path))?.size,
    open: async (path, range) => {
      const { file, size } = await existing(path);
      return size === 0 && !range ? Readable.from([]) : fileRange(file, 0, size, range, root, path);
    },
    read: async (path, maxBytes) => {
      const { file, size } = await existing(path);
      if (size > maxBytes) throw tooBig(root, path, size, maxBytes);
      return readFile(file);
    },
    close: async () => undefined,
  };
}

/**
 * A tar archive, indexed once and served by offset. A gzip or zstd compressed archive is first
 * decompressed to a temporary file (random access needs it), removed again by `close`.
 */
export async function openTarTree(path: string): Promise<FileTree> {
  const compression = await sniffFileCompression(path);
  if (compression === "none") return tarTree(await indexTar(path), path, async () => undefined);
  const scratch = await mkdtemp(join(tmpdir(), "ecrx-archive-"));
  const removeScratch = () => rm(scratch, { recursive: true, force: true });
  try {
    const plain = join(scratch, "archive.tar");
    const decompress = compression === "gzip" ? createGunzip() : new zstd.DecompressStream();
    const limit = new ExpansionLimit(decompressionLimit((await stat(path)).size), path);
    await pipeline(createReadStream(path), decompress, limit, createWriteStream(plain)).catch(
      (err: unknown) => {
        if (err instanceof EcrxError) throw err;
        throw new EcrxError(
          "INVALID_INPUT",
          `${path} could not be decompressed (${compression}): ${(err as Error).message}`,
        );
      },
    );
    return tarTree(await indexTar(plain), path, removeScratch);
  } catch (err) {
    await removeScratch();
    throw err;
  }
}

function tarTree(index: TarIndex, location: string, close: () => Promise<void>): FileTree {
  const existing = (path: string) => resolveMember(index, path) ?? missing(location, path);
  return {
    location,
    size: async (path) => resolveMember(index, path)?.size,
    open: async (path, range) => {
      const member = existing(path);
      if (member.size === 0 && !range) return Readable.from([]);
      return fileRange(index.path, member.offset, member.size, range, location, path);
    },
    read: async (path, maxBytes) => {
      const member = existing(path);
      if (member.size > maxBytes) throw tooBig(location, path, member.size, maxBytes);
      return readFileRange(index.path, member.offset, member.size);
    },
    close,
  };
}

/** Bytes `range` (default: all) of a file member of `size` bytes at `base` in `file`. */
function fileRange(
  file: string,
  base: number,
  size: number,
  range: Range | undefined,
  location: string,
  path: string,
): FileRangeStream {
  const { start, end } = range ?? { start: 0, end: size - 1 };
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start || end >= size) {
    throw new EcrxError(
      "INTERNAL",
      `${location}: range ${start}-${end} is outside "${path}" (${size} bytes)`,
    );
  }
  return new FileRangeStream(file, base + start, base + end);
}

function missing(location: string, path: string): never {
  throw new EcrxError("INVALID_INPUT", `${location}: "${path}" is missing`, {
    hint: "the image is incomplete; export it again",
  });
}

function tooBig(location: string, path: string, size: number, maxBytes: number): EcrxError {
  return new EcrxError(
    "INVALID_INPUT",
    `${location}: "${path}" is ${size} bytes, over the ${maxBytes}-byte limit`,
  );
}
