import { createReadStream, createWriteStream } from "node:fs";
import { stat } from "node:fs/promises";
import type { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import tar from "tar-stream";

/** One member of an archive being written: a file copied from disk, or bytes in memory. */
export type TarEntry =
  { name: string; file: string } | { name: string; bytes: Buffer } | { name: string; directory: true };

/** Fixed timestamps keep archives of the same content byte-identical. */
const MTIME = new Date(0);

/**
 * Writes `entries` as a tar archive to `out`, streaming file contents (never buffered whole).
 * `compress`, when given, is a stage the archive passes through, e.g. `createGzip()`.
 */
export async function writeTar(
  out: string,
  entries: Iterable<TarEntry>,
  compress?: Transform,
): Promise<void> {
  const pack = tar.pack();
  const file = createWriteStream(out);
  const written = compress ? pipeline(pack, compress, file) : pipeline(pack, file);
  try {
    for (const entry of entries) await addEntry(pack, entry);
    pack.finalize();
  } catch (err) {
    pack.destroy(err as Error);
  }
  await written;
}

async function addEntry(pack: tar.Pack, entry: TarEntry): Promise<void> {
  if ("directory" in entry) {
    await new Promise<void>((resolve, reject) => {
      pack.entry({ name: entry.name, type: "directory", mode: 0o755, mtime: MTIME }, (err) =>
        err ? reject(err) : resolve(),
      );
    });
  } else if ("bytes" in entry) {
    await new Promise<void>((resolve, reject) => {
      pack.entry(
        { name: entry.name, size: entry.bytes.length, mode: 0o644, mtime: MTIME },
        entry.bytes,
        (err) => (err ? reject(err) : resolve()),
      );
    });
  } else {
    const { size } = await stat(entry.file);
    await pipeline(
      createReadStream(entry.file),
      pack.entry({ name: entry.name, size, mode: 0o644, mtime: MTIME }),
    );
  }
}
