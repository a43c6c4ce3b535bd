import type { Readable } from "node:stream";
import pLimit from "p-limit";
import { EcrxError } from "../../errors.js";
import type { Descriptor, RawManifest } from "../../manifest/types.js";
import { BufferPool } from "../../transfer/buffer-pool.js";
import type { BlobToPut, ImageDestination, ProgressFn } from "../types.js";
import type { EcrApi } from "./api.js";
import { ecrError, exceptionName } from "./errors.js";
import { READ_AHEAD, ReadAheadBudget, uploadBufferCount, uploadLayer } from "./layer-upload.js";

export interface EcrDestinationOptions {
  /** Requested UploadLayerPart size in bytes; default 10 MiB (see transfer/part-size.ts). */
  partSize?: number | undefined;
  /** UploadLayerPart requests prepared ahead of the one in flight; default 1. */
  readAhead?: number | undefined;
  /** Create the repository when it does not exist. Default false: a missing repository is an error. */
  createRepository?: boolean | undefined;
  /** With createRepository: make it IMMUTABLE. Default false. */
  immutable?: boolean | undefined;
  signal?: AbortSignal | undefined;
}

/** BatchCheckLayerAvailability takes at most 100 digests. */
const CHECK_BATCH = 100;

/**
 * An ECR (or ECR Public) repository as an image destination, through the ECR API.
 * `prepare` (the repository check) runs before anything is uploaded, so a missing repository fails
 * in a second, not after the layers.
 */
export class EcrDestination implements ImageDestination {
  readonly reference: string;
  private prepared: Promise<void> | undefined;
  /**
   * The uploads' buffers, handed from a blob that ended to one that starts: fresh 10-14 MB buffers
   * cost page faults (and, on VMs whose balloon reclaims free memory, far more). It keeps what two
   * uploads hold, enough for the blobs that end and start around the same time; the rest of a
   * push's buffers go with their uploads.
   */
  private readonly buffers: BufferPool;
  /** Parts read ahead by all the uploads of this push: two uploads' worth (see ReadAheadBudget). */
  private readonly readAhead: ReadAheadBudget;

  constructor(
    private readonly api: EcrApi,
    reference: string,
    private readonly options: EcrDestinationOptions = {},
  ) {
    this.reference = reference;
    this.buffers = new BufferPool(2 * uploadBufferCount(options.readAhead));
    this.readAhead = new ReadAheadBudget(2 * (options.readAhead ?? READ_AHEAD.default));
  }

  private prepare(): Promise<void> {
    this.prepared ??= (async () => {
      let repository;
      try {
        repository = await this.api.describeRepository();
        if (repository === undefined && this.options.createRepository) {
          await this.api.createRepository({ immutable: this.options.immutable ?? false });
          return;
        }
      } catch (err) {
        throw ecrError(err, `checking repository ${this.api.repositoryName}`);
      }
      if (repository === undefined) {
        throw new EcrxError(
          "NOT_FOUND",
          `repository ${this.api.repositoryName} does not exist in ${this.api.service}`,
          {
            awsName: "RepositoryNotFoundException",
            hint: "create it first, or pass --create-repo",
          },
        );
      }
    })();
    return this.prepared;
  }

  async missing(blobs: Descriptor[]): Promise<Descriptor[]> {
    await this.prepare();
    const batches: Descriptor[][] = [];
    for (let i = 0; i < blobs.length; i += CHECK_BATCH) batches.push(blobs.slice(i, i + CHECK_BATCH));
    const limit = pLimit(4);
    const available = new Set<string>();
    await Promise.all(
      batches.map((batch) =>
        limit(async () => {
          try {
            for (const layer of await this.api.checkLayers(batch.map((b) => b.digest))) {
              if (layer.available) available.add(layer.digest);
            }
          } catch (err) {
            throw ecrError(err, `BatchCheckLayerAvailability in ${this.api.repositoryName}`);
          }
        }),
      ),
    );
    return blobs.filter((b) => !available.has(b.digest));
  }

  async putBlob(blob: BlobToPut, body: Readable, progress: ProgressFn): Promise<Descriptor> {
    await this.prepare();
    const { digest, size } = await uploadLayer(this.api, body, {
      digest: blob.digest,
      sizeHint: blob.size,
      partSize: this.options.partSize,
      readAhead: this.options.readAhead,
      progress,
      signal: this.options.signal,
      buffers: this.buffers,
      readAheadBudget: this.readAhead,
    });
    if (blob.digest !== undefined && blob.sizeIsExact && size !== blob.size) {
      throw new EcrxError("INTEGRITY", `blob ${digest} has ${size} bytes, its descriptor says ${blob.size}`);
    }
    return { mediaType: blob.mediaType, digest, size };
  }

  async putManifest(manifest: RawManifest, tags: string[]): Promise<void> {
    await this.prepare();
    const text = manifest.bytes.toString("utf8");
    // PutImage takes a string: the bytes must survive the UTF-8 round trip, or the digest changes.
    if (!Buffer.from(text, "utf8").equals(manifest.bytes)) {
      throw new EcrxError(
        "INVALID_INPUT",
        `manifest ${manifest.digest} is not valid UTF-8 and cannot be stored in ECR`,
      );
    }
    if (tags.length === 0) {
      await this.put(text, manifest, undefined);
      return;
    }
    for (const tag of tags) await this.put(text, manifest, tag);
  }

  private async put(text: string, manifest: RawManifest, tag: string | undefined): Promise<void> {
    const what = tag === undefined ? manifest.digest : `${this.api.repositoryName}:${tag}`;
    try {
      await this.api.putImage(text, manifest.mediaType, {
        digest: manifest.digest,
        ...(tag === undefined ? {} : { tag }),
      });
    } catch (err) {
      const name = exceptionName(err);
      // The same manifest under the same tag (or untagged) is there already: done.
      if (name === "ImageAlreadyExistsException") return;
      if (name === "ImageTagAlreadyExistsException" && tag !== undefined) {
        // An IMMUTABLE repository: re-pushing the identical image is a success for the user.
        const current = await this.api.digestOfTag(tag).catch(() => undefined);
        if (current === manifest.digest) return;
        throw new EcrxError(
          "CONFLICT",
          `tag ${tag} of immutable repository ${this.api.repositoryName} already points at ${current ?? "another image"}`,
          { awsName: name, hint: "push under a new tag; immutable tags cannot move" },
        );
      }
      if (name === "LayersNotFoundException" || name === "ReferencedImagesNotFoundException") {
        throw ecrError(err, `PutImage ${what} (the registry lacks a blob or manifest it references)`);
      }
      if (name === "InvalidParameterException") {
        throw new EcrxError(
          "UNSUPPORTED",
          `${this.api.service} refused manifest ${manifest.digest}: ${firstLine(err)}`,
          {
            awsName: name,
            cause: err,
          },
        );
      }
      throw ecrError(err, `PutImage ${what}`);
    }
  }

  async commit(): Promise<void> {}

  async close(): Promise<void> {
    this.api.close();
  }
}

function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split("\n")[0] ?? "";
}
