import type { Readable } from "node:stream";
import pLimit from "p-limit";
import {
  BatchGetImageCommand,
  GetDownloadUrlForLayerCommand,
  ListImagesCommand,
  type ECRClient,
} from "@aws-sdk/client-ecr";
import { EcrxError } from "../../errors.js";
import { sha256Digest } from "../../manifest/digest.js";
import { MANIFEST_TYPES } from "../../manifest/media-types.js";
import type { Descriptor, RawManifest } from "../../manifest/types.js";
import {
  DOWNLOAD_DEFAULTS,
  downloadBlob,
  downloadBlobByPosition,
  type DownloadOptions,
} from "../http/blob-download.js";
import type { ByteRange, ImageSource, PositionalRead } from "../types.js";
import type { EcrRepositoryAddress } from "./ecr-api.js";
import { ecrError } from "./errors.js";

export interface EcrSourceOptions {
  /** The tag or digest of the root image. */
  tag?: string | undefined;
  digest?: string | undefined;
  /** Tuning of ranged downloads (see http/blob-download.ts). */
  download?: Pick<DownloadOptions, "rangeThreshold" | "rangeSize" | "parallel">;
  signal?: AbortSignal | undefined;
}

/** GetDownloadUrlForLayer calls in flight for prefetch(). */
const PREFETCH_CONCURRENCY = 8;

/**
 * A private ECR repository as an image source: BatchGetImage for manifests (every manifest type
 * accepted, so ECR never converts and digests stay the registry's), GetDownloadUrlForLayer and a
 * plain GET of the presigned URL for blobs, without the AWS Authorization header.
 */
export class EcrSource implements ImageSource {
  readonly reference: string;
  private readonly prefetched = new Map<string, Promise<string>>();

  constructor(
    private readonly client: ECRClient,
    private readonly address: EcrRepositoryAddress,
    reference: string,
    private readonly options: EcrSourceOptions,
  ) {
    this.reference = reference;
  }

  private get ids() {
    return { registryId: this.address.registryId, repositoryName: this.address.repositoryName };
  }

  async manifest(digest?: string): Promise<RawManifest> {
    const imageId =
      digest !== undefined
        ? { imageDigest: digest }
        : this.options.digest !== undefined
          ? { imageDigest: this.options.digest }
          : { imageTag: this.options.tag ?? "latest" };
    const what = `${this.address.repositoryName}${imageId.imageDigest ? `@${imageId.imageDigest}` : `:${imageId.imageTag}`}`;
    let out;
    try {
      out = await this.client.send(
        new BatchGetImageCommand({
          ...this.ids,
          imageIds: [imageId],
          acceptedMediaTypes: [...MANIFEST_TYPES],
        }),
      );
    } catch (err) {
      throw ecrError(err, `BatchGetImage ${what}`);
    }
    const image = out.images?.[0];
    if (!image?.imageManifest) {
      const failure = out.failures?.[0];
      const code = failure?.failureCode === "ImageNotFound" ? "NOT_FOUND" : "INVALID_INPUT";
      throw new EcrxError(
        code,
        `image ${what} not found in ${this.address.region}: ${failure?.failureReason ?? "no manifest"}`,
        {
          ...(failure?.failureCode === undefined ? {} : { awsName: failure.failureCode }),
          hint: "check the tag or digest with `ecrx ls`",
        },
      );
    }
    const bytes = Buffer.from(image.imageManifest, "utf8");
    const actual = sha256Digest(bytes);
    const claimed = image.imageId?.imageDigest ?? actual;
    if (actual !== claimed) {
      throw new EcrxError(
        "INTEGRITY",
        `manifest of ${what} hashes to ${actual}, the registry says ${claimed}`,
      );
    }
    return { bytes, mediaType: image.imageManifestMediaType ?? mediaTypeOf(bytes), digest: actual };
  }

  /** The repository's tags (ListImages, TAGGED, every page). */
  async tags(): Promise<string[]> {
    const tags: string[] = [];
    let nextToken: string | undefined;
    do {
      let out;
      try {
        out = await this.client.send(
          new ListImagesCommand({
            ...this.ids,
            filter: { tagStatus: "TAGGED" },
            maxResults: 1000,
            ...(nextToken === undefined ? {} : { nextToken }),
          }),
        );
      } catch (err) {
        throw ecrError(err, `ListImages of ${this.address.repositoryName}`);
      }
      for (const id of out.imageIds ?? []) if (id.imageTag) tags.push(id.imageTag);
      nextToken = out.nextToken;
    } while (nextToken);
    return tags;
  }

  /**
   * Asks for the download URLs of the blobs about to be read, a few at a time, so that each blob
   * starts with its URL at hand instead of a round trip (GetDownloadUrlForLayer allows 3,000/s).
   * A URL outlives any wait here (an hour in ECR); one that expired is refreshed on its 403.
   */
  prefetch(blobs: Descriptor[]): void {
    const limit = pLimit(PREFETCH_CONCURRENCY);
    for (const d of blobs) {
      if (this.prefetched.has(d.digest)) continue;
      const url = limit(() => this.downloadUrl(d.digest));
      // Awaited (and its failure reported) by blob(); never left unhandled meanwhile.
      url.catch(() => undefined);
      this.prefetched.set(d.digest, url);
    }
  }

  private async downloadUrl(digest: string): Promise<string> {
    try {
      const out = await this.client.send(
        new GetDownloadUrlForLayerCommand({ ...this.ids, layerDigest: digest }),
      );
      if (!out.downloadUrl) throw new EcrxError("NOT_FOUND", `no download URL for ${digest}`);
      return out.downloadUrl;
    } catch (err) {
      throw ecrError(err, `GetDownloadUrlForLayer ${digest}`);
    }
  }

  async blob(d: Descriptor, range?: ByteRange): Promise<Readable> {
    if (range !== undefined) {
      throw new EcrxError("UNSUPPORTED", "ranged reads of ECR blobs go through blob() whole");
    }
    // The first URL before the stream, so that a missing blob fails here and not inside it.
    return downloadBlob(await this.downloadOptions(d, this.options.signal));
  }

  /**
   * Big blobs (ranged downloads) by position: each range goes to the destination's file as it
   * arrives instead of waiting in memory for the ranges before it.
   */
  positionalBlob(d: Descriptor): PositionalRead | undefined {
    if (d.size < (this.options.download?.rangeThreshold ?? DOWNLOAD_DEFAULTS.rangeThreshold))
      return undefined;
    return async (sink, signal) => {
      const stop = this.options.signal ? AbortSignal.any([this.options.signal, signal]) : signal;
      await downloadBlobByPosition(await this.downloadOptions(d, stop), sink);
    };
  }

  /**
   * How to download a blob, with its first URL at hand (prefetched, or asked for now); a fresh
   * one is asked for after a refusal. A prefetched URL serves once: a blob read again (a retry)
   * asks afresh.
   */
  private async downloadOptions(d: Descriptor, signal: AbortSignal | undefined): Promise<DownloadOptions> {
    const url = () => this.downloadUrl(d.digest);
    const prefetched = this.prefetched.get(d.digest);
    this.prefetched.delete(d.digest);
    const first = await (prefetched ?? url());
    let used = false;
    return {
      size: d.size,
      url: async (fresh) => {
        if (!fresh && !used) {
          used = true;
          return first;
        }
        return url();
      },
      ...this.options.download,
      ...(signal === undefined ? {} : { signal }),
    };
  }

  async close(): Promise<void> {
    this.client.destroy();
  }
}

function mediaTypeOf(bytes: Buffer): string {
  try {
    const doc = JSON.parse(bytes.toString("utf8")) as { mediaType?: unknown };
    if (typeof doc.mediaType === "string") return doc.mediaType;
  } catch {
    // parseManifest reports malformed JSON with context; here we only guess the type.
  }
  return "application/vnd.oci.image.manifest.v1+json";
}
