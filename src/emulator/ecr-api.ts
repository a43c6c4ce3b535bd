/**
 * The private ECR operations (ecr-spec.md sections 2-5) over the store. The shared push, image and
 * repository logic is in registry-core.ts; this file adds what only private ECR has: BatchGetImage,
 * GetDownloadUrlForLayer, ListImages, CreateRepository and GetAuthorizationToken.
 */
import { ApiError, type OperationInput, type OperationTable, type RequestContext } from "./api.js";
import { AUTHORIZATION_TOKEN_LIFETIME_SECONDS, createAuthorizationToken } from "./auth-tokens.js";
import { paginate } from "./paging.js";
import {
  ID_LIST,
  LAYER_DIGEST_RULE,
  PRIVATE_LIMITS,
  REGISTRY_ID_RULE,
  epochSeconds,
  findRepository,
  matchesTagStatus,
  newRepository,
  readImageIds,
  readPaging,
  readRepositoryName,
  readResourceTags,
  readTagStatus,
  repositoryAlreadyExists,
  repositoryNameRule,
  resolveImageId,
  sharedOperations,
  targetRepository,
  type ImageFailure,
  type RegistryScope,
} from "./registry-core.js";
import type { RepositoryRecord, RepositorySettings, Store, TagMutabilityFilter } from "./store.js";
import {
  checkString,
  checkStructure,
  invalidParameter,
  optionalBoolean,
  optionalList,
  optionalString,
  optionalStructure,
  requiredString,
} from "./validate.js";

export interface EcrOptions {
  accountId: string;
  region: string;
}

const TAG_MUTABILITIES = [
  "MUTABLE",
  "IMMUTABLE",
  "IMMUTABLE_WITH_EXCLUSION",
  "MUTABLE_WITH_EXCLUSION",
] as const;
const ENCRYPTION_TYPES = ["AES256", "KMS", "KMS_DSSE"] as const;
const EXCLUSION_FILTER_RULE = {
  min: 1,
  max: 128,
  pattern: /^[0-9a-zA-Z._*-]+$/,
  patternText: "^[0-9a-zA-Z._*-]{1,128}",
};

/** Private ECR's view of the store; the registry (v2) API serves the same one. */
export function createPrivateScope(store: Store, options: EcrOptions): RegistryScope {
  const { accountId, region } = options;
  const registryHost = `${accountId}.dkr.ecr.${region}.amazonaws.com`;
  return {
    store,
    namespace: "private",
    limits: PRIVATE_LIMITS,
    repositoryName: repositoryNameRule(256),
    describeImagesFilter: true,
    registry(input) {
      const registryId = optionalString(input, "registryId", REGISTRY_ID_RULE) ?? accountId;
      // Another account's registry is reached with that account's permission, which this server
      // cannot grant. AWS would answer AccessDenied or not-found depending on repository policies;
      // we report its repositories as not found, which is what a client without access can rely on.
      return registryId === accountId ? accountId : undefined;
    },
    repositoryView(repository: Readonly<RepositoryRecord>) {
      const { settings } = repository;
      return {
        repositoryArn: `arn:aws:ecr:${region}:${accountId}:repository/${repository.name}`,
        registryId: accountId,
        repositoryName: repository.name,
        repositoryUri: `${registryHost}/${repository.name}`,
        createdAt: repository.createdAt,
        imageTagMutability: settings.imageTagMutability,
        ...(settings.imageTagMutabilityExclusionFilters === undefined
          ? {}
          : { imageTagMutabilityExclusionFilters: settings.imageTagMutabilityExclusionFilters }),
        imageScanningConfiguration: settings.imageScanningConfiguration,
        encryptionConfiguration: settings.encryptionConfiguration,
      };
    },
  };
}

export function createEcrOperations(store: Store, options: EcrOptions): OperationTable {
  const { accountId, region } = options;
  const scope = createPrivateScope(store, options);

  async function createRepository(input: OperationInput, ctx: RequestContext): Promise<object> {
    const name = readRepositoryName(scope, input);
    const settings = readRepositorySettings(input);
    const registryId = optionalString(input, "registryId", REGISTRY_ID_RULE) ?? accountId;
    if (registryId !== accountId) {
      throw invalidParameter(
        `Invalid parameter at 'registryId' failed to satisfy constraint: 'repositories can only be created in the registry of the calling account ${accountId}'`,
      );
    }
    const record = newRepository("private", name, settings, ctx.now);
    if (!(await store.createRepository(record))) throw repositoryAlreadyExists(name, accountId);
    return { repository: scope.repositoryView(record) };
  }

  async function batchGetImage(input: OperationInput): Promise<object> {
    const name = readRepositoryName(scope, input);
    const imageIds = readImageIds(input, true);
    const accepted = optionalList(input, "acceptedMediaTypes", ID_LIST)?.map((t, i) =>
      checkString(`acceptedMediaTypes.${i + 1}.member`, t),
    );
    const target = findRepository(scope, name, scope.registry(input, false), input.registryId);
    const images: object[] = [];
    const failures: ImageFailure[] = [];
    for (const imageId of imageIds) {
      const resolved = resolveImageId(target.repository, imageId);
      if ("failure" in resolved) {
        failures.push(resolved.failure);
        continue;
      }
      const image = target.repository.images[resolved.digest]!;
      // Reading never converts between formats: an image stored in a type the caller does not
      // accept is not there for that caller, like a registry's 404 on an unmatched Accept header.
      if (accepted !== undefined && !accepted.includes(image.mediaType)) {
        failures.push({ imageId, failureCode: "ImageNotFound", failureReason: "Requested image not found" });
        continue;
      }
      const bytes = await store.readManifest(resolved.digest);
      if (bytes === undefined)
        throw new ApiError("ServerException", `manifest ${resolved.digest} is missing from the store`, 500);
      images.push({
        registryId: target.registryId,
        repositoryName: name,
        imageId: {
          imageDigest: resolved.digest,
          ...(imageId.imageTag === undefined ? {} : { imageTag: imageId.imageTag }),
        },
        imageManifest: bytes.toString("utf8"),
        imageManifestMediaType: image.mediaType,
      });
    }
    return { images, failures };
  }

  async function getDownloadUrlForLayer(input: OperationInput, ctx: RequestContext): Promise<object> {
    const name = readRepositoryName(scope, input);
    const layerDigest = requiredString(input, "layerDigest", LAYER_DIGEST_RULE);
    const { repository, registryId } = findRepository(
      scope,
      name,
      scope.registry(input, false),
      input.registryId,
    );
    if (repository.layers[layerDigest] === undefined || store.blobPath(layerDigest) === undefined) {
      throw new ApiError(
        "LayersNotFoundException",
        `The layer with digest '${layerDigest}' does not exist in the repository with name '${name}' in the registry with id '${registryId}'`,
      );
    }
    const referenced = Object.values(repository.images).some((image) => image.blobs.includes(layerDigest));
    if (!referenced) {
      throw new ApiError(
        "LayerInaccessibleException",
        `The layer with digest '${layerDigest}' is not available because it is not associated with an image. Unassociated image layers may be cleaned up at any time.`,
      );
    }
    return { downloadUrl: ctx.downloadUrl(layerDigest), layerDigest };
  }

  async function listImages(input: OperationInput): Promise<object> {
    const paging = readPaging(input);
    const tagStatus = readTagStatus(input);
    const { repository, name } = targetRepository(scope, input);
    const entries: { imageDigest: string; imageTag?: string }[] = [];
    const tagsByDigest = new Map<string, string[]>();
    for (const [tag, { digest }] of Object.entries(repository.tags)) {
      tagsByDigest.set(digest, [...(tagsByDigest.get(digest) ?? []), tag]);
    }
    for (const digest of Object.keys(repository.images)) {
      const tags = tagsByDigest.get(digest) ?? [];
      if (!matchesTagStatus(tagStatus, tags.length > 0)) continue;
      if (tags.length === 0) entries.push({ imageDigest: digest });
      for (const imageTag of tags) entries.push({ imageDigest: digest, imageTag });
    }
    const key = (e: { imageDigest: string; imageTag?: string }): string =>
      `${e.imageDigest} ${e.imageTag ?? ""}`;
    entries.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
    const page = paginate(entries, key, { op: "ListImages", scope: name, ...paging });
    return { imageIds: page.items, nextToken: page.nextToken };
  }

  async function getAuthorizationToken(input: OperationInput, ctx: RequestContext): Promise<object> {
    const registryIds = optionalList(input, "registryIds", { min: 1, max: 10 })?.map((id, i) =>
      checkString(`registryIds.${i + 1}.member`, id, REGISTRY_ID_RULE),
    ) ?? [accountId];
    const expiresAt = Math.floor(epochSeconds(ctx.now)) + AUTHORIZATION_TOKEN_LIFETIME_SECONDS;
    // One token serves every registry the caller may reach; AWS lists it once per registry asked.
    const authorizationToken = createAuthorizationToken(store, { service: "ecr", accountId, expiresAt });
    return {
      authorizationData: registryIds.map((registryId) => ({
        authorizationToken,
        expiresAt,
        proxyEndpoint: `https://${registryId}.dkr.ecr.${region}.amazonaws.com`,
      })),
    };
  }

  return {
    ...sharedOperations(scope),
    CreateRepository: createRepository,
    BatchGetImage: (input) => batchGetImage(input),
    GetDownloadUrlForLayer: getDownloadUrlForLayer,
    ListImages: (input) => listImages(input),
    GetAuthorizationToken: getAuthorizationToken,
  };
}

function readRepositorySettings(input: OperationInput): RepositorySettings {
  const tags = readResourceTags(input);
  const imageTagMutability =
    optionalString(input, "imageTagMutability", { values: TAG_MUTABILITIES }) ?? "MUTABLE";
  const filters = optionalList(input, "imageTagMutabilityExclusionFilters", { min: 1, max: 5 })?.map(
    (item, i): TagMutabilityFilter => {
      const path = `imageTagMutabilityExclusionFilters.${i + 1}.member`;
      const filter = checkStructure(path, item);
      return {
        filterType: requiredString(filter, "filterType", { values: ["WILDCARD"] }, `${path}.filterType`),
        filter: requiredString(filter, "filter", EXCLUSION_FILTER_RULE, `${path}.filter`),
      };
    },
  );
  const withExclusion = imageTagMutability.endsWith("_WITH_EXCLUSION");
  if (withExclusion !== (filters !== undefined)) {
    throw invalidParameter(
      withExclusion
        ? `Invalid parameter: imageTagMutabilityExclusionFilters are required with imageTagMutability ${imageTagMutability}`
        : `Invalid parameter: imageTagMutabilityExclusionFilters are only valid with MUTABLE_WITH_EXCLUSION or IMMUTABLE_WITH_EXCLUSION`,
    );
  }
  const scanning = optionalStructure(input, "imageScanningConfiguration");
  const scanOnPush =
    scanning === undefined
      ? false
      : (optionalBoolean(scanning, "scanOnPush", "imageScanningConfiguration.scanOnPush") ?? false);
  const encryption = optionalStructure(input, "encryptionConfiguration");
  let encryptionConfiguration: RepositorySettings["encryptionConfiguration"] = { encryptionType: "AES256" };
  if (encryption !== undefined) {
    const encryptionType = requiredString(
      encryption,
      "encryptionType",
      { values: ENCRYPTION_TYPES },
      "encryptionConfiguration.encryptionType",
    );
    const kmsKey = optionalString(
      encryption,
      "kmsKey",
      { min: 1, max: 2048 },
      "encryptionConfiguration.kmsKey",
    );
    if (encryptionType === "AES256" && kmsKey !== undefined) {
      throw invalidParameter(
        "Invalid parameter: kmsKey can only be specified with encryptionType KMS or KMS_DSSE",
      );
    }
    encryptionConfiguration = { encryptionType, ...(kmsKey === undefined ? {} : { kmsKey }) };
  }
  return {
    imageTagMutability,
    ...(filters === undefined ? {} : { imageTagMutabilityExclusionFilters: filters }),
    imageScanningConfiguration: { scanOnPush },
    encryptionConfiguration,
    tags,
  };
}
