/**
 * The ECR Public operations (ecr-spec.md section 6). Push, image and repository logic is shared
 * with private ECR (registry-core.ts) under ECR Public's limits, in a namespace of its own; this file
 * adds its registry identity (account id or alias), CreateRepository with catalog data,
 * DescribeImageTags, DescribeRegistries and GetAuthorizationToken.
 */
import { ApiError, type OperationInput, type OperationTable, type RequestContext } from "./api.js";
import { AUTHORIZATION_TOKEN_LIFETIME_SECONDS, createAuthorizationToken } from "./auth-tokens.js";
import { paginate } from "./paging.js";
import {
  PUBLIC_LIMITS,
  REGISTRY_ID_RULE,
  epochSeconds,
  newRepository,
  readPaging,
  readRepositoryName,
  readResourceTags,
  repositoryAlreadyExists,
  repositoryNameRule,
  sharedOperations,
  targetRepository,
  type RegistryScope,
} from "./registry-core.js";
import type { RepositoryRecord, Store } from "./store.js";
import {
  checkString,
  optionalList,
  optionalString,
  optionalStructure,
  requiredBlob,
  type Members,
} from "./validate.js";

export interface EcrPublicOptions {
  accountId: string;
  /** The registry's alias in `public.ecr.aws/<alias>/<name>`; "ecrx" unless configured. */
  registryAlias: string;
}

const ARCHITECTURES = ["ARM", "ARM 64", "x86", "x86-64"];
const OPERATING_SYSTEMS = ["Linux", "Windows"];
const MAX_LOGO_BYTES = 512_000;

export function createEcrPublicOperations(store: Store, options: EcrPublicOptions): OperationTable {
  const { accountId } = options;
  const registryAlias = options.registryAlias || "ecrx";

  function registryNotFound(id: string): ApiError {
    return new ApiError("RegistryNotFoundException", `The registry with id '${id}' does not exist`);
  }

  const scope: RegistryScope = {
    store,
    namespace: "public",
    limits: PUBLIC_LIMITS,
    repositoryName: repositoryNameRule(205),
    describeImagesFilter: false,
    registry(input, aliasAllowed) {
      const id = aliasAllowed
        ? optionalString(input, "registryId", { min: 2, max: 50 })
        : optionalString(input, "registryId", REGISTRY_ID_RULE);
      if (id === undefined || id === accountId || (aliasAllowed && id === registryAlias)) return accountId;
      throw registryNotFound(id);
    },
    repositoryView(repository: Readonly<RepositoryRecord>) {
      return {
        repositoryArn: `arn:aws:ecr-public::${accountId}:repository/${repository.name}`,
        registryId: accountId,
        repositoryName: repository.name,
        repositoryUri: `public.ecr.aws/${registryAlias}/${repository.name}`,
        createdAt: repository.createdAt,
      };
    },
  };

  async function createRepository(input: OperationInput, ctx: RequestContext): Promise<object> {
    const name = readRepositoryName(scope, input);
    const catalogData = readCatalogData(input);
    const tags = readResourceTags(input, 200);
    const record = newRepository(
      "public",
      name,
      {
        imageTagMutability: "MUTABLE",
        imageScanningConfiguration: { scanOnPush: false },
        encryptionConfiguration: { encryptionType: "AES256" },
        tags,
        catalogData,
      },
      ctx.now,
    );
    if (!(await store.createRepository(record))) throw repositoryAlreadyExists(name, accountId);
    return {
      repository: scope.repositoryView(record),
      catalogData: { ...catalogData, marketplaceCertified: false },
    };
  }

  async function describeImageTags(input: OperationInput): Promise<object> {
    const paging = readPaging(input);
    const { repository, name } = targetRepository(scope, input);
    const tags = Object.keys(repository.tags).sort();
    const page = paginate(tags, (t) => t, { op: "DescribeImageTags", scope: name, ...paging });
    return {
      imageTagDetails: page.items.map((imageTag) => {
        const { digest, createdAt } = repository.tags[imageTag]!;
        const image = repository.images[digest]!;
        return {
          imageTag,
          createdAt,
          imageDetail: {
            imageDigest: digest,
            imageSizeInBytes: image.imageSizeInBytes,
            imagePushedAt: image.pushedAt,
            imageManifestMediaType: image.mediaType,
            ...(image.artifactMediaType === undefined ? {} : { artifactMediaType: image.artifactMediaType }),
          },
        };
      }),
      nextToken: page.nextToken,
    };
  }

  async function describeRegistries(input: OperationInput): Promise<object> {
    const paging = readPaging(input);
    const registries = [
      {
        registryId: accountId,
        registryArn: `arn:aws:ecr-public::${accountId}:registry/${accountId}`,
        registryUri: `public.ecr.aws/${registryAlias}`,
        verified: false,
        aliases: [
          { name: registryAlias, status: "ACTIVE", primaryRegistryAlias: true, defaultRegistryAlias: true },
        ],
      },
    ];
    const page = paginate(registries, (r) => r.registryId, {
      op: "DescribeRegistries",
      scope: "",
      ...paging,
    });
    return { registries: page.items, nextToken: page.nextToken };
  }

  async function getAuthorizationToken(_input: OperationInput, ctx: RequestContext): Promise<object> {
    const expiresAt = Math.floor(epochSeconds(ctx.now)) + AUTHORIZATION_TOKEN_LIFETIME_SECONDS;
    return {
      authorizationData: {
        authorizationToken: createAuthorizationToken(store, { service: "ecr-public", accountId, expiresAt }),
        expiresAt,
      },
    };
  }

  return {
    ...sharedOperations(scope),
    CreateRepository: createRepository,
    DescribeImageTags: (input) => describeImageTags(input),
    DescribeRegistries: (input) => describeRegistries(input),
    GetAuthorizationToken: getAuthorizationToken,
  };
}

/** `catalogData` of CreateRepository, as the output shape shows it (the logo itself is not kept). */
function readCatalogData(input: OperationInput): Members {
  const catalog = optionalStructure(input, "catalogData");
  if (catalog === undefined) return {};
  const path = (member: string): string => `catalogData.${member}`;
  const description = optionalString(catalog, "description", { max: 1024 }, path("description"));
  const architectures = optionalList(catalog, "architectures", { max: 50 })?.map((a, i) =>
    checkString(path(`architectures.${i + 1}.member`), a, { min: 1, max: 50, values: ARCHITECTURES }),
  );
  const operatingSystems = optionalList(catalog, "operatingSystems", { max: 50 })?.map((o, i) =>
    checkString(path(`operatingSystems.${i + 1}.member`), o, { min: 1, max: 50, values: OPERATING_SYSTEMS }),
  );
  if (catalog.logoImageBlob !== undefined && catalog.logoImageBlob !== null) {
    requiredBlob(catalog, "logoImageBlob", MAX_LOGO_BYTES);
  }
  const aboutText = optionalString(catalog, "aboutText", { max: 25_600 }, path("aboutText"));
  const usageText = optionalString(catalog, "usageText", { max: 25_600 }, path("usageText"));
  return {
    ...(description === undefined ? {} : { description }),
    ...(architectures === undefined ? {} : { architectures }),
    ...(operatingSystems === undefined ? {} : { operatingSystems }),
    ...(aboutText === undefined ? {} : { aboutText }),
    ...(usageText === undefined ? {} : { usageText }),
  };
}
