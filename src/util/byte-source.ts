import { open, type FileHandle } from "node:fs/promises";
import { Readable } from "node:stream";
import { EcrxError } from "../errors.js";

/**
 * A stream that can also fill its reader's own buffer. A reader that cuts a blob into large
 * buffers of its own (a push's parts) reads through `readInto`, and no chunk is allocated per
 * read. That matters: chunks held while a part is on the wire outlive a few scavenges, are
 * promoted, and their external memory made V8 run a full collection every ~14 MB read, a third of
 * a push's CPU.
 */
export interface ByteSource {
  /**
   * Fills `target` from its start with the next bytes; fewer only at the end, 0 once it is
   * reached. A stream read this way must not also be read as a stream.
   */
  readInto(target: Uint8Array): Promise<number>;
}

/** The stream's ByteSource side, when it has one and has not been read as a stream yet. */
export function asByteSource(stream: Readable): (Readable & ByteSource) | undefined {
  const candidate = stream as Readable & Partial<ByteSource>;
  if (typeof candidate.readInto !== "function" || stream.readableDidRead || stream.destroyed)
    return undefined;
  return candidate as Readable & ByteSource;
}

/**
 * The chunk size of a ByteSource read as a stream: 10 MiB parts in 10 trips through the thread
 * pool.
 */
export const STREAM_CHUNK = 1024 * 1024;

/**
 * Bytes `start..end` (inclusive) of a file, as a stream and as a ByteSource. The file is opened
 * on first read and closed at the end, on an error and on destroy.
 */
export class FileRangeStream extends Readable implements ByteSource {
  private handle: Promise<FileHandle> | undefined;
  private position: number;
  private mode: "stream" | "bytes" | undefined;

  constructor(
    private readonly path: string,
    start: number,
    private readonly end: number,
  ) {
    super({ highWaterMark: STREAM_CHUNK });
    this.position = start;
  }

  private get remaining(): number {
    return this.end + 1 - this.position;
  }

  /** Reads exactly `length` bytes into `target` at the current position, or fails. */
  private async fill(target: Uint8Array, length: number): Promise<void> {
    this.handle ??= open(this.path, "r");
    const file = await this.handle;
    for (let filled = 0; filled < length;) {
      const { bytesRead } = await file.read(target, filled, length - filled, this.position);
      if (bytesRead === 0) {
        throw new EcrxError(
          "INVALID_INPUT",
          `${this.path} ended at byte ${this.position}, before byte ${this.end}`,
          {
            hint: "the file changed while it was read; try again",
          },
        );
      }
      filled += bytesRead;
      this.position += bytesRead;
    }
  }

  async readInto(target: Uint8Array): Promise<number> {
    if (this.mode === "stream") throw new Error("FileRangeStream: readInto after stream reads");
    this.mode = "bytes";
    const length = Math.min(target.length, this.remaining);
    if (length === 0) return 0;
    if (this.destroyed) throw this.errored ?? new Error("FileRangeStream: read after destroy");
    try {
      await this.fill(target, length);
    } catch (err) {
      // The reader hears of it from this rejection; an 'error' event would have no listener.
      this.destroy();
      throw err;
    }
    // Nobody will read this stream's end: let go of the file now.
    if (this.remaining === 0) this.destroy();
    return length;
  }

  override _read(): void {
    if (this.mode === "bytes") {
      this.destroy(new Error("FileRangeStream: stream read after readInto"));
      return;
    }
    this.mode = "stream";
    const length = Math.min(STREAM_CHUNK, this.remaining);
    if (length === 0) {
      this.push(null);
      return;
    }
    const chunk = Buffer.allocUnsafeSlow(length);
    this.fill(chunk, length).then(
      () => this.push(chunk),
      (err: unknown) => this.destroy(err as Error),
    );
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    const handle = this.handle;
    this.handle = undefined;
    if (handle === undefined) {
      callback(error);
      return;
    }
    handle
      .then(
        (file) => file.close(),
        () => undefined,
      )
      .then(
        () => callback(error),
        (closeError: unknown) => callback(error ?? (closeError as Error)),
      );
  }
}
