import { createHash, type Hash } from "node:crypto";
import { pipeline, Transform, type Readable, type TransformCallback } from "node:stream";
import { EcrxError, type ErrorCode } from "../errors.js";
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
 * A pass-through stage that hashes and counts the bytes flowing through it and fails the stream
 * with INTEGRITY when the size is exceeded (at once) or when, at the end, the size or digest
 * differ. Chunks pass through untouched: no copies on the hot path. After the end, `digest` and
 * `bytes` describe what passed.
 */
export class DigestVerifier extends Transform {
  private readonly expected: ExpectedBlob;
  private readonly algorithm: DigestAlgorithm;
  private readonly hash: Hash;
  private readonly what: string;
  private readonly onBytes: ((bytes: number) => void) | undefined;
  private count = 0;
  private computed: Digest | undefined;

  constructor(expected: ExpectedBlob, options: VerifierOptions = {}) {
    super();
    this.expected = expected;
    this.algorithm = expected.digest === undefined ? "sha256" : parseDigest(expected.digest).algorithm;
    this.hash = createHash(this.algorithm);
    this.what = options.what ?? `blob ${expected.digest ?? "(digest computed)"}`;
    this.onBytes = options.onBytes;
  }

  /** Bytes seen so far. */
  get bytes(): number {
    return this.count;
  }

  /** The digest of the bytes, once the stream has ended. */
  get digest(): Digest | undefined {
    return this.computed;
  }

  /**
   * Whether this stream fails unless its bytes are exactly `blob` (digest and exact size): a
   * stage downstream may then skip hashing the same bytes again.
   */
  verifies(blob: ExpectedBlob): boolean {
    return (
      blob.digest !== undefined &&
      blob.digest === this.expected.digest &&
      blob.sizeIsExact !== false &&
      this.expected.sizeIsExact !== false &&
      blob.size === this.expected.size
    );
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.count += chunk.length;
    if (this.count > this.expected.size) {
      const qualifier = this.expected.sizeIsExact === false ? "at most " : "";
      callback(sizeMismatch(this.what, `${qualifier}${this.expected.size}`, `at least ${this.count}`));
      return;
    }
    this.hash.update(chunk);
    this.onBytes?.(chunk.length);
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    if (this.expected.sizeIsExact !== false && this.count !== this.expected.size) {
      callback(sizeMismatch(this.what, `${this.expected.size}`, `${this.count}`));
      return;
    }
    this.computed = `${this.algorithm}:${this.hash.digest("hex")}`;
    const wanted = this.expected.digest;
    callback(
      wanted === undefined || wanted === this.computed
        ? null
        : digestMismatch(this.what, wanted, this.computed),
    );
  }
}

/**
 * `source` piped through a DigestVerifier; an error of either side reaches the returned stream, and
 * destroying the returned stream destroys the source.
 */
export function verifiedStream(
  source: Readable,
  expected: ExpectedBlob,
  options: VerifierOptions = {},
): DigestVerifier {
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
