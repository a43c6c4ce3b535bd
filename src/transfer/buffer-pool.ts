/**
 * A few large buffers recycled within one upload, or across the uploads of one push. Each part of
 * a push needs a 10 MiB part and a 14 MB request body; allocating them afresh made the garbage
 * collector a quarter of the client's time. Buffers come back only once nothing refers to them
 * any more (the part was acknowledged).
 */
const SLACK = 64 * 1024;

export class BufferPool {
  private readonly free: Buffer[] = [];
  /** Memory this pool allocated: anything else given back (a stream's own chunk) is not taken in. */
  private readonly own = new WeakSet<ArrayBufferLike>();

  constructor(private readonly keep = 4) {}

  /** A buffer of `size` bytes (its contents are old bytes: overwrite them all). */
  take(size: number): Buffer {
    // Best fit: parts (10 MiB) and request bodies (14 MB) share the pool, and a part that took a
    // body's buffer would leave the next body to allocate afresh, every part.
    let index = -1;
    for (let i = 0; i < this.free.length; i++) {
      const capacity = this.free[i]!.buffer.byteLength;
      if (capacity >= size && (index < 0 || capacity < this.free[index]!.buffer.byteLength)) index = i;
    }
    if (index < 0) {
      // Capacity rounded up to 64 KiB: request bodies grow by a few bytes as the part offsets
      // gain digits, and a buffer exactly one body long would fit no later body.
      const fresh = Buffer.allocUnsafeSlow(Math.ceil(size / SLACK) * SLACK);
      this.own.add(fresh.buffer);
      return fresh.subarray(0, size);
    }
    const [found] = this.free.splice(index, 1);
    return Buffer.from(found!.buffer, 0, size);
  }

  /** Returns a buffer from `take` (or a view of one); the pool keeps at most `keep`. */
  give(buffer: Buffer): void {
    if (this.free.length < this.keep && this.own.has(buffer.buffer)) this.free.push(buffer);
  }
}
