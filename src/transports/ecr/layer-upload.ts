import { createHash, type Hash } from "node:crypto";
import type { Readable } from "node:stream";
import pLimit from "p-limit";
import { EcrxError } from "../../errors.js";
import { BufferPool } from "../../transfer/buffer-pool.js";
import { PartReader } from "../../transfer/part-reader.js";
import { choosePartSize } from "../../transfer/part-size.js";
import type { ProgressFn } from "../types.js";
import type { EcrApi, PreparedLayerPart } from "./api.js";
import { ecrError, exceptionName } from "./errors.js";
import { partBytesFrom } from "./part-body.js";

export interface LayerUploadOptions {
  /** Known digest (verified by the registry at CompleteLayerUpload), or undefined to compute it. */
  digest: string | undefined;
  /** Exact size, or an upper bound when the body is produced on the way (compression). */
  sizeHint: number;
  /** Requested part size; grown when the layer would need too many parts. */
  partSize: number | undefined;
  /** Parts read, hashed and encoded ahead of the one in flight; default 1 (see READ_AHEAD). */
  readAhead?: number | undefined;
  progress: ProgressFn;
  signal?: AbortSignal | undefined;
  /**
   * Where part buffers and request bodies come from and go back to; shared by the uploads of one
   * push, a blob that starts takes over the buffers of one that ended instead of faulting in new
   * ones. Default: a pool of this upload's own.
   */
  buffers?: BufferPool | undefined;
  /**
   * Read-ahead shared by the uploads of one push (see ReadAheadBudget). Default: this upload reads
   * `readAhead` parts ahead whatever the others do.
   */
  readAheadBudget?: ReadAheadBudget | undefined;
}

/**
 * How many parts the uploads of one push may have prepared ahead of their parts in flight, all
 * together. Read-ahead keeps one connection busy while its next part is prepared, which is what a
 * single big layer needs (its parts are a chain). Ten blobs at once keep the link busy by
 * themselves, and ten bodies read ahead are 140 MB more memory to fault in and CPU that the parts
 * in flight need: on loopback, 10 x 20 MiB went 8% faster and with 16% less CPU per GiB with no
 * read-ahead at all (bench/README.md, "Read-ahead across blobs").
 */
export class ReadAheadBudget {
  constructor(private available: number) {}

  take(): boolean {
    if (this.available <= 0) return false;
    this.available -= 1;
    return true;
  }

  give(): void {
    this.available += 1;
  }
}

/** The buffers one upload holds at most: a part and its request body, in flight and read ahead. */
export function uploadBufferCount(readAhead: number = READ_AHEAD.default): number {
  return 2 * (readAhead + 1);
}

/** How many times one part is resumed after InvalidLayerPartException before giving up. */
const MAX_PART_RESUMES = 5;

/**
 * Parts prepared ahead of the one in flight. One is enough: preparing a 10 MiB part (read, sha256,
 * base64, SigV4 hash) takes ~30 ms, sending it takes longer on any link, and a deeper queue only
 * holds more memory (bench/README.md, "read-ahead").
 */
export const READ_AHEAD = { default: 1, max: 4 };

/**
 * The CPU work of preparing parts (hashing, base64, the body's hash), for every upload of the
 * process, two at a time: one on the JS thread while the other's body hash runs on the thread
 * pool. Run all at once, the preparations of ten blobs interleave on the one thread and every
 * first part is ready only when all are, while the registry waits: 250 ms before the first of
 * ten 20 MiB parts went out, against 25 ms one at a time. Reading is not in it: a source waiting
 * on its network must not hold up the others.
 */
const preparing = pLimit(2);

/**
 * Uploads one blob through ECR's layer-upload protocol:
 * InitiateLayerUpload -> UploadLayerPart (strictly consecutive, the next part read while the
 * previous one is in flight) -> CompleteLayerUpload -> the registry's digest compared with ours.
 *
 * Transient failures of one request are retried by the SDK (see aws/retry.ts). When a part's
 * response was lost after the registry applied it, the retried request fails with
 * InvalidLayerPartException carrying `lastValidByteReceived`: the upload goes on from the byte
 * after it, never from byte 0 (ecr-spec.md section 3).
 *
 * Memory: 1 + readAhead request bodies, and a part buffer while a part is read and prepared (the
 * body carries the bytes from then on).
 */
export async function uploadLayer(
  api: EcrApi,
  body: Readable,
  options: LayerUploadOptions,
): Promise<{ digest: string; size: number }> {
  const partSize = choosePartSize(options.sizeHint, api.limits.maxParts, options.partSize);
  const readAhead = options.readAhead ?? READ_AHEAD.default;
  if (!Number.isInteger(readAhead) || readAhead < 0 || readAhead > READ_AHEAD.max) {
    throw new EcrxError(
      "USAGE",
      `read-ahead ${readAhead} is not a whole number of parts in 0..${READ_AHEAD.max}`,
    );
  }
  // A part and its request body for the one in flight and each one prepared.
  const pool = options.buffers ?? new BufferPool(uploadBufferCount(readAhead));
  const allocate = (size: number) => pool.take(size);
  const reader = new PartReader(body, partSize, allocate);
  const hash: Hash | undefined = options.digest === undefined ? createHash("sha256") : undefined;
  let uploadId: string;
  try {
    ({ uploadId } = await api.initiateLayerUpload());
  } catch (err) {
    await reader.cancel();
    throw ecrError(err, `InitiateLayerUpload in ${api.repositoryName}`);
  }

  let offset = 0;
  let parts = 0;
  // Read ahead: the next parts are read, hashed and built into their requests while this one is
  // on the wire, so the registry's time per part is not added to ours. Preparations run one after
  // another (the reader and the hash are sequential), each chained to the one before.
  let nextOffset = 0;
  const prepareNext = async (): Promise<PreparedLayerPart | undefined> => {
    const blob = await reader.next();
    if (blob === undefined) return undefined;
    const part = await preparing(() => {
      hash?.update(blob);
      return api.prepareLayerPart(uploadId, nextOffset, blob, allocate);
    });
    // The body carries the bytes now: the part buffer can be read into again at once.
    pool.give(blob);
    nextOffset += blob.length;
    return part;
  };
  // Each preparation, and whether it holds a share of the push's read-ahead budget (the one to be
  // sent next does not: it is prepared when nothing is in flight).
  const ahead: { part: Promise<PreparedLayerPart | undefined>; shared: boolean }[] = [];
  const budget = options.readAheadBudget;
  let last: Promise<unknown> = Promise.resolve();
  const schedule = (shared: boolean): void => {
    const next = last.then(prepareNext);
    // A rejected preparation is awaited in its loop turn; do not let it go unhandled meanwhile.
    next.catch(() => undefined);
    last = next;
    ahead.push({ part: next, shared });
  };
  try {
    for (;;) {
      if (ahead.length === 0) schedule(false);
      const next = ahead.shift()!;
      // Read ahead, it is the part in flight now: its share goes back to the others.
      if (next.shared) budget?.give();
      const part = await next.part;
      if (part === undefined) break;
      while (ahead.length < readAhead && (budget === undefined || budget.take())) {
        schedule(budget !== undefined);
      }
      options.signal?.throwIfAborted();
      parts += 1;
      if (parts > api.limits.maxParts) {
        throw new EcrxError("UNSUPPORTED", `the layer needs more than ${api.limits.maxParts} parts`);
      }
      await sendPart(api, part);
      offset += part.body.blobSize;
      options.progress(part.body.blobSize);
      pool.give(part.body.body);
    }
  } catch (err) {
    await reader.cancel();
    throw ecrError(err, `UploadLayerPart in ${api.repositoryName}`);
  } finally {
    for (const left of ahead) if (left.shared) budget?.give();
  }

  if (offset === 0) {
    throw new EcrxError(
      "UNSUPPORTED",
      "a zero-byte blob cannot be pushed through the ECR API (EmptyUploadException)",
    );
  }
  if (offset > api.limits.maxLayerBytes) {
    throw new EcrxError("UNSUPPORTED", `the layer has ${offset} bytes, more than ${api.service} accepts`);
  }
  const digest = options.digest ?? `sha256:${hash!.digest("hex")}`;
  let registryDigest: string;
  try {
    registryDigest = await api.completeLayerUpload(uploadId, digest);
  } catch (err) {
    // Another push of the same blob won the race: the registry has it, which is all we want.
    if (exceptionName(err) === "LayerAlreadyExistsException") return { digest, size: offset };
    throw ecrError(err, `CompleteLayerUpload of ${digest} in ${api.repositoryName}`);
  }
  if (registryDigest !== digest) {
    throw new EcrxError(
      "INTEGRITY",
      `the registry computed ${registryDigest} for the blob we sent as ${digest}`,
    );
  }
  return { digest, size: offset };
}

/** Sends one part, resuming from what the registry reports it has when a response was lost. */
async function sendPart(api: EcrApi, prepared: PreparedLayerPart): Promise<void> {
  const { firstByte, lastByte, uploadId } = prepared;
  let part = prepared;
  for (let resumes = 0; ; resumes++) {
    try {
      const received = await api.uploadLayerPart(part);
      if (received !== lastByte) {
        throw new EcrxError(
          "NETWORK",
          `the registry acknowledged byte ${received} of a part ending at ${lastByte}`,
        );
      }
      return;
    } catch (err) {
      const lastValid = (err as { lastValidByteReceived?: unknown }).lastValidByteReceived;
      if (exceptionName(err) !== "InvalidLayerPartException" || typeof lastValid !== "number") throw err;
      const resumeAt = lastValid + 1;
      if (resumeAt > lastByte) return; // the lost response was for this very part: it arrived whole
      // The registry has exactly what we sent before this part: the part itself is what it refuses.
      if (resumeAt === part.firstByte) throw err;
      if (resumeAt < firstByte || resumes >= MAX_PART_RESUMES) {
        throw new EcrxError(
          "NETWORK",
          `the registry lost bytes already acknowledged (it has up to ${lastValid}, the part starts at ${firstByte})`,
          { cause: err },
        );
      }
      part = await api.prepareLayerPart(
        uploadId,
        resumeAt,
        partBytesFrom(prepared.body, resumeAt - firstByte),
      );
    }
  }
}
