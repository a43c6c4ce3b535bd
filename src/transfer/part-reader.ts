import type { Readable } from "node:stream";
import { asByteSource, type ByteSource } from "../util/byte-source.js";

/**
 * Cuts a byte stream into parts of exactly `partSize` bytes (the last may be shorter) without
 * holding more than one part plus one source chunk: each chunk is copied once, into the part
 * buffer it belongs to. Part buffers come from `allocate` (a pool), since the previous part may
 * still be in flight while the next is read ahead.
 */
export class PartReader {
  private readonly chunks: AsyncIterator<Buffer> | undefined;
  private leftover: Buffer | undefined;
  private done = false;

  /** Set when the body can fill our part buffers itself: then no chunk is ever made. */
  private readonly bytes: (Readable & ByteSource) | undefined;

  constructor(
    private readonly body: Readable,
    private readonly partSize: number,
    private readonly allocate: (size: number) => Buffer = (size) => Buffer.allocUnsafe(size),
  ) {
    this.bytes = asByteSource(body);
    if (this.bytes !== undefined) {
      // Read this way, its failures come as readInto's rejections; an 'error' event (an abort
      // destroying it) has nobody else to hear it.
      body.on("error", () => undefined);
      this.chunks = undefined;
    } else {
      this.chunks = (body as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
    }
  }

  /** The next part, or undefined at the end of the stream. */
  async next(): Promise<Buffer | undefined> {
    const chunks = this.chunks;
    if (chunks === undefined) return this.nextFilled(this.bytes!);
    if (this.done && this.leftover === undefined) return undefined;
    let part: Buffer | undefined;
    let filled = 0;
    for (;;) {
      let chunk = this.leftover;
      this.leftover = undefined;
      if (chunk === undefined) {
        if (this.done) break;
        const result = await chunks.next();
        if (result.done) {
          this.done = true;
          break;
        }
        chunk = typeof result.value === "string" ? Buffer.from(result.value) : result.value;
        if (chunk.length === 0) continue;
      }
      // A chunk that is exactly one whole part needs no copy at all.
      if (part === undefined && chunk.length === this.partSize) return chunk;
      part ??= this.allocate(this.partSize);
      const take = Math.min(chunk.length, this.partSize - filled);
      chunk.copy(part, filled, 0, take);
      filled += take;
      if (take < chunk.length) this.leftover = chunk.subarray(take);
      if (filled === this.partSize) return part;
    }
    if (part === undefined || filled === 0) return undefined;
    return part.subarray(0, filled);
  }

  /** A part filled in place by the ByteSource: the part buffer is the only copy of the bytes. */
  private async nextFilled(bytes: ByteSource): Promise<Buffer | undefined> {
    if (this.done) return undefined;
    const part = this.allocate(this.partSize);
    let filled = 0;
    // Until a full part or 0: a short read is the last bytes, and only the read that returns 0
    // lets a VerifiedByteSource check the size and digest.
    while (filled < this.partSize) {
      const read = await bytes.readInto(part.subarray(filled));
      if (read === 0) {
        this.done = true;
        break;
      }
      filled += read;
    }
    return filled === 0 ? undefined : part.subarray(0, filled);
  }

  /** Stops reading: the source is destroyed so it releases its file or socket. */
  async cancel(): Promise<void> {
    this.done = true;
    this.leftover = undefined;
    if (this.chunks) await this.chunks.return?.();
    else this.body.destroy();
  }
}
