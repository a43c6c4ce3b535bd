import { mkdirSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { writeFileAtomic } from "../util/fs.js";
import type { Compression } from "../manifest/media-types.js";
import type { Descriptor } from "../manifest/types.js";

/**
 * Remembers what a layer became when ecrx compressed it: (uncompressed digest, compression) ->
 * the compressed blob's descriptor. The next push of the same layer asks the registry for the
 * compressed digest first and skips both the compression and the upload when it is there.
 */
export interface BlobInfoCache {
  compressed(uncompressedDigest: string, compression: Compression): Descriptor | undefined;
  record(uncompressedDigest: string, compression: Compression, result: Descriptor): void;
  /** Writes what was recorded; a no-op for caches without storage. */
  flush(): Promise<void>;
}

export class MemoryBlobInfoCache implements BlobInfoCache {
  protected readonly entries = new Map<string, Descriptor>();

  compressed(uncompressedDigest: string, compression: Compression): Descriptor | undefined {
    return this.entries.get(`${uncompressedDigest} ${compression}`);
  }

  record(uncompressedDigest: string, compression: Compression, result: Descriptor): void {
    this.entries.set(`${uncompressedDigest} ${compression}`, {
      mediaType: result.mediaType,
      digest: result.digest,
      size: result.size,
    });
  }

  async flush(): Promise<void> {}
}

/** The cache folder: $ECRX_CACHE_DIR, else $XDG_CACHE_HOME/ecrx, else ~/.cache/ecrx. */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.ECRX_CACHE_DIR) return env.ECRX_CACHE_DIR;
  return join(env.XDG_CACHE_HOME || join(homedir(), ".cache"), "ecrx");
}

/** A JSON file of at most `maxEntries` entries (the newest kept), written atomically. */
export class FileBlobInfoCache extends MemoryBlobInfoCache {
  private dirty = false;

  constructor(
    private readonly path: string = join(defaultCacheDir(), "blob-info.json"),
    private readonly maxEntries = 10_000,
  ) {
    super();
    try {
      const saved = JSON.parse(readFileSync(path, "utf8")) as Record<string, Descriptor>;
      for (const [key, value] of Object.entries(saved)) {
        if (typeof value?.digest === "string" && typeof value.size === "number") this.entries.set(key, value);
      }
    } catch {
      // No cache yet, or an unreadable one: start empty; it is only an optimisation.
    }
  }

  override record(uncompressedDigest: string, compression: Compression, result: Descriptor): void {
    super.record(uncompressedDigest, compression, result);
    this.dirty = true;
  }

  override async flush(): Promise<void> {
    if (!this.dirty) return;
    const kept = [...this.entries].slice(-this.maxEntries);
    try {
      mkdirSync(dirname(this.path), { recursive: true });
      await writeFileAtomic(this.path, JSON.stringify(Object.fromEntries(kept)));
      this.dirty = false;
    } catch {
      // A read-only home must not fail a push that has succeeded.
    }
  }
}
