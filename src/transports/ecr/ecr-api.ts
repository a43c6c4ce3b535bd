import {
  BatchCheckLayerAvailabilityCommand,
  BatchGetImageCommand,
  CompleteLayerUploadCommand,
  CreateRepositoryCommand,
  DescribeRepositoriesCommand,
  ECRClient,
  InitiateLayerUploadCommand,
  PutImageCommand,
  UploadLayerPartCommand,
} from "@aws-sdk/client-ecr";
import { MANIFEST_TYPES } from "../../manifest/media-types.js";
import { MiB } from "../../transfer/part-size.js";
import { callObserverPlugin, sdkClientConfig, type AwsOptions } from "../aws/client-config.js";
import {
  initiatedUpload,
  layerAvailability,
  prepareLayerPart,
  putImageInput,
  uploadLayerPartInput,
  type EcrApi,
  type PreparedLayerPart,
  type LayerAvailability,
  type RepositoryInfo,
} from "./api.js";
import { exceptionName } from "./errors.js";
import { layerPartBodyPlugin } from "./part-body.js";

export interface EcrRepositoryAddress {
  registryId: string;
  region: string;
  repositoryName: string;
}

export function createEcrClient(options: AwsOptions, region: string | undefined): ECRClient {
  const client = new ECRClient(sdkClientConfig(options, region));
  client.middlewareStack.use(layerPartBodyPlugin);
  if (options.onCall) client.middlewareStack.use(callObserverPlugin(options.onCall));
  return client;
}

/** The private ECR API for one repository. */
export class PrivateEcrApi implements EcrApi {
  readonly service = "ecr" as const;
  readonly limits = { maxParts: 4200, maxLayerBytes: 52_000 * MiB };
  readonly repositoryName: string;
  private readonly registryId: string;

  constructor(
    private readonly client: ECRClient,
    address: EcrRepositoryAddress,
    private readonly ownsClient = true,
  ) {
    this.repositoryName = address.repositoryName;
    this.registryId = address.registryId;
  }

  private get ids() {
    return { registryId: this.registryId, repositoryName: this.repositoryName };
  }

  async describeRepository(): Promise<RepositoryInfo | undefined> {
    try {
      const out = await this.client.send(
        new DescribeRepositoriesCommand({
          registryId: this.registryId,
          repositoryNames: [this.repositoryName],
        }),
      );
      const repo = out.repositories?.[0];
      return { repositoryName: this.repositoryName, imageTagMutability: repo?.imageTagMutability };
    } catch (err) {
      if (exceptionName(err) === "RepositoryNotFoundException") return undefined;
      throw err;
    }
  }

  async createRepository(options: { immutable: boolean }): Promise<void> {
    try {
      await this.client.send(
        new CreateRepositoryCommand({
          ...this.ids,
          imageTagMutability: options.immutable ? "IMMUTABLE" : "MUTABLE",
        }),
      );
    } catch (err) {
      // Someone else created it meanwhile: that is what we wanted.
      if (exceptionName(err) !== "RepositoryAlreadyExistsException") throw err;
    }
  }

  async checkLayers(digests: string[]): Promise<LayerAvailability[]> {
    return layerAvailability(
      await this.client.send(new BatchCheckLayerAvailabilityCommand({ ...this.ids, layerDigests: digests })),
    );
  }

  async initiateLayerUpload(): Promise<{ uploadId: string; partSize: number | undefined }> {
    return initiatedUpload(await this.client.send(new InitiateLayerUploadCommand(this.ids)));
  }

  prepareLayerPart(
    uploadId: string,
    firstByte: number,
    blob: Buffer,
    allocate?: (size: number) => Buffer,
  ): Promise<PreparedLayerPart> {
    return prepareLayerPart(this.ids, uploadId, firstByte, blob, allocate);
  }

  async uploadLayerPart(part: PreparedLayerPart): Promise<number> {
    const out = await this.client.send(new UploadLayerPartCommand(uploadLayerPartInput(this.ids, part)));
    return out.lastByteReceived ?? part.lastByte;
  }

  async completeLayerUpload(uploadId: string, digest: string): Promise<string> {
    const out = await this.client.send(
      new CompleteLayerUploadCommand({ ...this.ids, uploadId, layerDigests: [digest] }),
    );
    return out.layerDigest ?? "";
  }

  async putImage(
    manifest: string,
    mediaType: string,
    options: { tag?: string; digest?: string },
  ): Promise<void> {
    await this.client.send(new PutImageCommand(putImageInput(this.ids, manifest, mediaType, options)));
  }

  async digestOfTag(tag: string): Promise<string | undefined> {
    const out = await this.client.send(
      new BatchGetImageCommand({
        ...this.ids,
        imageIds: [{ imageTag: tag }],
        // Every type we push, so that ECR never converts (which would change the digest).
        acceptedMediaTypes: [...MANIFEST_TYPES],
      }),
    );
    return out.images?.[0]?.imageId?.imageDigest;
  }

  close(): void {
    if (this.ownsClient) this.client.destroy();
  }
}
