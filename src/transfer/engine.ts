import { setMaxListeners } from "node:events";
import { pipeline, Readable } from "node:stream";
import pLimit from "p-limit";
import { EcrxError, isEcrxError } from "../errors.js";
import { sha256Digest, verifiedStream } from "../manifest/digest.js";
import {
  layerCompression,
  layerMediaType,
  mediaTypeFlavour,
  type Compression,
} from "../manifest/media-types.js";
import type { Descriptor, Platform, RawManifest } from "../manifest/types.js";
import type { BlobToPut, ImageDestination, ImageSource } from "../transports/types.js";
import { MemoryBlobInfoCache, type BlobInfoCache } from "./blob-info-cache.js";
import { compressor, decompressor } from "./compression.js";
import type { TransferEvent, TransferListener } from "./events.js";
import { loadImageGraph, type ImageGraph, type ImageNode } from "./graph.js";
import { fullJitterDelay } from "../transports/aws/retry.js";
import { decompressionLimit, ExpansionLimit } from "../util/expansion-limit.js";

/**
 * What happens to layer compression on the way:
 * - `keep`: no blob is ever changed (the manifest digests stay the source's);
 * - `gzip` / `zstd`: uncompressed layers are compressed; compressed ones are kept;
 * - `none`: compressed layers are decompressed; the result is what the config's diff_ids name.
 */
export type CompressionMode = "keep" | Compression;

/** Runs work within a concurrency budget (a p-limit function). */
export type BlobBudget = <T>(work: () => Promise<T>) => Promise<T>;

export interface TransferOptions {
  /** Blobs in flight at once, for the whole image (every platform). Default 4. */
  concurrency?: number;
  /** Default `keep`. */
  compression?: CompressionMode;
  /** zlib level for `gzip`. Default: see GZIP_DEFAULTS. */
  gzipLevel?: number;
  /** Keep only this platform of an index: the result is that image alone, with its own digest. */
  platform?: Platform | undefined;
  /** Tags of the root manifest; empty: written by digest only. */
  tags?: string[];
  onEvent?: TransferListener;
  signal?: AbortSignal | undefined;
  /** Default: in memory for this transfer only. */
  blobInfoCache?: BlobInfoCache;
  /** Attempts of one whole blob (the first included) when it fails with a network error. Default 3. */
  blobAttempts?: number;
  /**
   * A blob budget shared with other transfers (several images copied at once); default: this
   * transfer's own, of `concurrency`.
   */
  limit?: BlobBudget;
  /**
   * Uploads in progress to the same destination repository, by digest, shared between transfers
   * that run at once: a blob that several images share is sent once, the others wait for it.
   */
  sharedUploads?: Map<string, Promise<Descriptor>>;
}

export interface TransferResult {
  /** Digest and media type of the root manifest written. */
  digest: string;
  mediaType: string;
  tags: string[];
  /** The root's digest at the source: different when layers were recompressed or a platform picked. */
  sourceDigest: string;
  images: number;
  blobsSent: number;
  blobsSkipped: number;
  bytesSent: number;
  bytesSkipped: number;
  seconds: number;
}

type Transform =
  | { kind: "copy" }
  | { kind: "compress"; to: "gzip" | "zstd" }
  | { kind: "decompress"; from: "gzip" | "zstd" };

/** One blob to bring to the destination (deduplicated across the images of an index). */
interface BlobJob {
  source: Descriptor;
  transform: Transform;
  /** The output's media type. */
  mediaType: string;
  /** The whole output descriptor when known before the transfer (copy, cache hit): it can be skipped. */
  expected: Descriptor | undefined;
  /** The output digest when known before the transfer, even if its size is not (diff_id). */
  outputDigest: string | undefined;
  /** The bytes, when they are already in memory (a config read to validate the image). */
  bytes?: Buffer | undefined;
  result: Descriptor | undefined;
}

/**
 * Blobs in flight when the caller says nothing. Downloads of big blobs open several ranges each
 * (http/blob-download.ts), so four blobs are enough to fill a link.
 */
export const DEFAULT_CONCURRENCY = 4;

/**
 * Blobs in flight for uploads (push, copy). A layer's parts go up one after another, each
 * waiting for its answer, so one blob is one connection's worth at most: only more blobs at once
 * fill a link whose connections are capped one by one. On the local server's network profiles,
 * 10 layers of 20 MiB went up 1.3-2.1x faster at 10 than at 4 (bench/README.md, "Real networks");
 * on loopback the two are alike. The cost is memory: about 14 MB per large blob in flight (the
 * request body of the part on the wire), plus the bodies read ahead (two in all for a push, see
 * ReadAheadBudget) and the 10 MiB part buffers being read, which the blobs of a push share. The
 * AWS CLI moves S3 objects 10 requests at a time too.
 */
export const DEFAULT_UPLOAD_CONCURRENCY = 10;

/**
 * Copies one image (or a whole index) from a source to a destination: the one engine behind push,
 * pull and copy.
 *
 * 1. read and validate every manifest and config (nothing is written before this succeeds);
 * 2. plan the blobs: deduplicate, decide compression, ask the destination which it lacks;
 * 3. stream the missing blobs, several at once under one budget, each verified against its digest
 *    on the way (a whole blob is retried on network errors, its progress rolled back); a big blob
 *    that the source fetches by ranges and the destination writes into a file goes by position
 *    instead, the destination verifying it (ImageDestination.putBlobByPosition);
 * 4. write manifests bottom-up: an index's children by digest, then the root under each tag;
 * 5. commit (destinations that publish files rename them into place only now).
 */
export async function transferImage(
  source: ImageSource,
  destination: ImageDestination,
  options: TransferOptions = {},
): Promise<TransferResult> {
  try {
    return await transfer(source, destination, options);
  } catch (err) {
    // However the abort surfaced (an AbortError from a socket, a destroyed stream), the caller
    // asked for it: say so with one code.
    if (options.signal?.aborted && !(isEcrxError(err) && err.code === "INTERRUPTED")) {
      const reason: unknown = options.signal.reason;
      throw isEcrxError(reason) && reason.code === "INTERRUPTED"
        ? reason
        : new EcrxError("INTERRUPTED", "interrupted", { cause: err });
    }
    throw err;
  }
}

async function transfer(
  source: ImageSource,
  destination: ImageDestination,
  options: TransferOptions,
): Promise<TransferResult> {
  const started = performance.now();
  const emit = (event: TransferEvent) => options.onEvent?.(event);
  const signal = options.signal;
  signal?.throwIfAborted();

  const graph = await loadImageGraph(source, { platform: options.platform });
  if (graph.selectedPlatform !== undefined) {
    emit({
      type: "notice",
      message: `picked ${graph.selectedPlatform} out of the index: the result's digest is that image's, not the index's`,
    });
  }
  const cache = options.blobInfoCache ?? new MemoryBlobInfoCache();
  const jobs = planJobs(graph, options.compression ?? "keep", cache);

  const known = [...jobs.values()].filter((j) => j.expected !== undefined).map((j) => j.expected!);
  const missing = new Set((await destination.missing(known)).map((d) => d.digest));
  const toSend: BlobJob[] = [];
  let bytesSkipped = 0;
  for (const job of jobs.values()) {
    if (job.expected !== undefined && !missing.has(job.expected.digest)) {
      job.result = job.expected;
      bytesSkipped += job.expected.size;
      emit({
        type: "blob-skipped",
        digest: job.expected.digest,
        size: job.expected.size,
        mediaType: job.mediaType,
        reason: "exists",
      });
    } else {
      if (job.transform.kind === "compress") {
        // A cache hit only serves to skip a blob the destination has. When it lacks it, compress
        // afresh and learn the digest on the way: the cached one may come from another zlib or
        // level and would fail the upload's digest check.
        job.expected = undefined;
        job.outputDigest = undefined;
      }
      toSend.push(job);
    }
  }
  emit({
    type: "plan",
    images: graph.images.length,
    blobs: toSend.length,
    bytes: toSend.reduce((sum, j) => sum + j.source.size, 0),
  });

  // Sources that must ask for each blob's address (ECR's GetDownloadUrlForLayer) ask now, for all
  // of them, so that no blob waits a round trip for its URL when its turn comes.
  source.prefetch?.(toSend.filter((j) => j.bytes === undefined).map((j) => j.source));

  const limit: BlobBudget = options.limit ?? pLimit(options.concurrency ?? DEFAULT_CONCURRENCY);
  // The first failure stops the rest: queued blobs do not start, streams in flight are destroyed.
  const stop = new AbortController();
  const blobSignal = signal ? AbortSignal.any([signal, stop.signal]) : stop.signal;
  // Each blob in flight listens on it (to destroy its body on a stop) until it ends: with ten at
  // once that passes node's leak warning at ten listeners, which is not a leak. One per blob of
  // this transfer, plus the usual ten for anything else, is still a bound.
  setMaxListeners(toSend.length + 10, blobSignal);
  let bytesSent = 0;
  const runs = toSend.map((job) =>
    limit(async () => {
      blobSignal.throwIfAborted();
      job.result = await sendShared(
        job,
        () => sendBlob(source, destination, job, options, blobSignal, emit),
        options,
      );
      bytesSent += job.result.size;
      if (job.transform.kind === "compress") cache.record(job.source.digest, job.transform.to, job.result);
    }).catch((err: unknown) => {
      stop.abort(err);
      throw err;
    }),
  );
  // Wait for every blob to settle, so no upload is left running behind our back.
  const outcomes = await Promise.allSettled(runs);
  await cache.flush();
  signal?.throwIfAborted();
  const failure = outcomes.find((o): o is PromiseRejectedResult => o.status === "rejected");
  // The first failure in time is the cause; later ones are mostly its consequence (aborted).
  if (failure) throw stop.signal.reason ?? failure.reason;

  signal?.throwIfAborted();
  const tags = options.tags ?? [];
  const root = await putManifests(graph, jobs, destination, tags, emit);
  await destination.commit();
  return {
    digest: root.digest,
    mediaType: root.mediaType,
    tags,
    sourceDigest: graph.sourceRoot.digest,
    images: graph.images.length,
    blobsSent: toSend.length,
    blobsSkipped: jobs.size - toSend.length,
    bytesSent,
    bytesSkipped,
    seconds: (performance.now() - started) / 1000,
  };
}

function planJobs(graph: ImageGraph, mode: CompressionMode, cache: BlobInfoCache): Map<string, BlobJob> {
  // Keyed by source digest: the same bytes have the same compression, so one job serves every
  // image of an index that shares the blob.
  const jobs = new Map<string, BlobJob>();
  const add = (job: Omit<BlobJob, "result">) => {
    if (!jobs.has(job.source.digest)) jobs.set(job.source.digest, { ...job, result: undefined });
  };
  for (const image of graph.images) {
    const config = image.manifest.config;
    add({
      source: config,
      transform: { kind: "copy" },
      mediaType: config.mediaType,
      expected: config,
      outputDigest: config.digest,
      bytes: image.configBytes,
    });
    image.manifest.layers.forEach((layer, i) => {
      const transform = layerTransform(layer, mode);
      if (transform.kind === "copy") {
        add({
          source: layer,
          transform,
          mediaType: layer.mediaType,
          expected: layer,
          outputDigest: layer.digest,
        });
        return;
      }
      const flavour = mediaTypeFlavour(layer.mediaType) ?? "oci";
      if (transform.kind === "compress") {
        const mediaType = layerMediaType(transform.to, flavour);
        const cached = cache.compressed(layer.digest, transform.to);
        const expected = cached && { ...cached, mediaType };
        add({ source: layer, transform, mediaType, expected, outputDigest: expected?.digest });
      } else {
        // Decompressed, the layer is what the config's diff_id names (the registry checks it when
        // the upload completes); its size is only known at the end.
        add({
          source: layer,
          transform,
          mediaType: layerMediaType("none", flavour),
          expected: undefined,
          outputDigest: image.diffIds?.[i],
        });
      }
    });
  }
  return jobs;
}

function layerTransform(layer: Descriptor, mode: CompressionMode): Transform {
  const compression = layerCompression(layer.mediaType);
  if (mode === "keep" || compression === undefined) return { kind: "copy" };
  if (mode === "none")
    return compression === "none" ? { kind: "copy" } : { kind: "decompress", from: compression };
  return compression === "none" ? { kind: "compress", to: mode } : { kind: "copy" };
}

function isRetryable(err: unknown): boolean {
  if (!isEcrxError(err)) return false;
  return err.code === "NETWORK" || err.awsName === "UploadNotFoundException";
}

/** Streams one blob source -> verify -> (transform) -> destination, retrying it whole on network errors. */
async function sendBlob(
  source: ImageSource,
  destination: ImageDestination,
  job: BlobJob,
  options: TransferOptions,
  signal: AbortSignal,
  emit: (event: TransferEvent) => void,
): Promise<Descriptor> {
  const attempts = options.blobAttempts ?? 3;
  const transformName = job.transform.kind === "copy" ? undefined : describeTransform(job.transform);
  emit({
    type: "blob-start",
    id: job.source.digest,
    digest: job.expected?.digest,
    size: job.source.size,
    mediaType: job.mediaType,
    ...(transformName === undefined ? {} : { transform: transformName }),
  });
  for (let attempt = 1; ; attempt++) {
    let counted = 0;
    const count = (bytes: number) => {
      counted += bytes;
      emit({ type: "blob-progress", id: job.source.digest, bytes });
    };
    try {
      // A big blob that the source fetches as ranges at once, copied into a destination that
      // writes files, goes by position: no range waits in memory for the ones before it.
      const positional =
        job.transform.kind === "copy" && job.bytes === undefined && destination.putBlobByPosition
          ? source.positionalBlob?.(job.source)
          : undefined;
      const result =
        positional === undefined
          ? await streamBlob(source, destination, job, options, signal, count)
          : await destination.putBlobByPosition!(toPut(job), (sink) => positional(sink, signal), count);
      emit({ type: "blob-done", id: job.source.digest, digest: result.digest, size: result.size });
      return { ...result, mediaType: job.mediaType };
    } catch (err) {
      if (signal.aborted) throw new EcrxError("INTERRUPTED", "interrupted", { cause: err });
      if (attempt >= attempts || !isRetryable(err)) throw err;
      emit({
        type: "blob-retry",
        id: job.source.digest,
        attempt: attempt + 1,
        rolledBack: counted,
        reason: err instanceof Error ? err.message : String(err),
      });
      await new Promise((resolve) =>
        setTimeout(resolve, fullJitterDelay(attempt, 1000, 20_000, Math.random)),
      );
    }
  }
}

/** One attempt of a blob as a stream: source -> verify -> (transform) -> destination. */
async function streamBlob(
  source: ImageSource,
  destination: ImageDestination,
  job: BlobJob,
  options: TransferOptions,
  signal: AbortSignal,
  count: (bytes: number) => void,
): Promise<Descriptor> {
  let body: Readable | undefined;
  try {
    const raw = job.bytes ? Readable.from([job.bytes]) : await source.blob(job.source);
    // Progress follows the source's bytes when the output size is not known in advance.
    const verified = verifiedStream(raw, job.source, {
      what: `blob ${job.source.digest} of ${source.reference}`,
      ...(job.transform.kind === "copy" ? {} : { onBytes: count }),
    });
    body =
      job.transform.kind === "copy"
        ? verified
        : withStage(verified, job.transform, job.source, options.gzipLevel);
    // The destination reports the body's failures through putBlob; once it has stopped reading
    // (it failed first, and the transfer is being stopped), nobody else listens, and an
    // interrupted body's 'error' event would crash the process.
    body.on("error", () => undefined);
    const abort = () => body?.destroy(new EcrxError("INTERRUPTED", "interrupted"));
    signal.addEventListener("abort", abort, { once: true });
    try {
      return await destination.putBlob(
        toPut(job),
        body,
        job.transform.kind === "copy" ? count : () => undefined,
      );
    } finally {
      signal.removeEventListener("abort", abort);
    }
  } catch (err) {
    body?.destroy();
    throw err;
  }
}

/**
 * Joins an upload of the same blob that a concurrent transfer to the same repository has under
 * way (see TransferOptions.sharedUploads), or starts it and lets others join.
 */
async function sendShared(
  job: BlobJob,
  send: () => Promise<Descriptor>,
  options: TransferOptions,
): Promise<Descriptor> {
  const shared = options.sharedUploads;
  const digest = job.expected?.digest;
  if (shared === undefined || digest === undefined) return send();
  const running = shared.get(digest);
  // If the other transfer's upload fails, this one tries for itself.
  if (running)
    return running.then(
      (d) => ({ ...d, mediaType: job.mediaType }),
      () => send(),
    );
  const mine = send();
  shared.set(digest, mine);
  mine.catch(() => shared.delete(digest));
  return mine;
}

function describeTransform(t: Transform): string {
  if (t.kind === "compress") return `compress ${t.to}`;
  if (t.kind === "decompress") return `decompress ${t.from}`;
  return "copy";
}

function withStage(
  input: Readable,
  transform: Exclude<Transform, { kind: "copy" }>,
  source: Descriptor,
  gzipLevel?: number,
): Readable {
  // pipeline carries an error of any stage to the others, and destroys them all.
  if (transform.kind === "compress") {
    return pipeline(
      input,
      compressor(transform.to, gzipLevel === undefined ? {} : { gzipLevel }),
      () => undefined,
    );
  }
  const limit = new ExpansionLimit(decompressionLimit(source.size), `layer ${source.digest}`);
  return pipeline(input, decompressor(transform.from), limit, () => undefined);
}

function toPut(job: BlobJob): BlobToPut {
  if (job.expected !== undefined) {
    return {
      mediaType: job.mediaType,
      digest: job.expected.digest,
      size: job.expected.size,
      sizeIsExact: true,
    };
  }
  // Produced on the way: the size is a bound for choosing part sizes. gzip and zstd never grow
  // data by more than a fraction of a percent; decompression may grow it many times.
  const bound =
    job.transform.kind === "decompress" ? job.source.size * 8 : Math.ceil(job.source.size * 1.01) + 65_536;
  return { mediaType: job.mediaType, digest: job.outputDigest, size: bound, sizeIsExact: false };
}

/** Writes the manifests bottom-up and returns the root as written. */
async function putManifests(
  graph: ImageGraph,
  jobs: Map<string, BlobJob>,
  destination: ImageDestination,
  tags: string[],
  emit: (event: TransferEvent) => void,
): Promise<RawManifest> {
  const written = new Map<string, RawManifest>();
  for (const image of graph.images) {
    written.set(image.raw.digest, rewriteImage(image, jobs));
  }
  if (graph.index === undefined) {
    const only = written.get(graph.images[0]!.raw.digest)!;
    await destination.putManifest(only, tags);
    emit({ type: "manifest-put", digest: only.digest, mediaType: only.mediaType, tags });
    return only;
  }
  for (const child of written.values()) {
    await destination.putManifest(child, []);
    emit({ type: "manifest-put", digest: child.digest, mediaType: child.mediaType, tags: [] });
  }
  const index = rewriteIndex(graph.index.raw, written);
  await destination.putManifest(index, tags);
  emit({ type: "manifest-put", digest: index.digest, mediaType: index.mediaType, tags });
  return index;
}

/** The image manifest with its layers as they were written; the same bytes when nothing changed. */
function rewriteImage(image: ImageNode, jobs: Map<string, BlobJob>): RawManifest {
  const results = image.manifest.layers.map((layer) => jobs.get(layer.digest)!.result!);
  const changed = results.some(
    (r, i) =>
      r.digest !== image.manifest.layers[i]!.digest || r.mediaType !== image.manifest.layers[i]!.mediaType,
  );
  if (!changed) return image.raw;
  const doc = JSON.parse(image.raw.bytes.toString("utf8")) as { layers: Record<string, unknown>[] };
  doc.layers = doc.layers.map((layer, i) => ({
    ...layer,
    mediaType: results[i]!.mediaType,
    digest: results[i]!.digest,
    size: results[i]!.size,
  }));
  return rawJson(doc, image.raw.mediaType);
}

function rewriteIndex(raw: RawManifest, written: Map<string, RawManifest>): RawManifest {
  const doc = JSON.parse(raw.bytes.toString("utf8")) as { manifests: Record<string, unknown>[] };
  let changed = false;
  doc.manifests = doc.manifests.map((entry) => {
    const now = written.get(entry.digest as string);
    if (now === undefined || now.digest === entry.digest) return entry;
    changed = true;
    return { ...entry, digest: now.digest, size: now.bytes.length };
  });
  return changed ? rawJson(doc, raw.mediaType) : raw;
}

function rawJson(doc: unknown, mediaType: string): RawManifest {
  const bytes = Buffer.from(JSON.stringify(doc, null, 2));
  return { bytes, mediaType, digest: sha256Digest(bytes) };
}
