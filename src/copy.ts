import { EcrxError } from "./errors.js";
import { hostPlatform, parsePlatform } from "./manifest/platform.js";
import type { Platform } from "./manifest/types.js";
import { formatReference, parseReference, type ImageReference } from "./reference/reference.js";
import {
  DEFAULT_UPLOAD_CONCURRENCY,
  transferImage,
  type CompressionMode,
  type TransferOptions,
  type TransferResult,
} from "./transfer/engine.js";
import type { TransferListener } from "./transfer/events.js";
import {
  openDestination,
  openSource,
  type DestinationOptions,
  type SourceOptions,
} from "./transports/resolve.js";

export interface CopyOptions {
  /** Settings of the source side: AWS (profile, endpoint, credentials), registry credentials, via. */
  source?: SourceOptions;
  /** Settings of the destination side, plus repository creation and part size for ECR. */
  destination?: DestinationOptions;
  /** Blobs in flight at once. Default 10 (DEFAULT_UPLOAD_CONCURRENCY). */
  concurrency?: number;
  /** Default `keep`: no blob changes, so the destination has the source's digests. */
  compression?: CompressionMode;
  /** Copy one platform of an index (the result is that image, with its digest). Default: all. */
  platform?: string | Platform;
  /** Tags besides those of the destination reference. */
  tags?: string[];
  onEvent?: TransferListener;
  signal?: AbortSignal;
  /** Shared with other copies running at once (see TransferOptions). */
  limit?: TransferOptions["limit"];
  sharedUploads?: TransferOptions["sharedUploads"];
}

export interface CopyResult extends TransferResult {
  source: string;
  destination: string;
}

/**
 * Copies an image between any two places: ECR (through the ECR API, or its registry endpoint),
 * ECR Public, any OCI/Docker v2 registry, docker-archive, OCI layout and OCI archive. Blobs
 * stream from source to destination without temporary files; blobs the destination has are
 * skipped; manifest bytes are carried verbatim, so digests are kept (unless a platform is picked
 * out of an index, or layers are recompressed).
 */
export async function copy(
  source: string,
  destination: string,
  options: CopyOptions = {},
): Promise<CopyResult> {
  const sourceRef = parseReference(source);
  const destRef = parseReference(destination, { exists: () => false });
  if (destRef.kind === "path") {
    throw new EcrxError("USAGE", `say which format to write at ${destRef.path}`, {
      hint: `use docker-archive:${destRef.path}, oci:${destRef.path} or oci-archive:${destRef.path}`,
    });
  }
  const signal = options.signal;
  const from = await openSource(sourceRef, { ...options.source, signal });
  try {
    const to = await openDestination(destRef, { ...options.destination, signal });
    try {
      const result = await transferImage(from, to, {
        compression: options.compression ?? "keep",
        tags: [...new Set([...destinationTags(destRef), ...(options.tags ?? [])])],
        platform: platformFor(destRef, options.platform),
        concurrency: options.concurrency ?? DEFAULT_UPLOAD_CONCURRENCY,
        ...(options.onEvent === undefined ? {} : { onEvent: options.onEvent }),
        ...(signal === undefined ? {} : { signal }),
        ...(options.limit === undefined ? {} : { limit: options.limit }),
        ...(options.sharedUploads === undefined ? {} : { sharedUploads: options.sharedUploads }),
      });
      return { ...result, source: formatReference(sourceRef), destination: formatReference(destRef) };
    } finally {
      await to.close();
    }
  } finally {
    await from.close();
  }
}

function destinationTags(ref: ImageReference): string[] {
  switch (ref.kind) {
    case "docker-archive":
      return ref.repoTags;
    case "path":
      return [];
    default:
      return ref.tags;
  }
}

/** A docker-archive holds one platform: without --platform it takes this machine's. */
function platformFor(ref: ImageReference, platform: string | Platform | undefined): Platform | undefined {
  if (typeof platform === "string") return parsePlatform(platform);
  if (platform !== undefined) return platform;
  return ref.kind === "docker-archive" ? hostPlatform() : undefined;
}
