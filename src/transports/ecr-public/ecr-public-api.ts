import {
  BatchCheckLayerAvailabilityCommand,
  CompleteLayerUploadCommand,
  CreateRepositoryCommand,
  DescribeImageTagsCommand,
  DescribeRegistriesCommand,
  DescribeRepositoriesCommand,
  ECRPUBLICClient,
  InitiateLayerUploadCommand,
  PutImageCommand,
  UploadLayerPartCommand,
} from "@aws-sdk/client-ecr-public";
import { EcrxError } from "../../errors.js";
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
} from "../ecr/api.js";
import { exceptionName } from "../ecr/errors.js";
import { layerPartBodyPlugin } from "../ecr/part-body.js";

/** ECR Public's API lives in us-east-1 only (ecr-spec.md section 6). */
export const ECR_PUBLIC_REGION = "us-east-1";

export function createEcrPublicClient(options: AwsOptions): ECRPUBLICClient {
  const client = new ECRPUBLICClient(sdkClientConfig(options, ECR_PUBLIC_REGION));
  client.middlewareStack.use(layerPartBodyPlugin);
  if (options.onCall) client.middlewareStack.use(callObserverPlugin(options.onCall));
  return client;
}

/**
 * Finds the registry id behind `public.ecr.aws/<alias>`: the alias must be one of the caller's
 * registries, since ECR Public pushes only go to one's own registry.
 */
export async function resolvePublicRegistryId(client: ECRPUBLICClient, alias: string): Promise<string> {
  if (/^\d{12}$/.test(alias)) return alias;
  let nextToken: string | undefined;
  const seen: string[] = [];
  do {
    const out = await client.send(
      new DescribeRegistriesCommand(nextToken === undefined ? {} : { nextToken }),
    );
    for (const registry of out.registries ?? []) {
      for (const a of registry.aliases ?? []) {
        seen.push(a.name ?? "");
        if (a.name === alias && registry.registryId) return registry.registryId;
      }
    }
    nextToken = out.nextToken;
  } while (nextToken);
  throw new EcrxError("NOT_FOUND", `public.ecr.aws/${alias} is not a registry of these credentials`, {
    awsName: "RegistryNotFoundException",
    hint: seen.length
      ? `your registry aliases: ${seen.join(", ")}`
      : "check the alias and your AWS credentials",
  });
}

/** The ECR Public API for one repository. */
export class PublicEcrApi implements EcrApi {
  readonly service = "ecr-public" as const;
  readonly limits = { maxParts: 1000, maxLayerBytes: 10_000 * MiB };

  constructor(
    private readonly client: ECRPUBLICClient,
    private readonly registryId: string,
    readonly repositoryName: string,
    private readonly ownsClient = true,
  ) {}

  private get ids() {
    return { registryId: this.registryId, repositoryName: this.repositoryName };
  }

  async describeRepository(): Promise<RepositoryInfo | undefined> {
    try {
      await this.client.send(
        new DescribeRepositoriesCommand({
          registryId: this.registryId,
          repositoryNames: [this.repositoryName],
        }),
      );
      // ECR Public repositories have no tag mutability setting.
      return { repositoryName: this.repositoryName, imageTagMutability: undefined };
    } catch (err) {
      if (exceptionName(err) === "RepositoryNotFoundException") return undefined;
      throw err;
    }
  }

  async createRepository(): Promise<void> {
    try {
      await this.client.send(new CreateRepositoryCommand({ repositoryName: this.repositoryName }));
    } catch (err) {
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
    let nextToken: string | undefined;
    do {
      const out = await this.client.send(
        new DescribeImageTagsCommand({ ...this.ids, ...(nextToken === undefined ? {} : { nextToken }) }),
      );
      const hit = out.imageTagDetails?.find((d) => d.imageTag === tag);
      if (hit) return hit.imageDetail?.imageDigest;
      nextToken = out.nextToken;
    } while (nextToken);
    return undefined;
  }

  close(): void {
    if (this.ownsClient) this.client.destroy();
  }
}
