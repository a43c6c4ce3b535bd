import { EcrxError } from "../errors.js";
import { isDigest, sha256Digest } from "./digest.js";
import { MediaType, isImageManifestType, isIndexType, isManifestType } from "./media-types.js";
import type { Descriptor, ImageConfig, ImageIndex, ImageManifest, Platform, RawManifest } from "./types.js";

/** ECR's manifest size limit (ecr-spec.md section 2); also a sane bound for any registry. */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
/** Image configs are small JSON; the bound keeps a hostile source from making us buffer a layer. */
export const MAX_CONFIG_BYTES = 8 * 1024 * 1024;

export type ParsedManifest =
  | { kind: "manifest"; manifest: ImageManifest; raw: RawManifest }
  | { kind: "index"; index: ImageIndex; raw: RawManifest };

export interface ParseManifestOptions {
  /** The media type the source announced (Content-Type, descriptor, ECR's imageManifestMediaType). */
  mediaType?: string;
  /** Names the manifest in error messages. */
  what?: string;
}

// RFC 6838 type/subtype; parameters (`;`) are not part of the name and ECR refuses them.
const MEDIA_TYPE_PATTERN = /^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$/;
const SCHEMA1_TYPES = [
  "application/vnd.docker.distribution.manifest.v1+json",
  "application/vnd.docker.distribution.manifest.v1+prettyjws",
];

/**
 * Parses and validates image manifest or index bytes. The media type comes from the top-level
 * `mediaType` field, else from `options.mediaType`, else from the shape (OCI allows the field to be
 * absent). The returned RawManifest holds the bytes verbatim with their sha256 digest.
 */
export function parseManifest(bytes: Buffer, options: ParseManifestOptions = {}): ParsedManifest {
  const what = options.what ?? "manifest";
  if (bytes.length > MAX_MANIFEST_BYTES) {
    throw invalid(`${what} is ${bytes.length} bytes, over the ${MAX_MANIFEST_BYTES}-byte limit`);
  }
  const doc = parseJsonObject(bytes, what);
  const mediaType = resolveMediaType(doc, options.mediaType, what);
  if (doc.schemaVersion !== 2) {
    throw new EcrxError(
      "UNSUPPORTED",
      `${what} has schemaVersion ${String(doc.schemaVersion)}; only 2 is supported`,
    );
  }
  const raw: RawManifest = { bytes, mediaType, digest: sha256Digest(bytes) };
  const common = {
    ...(typeof doc.mediaType === "string" ? { mediaType: doc.mediaType } : {}),
    ...optionalString(doc, "artifactType", what),
    ...(doc.subject === undefined ? {} : { subject: parseDescriptor(doc.subject, `${what} subject`) }),
    ...optionalAnnotations(doc.annotations, what),
  };
  if (isIndexType(mediaType)) {
    if (!Array.isArray(doc.manifests)) throw invalid(`${what}: "manifests" must be an array`);
    const manifests = doc.manifests.map((d, i) => parseDescriptor(d, `${what} manifests[${i}]`));
    return { kind: "index", index: { schemaVersion: 2, ...common, manifests }, raw };
  }
  if (doc.config === undefined) throw invalid(`${what}: "config" is missing`);
  const config = parseDescriptor(doc.config, `${what} config`);
  if (!Array.isArray(doc.layers)) throw invalid(`${what}: "layers" must be an array`);
  const layers = doc.layers.map((d, i) => parseDescriptor(d, `${what} layers[${i}]`));
  return { kind: "manifest", manifest: { schemaVersion: 2, ...common, config, layers }, raw };
}

/** Parses a RawManifest whose bytes came with a claimed digest; throws INTEGRITY if they differ. */
export function parseRawManifest(raw: RawManifest, what = `manifest ${raw.digest}`): ParsedManifest {
  const parsed = parseManifest(raw.bytes, { mediaType: raw.mediaType, what });
  if (parsed.raw.digest !== raw.digest) {
    throw new EcrxError("INTEGRITY", `${what}: bytes hash to ${parsed.raw.digest}`);
  }
  return parsed;
}

function resolveMediaType(doc: Record<string, unknown>, given: string | undefined, what: string): string {
  const field = doc.mediaType;
  if (field !== undefined && typeof field !== "string")
    throw invalid(`${what}: "mediaType" must be a string`);
  if (doc.schemaVersion === 1 || SCHEMA1_TYPES.includes(field ?? given ?? "")) {
    throw new EcrxError(
      "UNSUPPORTED",
      `${what} is a Docker schema 1 manifest, which is deprecated and not supported`,
      {
        hint: "rebuild or re-push the image with a current Docker or buildkit",
      },
    );
  }
  const declared = field ?? given ?? inferMediaType(doc, what);
  // A Docker/OCI swap of the same kind is tolerated (registries convert the announced type); an
  // image served as an index, or the reverse, is not.
  if (field !== undefined && given !== undefined && isManifestType(given) && !sameKind(given, field)) {
    throw invalid(`${what} says mediaType ${field} but was served as ${given}`);
  }
  if (!isImageManifestType(declared) && !isIndexType(declared)) {
    throw new EcrxError("UNSUPPORTED", `${what} has unsupported media type ${JSON.stringify(declared)}`);
  }
  return declared;
}

function sameKind(a: string, b: string): boolean {
  return (isIndexType(a) && isIndexType(b)) || (isImageManifestType(a) && isImageManifestType(b));
}

function inferMediaType(doc: Record<string, unknown>, what: string): string {
  if ("manifests" in doc) return MediaType.OciIndex;
  if ("config" in doc || "layers" in doc) return MediaType.OciManifest;
  throw invalid(`${what} has no "mediaType" and neither "manifests" nor "config"`);
}

/** Validates one descriptor: media type, digest syntax and a non-negative safe-integer size. */
export function parseDescriptor(value: unknown, what = "descriptor"): Descriptor {
  if (!isObject(value)) throw invalid(`${what} must be an object`);
  const { mediaType, digest, size } = value;
  if (typeof mediaType !== "string" || !MEDIA_TYPE_PATTERN.test(mediaType)) {
    throw invalid(`${what} has an invalid mediaType ${describe(mediaType)}`);
  }
  if (!isDigest(digest)) throw invalid(`${what} has an invalid digest ${describe(digest)}`);
  if (typeof size !== "number" || !Number.isSafeInteger(size) || size < 0) {
    throw invalid(`${what} has an invalid size ${describe(size)}`);
  }
  const descriptor: Descriptor = { mediaType, digest, size };
  if (value.urls !== undefined) {
    if (!Array.isArray(value.urls) || !value.urls.every((u) => typeof u === "string")) {
      throw invalid(`${what}: "urls" must be an array of strings`);
    }
    descriptor.urls = value.urls;
  }
  Object.assign(
    descriptor,
    optionalAnnotations(value.annotations, what),
    optionalString(value, "artifactType", what),
  );
  if (value.platform !== undefined) descriptor.platform = parsePlatformField(value.platform, what);
  return descriptor;
}

function parsePlatformField(value: unknown, what: string): Platform {
  if (!isObject(value) || typeof value.architecture !== "string" || typeof value.os !== "string") {
    throw invalid(`${what}: "platform" needs string "os" and "architecture"`);
  }
  const platform: Platform = { architecture: value.architecture, os: value.os };
  if (typeof value.variant === "string") platform.variant = value.variant;
  if (typeof value["os.version"] === "string") platform["os.version"] = value["os.version"];
  const features = value["os.features"];
  if (Array.isArray(features) && features.every((f) => typeof f === "string")) {
    platform["os.features"] = features;
  }
  return platform;
}

/** Parses an image config blob and validates what ecrx relies on: rootfs.diff_ids and platform fields. */
export function parseImageConfig(bytes: Buffer, what = "image config"): ImageConfig {
  if (bytes.length > MAX_CONFIG_BYTES) {
    throw invalid(`${what} is ${bytes.length} bytes, over the ${MAX_CONFIG_BYTES}-byte limit`);
  }
  const doc = parseJsonObject(bytes, what);
  for (const field of ["architecture", "os", "variant", "created"] as const) {
    if (doc[field] !== undefined && typeof doc[field] !== "string")
      throw invalid(`${what}: "${field}" must be a string`);
  }
  if (doc.config !== undefined && doc.config !== null && !isObject(doc.config)) {
    throw invalid(`${what}: "config" must be an object`);
  }
  if (doc.rootfs !== undefined) {
    const rootfs = doc.rootfs;
    if (!isObject(rootfs) || typeof rootfs.type !== "string" || !Array.isArray(rootfs.diff_ids)) {
      throw invalid(`${what}: "rootfs" needs a "type" and a "diff_ids" array`);
    }
    rootfs.diff_ids.forEach((id, i) => {
      if (!isDigest(id)) throw invalid(`${what}: rootfs.diff_ids[${i}] is not a digest: ${describe(id)}`);
    });
  }
  if (doc.history !== undefined && !Array.isArray(doc.history))
    throw invalid(`${what}: "history" must be an array`);
  return doc;
}

/**
 * `text` (JSON.parse's message, which quotes the input) with control characters escaped: an error
 * stays one line, and hostile input cannot send escape sequences to the terminal.
 */
export function printable(text: string): string {
  return text.replace(
    // eslint-disable-next-line no-control-regex
    /[\u0000-\u001f\u007f-\u009f]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

function parseJsonObject(bytes: Buffer, what: string): Record<string, unknown> {
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString("utf8"));
  } catch (err) {
    throw invalid(`${what} is not valid JSON (${printable((err as Error).message)})`);
  }
  if (!isObject(doc)) throw invalid(`${what} must be a JSON object`);
  return doc;
}

function optionalString(doc: Record<string, unknown>, field: string, what: string): Record<string, string> {
  const value = doc[field];
  if (value === undefined) return {};
  if (typeof value !== "string") throw invalid(`${what}: "${field}" must be a string`);
  return { [field]: value };
}

function optionalAnnotations(value: unknown, what: string): { annotations?: Record<string, string> } {
  if (value === undefined) return {};
  if (!isObject(value) || !Object.values(value).every((v) => typeof v === "string")) {
    throw invalid(`${what}: "annotations" must map strings to strings`);
  }
  return { annotations: value as Record<string, string> };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  const text = value === undefined ? "(missing)" : JSON.stringify(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

function invalid(message: string): EcrxError {
  return new EcrxError("INVALID_INPUT", message);
}
