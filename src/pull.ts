import { EcrxError } from "./errors.js";
import { hostPlatform, parsePlatform } from "./manifest/platform.js";
import type { Platform } from "./manifest/types.js";
import {
  formatReference,
  parseReference,
  type EcrReference,
  type ImageReference,
} from "./reference/reference.js";
import { transferImage, type TransferResult } from "./transfer/engine.js";
import type { TransferListener } from "./transfer/events.js";
import type { AwsOptions } from "./transports/aws/client-config.js";
import type { EcrSourceOptions } from "./transports/ecr/source.js";
import { openDestination, openSource } from "./transports/resolve.js";

export interface PullOptions {
  /** Region, endpoint, profile and credentials of the source. Default: the SDK's chains. */
  aws?: AwsOptions;
  /** The platform to take out of a multi-platform image. Default: this machine's. */
  platform?: string | Platform;
  /** Keep the whole index (OCI destinations only). Default false. */
  allPlatforms?: boolean;
  /** Blobs downloaded at once. Default 4. */
  concurrency?: number;
  /** Ranged download tuning (see transports/http/blob-download.ts). */
  download?: EcrSourceOptions["download"];
  onEvent?: TransferListener;
  signal?: AbortSignal;
}

export interface PullResult extends TransferResult {
  /** Where the image was written, as a transport reference. */
  destination: string;
}

/**
 * Pulls an image from ECR into a docker-archive, an OCI layout or an OCI archive: BatchGetImage for
 * the manifests, GetDownloadUrlForLayer and presigned GETs for the blobs, every digest verified.
 * The output appears only when complete: a failed pull leaves nothing that looks like an image.
 */
export async function pull(
  source: string,
  destination: string,
  options: PullOptions = {},
): Promise<PullResult> {
  const sourceRef = parseReference(source);
  if (sourceRef.kind !== "ecr") {
    throw new EcrxError("USAGE", `pull reads from ECR; ${source} is not an ECR reference`, {
      hint: "use <account>.dkr.ecr.<region>.amazonaws.com/<repo>[:tag|@digest]; `ecrx copy` reads other registries",
    });
  }
  const destRef = parseReference(destination, { exists: () => false });
  if (options.allPlatforms && options.platform !== undefined) {
    throw new EcrxError("USAGE", "--platform and --all-platforms exclude each other");
  }
  if (options.allPlatforms && destRef.kind === "docker-archive") {
    throw new EcrxError(
      "USAGE",
      "a docker-archive holds one platform; --all-platforms needs an oci: or oci-archive: destination",
    );
  }
  const platform =
    options.allPlatforms === true
      ? undefined
      : typeof options.platform === "string"
        ? parsePlatform(options.platform)
        : (options.platform ?? hostPlatform());

  if (destRef.kind !== "docker-archive" && destRef.kind !== "oci" && destRef.kind !== "oci-archive") {
    throw new EcrxError("USAGE", `pull writes image files; ${destination} is not one`, {
      hint: "use docker-archive:PATH, oci:PATH[:tag] or oci-archive:PATH[:tag]; `ecrx copy` writes to registries",
    });
  }
  const dest = await openDestination(destRef);
  try {
    const ecrSource = await openSource(sourceRef, {
      aws: options.aws,
      download: options.download,
      signal: options.signal,
    });
    try {
      const result = await transferImage(ecrSource, dest, {
        compression: "keep",
        // Applies to an index only: a single image is taken whatever its platform.
        platform,
        tags: tagsFor(destRef, sourceRef),
        ...(options.concurrency === undefined ? {} : { concurrency: options.concurrency }),
        ...(options.onEvent === undefined ? {} : { onEvent: options.onEvent }),
        ...(options.signal === undefined ? {} : { signal: options.signal }),
      });
      return { ...result, destination: formatReference(destRef) };
    } finally {
      await ecrSource.close();
    }
  } finally {
    await dest.close();
  }
}

/**
 * The names written into the destination. A docker-archive without one gets the source's
 * `registry/repo:tag`, as `docker save` would write it, so that `docker load` tags the image.
 */
function tagsFor(ref: ImageReference, sourceRef: EcrReference): string[] {
  if (ref.kind === "docker-archive") {
    if (ref.repoTags.length > 0 || sourceRef.tags.length === 0) return ref.repoTags;
    return [`${sourceRef.registry}/${sourceRef.repository}:${sourceRef.tags[0]}`];
  }
  if (ref.kind === "oci" || ref.kind === "oci-archive") return ref.tags;
  return [];
}
