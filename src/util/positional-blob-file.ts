import type { FileHandle } from "node:fs/promises";
import { EcrxError } from "../errors.js";
import { BlobCheck } from "../manifest/digest.js";
import type { Digest } from "../manifest/types.js";
import type { PositionalSink, ProgressFn } from "../transports/types.js";

/**
 * Bytes hashed per read of the file. The reads come from the page cache, just written; a small
 * block keeps each synchronous hash update (about 2 ms a MiB) from holding up the sockets.
 */
const HASH_BLOCK = 1024 * 1024;

/**
 * A blob written into a file by position, as its ranges arrive in any order, and verified as it
 * goes: whenever the bytes from the start of the file are complete further than what was hashed,
 * they are read back from the file (the page cache) into one reused buffer and hashed in order.
 * Nothing of the download is held in memory waiting for an earlier range, so nothing is promoted
 * to the old generation and collected later (bench/README.md, "Pull").
 */
export class PositionalBlobFile implements PositionalSink {
  private readonly check: BlobCheck;
  /** Written byte intervals [start, end), sorted, never touching one another. */
  private readonly written: [number, number][] = [];
  private hashed = 0;
  private hashing: Promise<void> | undefined;
  private failure: Error | undefined;
  private stopped = false;
  private readonly block = Buffer.allocUnsafe(HASH_BLOCK);

  constructor(
    private readonly file: FileHandle,
    private readonly expected: { digest: Digest; size: number },
    private readonly what: string,
    private readonly progress: ProgressFn,
  ) {
    this.check = new BlobCheck({ digest: expected.digest, size: expected.size }, { what });
  }

  async write(position: number, chunks: Buffer[]): Promise<void> {
    if (this.failure) throw this.failure;
    if (this.stopped) throw new EcrxError("INTERRUPTED", `${this.what}: written after it was closed`);
    let length = 0;
    for (const chunk of chunks) length += chunk.length;
    if (position < 0 || position + length > this.expected.size) {
      throw new EcrxError(
        "INTEGRITY",
        `${this.what}: bytes ${position}-${position + length - 1} are outside the blob's ${this.expected.size}`,
      );
    }
    let done = 0;
    while (done < length) {
      const { bytesWritten } = await this.file.writev(chunks, position + done);
      done += bytesWritten;
      // A short write (rare; a full disk answers with an error instead) goes on where it stopped.
      if (done < length) chunks = remainder(chunks, bytesWritten);
    }
    this.mark(position, position + length);
    this.progress(length);
    this.startHashing();
  }

  /**
   * Once every write has resolved: waits for the hash to reach the end, and fails unless every
   * byte was written and the digest is the expected one.
   */
  async finish(): Promise<void> {
    while (this.hashing) await this.hashing;
    if (this.failure) throw this.failure;
    const complete = this.contiguousEnd();
    if (complete !== this.expected.size) {
      throw new EcrxError(
        "INTEGRITY",
        `${this.what}: only bytes 0-${complete - 1} of ${this.expected.size} were written`,
      );
    }
    const error = this.check.finish();
    if (error) throw error;
  }

  /** Stops hashing and waits until no read of the file is pending (before it is closed). */
  async stop(): Promise<void> {
    this.stopped = true;
    while (this.hashing) await this.hashing.catch(() => undefined);
  }

  /** Bytes written from the start of the blob without a gap. */
  private contiguousEnd(): number {
    const first = this.written[0];
    return first !== undefined && first[0] === 0 ? first[1] : 0;
  }

  private mark(start: number, end: number): void {
    // Few intervals at a time (one per range in flight): a linear merge is enough.
    const intervals = this.written;
    let i = 0;
    while (i < intervals.length && intervals[i]![1] < start) i++;
    let mergedStart = start;
    let mergedEnd = end;
    let j = i;
    while (j < intervals.length && intervals[j]![0] <= end) {
      mergedStart = Math.min(mergedStart, intervals[j]![0]);
      mergedEnd = Math.max(mergedEnd, intervals[j]![1]);
      j++;
    }
    intervals.splice(i, j - i, [mergedStart, mergedEnd]);
  }

  private startHashing(): void {
    if (this.hashing || this.stopped || this.failure || this.contiguousEnd() <= this.hashed) return;
    this.hashing = this.hashAvailable()
      .catch((err: unknown) => {
        this.failure ??= err instanceof Error ? err : new Error(String(err));
      })
      .finally(() => {
        this.hashing = undefined;
        // Bytes that became contiguous after the loop's last look.
        this.startHashing();
      });
  }

  private async hashAvailable(): Promise<void> {
    while (!this.stopped && this.hashed < this.contiguousEnd()) {
      const length = Math.min(HASH_BLOCK, this.contiguousEnd() - this.hashed);
      const { bytesRead } = await this.file.read(this.block, 0, length, this.hashed);
      if (bytesRead === 0)
        throw new EcrxError("INTERNAL", `${this.what}: the file ends before its written bytes`);
      const error = this.check.add(this.block.subarray(0, bytesRead));
      if (error) throw error;
      this.hashed += bytesRead;
    }
  }
}

/** `chunks` without their first `skip` bytes. */
function remainder(chunks: Buffer[], skip: number): Buffer[] {
  const rest: Buffer[] = [];
  for (const chunk of chunks) {
    if (skip >= chunk.length) {
      skip -= chunk.length;
      continue;
    }
    rest.push(skip > 0 ? chunk.subarray(skip) : chunk);
    skip = 0;
  }
  return rest;
}
