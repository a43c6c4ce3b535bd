import { availableParallelism } from "node:os";
import { Transform, type TransformCallback } from "node:stream";
import { promisify } from "node:util";
import { createGunzip, gzip as gzipCallback } from "node:zlib";
import { CompressStream, DecompressStream } from "zstd-napi";
import type { Compression } from "../manifest/media-types.js";

const gzip = promisify(gzipCallback);

/** Defaults of the gzip stage; the bench (bench/README.md) is where they were chosen. */
export const GZIP_DEFAULTS = {
  /** Input bytes per gzip member. Large enough that the dictionary reset costs <0.1% of ratio. */
  memberSize: 1024 * 1024,
  /**
   * zlib level 4: on a tar of system libraries it compresses as small as skopeo's default does
   * (4.66x; level 6 gains 5% more) at 1.8x the speed of level 6 per core (148 against 84 MB/s
   * here). Compression is the bound of pushing uncompressed layers, so speed wins the trade.
   */
  level: 4,
};

export interface ParallelGzipOptions {
  memberSize?: number;
  level?: number;
  /** Members in flight at once. Default: twice the cores (see ParallelGzip). */
  parallel?: number;
}

/**
 * gzip on several cores: the input is cut into members of `memberSize` bytes, each compressed
 * independently on libuv's thread pool (zlib's async API), and the members are emitted in order.
 * Concatenated gzip members are one valid gzip stream (RFC 1952 section 2.2), which docker,
 * containerd and Go's gzip reader all decompress. The output is deterministic for the same input
 * and options, so a re-push finds its digest again.
 */
export class ParallelGzip extends Transform {
  private readonly memberSize: number;
  private readonly level: number;
  private readonly parallel: number;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private readonly inFlight: Promise<Buffer>[] = [];

  constructor(options: ParallelGzipOptions = {}) {
    super();
    this.memberSize = options.memberSize ?? GZIP_DEFAULTS.memberSize;
    this.level = options.level ?? GZIP_DEFAULTS.level;
    // Twice the cores: members finish out of order, and with one per core a core sat idle while
    // the oldest member, which must be emitted first, was still being compressed (117 against
    // 150 MB/s on this project's two cores, bench/README.md, target 7).
    this.parallel = options.parallel ?? 2 * Math.max(1, availableParallelism());
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    this.drainFullMembers().then(() => callback(), callback);
  }

  override _flush(callback: TransformCallback): void {
    if (this.pendingBytes > 0) this.startMember(Buffer.concat(this.pending, this.pendingBytes));
    this.pending = [];
    this.pendingBytes = 0;
    this.emitAll().then(() => callback(), callback);
  }

  private async drainFullMembers(): Promise<void> {
    while (this.pendingBytes >= this.memberSize) {
      const all =
        this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingBytes);
      this.startMember(all.subarray(0, this.memberSize));
      const rest = all.subarray(this.memberSize);
      this.pending = rest.length > 0 ? [rest] : [];
      this.pendingBytes = rest.length;
      // Backpressure: no more than `parallel` members in the pool at once.
      while (this.inFlight.length >= this.parallel) this.push(await this.inFlight.shift()!);
    }
  }

  private startMember(input: Buffer): void {
    const member = gzip(input, { level: this.level });
    // Rejections are observed in order by emit; keep an early one from being reported as unhandled.
    member.catch(() => undefined);
    this.inFlight.push(member);
  }

  private async emitAll(): Promise<void> {
    while (this.inFlight.length > 0) this.push(await this.inFlight.shift()!);
  }
}

/** A stage that changes a layer's compression. */
export function compressor(
  to: Exclude<Compression, "none">,
  options: { gzipLevel?: number } = {},
): Transform {
  if (to === "gzip")
    return new ParallelGzip(options.gzipLevel === undefined ? {} : { level: options.gzipLevel });
  return new CompressStream({ compressionLevel: 3 });
}

export function decompressor(from: Exclude<Compression, "none">): Transform {
  return from === "gzip" ? createGunzip() : new DecompressStream();
}
