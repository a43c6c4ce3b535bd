import { createHash, type Hash } from "node:crypto";
import { pipeline, Readable, Transform, type TransformCallback } from "node:stream";
import { EcrxError, type ErrorCode } from "../errors.js";
import { asByteSource, STREAM_CHUNK, type ByteSource } from "../util/byte-source.js";
import type { Digest } from "./types.js";

export type DigestAlgorithm = "sha256" | "sha512";

export interface ParsedDigest {
  algorithm: DigestAlgorithm;
  hex: string;
}

const HEX_LENGTH: Record<DigestAlgorithm, number> = { sha256: 64, sha512: 128 };
const DIGEST_PATTERN = /^(sha256|sha512):([0-9a-f]+)$/;

/** Parses `sha256:<64 lowercase hex>` or `sha512:<128 lowercase hex>`; undefined when malformed. */
export function tryParseDigest(value: string): ParsedDigest | undefined {
  const match = DIGEST_PATTERN.exec(value);
  if (!match) return undefined;
  const algorithm = match[1] as DigestAlgorithm;
  const hex = match[2]!;
  return hex.length === HEX_LENGTH[algorithm] ? { algorithm, hex } : undefined;
}

export function isDigest(value: unknown): value is Digest {
  return typeof value === "string" && tryParseDigest(value) !== undefined;
}

/**
 * Parses a digest or throws: `code` is `INVALID_INPUT` for digests read from an image and `USAGE`
 * for digests a person typed.
 */
export function parseDigest(value: string, code: ErrorCode = "INVALID_INPUT", what = "digest"): ParsedDigest {
  const parsed = tryParseDigest(value);
  if (!parsed) {
    throw new EcrxError(code, `invalid ${what} ${JSON.stringify(truncate(value))}`, {
      hint: "a digest is sha256:<64 lowercase hex digits> (or sha512:<128>)",
    });
  }
  return parsed;
}

/** The hex part of a digest, e.g. for a file name; throws on malformed digests. */
export function digestHex(digest: Digest): string {
  return parseDigest(digest).hex;
}

export function sha256Digest(bytes: Uint8Array): Digest {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

export function computeDigest(bytes: Uint8Array, algorithm: DigestAlgorithm = "sha256"): Digest {
  return `${algorithm}:${createHash(algorithm).update(bytes).digest("hex")}`;
}

/** Throws INTEGRITY unless `bytes` hash to `expected.digest` and count `expected.size` (when given). */
export function verifyBytes(
  bytes: Uint8Array,
  expected: { digest: Digest; size?: number },
  what: string,
): void {
  if (expected.size !== undefined && bytes.length !== expected.size) {
    throw sizeMismatch(what, `${expected.size}`, `${bytes.length}`);
  }
  const { algorithm } = parseDigest(expected.digest);
  const actual = computeDigest(bytes, algorithm);
  if (actual !== expected.digest) throw digestMismatch(what, expected.digest, actual);
}

export interface VerifierOptions {
  /** Names the blob in error messages, e.g. "layer sha256:ab12… of alpine". */
  what?: string;
  /** Called with each chunk's length as it passes (progress without another stream stage). */
  onBytes?: (bytes: number) => void;
}

/**
 * What a stream must hold: `digest` (computed when omitted) and `size`, an exact count unless
 * `sizeIsExact` is false, then an upper bound (e.g. for bytes compressed on the way).
 */
export interface ExpectedBlob {
  digest?: Digest | undefined;
  size: number;
  sizeIsExact?: boolean;
}

/**
 * What DigestVerifier, VerifiedByteSource and a blob written by position (PositionalBlobFile)
 * share: the hash, the count, the checks.
 */
export class BlobCheck {
  private readonly algorithm: DigestAlgorithm;
  private readonly hash: Hash;
  private readonly what: string;
  private readonly onBytes: ((bytes: number) => void) | undefined;
  count = 0;
  computed: Digest | undefined;

  constructor(
    readonly expected: ExpectedBlob,
    options: VerifierOptions,
  ) {
    this.algorithm = expected.digest === undefined ? "sha256" : parseDigest(expected.digest).algorithm;
    this.hash = createHash(this.algorithm);
    this.what = options.what ?? `blob ${expected.digest ?? "(digest computed)"}`;
    this.onBytes = options.onBytes;
  }

  /** Takes in the next bytes; an error as soon as there are more than the size allows. */
  add(bytes: Uint8Array): EcrxError | undefined {
    this.count += bytes.length;
    if (this.count > this.expected.size) {
      const qualifier = this.expected.sizeIsExact === false ? "at most " : "";
      return sizeMismatch(this.what, `${qualifier}${this.expected.size}`, `at least ${this.count}`);
    }
    this.hash.update(bytes);
    this.onBytes?.(bytes.length);
    return undefined;
  }

  /** At the end: an error unless the size and digest are the expected ones. */
  finish(): EcrxError | undefined {
    if (this.expected.sizeIsExact !== false && this.count !== this.expected.size) {
      return sizeMismatch(this.what, `${this.expected.size}`, `${this.count}`);
    }
    this.computed = `${this.algorithm}:${this.hash.digest("hex")}`;
    const wanted = this.expected.digest;
    return wanted === undefined || wanted === this.computed
      ? undefined
      : digestMismatch(this.what, wanted, this.computed);
  }

  verifies(blob: ExpectedBlob): boolean {
    return (
      blob.digest !== undefined &&
      blob.digest === this.expected.digest &&
      blob.sizeIsExact !== false &&
      this.expected.sizeIsExact !== false &&
      blob.size === this.expected.size
    );
  }
}

/** A stream that fails unless its bytes are what it was told to expect (see verifiedStream). */
export interface VerifyingStream extends Readable {
  /** Bytes seen so far. */
  readonly bytes: number;
  /** The digest of the bytes, once the stream has ended. */
  readonly digest: Digest | undefined;
  /**
   * Whether this stream fails unless its bytes are exactly `blob` (digest and exact size): a
   * stage downstream may then skip hashing the same bytes again.
   */
  verifies(blob: ExpectedBlob): boolean;
}

export function isVerifyingStream(stream: Readable): stream is VerifyingStream {
  return stream instanceof DigestVerifier || stream instanceof VerifiedByteSource;
}

/**
 * A pass-through stage that hashes and counts the bytes flowing through it and fails the stream
 * with INTEGRITY when the size is exceeded (at once) or when, at the end, the size or digest
 * differ. Chunks pass through untouched: no copies on the hot path. After the end, `digest` and
 * `bytes` describe what passed.
 */
export class DigestVerifier extends Transform implements VerifyingStream {
  private readonly check: BlobCheck;

  constructor(expected: ExpectedBlob, options: VerifierOptions = {}) {
    super();
    this.check = new BlobCheck(expected, options);
  }

  get bytes(): number {
    return this.check.count;
  }

  get digest(): Digest | undefined {
    return this.check.computed;
  }

  verifies(blob: ExpectedBlob): boolean {
    return this.check.verifies(blob);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    const error = this.check.add(chunk);
    if (error) callback(error);
    else callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    callback(this.check.finish() ?? null);
  }
}

/**
 * Counts and hashes (sha256) the bytes that pass, untouched, reporting each chunk's size to
 * `progress` if given: for bytes whose digest is being made rather than checked (an upload's body
 * on its way, a blob being written). After the end, `digest` and `bytes` describe what passed.
 */
export class HashingCounter extends Transform {
  private readonly hash = createHash("sha256");
  private count = 0;
  private result: Digest | undefined;

  constructor(private readonly progress?: (bytes: number) => void) {
    super();
  }

  get bytes(): number {
    return this.count;
  }

  /** The digest of everything that passed, once the stream has ended. */
  get digest(): Digest {
    this.result ??= `sha256:${this.hash.digest("hex")}`;
    return this.result;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.count += chunk.length;
    this.hash.update(chunk);
    this.progress?.(chunk.length);
    callback(null, chunk);
  }
}

/**
 * A ByteSource verified as it is read, either way: through `readInto` (the bytes land in the
 * reader's buffer and are hashed there) or as a stream (chunks of its own). Destroying it
 * destroys the source.
 */
export class VerifiedByteSource extends Readable implements VerifyingStream, ByteSource {
  private readonly check: BlobCheck;

  constructor(
    private readonly source: Readable & ByteSource,
    expected: ExpectedBlob,
    options: VerifierOptions = {},
  ) {
    super({ highWaterMark: STREAM_CHUNK });
    this.check = new BlobCheck(expected, options);
    // Its failures reach us as readInto's rejections.
    source.on("error", () => undefined);
  }

  get bytes(): number {
    return this.check.count;
  }

  get digest(): Digest | undefined {
    return this.check.computed;
  }

  verifies(blob: ExpectedBlob): boolean {
    return this.check.verifies(blob);
  }

  async readInto(target: Uint8Array): Promise<number> {
    try {
      return await this.verifiedRead(target);
    } catch (err) {
      // The reader hears of it from this rejection; an 'error' event would have no listener.
      this.destroy();
      throw err;
    }
  }

  private async verifiedRead(target: Uint8Array): Promise<number> {
    if (this.destroyed) throw this.errored ?? new EcrxError("INTERRUPTED", "the blob's stream was closed");
    const read = await this.source.readInto(target);
    const error = read > 0 ? this.check.add(target.subarray(0, read)) : this.check.finish();
    if (error) throw error;
    return read;
  }

  override _read(): void {
    const chunk = Buffer.allocUnsafeSlow(STREAM_CHUNK);
    this.verifiedRead(chunk).then(
      (read) => this.push(read === 0 ? null : chunk.subarray(0, read)),
      (err: unknown) => this.destroy(err as Error),
    );
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.source.destroy(error ?? undefined);
    callback(error);
  }
}

/**
 * `source` verified as it is read: a VerifiedByteSource when the source can fill a reader's
 * buffer, else piped through a DigestVerifier. An error of either side reaches the returned
 * stream, and destroying the returned stream destroys the source.
 */
export function verifiedStream(
  source: Readable,
  expected: ExpectedBlob,
  options: VerifierOptions = {},
): VerifyingStream {
  const bytes = asByteSource(source);
  if (bytes !== undefined) return new VerifiedByteSource(bytes, expected, options);
  const verifier = new DigestVerifier(expected, options);
  // pipeline forwards the source's errors to the verifier and tears both down together.
  pipeline(source, verifier, () => undefined);
  return verifier;
}

function sizeMismatch(what: string, expected: string, actual: string): EcrxError {
  return new EcrxError("INTEGRITY", `${what}: expected ${expected} bytes, got ${actual}`);
}

function digestMismatch(what: string, expected: Digest, actual: Digest): EcrxError {
  return new EcrxError("INTEGRITY", `${what}: digest mismatch, expected ${expected}, got ${actual}`);
}

function truncate(value: string): string {
  return value.length > 80 ? `${value.slice(0, 77)}...` : value;
}
