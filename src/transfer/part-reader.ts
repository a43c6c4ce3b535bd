import type { Readable } from "node:stream";

/**
 * Cuts a byte stream into parts of exactly `partSize` bytes (the last may be shorter) without
 * holding more than one part plus one source chunk: each chunk is copied once, into the part
 * buffer it belongs to. Part buffers come from `allocate` (a pool), since the previous part may
 * still be in flight while the next is read ahead.
 */
export class PartReader {
  private readonly chunks: AsyncIterator<Buffer>;
  private leftover: Buffer | undefined;
  private done = false;

  constructor(
    body: Readable,
    private readonly partSize: number,
    private readonly allocate: (size: number) => Buffer = (size) => Buffer.allocUnsafe(size),
  ) {
    this.chunks = (body as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  }

  /** The next part, or undefined at the end of the stream. */
  async next(): Promise<Buffer | undefined> {
    if (this.done && this.leftover === undefined) return undefined;
    let part: Buffer | undefined;
    let filled = 0;
    for (;;) {
      let chunk = this.leftover;
      this.leftover = undefined;
      if (chunk === undefined) {
        if (this.done) break;
        const result = await this.chunks.next();
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

  /** Stops reading: the source is destroyed so it releases its file or socket. */
  async cancel(): Promise<void> {
    this.done = true;
    this.leftover = undefined;
    await this.chunks.return?.();
  }
}
