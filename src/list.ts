import {
  BatchGetImageCommand,
  DescribeImagesCommand,
  DescribeRepositoriesCommand,
  type ECRClient,
  type ImageDetail,
} from "@aws-sdk/client-ecr";
import { EcrxError } from "./errors.js";
import { isIndexType, MANIFEST_TYPES } from "./manifest/media-types.js";
import { parseManifest } from "./manifest/parse.js";
import { listPlatforms } from "./manifest/platform.js";
import {
  formatName,
  parseEcrRegistry,
  parseRemoteReference,
  type EcrRegistry,
  type RemoteReference,
} from "./reference/reference.js";
import type { AwsOptions } from "./transports/aws/client-config.js";
import { createEcrClient } from "./transports/ecr/ecr-api.js";
import { ecrError } from "./transports/ecr/errors.js";
import { privateEcrClient } from "./transports/remote.js";
import { openSource, type SideOptions } from "./transports/resolve.js";

export interface ListOptions extends Pick<SideOptions, "credentials" | "insecure" | "dockerConfigPath"> {
  /** Region, endpoint, profile and credentials. Default: the SDK's chains. */
  aws?: AwsOptions;
  signal?: AbortSignal;
}

export interface RepositorySummary {
  name: string;
  /** `<account>.dkr.ecr.<region>.amazonaws.com/<name>` as ECR reports it. */
  uri: string | undefined;
  /** ISO 8601. */
  createdAt: string | undefined;
  imageTagMutability: string | undefined;
}

export interface RepositoryList {
  /** The registry asked, or undefined for the caller's default registry. */
  registry: string | undefined;
  repositories: RepositorySummary[];
}

export interface ImageSummary {
  digest: string | undefined;
  tags: string[];
  /** As ECR reports it: the compressed blobs; for an index, its largest image. */
  size: number | undefined;
  /** ISO 8601. */
  pushedAt: string | undefined;
  mediaType: string | undefined;
  artifactMediaType?: string;
  /** An index's platforms (`os/arch[/variant]`). */
  platforms?: string[];
}

export interface ImageList {
  /** `registry/repository`. */
  repository: string;
  /** `ecr`: every image with DescribeImages; `registry`: tags only, from the v2 tags list. */
  source: "ecr" | "registry";
  /** Newest first. */
  images: ImageSummary[];
}

/** Results per DescribeRepositories / DescribeImages page: ECR's maximum. */
const PAGE_SIZE = 1000;
/** BatchGetImage takes at most 100 image ids. */
const BATCH_GET_LIMIT = 100;

/**
 * The repositories of an ECR registry (DescribeRepositories, every page), sorted by name.
 * `registry` is a registry host; without one, the default registry of the credentials in the
 * configured region.
 */
export async function listRepositories(
  registry: string | undefined,
  options: ListOptions = {},
): Promise<RepositoryList> {
  const target = registry === undefined ? undefined : parseRegistryArgument(registry);
  const aws = options.aws ?? {};
  const client = target ? privateEcrClient(target, aws) : createEcrClient(aws, aws.region);
  try {
    const repositories: RepositorySummary[] = [];
    let nextToken: string | undefined;
    do {
      let out;
      try {
        out = await client.send(
          new DescribeRepositoriesCommand({
            ...(target ? { registryId: target.registryId } : {}),
            maxResults: PAGE_SIZE,
            ...(nextToken === undefined ? {} : { nextToken }),
          }),
          { abortSignal: options.signal },
        );
      } catch (err) {
        throw ecrError(err, `DescribeRepositories${target ? ` of ${target.registry}` : ""}`);
      }
      for (const r of out.repositories ?? []) {
        if (!r.repositoryName) continue;
        repositories.push({
          name: r.repositoryName,
          uri: r.repositoryUri,
          createdAt: r.createdAt?.toISOString(),
          imageTagMutability: r.imageTagMutability,
        });
      }
      nextToken = out.nextToken;
    } while (nextToken);
    repositories.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    return { registry: target?.registry, repositories };
  } finally {
    client.destroy();
  }
}

function parseRegistryArgument(text: string): EcrRegistry {
  const target = parseEcrRegistry(text);
  if (target === undefined) {
    throw new EcrxError("USAGE", `${text} is not an ECR registry host`, {
      hint: "write <account>.dkr.ecr.<region>.amazonaws.com, or a repository to list its images",
    });
  }
  return target;
}

/** Whether `text` names a whole ECR registry (a host alone) rather than a repository. */
export function isRegistryArgument(text: string): boolean {
  return parseEcrRegistry(text) !== undefined;
}

/**
 * The images of a repository, newest first. ECR: DescribeImages (every page) with tags, digest,
 * size, push time and media type, and for each index the platforms it holds (BatchGetImage of the
 * index manifests, 100 at a time). Any other registry: its tags (the v2 tags list), without
 * details. A tag or digest in `repository` is ignored: the whole repository is listed.
 */
export async function listImages(repository: string, options: ListOptions = {}): Promise<ImageList> {
  const ref = parseRepositoryArgument(repository);
  if (ref.kind !== "ecr") return listTags(ref, options);
  const client = privateEcrClient(ref, options.aws ?? {});
  const ids = { registryId: ref.registryId, repositoryName: ref.repository };
  try {
    const details: ImageDetail[] = [];
    let nextToken: string | undefined;
    do {
      let out;
      try {
        out = await client.send(
          new DescribeImagesCommand({
            ...ids,
            maxResults: PAGE_SIZE,
            ...(nextToken === undefined ? {} : { nextToken }),
          }),
          { abortSignal: options.signal },
        );
      } catch (err) {
        throw ecrError(err, `DescribeImages of ${ref.repository}`);
      }
      details.push(...(out.imageDetails ?? []));
      nextToken = out.nextToken;
    } while (nextToken);

    const platforms = await indexPlatforms(
      client,
      ids,
      details.filter((d) => d.imageDigest && isIndexType(d.imageManifestMediaType ?? "")),
      options.signal,
    );
    const images = details.map((d): ImageSummary => {
      const digest = d.imageDigest;
      const indexPlatforms = digest === undefined ? undefined : platforms.get(digest);
      return {
        digest,
        tags: [...(d.imageTags ?? [])].sort(),
        size: d.imageSizeInBytes,
        pushedAt: d.imagePushedAt?.toISOString(),
        mediaType: d.imageManifestMediaType,
        ...(d.artifactMediaType === undefined ? {} : { artifactMediaType: d.artifactMediaType }),
        ...(indexPlatforms === undefined ? {} : { platforms: indexPlatforms }),
      };
    });
    return { repository: formatName(ref), source: "ecr", images: sortNewestFirst(images) };
  } finally {
    client.destroy();
  }
}

function parseRepositoryArgument(text: string): RemoteReference {
  const ref = parseRemoteReference(text.replace(/^docker:\/\//, ""));
  return { ...ref, tags: [] };
}

/** Newest push first; images pushed at the same second by digest, so the order is stable. */
export function sortNewestFirst(images: ImageSummary[]): ImageSummary[] {
  return [...images].sort((a, b) => {
    const at = a.pushedAt ?? "";
    const bt = b.pushedAt ?? "";
    if (at !== bt) return at < bt ? 1 : -1;
    const ad = a.digest ?? "";
    const bd = b.digest ?? "";
    return ad < bd ? -1 : ad > bd ? 1 : 0;
  });
}

async function indexPlatforms(
  client: ECRClient,
  ids: { registryId: string; repositoryName: string },
  indexes: ImageDetail[],
  signal: AbortSignal | undefined,
): Promise<Map<string, string[]>> {
  const platforms = new Map<string, string[]>();
  for (let i = 0; i < indexes.length; i += BATCH_GET_LIMIT) {
    const batch = indexes.slice(i, i + BATCH_GET_LIMIT);
    let out;
    try {
      out = await client.send(
        new BatchGetImageCommand({
          ...ids,
          imageIds: batch.map((d) => ({ imageDigest: d.imageDigest! })),
          // Every type we know, so that ECR never converts what it returns.
          acceptedMediaTypes: [...MANIFEST_TYPES],
        }),
        { abortSignal: signal },
      );
    } catch (err) {
      throw ecrError(err, `BatchGetImage of ${ids.repositoryName}`);
    }
    for (const image of out.images ?? []) {
      const digest = image.imageId?.imageDigest;
      if (!digest || !image.imageManifest) continue;
      const parsed = parseManifest(Buffer.from(image.imageManifest, "utf8"), {
        ...(image.imageManifestMediaType === undefined ? {} : { mediaType: image.imageManifestMediaType }),
        what: `manifest ${digest}`,
      });
      if (parsed.kind === "index") platforms.set(digest, listPlatforms(parsed.index));
    }
  }
  return platforms;
}

async function listTags(ref: RemoteReference, options: ListOptions): Promise<ImageList> {
  const source = await openSource(ref, {
    aws: options.aws,
    credentials: options.credentials,
    insecure: options.insecure,
    dockerConfigPath: options.dockerConfigPath,
    signal: options.signal,
  });
  try {
    if (!source.tags) {
      throw new EcrxError("UNSUPPORTED", `${formatName(ref)} cannot list its tags`);
    }
    const tags = (await source.tags()).sort();
    return {
      repository: formatName(ref),
      source: "registry",
      images: tags.map((tag) => ({
        digest: undefined,
        tags: [tag],
        size: undefined,
        pushedAt: undefined,
        mediaType: undefined,
      })),
    };
  } finally {
    await source.close();
  }
}
