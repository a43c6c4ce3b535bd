/**
 * The calls the ECR destination and source make, behind one small interface so that private ECR
 * and ECR Public (same operations, different clients, limits and identifiers) share one
 * implementation of the upload protocol.
 */
import { prepareLayerPartBody, withPreparedBody, type PreparedPartBody } from "./part-body.js";

/** A part ready to send. Its bytes are in `body` only (see part-body.ts, `partBytesFrom`). */
export interface PreparedLayerPart {
  uploadId: string;
  firstByte: number;
  lastByte: number;
  body: PreparedPartBody;
}

export interface RepositoryInfo {
  repositoryName: string;
  imageTagMutability: string | undefined;
}

export interface LayerAvailability {
  digest: string;
  available: boolean;
}

export interface RegistryLimits {
  /** Parts per layer upload: 4,200 for ECR, 1,000 for ECR Public. */
  maxParts: number;
  /** Bytes per layer: 52,000 MiB for ECR, 10,000 MiB for ECR Public. */
  maxLayerBytes: number;
}

export interface EcrApi {
  /** For messages: `ecr` or `ecr-public`, and the repository. */
  readonly service: "ecr" | "ecr-public";
  readonly repositoryName: string;
  readonly limits: RegistryLimits;
  /** undefined when the repository does not exist. */
  describeRepository(): Promise<RepositoryInfo | undefined>;
  createRepository(options: { immutable: boolean }): Promise<void>;
  /** One BatchCheckLayerAvailability call: at most 100 digests. */
  checkLayers(digests: string[]): Promise<LayerAvailability[]>;
  initiateLayerUpload(): Promise<{ uploadId: string; partSize: number | undefined }>;
  /**
   * Builds the request of one part (body and its hash), so that it can be done while the
   * previous part is in flight.
   */
  prepareLayerPart(
    uploadId: string,
    firstByte: number,
    blob: Buffer,
    allocate?: (size: number) => Buffer,
  ): Promise<PreparedLayerPart>;
  /** Sends a prepared part; returns lastByteReceived. */
  uploadLayerPart(part: PreparedLayerPart): Promise<number>;
  /** Returns the digest the registry computed. */
  completeLayerUpload(uploadId: string, digest: string): Promise<string>;
  putImage(manifest: string, mediaType: string, options: { tag?: string; digest?: string }): Promise<void>;
  /** The digest the tag points at, or undefined when the tag does not exist. */
  digestOfTag(tag: string): Promise<string | undefined>;
  close(): void;
}

/** The shape both services give BatchCheckLayerAvailability's answer. */
interface LayerCheckOutput {
  layers?: { layerDigest?: string | undefined; layerAvailability?: string | undefined }[] | undefined;
  failures?:
    | {
        layerDigest?: string | undefined;
        failureCode?: string | undefined;
        failureReason?: string | undefined;
      }[]
    | undefined;
}

/**
 * Reads a BatchCheckLayerAvailability answer. An absent layer may come back as UNAVAILABLE or as a
 * MissingLayerDigest failure (ecr-spec.md section 3): both mean "upload it". An InvalidLayerDigest
 * failure means we sent a malformed digest, which is our bug, so it throws.
 */
export function layerAvailability(out: LayerCheckOutput): LayerAvailability[] {
  const result: LayerAvailability[] = [];
  for (const layer of out.layers ?? []) {
    if (layer.layerDigest)
      result.push({ digest: layer.layerDigest, available: layer.layerAvailability === "AVAILABLE" });
  }
  for (const failure of out.failures ?? []) {
    if (failure.failureCode === "InvalidLayerDigest") {
      throw Object.assign(new Error(`${failure.layerDigest}: ${failure.failureReason}`), {
        name: "InvalidLayerDigest",
      });
    }
    if (failure.layerDigest) result.push({ digest: failure.layerDigest, available: false });
  }
  return result;
}

/** The request of one part, for either service (their UploadLayerPart members are the same). */
export async function prepareLayerPart(
  ids: { registryId?: string | undefined; repositoryName: string },
  uploadId: string,
  firstByte: number,
  blob: Buffer,
  allocate?: (size: number) => Buffer,
): Promise<PreparedLayerPart> {
  const lastByte = firstByte + blob.length - 1;
  const members = { ...ids, uploadId, partFirstByte: firstByte, partLastByte: lastByte };
  const body = await prepareLayerPartBody(members, blob, allocate);
  return { uploadId, firstByte, lastByte, body };
}

/*
 * The requests and answers below have the same members in ECR's and ECR Public's APIs: built and
 * read here once, each adapter only wraps them in its own SDK's command.
 */
type RepositoryIds = { registryId?: string | undefined; repositoryName: string };

/** UploadLayerPart's input, carrying the prepared body (see part-body.ts). */
export function uploadLayerPartInput(ids: RepositoryIds, part: PreparedLayerPart) {
  const input = {
    ...ids,
    uploadId: part.uploadId,
    partFirstByte: part.firstByte,
    partLastByte: part.lastByte,
    // The bytes go in the prepared body; the SDK serializes an empty blob in their place.
    layerPartBlob: new Uint8Array(0),
  };
  return withPreparedBody(input, part.body);
}

export function putImageInput(
  ids: RepositoryIds,
  manifest: string,
  mediaType: string,
  options: { tag?: string; digest?: string },
) {
  return {
    ...ids,
    imageManifest: manifest,
    imageManifestMediaType: mediaType,
    ...(options.tag === undefined ? {} : { imageTag: options.tag }),
    ...(options.digest === undefined ? {} : { imageDigest: options.digest }),
  };
}

/** InitiateLayerUpload's answer; an answer without an uploadId is the registry's bug. */
export function initiatedUpload(out: { uploadId?: string | undefined; partSize?: number | undefined }): {
  uploadId: string;
  partSize: number | undefined;
} {
  if (!out.uploadId) throw new Error("InitiateLayerUpload returned no uploadId");
  return { uploadId: out.uploadId, partSize: out.partSize };
}
