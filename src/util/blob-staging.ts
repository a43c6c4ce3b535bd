import { randomBytes } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir, open, readdir, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Transform, type Readable, type TransformCallback } from "node:stream";
import { pipeline } from "node:stream/promises";
import {
  DigestVerifier,
  isVerifyingStream,
  parseDigest,
  sha256Digest,
  tryParseDigest,
} from "../manifest/digest.js";
import type { Descriptor, Digest } from "../manifest/types.js";
import { EcrxError } from "../errors.js";
import type { BlobToPut, PositionalSink, ProgressFn } from "../transports/types.js";
import { PositionalBlobFile } from "./positional-blob-file.js";

/**
 * Bytes a blob file's write stream buffers before it pushes back: network chunks are small
 * (~64 KiB), and a larger buffer lets them go to disk in one writev each instead of a syscall each.
 */
const WRITE_BUFFER = 4 * 1024 * 1024;

/**
 * Blobs written into a private folder as `<dir>/<algorithm>/<hex>` (the OCI layout's own naming),
 * each first under a temporary name and renamed only once its digest and size are verified, so
 * every name in the folder is a complete, correct blob.
 */
export class BlobStaging {
  readonly dir: string;
  private readonly sizes = new Map<Digest, number>();

  constructor(dir: string) {
    this.dir = dir;
  }

  has(digest: Digest): boolean {
    return this.sizes.has(digest);
  }

  /** The staged file of a blob. */
  path(digest: Digest): string {
    const { algorithm, hex } = parseDigest(digest);
    return join(this.dir, algorithm, hex);
  }

  /** Digests and sizes of the staged blobs. */
  entries(): IterableIterator<[Digest, number]> {
    return this.sizes.entries();
  }

  /**
   * Streams a blob to disk, verifying it as `putBlob` requires (digest computed when not given,
   * size exact or an upper bound); returns its descriptor. `what` names it in errors.
   */
  async put(blob: BlobToPut, body: Readable, progress: ProgressFn, what: string): Promise<Descriptor> {
    const temporary = await this.temporaryName();
    try {
      let digest: Digest;
      let size: number;
      if (isVerifyingStream(body) && body.verifies(blob)) {
        // The stream fails unless its bytes are exactly this blob (the engine verifies every
        // source): hashing them here again would only double the CPU of a pull.
        const counter = new ProgressCounter(progress);
        await pipeline(body, counter, createWriteStream(temporary, { highWaterMark: WRITE_BUFFER }));
        digest = blob.digest!;
        size = counter.bytes;
      } else {
        const verifier = new DigestVerifier(blob, {
          onBytes: progress,
          what: `${what}: blob ${blob.digest ?? ""}`.trimEnd(),
        });
        await pipeline(body, verifier, createWriteStream(temporary, { highWaterMark: WRITE_BUFFER }));
        digest = verifier.digest!;
        size = verifier.bytes;
      }
      await this.publish(temporary, digest);
      this.sizes.set(digest, size);
      return { mediaType: blob.mediaType, digest, size };
    } catch (err) {
      await rm(temporary, { force: true });
      throw err;
    }
  }

  /**
   * Writes a blob whose bytes come by position (several ranges at once) into its file, verified
   * as `put` verifies (`blob.digest` and an exact size are required); returns its descriptor.
   */
  async putByPosition(
    blob: BlobToPut,
    fill: (sink: PositionalSink) => Promise<void>,
    progress: ProgressFn,
    what: string,
  ): Promise<Descriptor> {
    if (blob.digest === undefined || !blob.sizeIsExact) {
      throw new EcrxError("INTERNAL", `${what}: a blob written by position needs its digest and size`);
    }
    const digest = blob.digest;
    const temporary = await this.temporaryName();
    const file = await open(temporary, "w+");
    const writer = new PositionalBlobFile(
      file,
      { digest, size: blob.size },
      `${what}: blob ${digest}`,
      progress,
    );
    try {
      try {
        await fill(writer);
        await writer.finish();
      } finally {
        await writer.stop();
        await file.close();
      }
      await this.publish(temporary, digest);
      this.sizes.set(digest, blob.size);
      return { mediaType: blob.mediaType, digest, size: blob.size };
    } catch (err) {
      await rm(temporary, { force: true });
      throw err;
    }
  }

  /**
   * Takes in what an earlier, interrupted run left: every blob under its final name was verified
   * before it was renamed there, so it counts; half-written `.partial-*` files are removed.
   * Returns how many blobs were found.
   */
  async resume(): Promise<number> {
    const algorithms = await readdir(this.dir).catch(() => [] as string[]);
    for (const name of algorithms) {
      if (name.startsWith(".partial-")) {
        await rm(join(this.dir, name), { force: true });
        continue;
      }
      if (name !== "sha256" && name !== "sha512") continue;
      for (const hex of await readdir(join(this.dir, name))) {
        const digest = `${name}:${hex}`;
        const info = await stat(join(this.dir, name, hex)).catch(() => undefined);
        if (info?.isFile() && tryParseDigest(digest)) this.sizes.set(digest, info.size);
      }
    }
    return this.sizes.size;
  }

  /** How many verified blobs are staged. */
  get count(): number {
    return this.sizes.size;
  }

  /** Removes half-written files, keeping the verified blobs for a later run to resume from. */
  async discardPartials(): Promise<void> {
    for (const name of await readdir(this.dir).catch(() => [] as string[])) {
      if (name.startsWith(".partial-")) await rm(join(this.dir, name), { force: true });
    }
  }

  /** Stages small content (manifests) already in memory; returns its sha256 digest. */
  async putBytes(bytes: Buffer): Promise<Digest> {
    const digest = sha256Digest(bytes);
    if (this.has(digest)) return digest;
    const temporary = await this.temporaryName();
    await writeFile(temporary, bytes);
    await this.publish(temporary, digest);
    this.sizes.set(digest, bytes.length);
    return digest;
  }

  private async temporaryName(): Promise<string> {
    await mkdir(this.dir, { recursive: true });
    return join(this.dir, `.partial-${randomBytes(8).toString("hex")}`);
  }

  private async publish(temporary: string, digest: Digest): Promise<void> {
    const final = this.path(digest);
    await mkdir(join(final, ".."), { recursive: true });
    await rename(temporary, final);
  }
}

/** Counts the bytes passing, for progress, without touching them. */
class ProgressCounter extends Transform {
  bytes = 0;
  constructor(private readonly progress: ProgressFn) {
    super();
  }
  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    this.progress(chunk.length);
    callback(null, chunk);
  }
}
