import type { Readable } from "node:stream";
import type { Descriptor, RawManifest } from "../manifest/types.js";

/** Inclusive byte range, as in HTTP Range. */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * Where an image is read from. Accessors are lazy: nothing is read until asked for.
 */
export interface ImageSource {
  /** A human-readable name of the source, for messages. */
  readonly reference: string;
  /**
   * The root manifest when `digest` is omitted (the tagged image or the index), else the manifest
   * with that digest. The bytes are verbatim.
   */
  manifest(digest?: string): Promise<RawManifest>;
  /** A stream of the blob's bytes (or of `range` of them). Never a whole Buffer. */
  blob(d: Descriptor, range?: ByteRange): Promise<Readable>;
  /**
   * A hint that these blobs will be read soon, in this order: a source that needs a round trip
   * before each blob's bytes (a download URL) may make them now. Failures surface from `blob`.
   */
  prefetch?(blobs: Descriptor[]): void;
  /**
   * For a blob this source reads best as several ranges at once (a big blob behind a presigned
   * URL): a read that delivers its bytes by position, ranges in whatever order they arrive.
   * Undefined: read the blob with `blob`. The bytes are not verified on the way; a destination
   * that takes them (`putBlobByPosition`) verifies them.
   */
  positionalBlob?(d: Descriptor): PositionalRead | undefined;
  /** Every tag of the repository, for sources that are repositories (used by sync). */
  tags?(): Promise<string[]>;
  close(): Promise<void>;
}

/** Takes a blob's bytes by position, in whatever order they come. */
export interface PositionalSink {
  /**
   * Stores `chunks`, contiguous, from byte `position` of the blob; resolves once they are stored.
   * Callers wait for it before writing more of the same range: that is the backpressure.
   */
  write(position: number, chunks: Buffer[]): Promise<void>;
}

/**
 * Writes every byte of one blob into `sink`, and resolves once all of them are stored; on a
 * failure, rejects only after no write of it is pending any more. `signal` stops it.
 */
export type PositionalRead = (sink: PositionalSink, signal: AbortSignal) => Promise<void>;

/** Progress callback for bytes that reached the destination. */
export type ProgressFn = (bytes: number) => void;

/**
 * A blob about to be written. When the engine produces the bytes on the way (compressing an
 * uncompressed layer), the digest is not known in advance: `digest` is undefined, `size` is an
 * upper bound (`sizeIsExact` false), and the destination computes both while writing.
 */
export interface BlobToPut {
  mediaType: string;
  digest: string | undefined;
  size: number;
  sizeIsExact: boolean;
}

/**
 * Where an image is written. The engine calls, in order: `missing` (once per batch), `putBlob` for
 * each missing blob (several at once), `putManifest` for each child by digest, then the root with
 * its tags, and `close` always, also after a failure. `commit` is called once, after the last
 * manifest, by destinations that publish atomically (files renamed into place).
 */
export interface ImageDestination {
  readonly reference: string;
  /** Which of these blobs the destination does not have yet. */
  missing(blobs: Descriptor[]): Promise<Descriptor[]>;
  /**
   * Stores a blob and returns its descriptor. When `blob.digest` is given the bytes must hash to it
   * (and count `blob.size` when `sizeIsExact`); otherwise the destination computes the digest.
   */
  putBlob(blob: BlobToPut, body: Readable, progress: ProgressFn): Promise<Descriptor>;
  /**
   * Stores a blob whose bytes come by position (`PositionalRead`), for destinations that write
   * blobs into files: `fill` writes every byte into the sink it is given; the destination then
   * checks that they are exactly `blob` (its digest and exact size, both given) and returns its
   * descriptor. The engine uses it when the source offers `positionalBlob` for the blob.
   */
  putBlobByPosition?(
    blob: BlobToPut,
    fill: (sink: PositionalSink) => Promise<void>,
    progress: ProgressFn,
  ): Promise<Descriptor>;
  /** Stores a manifest by digest (`tags` empty) or under each tag. */
  putManifest(m: RawManifest, tags: string[]): Promise<void>;
  commit(): Promise<void>;
  close(): Promise<void>;
}
