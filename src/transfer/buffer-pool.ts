/**
 * A few large buffers recycled within one upload. Each part of a push needs a 10 MiB part and a
 * 14 MB request body; allocating them afresh made the garbage collector a quarter of the client's
 * time. Buffers come back only once nothing refers to them any more (the part was acknowledged).
 */
export class BufferPool {
  private readonly free: Buffer[] = [];
  /** Memory this pool allocated: anything else given back (a stream's own chunk) is not taken in. */
  private readonly own = new WeakSet<ArrayBufferLike>();

  constructor(private readonly keep = 3) {}

  /** A buffer of `size` bytes (its contents are old bytes: overwrite them all). */
  take(size: number): Buffer {
    const index = this.free.findIndex((b) => b.buffer.byteLength >= size);
    if (index < 0) {
      const fresh = Buffer.allocUnsafeSlow(size);
      this.own.add(fresh.buffer);
      return fresh;
    }
    const [found] = this.free.splice(index, 1);
    return Buffer.from(found!.buffer, 0, size);
  }

  /** Returns a buffer from `take` (or a view of one); the pool keeps at most `keep`. */
  give(buffer: Buffer): void {
    if (this.free.length < this.keep && this.own.has(buffer.buffer)) this.free.push(buffer);
  }
}
