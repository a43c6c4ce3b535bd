import pLimit from "p-limit";
import { copy, type CopyResult } from "./copy.js";
import { EcrxError, isEcrxError } from "./errors.js";
import {
  formatName,
  parseReference,
  type ImageReference,
  type RemoteReference,
} from "./reference/reference.js";
import type { Descriptor } from "./manifest/types.js";
import type { TransferListener } from "./transfer/events.js";
import { openSource, type DestinationOptions, type SourceOptions } from "./transports/resolve.js";

export interface SyncOptions {
  source?: SourceOptions;
  destination?: DestinationOptions;
  /** Tags to copy: those the whole pattern matches. Default: every tag only with `allTags`. */
  tags?: string | RegExp;
  /** Copy every tag. */
  allTags?: boolean;
  /** This shard of the tag list: `index` from 0 to `count - 1` (an array job's index). */
  shard?: { index: number; count: number };
  /** Images copied at once. Default 4. */
  images?: number;
  /** Blobs in flight at once, across all images. Default 8. */
  concurrency?: number;
  onImage?: (image: SyncedImage) => void;
  onEvent?: TransferListener;
  signal?: AbortSignal;
}

export interface SyncedImage {
  tag: string;
  status: "copied" | "skipped" | "failed";
  /** The digest at the source (and now at the destination, unless it failed). */
  digest: string | undefined;
  bytesSent: number;
  /** Why it failed: the one-line message. */
  error?: string;
  code?: string;
}

export interface SyncResult {
  source: string;
  destination: string;
  /** Tags this shard took, after the filter. */
  tags: number;
  copied: number;
  skipped: number;
  failed: number;
  bytesSent: number;
  seconds: number;
  images: SyncedImage[];
}

/** FNV-1a, 32 bits: a stable hash of a tag, the same on every machine and run. */
export function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (const byte of Buffer.from(text, "utf8")) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash;
}

/**
 * Whether a tag belongs to shard `index` of `count`. By the tag's hash, not its position in the
 * list: a tag pushed while the shards run moves no other tag to another shard.
 */
export function inShard(tag: string, shard: { index: number; count: number } | undefined): boolean {
  return shard === undefined || fnv1a(tag) % shard.count === shard.index;
}

/** Parses `I/N` (0 <= I < N). */
export function parseShard(text: string): { index: number; count: number } {
  const match = /^(\d+)\/(\d+)$/.exec(text.trim());
  const index = Number(match?.[1]);
  const count = Number(match?.[2]);
  if (!match || count < 1 || index >= count) {
    throw new EcrxError("USAGE", `--shard ${text}: write I/N with 0 <= I < N, e.g. 0/4`, {
      hint: "in a Kubernetes indexed Job: --shard $JOB_COMPLETION_INDEX/N; in AWS Batch: $AWS_BATCH_JOB_ARRAY_INDEX/N",
    });
  }
  return { index, count };
}

function repository(text: string, side: string): RemoteReference {
  const ref = parseReference(text, { exists: () => false });
  if (ref.kind !== "ecr" && ref.kind !== "ecr-public" && ref.kind !== "registry") {
    throw new EcrxError(
      "USAGE",
      `sync copies between registries; the ${side} ${text} is not a repository of one`,
    );
  }
  const lastSlash = text.lastIndexOf("/");
  if (ref.digest !== undefined || text.slice(lastSlash + 1).includes(":")) {
    throw new EcrxError("USAGE", `sync takes repositories, not images: drop the tag or digest of ${text}`, {
      hint: "choose tags with --tags REGEX or --all-tags",
    });
  }
  return ref;
}

function withTag(ref: RemoteReference, tag: string): ImageReference {
  return { ...ref, tags: [tag], digest: undefined };
}

/**
 * Copies many tags of one repository to another: the tags are listed at the source, filtered,
 * split by shard, and each image is copied unless the destination's tag already names the same
 * digest. Images go several at once under one blob budget, and a blob shared by images copied at
 * the same time is sent once. One image failing does not stop the others.
 */
export async function sync(
  sourceRepo: string,
  destRepo: string,
  options: SyncOptions = {},
): Promise<SyncResult> {
  const started = performance.now();
  const from = repository(sourceRepo, "source");
  const to = repository(destRepo, "destination");
  if (options.tags === undefined && !options.allTags) {
    throw new EcrxError("USAGE", "say which tags to sync", {
      hint: "--tags REGEX (e.g. '^v1\\.') or --all-tags",
    });
  }
  // A global or sticky RegExp remembers where it stopped between test() calls: drop those flags.
  const pattern =
    typeof options.tags === "string"
      ? compile(options.tags)
      : options.tags && new RegExp(options.tags.source, options.tags.flags.replace(/[gy]/g, ""));
  const signal = options.signal;

  const lister = await openSource(withTag(from, "latest"), { ...options.source, signal });
  let listed: string[];
  try {
    if (!lister.tags) throw new EcrxError("UNSUPPORTED", `cannot list the tags of ${sourceRepo}`);
    listed = await lister.tags();
  } finally {
    await lister.close();
  }
  const tags = [...new Set(listed)]
    .filter((tag) => (pattern === undefined ? true : pattern.test(tag)))
    .filter((tag) => inShard(tag, options.shard))
    .sort();

  const blobBudget = pLimit(options.concurrency ?? 8);
  const sharedUploads = new Map<string, Promise<Descriptor>>();
  const imageBudget = pLimit(options.images ?? 4);
  let repositoryReady: Promise<unknown> | undefined;
  const images = await Promise.all(
    tags.map((tag) =>
      imageBudget(async (): Promise<SyncedImage> => {
        let digest: string | undefined;
        try {
          signal?.throwIfAborted();
          digest = await rootDigest(withTag(from, tag), { ...options.source, signal });
          if (
            digest !== undefined &&
            digest === (await rootDigest(withTag(to, tag), { ...options.destination, signal }))
          ) {
            return report(options, { tag, status: "skipped", digest, bytesSent: 0 });
          }
          const run = (): Promise<CopyResult> =>
            copy(`${formatName(from)}:${tag}`, `${formatName(to)}:${tag}`, {
              source: options.source ?? {},
              destination: options.destination ?? {},
              limit: blobBudget,
              sharedUploads,
              ...(options.onEvent === undefined ? {} : { onEvent: options.onEvent }),
              ...(signal === undefined ? {} : { signal }),
            });
          // The first copy creates the repository if asked; the others wait for it, so that
          // CreateRepository is not raced by every image at once.
          const first = repositoryReady === undefined;
          const copied = first ? run() : repositoryReady!.then(run, run);
          if (first) repositoryReady = copied.catch(() => undefined);
          const result = await copied;
          return report(options, {
            tag,
            status: "copied",
            digest: result.digest,
            bytesSent: result.bytesSent,
          });
        } catch (err) {
          if (signal?.aborted) throw err;
          const message = err instanceof Error ? err.message : String(err);
          return report(options, {
            tag,
            status: "failed",
            digest,
            bytesSent: 0,
            error: message,
            ...(isEcrxError(err) ? { code: err.code } : {}),
          });
        }
      }),
    ),
  );
  const count = (status: SyncedImage["status"]) => images.filter((i) => i.status === status).length;
  return {
    source: formatName(from),
    destination: formatName(to),
    tags: tags.length,
    copied: count("copied"),
    skipped: count("skipped"),
    failed: count("failed"),
    bytesSent: images.reduce((sum, i) => sum + i.bytesSent, 0),
    seconds: (performance.now() - started) / 1000,
    images,
  };
}

function report(options: SyncOptions, image: SyncedImage): SyncedImage {
  options.onImage?.(image);
  return image;
}

function compile(pattern: string): RegExp {
  try {
    // The whole tag must match, as people mean `v1\..*` to exclude `xv1.2`.
    return new RegExp(`^(?:${pattern})$`);
  } catch (err) {
    throw new EcrxError("USAGE", `--tags: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** The digest a tag names, or undefined when the tag (or the repository) does not exist. */
async function rootDigest(ref: ImageReference, options: SourceOptions): Promise<string | undefined> {
  let source;
  try {
    source = await openSource(ref, options);
    return (await source.manifest()).digest;
  } catch (err) {
    if (isEcrxError(err) && err.code === "NOT_FOUND") return undefined;
    throw err;
  } finally {
    await source?.close();
  }
}
