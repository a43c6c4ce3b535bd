/**
 * The behaviour that private ECR and ECR Public share, written once: layer uploads, PutImage,
 * image deletion and listing, repository lookup and deletion. Each service supplies a
 * `RegistryScope` (its namespace in the store, its limits, how it reads `registryId`, how it shows a
 * repository) and adds its own operations on top (ecr-api.ts, ecr-public-api.ts).
 */
import { createHash } from "node:crypto";
import { ApiError, type OperationInput, type OperationTable, type RequestContext } from "./api.js";
import { isImageManifestType, isManifestType } from "../manifest/media-types.js";
import type { Namespace, RepositoryRecord, RepositorySettings, Store, UploadHandle } from "./store.js";
import { paginate } from "./paging.js";
import {
  checkString,
  checkStructure,
  invalidParameter,
  optionalBoolean,
  optionalInteger,
  optionalList,
  optionalString,
  optionalStructure,
  requiredBlob,
  requiredInteger,
  requiredList,
  requiredString,
  type Members,
  type StringRule,
} from "./validate.js";

const MiB = 1024 * 1024;
/** What InitiateLayerUpload suggests (AWS's examples show 10 MiB). */
export const SUGGESTED_PART_SIZE = 10 * MiB;
/** Every part but the last must be at least this big (checked at CompleteLayerUpload). */
export const MIN_PART_BYTES = 5 * MiB;
/** The API model's limit on `layerPartBlob`. */
export const MAX_PART_BYTES = 20_971_520;

export interface RegistryLimits {
  maxPartsPerUpload: number;
  maxLayerBytes: number;
}

export const PRIVATE_LIMITS: RegistryLimits = { maxPartsPerUpload: 4_200, maxLayerBytes: 52_000 * MiB };
export const PUBLIC_LIMITS: RegistryLimits = { maxPartsPerUpload: 1_000, maxLayerBytes: 10_000 * MiB };

const REPOSITORY_NAME_PATTERN_TEXT =
  "[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*(\\/[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*)*";
const REPOSITORY_NAME_PATTERN = new RegExp(`^(?:${REPOSITORY_NAME_PATTERN_TEXT})$`);
export const UPLOAD_ID_RULE: StringRule = {
  pattern: /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/,
  patternText: "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
};
export const LAYER_DIGEST_RULE: StringRule = {
  pattern: /^[a-zA-Z0-9\-_+.]+:[a-fA-F0-9]+$/,
  patternText: "[a-zA-Z0-9-_+.]+:[a-fA-F0-9]+",
};
export const REGISTRY_ID_RULE: StringRule = { pattern: /^[0-9]{12}$/, patternText: "[0-9]{12}" };
export const IMAGE_TAG_MAX = 300;
export const IMAGE_MANIFEST_MAX = 4_194_304;
export const ID_LIST = { min: 1, max: 100 };
export const MAX_RESULTS = { min: 1, max: 1000 };
const TAG_STATUSES = ["TAGGED", "UNTAGGED", "ANY"] as const;
/** Per-resource tag quota of both services. */
const MAX_RESOURCE_TAGS = 50;

export function repositoryNameRule(max: number): StringRule {
  return { min: 2, max, pattern: REPOSITORY_NAME_PATTERN, patternText: REPOSITORY_NAME_PATTERN_TEXT };
}

/**
 * `sha256:<64 lowercase hex>` is supported; another algorithm with the API's digest syntax is valid
 * but can never be stored (nothing is hashed with it); anything else is invalid.
 */
export function digestSyntax(digest: string): "supported" | "unsupported" | "invalid" {
  if (/^sha256:[0-9a-f]{64}$/.test(digest)) return "supported";
  if (!LAYER_DIGEST_RULE.pattern!.test(digest)) return "invalid";
  return digest.startsWith("sha256:") ? "invalid" : "unsupported";
}

export function sha256Digest(bytes: Buffer): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

export function epochSeconds(date: Date): number {
  return date.getTime() / 1000;
}

export interface RegistryScope {
  store: Store;
  namespace: Namespace;
  limits: RegistryLimits;
  repositoryName: StringRule;
  /** Whether DescribeImages takes `filter` (private ECR only). */
  describeImagesFilter: boolean;
  /**
   * Reads and checks the `registryId` member. Returns the id to report, or undefined for another
   * account's registry, whose repositories this server cannot see; may throw (ECR Public's
   * RegistryNotFoundException). `aliasAllowed`: ECR Public's push operations accept an alias.
   */
  registry(input: OperationInput, aliasAllowed: boolean): string | undefined;
  /** The `Repository` structure of the service. */
  repositoryView(repository: Readonly<RepositoryRecord>): object;
}

export interface RepositoryTarget {
  registryId: string;
  name: string;
  repository: Readonly<RepositoryRecord>;
}

// ---- repositories ---------------------------------------------------------------------------

export function repositoryNotFound(name: string, registryId: string): ApiError {
  return new ApiError(
    "RepositoryNotFoundException",
    `The repository with name '${name}' does not exist in the registry with id '${registryId}'`,
  );
}

export function readRepositoryName(scope: RegistryScope, input: OperationInput): string {
  return requiredString(input, "repositoryName", scope.repositoryName);
}

/** Finds the repository that the (already validated) input names. */
export function findRepository(
  scope: RegistryScope,
  name: string,
  registryId: string | undefined,
  requested: unknown,
): RepositoryTarget {
  const reported = registryId ?? (requested as string);
  const repository = registryId === undefined ? undefined : scope.store.getRepository(scope.namespace, name);
  if (repository === undefined) throw repositoryNotFound(name, reported);
  return { registryId: reported, name, repository };
}

/** Validates `repositoryName` and `registryId` and finds the repository. */
export function targetRepository(
  scope: RegistryScope,
  input: OperationInput,
  aliasAllowed = false,
): RepositoryTarget {
  const name = readRepositoryName(scope, input);
  const registryId = scope.registry(input, aliasAllowed);
  return findRepository(scope, name, registryId, input.registryId);
}

/** Runs a change on the current repository state; RepositoryNotFoundException if it went away. */
export async function changeRepository<T>(
  scope: RegistryScope,
  target: RepositoryTarget,
  change: (draft: RepositoryRecord) => T,
): Promise<T> {
  const result = await scope.store.updateRepository(scope.namespace, target.name, (draft) => ({
    value: change(draft),
  }));
  if (result === undefined) throw repositoryNotFound(target.name, target.registryId);
  return result.value;
}

export interface ResourceTag {
  Key: string;
  Value: string;
}

/** `tags` of CreateRepository. `listMax`: the model's list bound (ECR Public's is 200). */
export function readResourceTags(input: OperationInput, listMax?: number): ResourceTag[] {
  const list = optionalList(input, "tags", listMax === undefined ? {} : { max: listMax }) ?? [];
  const tags = list.map((item, i) => {
    const tag = checkStructure(`tags.${i + 1}.member`, item);
    return {
      Key: requiredString(tag, "Key", { min: 1, max: 128 }, `tags.${i + 1}.member.Key`),
      Value: requiredString(tag, "Value", { min: 0, max: 256 }, `tags.${i + 1}.member.Value`),
    };
  });
  if (tags.length > MAX_RESOURCE_TAGS) {
    throw new ApiError(
      "TooManyTagsException",
      `The list of tags on the repository is over the limit. The maximum number of tags that can be applied to a repository is ${MAX_RESOURCE_TAGS}.`,
    );
  }
  for (const tag of tags) {
    if (tag.Key.toLowerCase().startsWith("aws:")) {
      throw new ApiError(
        "InvalidTagParameterException",
        `The tag key '${tag.Key}' uses the reserved prefix 'aws:'.`,
      );
    }
  }
  if (new Set(tags.map((t) => t.Key)).size !== tags.length) {
    throw new ApiError("InvalidTagParameterException", "Tag keys must be unique.");
  }
  return tags;
}

export function newRepository(
  namespace: Namespace,
  name: string,
  settings: RepositorySettings,
  now: Date,
): RepositoryRecord {
  return { namespace, name, createdAt: epochSeconds(now), settings, layers: {}, images: {}, tags: {} };
}

export function repositoryAlreadyExists(name: string, registryId: string): ApiError {
  return new ApiError(
    "RepositoryAlreadyExistsException",
    `The repository with name '${name}' already exists in the registry with id '${registryId}'`,
  );
}

export function readPaging(input: OperationInput): {
  nextToken: string | undefined;
  maxResults: number | undefined;
} {
  return {
    nextToken: optionalString(input, "nextToken"),
    maxResults: optionalInteger(input, "maxResults", MAX_RESULTS),
  };
}

/** AWS refuses paging members alongside an explicit list of ids. */
export function refusePagingWithIds(
  listName: string,
  paging: { nextToken?: string; maxResults?: number },
): void {
  if (paging.nextToken !== undefined || paging.maxResults !== undefined) {
    throw invalidParameter(
      `Invalid parameter: nextToken and maxResults cannot be used together with ${listName}`,
    );
  }
}

async function describeRepositories(scope: RegistryScope, input: OperationInput): Promise<object> {
  const names = optionalList(input, "repositoryNames", ID_LIST)?.map((n, i) =>
    checkString(`repositoryNames.${i + 1}.member`, n, scope.repositoryName),
  );
  const paging = readPaging(input);
  const registryId = scope.registry(input, false);
  if (names !== undefined) {
    refusePagingWithIds("repositoryNames", paging);
    const found = names.map((name) => findRepository(scope, name, registryId, input.registryId).repository);
    return { repositories: found.map((r) => scope.repositoryView(r)) };
  }
  const all = registryId === undefined ? [] : scope.store.listRepositories(scope.namespace);
  const page = paginate(all, (r) => r.name, { op: "DescribeRepositories", scope: "", ...paging });
  return { repositories: page.items.map((r) => scope.repositoryView(r)), nextToken: page.nextToken };
}

async function deleteRepository(scope: RegistryScope, input: OperationInput): Promise<object> {
  const name = readRepositoryName(scope, input);
  const force = optionalBoolean(input, "force") ?? false;
  const registryId = scope.registry(input, false);
  const reported = registryId ?? (input.registryId as string);
  const deleted =
    registryId === undefined
      ? undefined
      : await scope.store.deleteRepository(scope.namespace, name, (current) => {
          if (!force && Object.keys(current.images).length > 0) {
            throw new ApiError(
              "RepositoryNotEmptyException",
              `The repository with name '${name}' in registry with id '${reported}' cannot be deleted because it still contains images`,
            );
          }
        });
  if (deleted === undefined) throw repositoryNotFound(name, reported);
  return { repository: scope.repositoryView(deleted) };
}

// ---- layer uploads ----------------------------------------------------------------------------

async function initiateLayerUpload(
  scope: RegistryScope,
  input: OperationInput,
  ctx: RequestContext,
): Promise<object> {
  const target = targetRepository(scope, input, true);
  const session = await scope.store.createUpload(scope.namespace, target.name, epochSeconds(ctx.now));
  return { uploadId: session.id, partSize: SUGGESTED_PART_SIZE };
}

function uploadNotFound(uploadId: string, target: RepositoryTarget): ApiError {
  return new ApiError(
    "UploadNotFoundException",
    `The upload with id '${uploadId}' does not exist in the repository with name '${target.name}' in the registry with id '${target.registryId}'`,
  );
}

/** The open upload `uploadId` of this repository; an upload of another repository is not found. */
export function ownUpload(
  scope: RegistryScope,
  upload: UploadHandle | undefined,
  uploadId: string,
  target: RepositoryTarget,
): UploadHandle {
  if (
    upload === undefined ||
    upload.session.namespace !== scope.namespace ||
    upload.session.repository !== target.name
  ) {
    throw uploadNotFound(uploadId, target);
  }
  return upload;
}

export function uploadLimitExceeded(scope: RegistryScope): ApiError {
  return new ApiError(
    "LimitExceededException",
    `The operation did not succeed because it would have exceeded a service limit for your account: at most ${scope.limits.maxPartsPerUpload} parts and ${scope.limits.maxLayerBytes} bytes per layer`,
  );
}

/** LimitExceededException when an upload would hold more parts or bytes than the service allows. */
export function assertWithinUploadLimits(scope: RegistryScope, parts: number, bytes: number): void {
  if (parts > scope.limits.maxPartsPerUpload || bytes > scope.limits.maxLayerBytes) {
    throw uploadLimitExceeded(scope);
  }
}

async function uploadLayerPart(scope: RegistryScope, input: OperationInput): Promise<object> {
  const name = readRepositoryName(scope, input);
  const uploadId = requiredString(input, "uploadId", UPLOAD_ID_RULE);
  const partFirstByte = requiredInteger(input, "partFirstByte", { min: 0 });
  const partLastByte = requiredInteger(input, "partLastByte", { min: 0 });
  const registryId = scope.registry(input, true);
  // Decoded once; the buffer goes straight to the file and the running hash.
  const bytes = requiredBlob(input, "layerPartBlob", MAX_PART_BYTES);
  const target = findRepository(scope, name, registryId, input.registryId);

  return scope.store.withUpload(uploadId, async (handle) => {
    const upload = ownUpload(scope, handle, uploadId, target);
    const { received, parts } = upload.session;
    const invalidPart = (message: string): ApiError =>
      new ApiError("InvalidLayerPartException", message, 400, {
        registryId: target.registryId,
        repositoryName: target.name,
        uploadId,
        lastValidByteReceived: received - 1,
      });
    if (partFirstByte !== received) {
      throw invalidPart(
        `The part starts at byte ${partFirstByte} but the upload has received ${received} bytes; send from byte ${received}`,
      );
    }
    if (bytes.length === 0 || partLastByte - partFirstByte + 1 !== bytes.length) {
      throw invalidPart(
        `The part range ${partFirstByte}-${partLastByte} does not match the ${bytes.length} bytes of layerPartBlob`,
      );
    }
    assertWithinUploadLimits(scope, parts.length + 1, received + bytes.length);
    await upload.append(bytes);
    return {
      registryId: target.registryId,
      repositoryName: target.name,
      uploadId,
      lastByteReceived: partLastByte,
    };
  });
}

async function completeLayerUpload(scope: RegistryScope, input: OperationInput): Promise<object> {
  const name = readRepositoryName(scope, input);
  const uploadId = requiredString(input, "uploadId", UPLOAD_ID_RULE);
  const layerDigests = requiredList(input, "layerDigests", ID_LIST).map((d, i) =>
    checkString(`layerDigests.${i + 1}.member`, d, LAYER_DIGEST_RULE),
  );
  const registryId = scope.registry(input, true);
  const target = findRepository(scope, name, registryId, input.registryId);

  return scope.store.withUpload(uploadId, async (handle) => {
    const upload = ownUpload(scope, handle, uploadId, target);
    const { digest, existed } = await finishLayerUpload(scope, target, upload, layerDigests);
    if (existed) {
      throw new ApiError(
        "LayerAlreadyExistsException",
        `The image layer '${digest}' already exists in the repository with name '${name}' in the registry with id '${target.registryId}'`,
      );
    }
    return { registryId: target.registryId, repositoryName: target.name, uploadId, layerDigest: digest };
  });
}

/**
 * Ends an upload as CompleteLayerUpload does (the registry API's final PUT too): EmptyUploadException,
 * LayerPartTooSmallException, or InvalidLayerException when the bytes match none of `accepted`
 * leave the upload open; otherwise the blob joins the repository. A blob the repository already has
 * ends the upload with `existed` (CompleteLayerUpload reports it as LayerAlreadyExistsException).
 */
export async function finishLayerUpload(
  scope: RegistryScope,
  target: RepositoryTarget,
  upload: UploadHandle,
  accepted: readonly string[],
): Promise<{ digest: string; existed: boolean }> {
  const { parts } = upload.session;
  if (parts.length === 0) {
    throw new ApiError(
      "EmptyUploadException",
      `The upload with id '${upload.session.id}' does not contain any layer parts`,
    );
  }
  const small = parts.slice(0, -1).findIndex((size) => size < MIN_PART_BYTES);
  if (small >= 0) {
    throw new ApiError(
      "LayerPartTooSmallException",
      `Layer part ${small + 1} has ${parts[small]} bytes: every part but the last must have at least ${MIN_PART_BYTES} bytes`,
    );
  }
  const digest = await upload.digest();
  if (!accepted.includes(digest)) {
    throw new ApiError(
      "InvalidLayerException",
      `The layer digest calculated upon receipt of the layer (${digest}) does not match the digest specified`,
    );
  }
  if (scope.store.getRepository(scope.namespace, target.name)?.layers[digest] !== undefined) {
    await upload.discard();
    return { digest, existed: true };
  }
  const size = upload.session.received;
  await upload.commit(digest);
  await changeRepository(scope, target, (draft) => {
    draft.layers[digest] ??= { size };
  });
  return { digest, existed: false };
}

async function batchCheckLayerAvailability(scope: RegistryScope, input: OperationInput): Promise<object> {
  const name = readRepositoryName(scope, input);
  const digests = requiredList(input, "layerDigests", ID_LIST).map((d, i) =>
    checkString(`layerDigests.${i + 1}.member`, d, { min: 0, max: 1000 }),
  );
  const { repository } = findRepository(scope, name, scope.registry(input, true), input.registryId);
  const layers: object[] = [];
  const failures: object[] = [];
  for (const layerDigest of digests) {
    const layer = repository.layers[layerDigest];
    if (digestSyntax(layerDigest) === "invalid") {
      failures.push({
        layerDigest,
        failureCode: "InvalidLayerDigest",
        failureReason: "Invalid layer digest",
      });
    } else if (layer === undefined) {
      // Whether AWS reports an absent layer as UNAVAILABLE or as this failure is unconfirmed;
      // ecr-spec.md section 3 settles on the failure.
      failures.push({
        layerDigest,
        failureCode: "MissingLayerDigest",
        failureReason: "Could not find layer digest",
      });
    } else {
      layers.push({
        layerDigest,
        layerAvailability: "AVAILABLE",
        layerSize: layer.size,
        mediaType: layer.mediaType,
      });
    }
  }
  return { layers, failures };
}

// ---- images -----------------------------------------------------------------------------------

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
}

interface ParsedManifest {
  mediaType: string;
  config: Descriptor | undefined;
  layers: Descriptor[];
  children: Descriptor[];
  subject: Descriptor | undefined;
}

function manifestInvalid(reason: string): ApiError {
  return invalidParameter(`Invalid parameter at 'imageManifest' failed to satisfy constraint: '${reason}'`);
}

function readDescriptor(value: unknown, path: string): Descriptor {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw manifestInvalid(`${path} must be a descriptor object`);
  }
  const d = value as Members;
  if (typeof d.mediaType !== "string" || d.mediaType === "")
    throw manifestInvalid(`${path}.mediaType is required`);
  if (typeof d.digest !== "string" || digestSyntax(d.digest) === "invalid") {
    throw manifestInvalid(`${path}.digest is not a valid digest`);
  }
  if (typeof d.size !== "number" || !Number.isSafeInteger(d.size) || d.size < 0) {
    throw manifestInvalid(`${path}.size must be a non-negative integer`);
  }
  return { mediaType: d.mediaType, digest: d.digest, size: d.size };
}

function readDescriptors(value: unknown, path: string): Descriptor[] {
  if (!Array.isArray(value)) throw manifestInvalid(`${path} must be an array`);
  return value.map((item, i) => readDescriptor(item, `${path}[${i}]`));
}

/** Checks the manifest's JSON and media type the way PutImage does (ecr-spec.md section 3). */
export function parseManifest(text: string, declared: string | undefined): ParsedManifest {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw manifestInvalid("Invalid JSON syntax");
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc))
    throw manifestInvalid("Invalid JSON syntax");
  const manifest = doc as Members;
  const inner = manifest.mediaType;
  if (inner !== undefined && typeof inner !== "string") throw manifestInvalid("Invalid JSON syntax");
  // Without a media type inside or beside the manifest, ECR answers exactly this.
  if (inner === undefined && declared === undefined) throw manifestInvalid("Invalid JSON syntax");
  for (const type of [inner, declared]) {
    if (type?.includes(";")) {
      throw invalidParameter(
        `Invalid parameter at 'imageManifestMediaType' failed to satisfy constraint: 'Media type parameters are not supported: ${type}'`,
      );
    }
  }
  if (inner !== undefined && declared !== undefined && inner !== declared) {
    throw invalidParameter(
      `Invalid parameter at 'imageManifestMediaType' failed to satisfy constraint: 'imageManifestMediaType ${declared} does not match the manifest mediaType ${inner}'`,
    );
  }
  const mediaType = (inner ?? declared)!;
  if (!isManifestType(mediaType)) {
    throw invalidParameter(
      `Invalid parameter at 'imageManifestMediaType' failed to satisfy constraint: 'Unsupported manifest media type ${mediaType}'`,
    );
  }
  if (manifest.schemaVersion !== 2) throw manifestInvalid("schemaVersion must be 2");
  const subject = manifest.subject === undefined ? undefined : readDescriptor(manifest.subject, "subject");
  if (isImageManifestType(mediaType)) {
    return {
      mediaType,
      config: readDescriptor(manifest.config, "config"),
      layers: readDescriptors(manifest.layers, "layers"),
      children: [],
      subject,
    };
  }
  return {
    mediaType,
    config: undefined,
    layers: [],
    children: readDescriptors(manifest.manifests, "manifests"),
    subject,
  };
}

/** Foreign (Windows base) layers live elsewhere by design; their bytes are never pushed. */
function mustBePushed(layer: Descriptor): boolean {
  return !/\.(foreign|nondistributable)\./.test(layer.mediaType);
}

function wildcardMatches(filter: string, tag: string): boolean {
  const pattern = filter.split("*").map((part) => part.replace(/[.+?^${}()|[\]\\-]/g, "\\$&"));
  return new RegExp(`^${pattern.join(".*")}$`).test(tag);
}

export function isTagImmutable(settings: RepositorySettings, tag: string): boolean {
  const excluded = (settings.imageTagMutabilityExclusionFilters ?? []).some((f) =>
    wildcardMatches(f.filter, tag),
  );
  switch (settings.imageTagMutability) {
    case "IMMUTABLE":
      return true;
    case "IMMUTABLE_WITH_EXCLUSION":
      return !excluded;
    case "MUTABLE_WITH_EXCLUSION":
      return excluded;
    default:
      return false;
  }
}

async function putImage(scope: RegistryScope, input: OperationInput, ctx: RequestContext): Promise<object> {
  const name = readRepositoryName(scope, input);
  const imageManifest = requiredString(input, "imageManifest", { min: 1, max: IMAGE_MANIFEST_MAX });
  const declaredType = optionalString(input, "imageManifestMediaType");
  const imageTag = optionalString(input, "imageTag", { min: 1, max: IMAGE_TAG_MAX });
  const imageDigest = optionalString(input, "imageDigest");
  const registryId = scope.registry(input, true);
  const target = findRepository(scope, name, registryId, input.registryId);

  if (imageDigest !== undefined && digestSyntax(imageDigest) === "invalid") {
    throw invalidParameter(
      `Invalid parameter at 'imageDigest' failed to satisfy constraint: 'Invalid digest ${imageDigest}'`,
    );
  }
  const { digest, mediaType } = await storeImage(scope, target, {
    bytes: Buffer.from(imageManifest, "utf8"),
    declaredType,
    tag: imageTag,
    expectedDigest: imageDigest,
    now: ctx.now,
  });
  return {
    image: {
      registryId: target.registryId,
      repositoryName: name,
      imageId: { imageDigest: digest, ...(imageTag === undefined ? {} : { imageTag }) },
      imageManifest,
      imageManifestMediaType: mediaType,
    },
  };
}

export interface ImageUpload {
  /** The manifest exactly as sent: its sha256 is the image digest. */
  bytes: Buffer;
  /** imageManifestMediaType, or the registry API's Content-Type. */
  declaredType: string | undefined;
  tag: string | undefined;
  /** imageDigest, or the digest a registry API PUT names. */
  expectedDigest: string | undefined;
  now: Date;
}

export interface StoredImage {
  digest: string;
  mediaType: string;
  /** The digest of the manifest's `subject`. */
  subject: string | undefined;
}

/**
 * PutImage's checks and effect, shared with the registry API's manifest PUT: the manifest is
 * validated, its blobs and children must be in the repository, the tag must not be immutable.
 * Throws ImageAlreadyExistsException when neither image nor tag would change.
 */
export async function storeImage(
  scope: RegistryScope,
  target: RepositoryTarget,
  upload: ImageUpload,
): Promise<StoredImage> {
  const { bytes, tag: imageTag, now } = upload;
  const { name } = target;
  const digest = sha256Digest(bytes);
  if (upload.expectedDigest !== undefined && upload.expectedDigest !== digest) {
    throw new ApiError(
      "ImageDigestDoesNotMatchException",
      `The digest ${upload.expectedDigest} does not match the digest ${digest} calculated from the manifest`,
    );
  }
  const manifest = parseManifest(bytes.toString("utf8"), upload.declaredType);
  await scope.store.putManifest(digest, bytes);

  await changeRepository(scope, target, (draft) => {
    const blobs = manifest.config === undefined ? [] : [manifest.config, ...manifest.layers];
    const missingBlobs = blobs.filter((b) => mustBePushed(b) && draft.layers[b.digest] === undefined);
    if (missingBlobs.length > 0) {
      throw new ApiError(
        "LayersNotFoundException",
        `Layers with digests '${missingBlobs.map((b) => b.digest).join(", ")}' required for pushing image into repository with name '${name}' in the registry with id '${target.registryId}' do not exist`,
      );
    }
    const missingChildren = manifest.children.filter((c) => draft.images[c.digest] === undefined);
    if (missingChildren.length > 0) {
      throw new ApiError(
        "ReferencedImagesNotFoundException",
        `Manifests with digests '${missingChildren.map((c) => c.digest).join(", ")}' referenced by the manifest list do not exist in the repository with name '${name}'`,
      );
    }
    const existing = draft.images[digest];
    const tagged = imageTag === undefined ? undefined : draft.tags[imageTag];
    if (existing !== undefined && (imageTag === undefined || tagged?.digest === digest)) {
      throw new ApiError(
        "ImageAlreadyExistsException",
        `Image with digest '${digest}'${imageTag === undefined ? "" : ` and tag '${imageTag}'`} already exists in the repository with name '${name}' in the registry with id '${target.registryId}'`,
      );
    }
    if (imageTag !== undefined && tagged !== undefined && isTagImmutable(draft.settings, imageTag)) {
      throw new ApiError(
        "ImageTagAlreadyExistsException",
        `The image tag '${imageTag}' already exists in the '${name}' repository and cannot be overwritten because the tag is immutable.`,
      );
    }
    if (existing === undefined) {
      for (const blob of blobs) {
        const layer = draft.layers[blob.digest];
        if (layer !== undefined) layer.mediaType ??= blob.mediaType;
      }
      draft.images[digest] = {
        mediaType: manifest.mediaType,
        pushedAt: epochSeconds(now),
        // ECR counts the compressed layers (not the config); an index counts as its largest child.
        imageSizeInBytes:
          manifest.config === undefined
            ? Math.max(0, ...manifest.children.map((c) => draft.images[c.digest]?.imageSizeInBytes ?? 0))
            : manifest.layers.reduce((sum, l) => sum + (draft.layers[l.digest]?.size ?? l.size), 0),
        ...(manifest.config === undefined ? {} : { artifactMediaType: manifest.config.mediaType }),
        blobs: blobs.map((b) => b.digest),
        children: manifest.children.map((c) => c.digest),
        ...(manifest.subject === undefined ? {} : { subject: manifest.subject.digest }),
      };
    }
    if (imageTag !== undefined) draft.tags[imageTag] = { digest, createdAt: epochSeconds(now) };
  });

  return { digest, mediaType: manifest.mediaType, subject: manifest.subject?.digest };
}

export interface ImageId {
  imageDigest?: string;
  imageTag?: string;
}

/** The `imageIds` list: types are checked here, syntax per item by `resolveImageId`. */
export function readImageIds(input: OperationInput, required: true): ImageId[];
export function readImageIds(input: OperationInput, required: false): ImageId[] | undefined;
export function readImageIds(input: OperationInput, required: boolean): ImageId[] | undefined {
  const list = required ? requiredList(input, "imageIds", ID_LIST) : optionalList(input, "imageIds", ID_LIST);
  return list?.map((item, i) => {
    const path = `imageIds.${i + 1}.member`;
    const id = checkStructure(path, item);
    const imageDigest = optionalString(id, "imageDigest", {}, `${path}.imageDigest`);
    const imageTag = optionalString(id, "imageTag", {}, `${path}.imageTag`);
    return {
      ...(imageDigest === undefined ? {} : { imageDigest }),
      ...(imageTag === undefined ? {} : { imageTag }),
    };
  });
}

export interface ImageFailure {
  imageId: ImageId;
  failureCode: string;
  failureReason: string;
}

/** Resolves an image id to a digest of the repository, or the failure entry AWS reports for it. */
export function resolveImageId(
  repository: Readonly<RepositoryRecord>,
  imageId: ImageId,
): { digest: string } | { failure: ImageFailure } {
  const fail = (failureCode: string, failureReason: string): { failure: ImageFailure } => ({
    failure: { imageId, failureCode, failureReason },
  });
  const { imageDigest, imageTag } = imageId;
  if (imageDigest === undefined && imageTag === undefined) {
    return fail("MissingDigestAndTag", "Invalid request parameters: both tag and digest cannot be null");
  }
  if (imageDigest !== undefined && digestSyntax(imageDigest) === "invalid") {
    return fail(
      "InvalidImageDigest",
      "Invalid request parameters: image digest should satisfy the regex '[a-zA-Z0-9-_+.]+:[a-fA-F0-9]+'",
    );
  }
  if (imageTag !== undefined && (imageTag.length < 1 || imageTag.length > IMAGE_TAG_MAX)) {
    return fail(
      "InvalidImageTag",
      `Invalid request parameters: image tag must have 1 to ${IMAGE_TAG_MAX} characters`,
    );
  }
  const byTag = imageTag === undefined ? undefined : repository.tags[imageTag]?.digest;
  const digest = imageDigest ?? byTag;
  if (digest === undefined || repository.images[digest] === undefined) {
    return fail("ImageNotFound", "Requested image not found");
  }
  if (imageTag !== undefined && byTag !== digest) {
    return fail("ImageTagDoesNotMatchDigest", "Invalid request parameters: image tag digest mismatch");
  }
  return { digest };
}

export function tagsOf(repository: Readonly<RepositoryRecord>, digest: string): string[] {
  return Object.entries(repository.tags)
    .filter(([, t]) => t.digest === digest)
    .map(([tag]) => tag);
}

async function batchDeleteImage(scope: RegistryScope, input: OperationInput): Promise<object> {
  const name = readRepositoryName(scope, input);
  const imageIds = readImageIds(input, true);
  const target = findRepository(scope, name, scope.registry(input, false), input.registryId);
  return changeRepository(scope, target, (draft) => {
    const deleted: ImageId[] = [];
    const failures: ImageFailure[] = [];
    for (const imageId of imageIds) {
      const outcome = deleteImage(draft, imageId);
      if ("failure" in outcome) failures.push(outcome.failure);
      else deleted.push(...outcome.deleted);
    }
    return { imageIds: deleted, failures };
  });
}

/**
 * BatchDeleteImage's effect for one image id on a draft repository: by tag it removes the tag (the
 * last tag removes the image), by digest the image and its tags; an image an index references
 * stays (ImageReferencedByManifestList).
 */
export function deleteImage(
  draft: RepositoryRecord,
  imageId: ImageId,
): { deleted: ImageId[] } | { failure: ImageFailure } {
  const resolved = resolveImageId(draft, imageId);
  if ("failure" in resolved) return resolved;
  const { digest } = resolved;
  const tags = tagsOf(draft, digest);
  const untagOnly = imageId.imageDigest === undefined && tags.length > 1;
  const parents = Object.entries(draft.images)
    .filter(([, image]) => image.children.includes(digest))
    .map(([parent]) => parent);
  if (!untagOnly && parents.length > 0) {
    return {
      failure: {
        imageId,
        failureCode: "ImageReferencedByManifestList",
        failureReason: `Requested image referenced by manifest list: [${parents.join(", ")}]`,
      },
    };
  }
  if (untagOnly) {
    delete draft.tags[imageId.imageTag!];
    return { deleted: [{ imageDigest: digest, imageTag: imageId.imageTag! }] };
  }
  for (const tag of tags) delete draft.tags[tag];
  delete draft.images[digest];
  if (tags.length === 0) return { deleted: [{ imageDigest: digest }] };
  return { deleted: tags.map((tag) => ({ imageDigest: digest, imageTag: tag })) };
}

export function imageDetail(target: RepositoryTarget, digest: string, scope: RegistryScope): object {
  const image = target.repository.images[digest]!;
  const tags = tagsOf(target.repository, digest);
  return {
    registryId: target.registryId,
    repositoryName: target.name,
    imageDigest: digest,
    ...(tags.length === 0 ? {} : { imageTags: tags }),
    imageSizeInBytes: image.imageSizeInBytes,
    imagePushedAt: image.pushedAt,
    imageManifestMediaType: image.mediaType,
    ...(image.artifactMediaType === undefined ? {} : { artifactMediaType: image.artifactMediaType }),
    ...(image.subject === undefined || scope.namespace !== "private"
      ? {}
      : { subjectManifestDigest: image.subject }),
  };
}

export function readTagStatus(input: OperationInput): (typeof TAG_STATUSES)[number] {
  const filter = optionalStructure(input, "filter");
  const status =
    filter === undefined
      ? undefined
      : optionalString(filter, "tagStatus", { values: TAG_STATUSES }, "filter.tagStatus");
  return (status as (typeof TAG_STATUSES)[number] | undefined) ?? "ANY";
}

export function matchesTagStatus(status: string, tagged: boolean): boolean {
  return status === "ANY" || (status === "TAGGED") === tagged;
}

async function describeImages(scope: RegistryScope, input: OperationInput): Promise<object> {
  const name = readRepositoryName(scope, input);
  const imageIds = readImageIds(input, false);
  const paging = readPaging(input);
  const tagStatus = scope.describeImagesFilter ? readTagStatus(input) : "ANY";
  const target = findRepository(scope, name, scope.registry(input, false), input.registryId);
  const { repository } = target;
  if (imageIds !== undefined) {
    refusePagingWithIds("imageIds", paging);
    const digests = new Set<string>();
    for (const imageId of imageIds) {
      const resolved = resolveImageId(repository, imageId);
      if ("failure" in resolved) {
        if (
          resolved.failure.failureCode !== "ImageNotFound" &&
          resolved.failure.failureCode !== "ImageTagDoesNotMatchDigest"
        ) {
          throw invalidParameter(resolved.failure.failureReason);
        }
        throw new ApiError(
          "ImageNotFoundException",
          `The image with imageId {imageDigest:'${imageId.imageDigest ?? "null"}', imageTag:'${imageId.imageTag ?? "null"}'} does not exist within the repository with name '${name}' in the registry with id '${target.registryId}'`,
        );
      }
      digests.add(resolved.digest);
    }
    return { imageDetails: [...digests].map((d) => imageDetail(target, d, scope)) };
  }
  const digests = Object.keys(repository.images)
    .filter((d) => matchesTagStatus(tagStatus, tagsOf(repository, d).length > 0))
    .sort();
  const page = paginate(digests, (d) => d, { op: "DescribeImages", scope: name, ...paging });
  return { imageDetails: page.items.map((d) => imageDetail(target, d, scope)), nextToken: page.nextToken };
}

/** The operations both services implement the same way. */
export function sharedOperations(scope: RegistryScope): OperationTable {
  return {
    InitiateLayerUpload: (input, ctx) => initiateLayerUpload(scope, input, ctx),
    UploadLayerPart: (input) => uploadLayerPart(scope, input),
    CompleteLayerUpload: (input) => completeLayerUpload(scope, input),
    BatchCheckLayerAvailability: (input) => batchCheckLayerAvailability(scope, input),
    PutImage: (input, ctx) => putImage(scope, input, ctx),
    BatchDeleteImage: (input) => batchDeleteImage(scope, input),
    DescribeImages: (input) => describeImages(scope, input),
    DescribeRepositories: (input) => describeRepositories(scope, input),
    DeleteRepository: (input) => deleteRepository(scope, input),
  };
}
