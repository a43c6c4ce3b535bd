import { EcrxError } from "./errors.js";
import { parsePlatform } from "./manifest/platform.js";
import type { Platform } from "./manifest/types.js";
import { parseReference, type EcrPublicReference, type EcrReference } from "./reference/reference.js";
import { FileBlobInfoCache, type BlobInfoCache } from "./transfer/blob-info-cache.js";
import {
  DEFAULT_UPLOAD_CONCURRENCY,
  transferImage,
  type CompressionMode,
  type TransferResult,
} from "./transfer/engine.js";
import type { TransferListener } from "./transfer/events.js";
import type { AwsOptions } from "./transports/aws/client-config.js";
import { openDestination, openSource } from "./transports/resolve.js";

export interface PushOptions {
  /** Region, endpoint, profile and credentials of the destination. Default: the SDK's chains. */
  aws?: AwsOptions;
  /** Create the repository if it does not exist. Default false. */
  createRepository?: boolean;
  /** With createRepository: IMMUTABLE tags. Default false. */
  immutable?: boolean;
  /** Blobs uploaded at once. Default 10 (DEFAULT_UPLOAD_CONCURRENCY). */
  concurrency?: number;
  /** UploadLayerPart size in bytes, 5..20 MiB. Default 10 MiB. */
  partSize?: number;
  /** UploadLayerPart requests prepared ahead of the one in flight, 0..4. Default 1. */
  readAhead?: number;
  /** Default `gzip`: uncompressed layers (docker save's) are compressed on the way. */
  compression?: CompressionMode;
  /** Push only this platform of a multi-platform source (`linux/arm64`). Default: all. */
  platform?: string | Platform;
  /** Tags besides those of the destination reference. */
  tags?: string[];
  onEvent?: TransferListener;
  signal?: AbortSignal;
  /** Default: the on-disk cache under the user's cache folder; `false` for none. */
  blobInfoCache?: BlobInfoCache | false;
}

export interface PushResult extends TransferResult {
  /** The destination, as `registry/repository`. */
  repository: string;
}

/**
 * Pushes an image file (docker-archive, OCI layout or OCI archive) to ECR or ECR Public through the
 * ECR API: BatchCheckLayerAvailability, the layer-upload calls for what is missing, then PutImage.
 */
export async function push(
  source: string,
  destination: string,
  options: PushOptions = {},
): Promise<PushResult> {
  const destRef = parseReference(destination);
  if (destRef.kind !== "ecr" && destRef.kind !== "ecr-public") {
    throw new EcrxError("USAGE", `push sends to ECR or ECR Public; ${destination} is neither`, {
      hint: "use <account>.dkr.ecr.<region>.amazonaws.com/<repo>:<tag> or public.ecr.aws/<alias>/<repo>:<tag>; `ecrx copy` reaches other registries",
    });
  }
  const tags = [...new Set([...destRef.tags, ...(options.tags ?? [])])];
  const sourceRef = parseReference(source);
  if (sourceRef.kind === "ecr" || sourceRef.kind === "ecr-public" || sourceRef.kind === "registry") {
    throw new EcrxError("USAGE", `push takes an image file; ${source} is in a registry`, {
      hint: "`ecrx copy` copies between registries",
    });
  }
  const sourceImage = await openSource(sourceRef);
  try {
    const dest = await openDestination(destRef, {
      aws: options.aws,
      partSize: options.partSize,
      readAhead: options.readAhead,
      createRepository: options.createRepository,
      immutable: options.immutable,
      signal: options.signal,
    });
    try {
      const result = await transferImage(sourceImage, dest, {
        compression: options.compression ?? "gzip",
        tags,
        concurrency: options.concurrency ?? DEFAULT_UPLOAD_CONCURRENCY,
        ...(options.platform === undefined ? {} : { platform: platformOf(options.platform) }),
        ...(options.onEvent === undefined ? {} : { onEvent: options.onEvent }),
        ...(options.signal === undefined ? {} : { signal: options.signal }),
        ...(options.blobInfoCache === false
          ? {}
          : { blobInfoCache: options.blobInfoCache ?? new FileBlobInfoCache() }),
      });
      checkDigest(destRef, result.digest);
      return { ...result, repository: repositoryName(destRef) };
    } finally {
      await dest.close();
    }
  } finally {
    await sourceImage.close();
  }
}

function platformOf(platform: string | Platform): Platform {
  return typeof platform === "string" ? parsePlatform(platform) : platform;
}

function repositoryName(ref: EcrReference | EcrPublicReference): string {
  return ref.kind === "ecr"
    ? `${ref.registry}/${ref.repository}`
    : `${ref.registry}/${ref.alias}/${ref.repository}`;
}

/** `repo@sha256:...` as a destination is a promise about what is pushed: hold it. */
function checkDigest(ref: EcrReference | EcrPublicReference, pushed: string): void {
  if (ref.digest !== undefined && ref.digest !== pushed) {
    throw new EcrxError("INTEGRITY", `pushed image is ${pushed}, not ${ref.digest} as the destination names`);
  }
}
