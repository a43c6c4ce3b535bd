import { existsSync } from "node:fs";
import { EcrxError } from "../errors.js";
import { tryParseDigest } from "../manifest/digest.js";
import type { Digest } from "../manifest/types.js";

/** An image in Amazon ECR (or the local ECR of `ecrx serve`, on a `.localhost` host). */
export interface EcrReference {
  kind: "ecr";
  /** `host[:port]`, as written. */
  registry: string;
  host: string;
  port?: number;
  registryId: string;
  region: string;
  fips: boolean;
  dualStack: boolean;
  repository: string;
  /** Empty when only a digest was given; `["latest"]` when neither was. */
  tags: string[];
  digest?: Digest;
}

export interface EcrPublicReference {
  kind: "ecr-public";
  registry: "public.ecr.aws";
  alias: string;
  /** The repository without the alias, as the ECR Public API names it. */
  repository: string;
  tags: string[];
  digest?: Digest;
}

/** Any other OCI distribution registry; Docker Hub short names are expanded as docker does. */
export interface RegistryReference {
  kind: "registry";
  registry: string;
  host: string;
  port?: number;
  repository: string;
  tags: string[];
  digest?: Digest;
}

export interface DockerArchiveReference {
  kind: "docker-archive";
  path: string;
  /** `name:tag` entries, normalised as docker writes them into manifest.json's RepoTags. */
  repoTags: string[];
}

export interface OciReference {
  kind: "oci" | "oci-archive";
  path: string;
  /** `org.opencontainers.image.ref.name` values. */
  tags: string[];
}

/** A path with no transport prefix that exists; the caller sniffs what it holds. */
export interface PathReference {
  kind: "path";
  path: string;
}

export type RemoteReference = EcrReference | EcrPublicReference | RegistryReference;
export type ImageReference = RemoteReference | DockerArchiveReference | OciReference | PathReference;

export interface ParseReferenceOptions {
  /** Whether a path exists; replaceable in tests. */
  exists?: (path: string) => boolean;
}

const TAG_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9._-]*$/;
const MAX_TAG = 128;
const MAX_ECR_TAG = 300;
/** ecr-spec.md section 2; the OCI distribution spec uses the same grammar for path components. */
const REPOSITORY_PATTERN =
  /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/;
/** OCI image-layout ref.name grammar: components of alphanumerics joined by `-._:@+` or `--`, and `/`. */
const OCI_REF_NAME_PATTERN =
  /^[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*(?:\/[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*)*$/;
const ECR_HOST_PATTERN =
  /^(\d{12})\.dkr\.ecr(-fips)?\.([a-z]{2}(?:-[a-z]+)+-\d+)\.(amazonaws\.com|amazonaws\.com\.cn|localhost)$/;
const ECR_DUAL_STACK_HOST_PATTERN = /^(\d{12})\.dkr-ecr(-fips)?\.([a-z]{2}(?:-[a-z]+)+-\d+)\.on\.aws$/;
const HOST_PATTERN =
  /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])$/;
const PUBLIC_HOST = "public.ecr.aws";
const DOCKER_HUB = "docker.io";
const PATH_LIKE = /^(?:\/|\.\.?(?:\/|$)|~\/)|\.(?:tar|tgz|tar\.gz)$/;

/**
 * Parses an image reference:
 * - `<account>.dkr.ecr.<region>.amazonaws.com/<repo>[:tag[,tag...]][@digest]` (also `.com.cn`,
 *   `-fips`, dual-stack `<account>.dkr-ecr.<region>.on.aws`, and `<...>.localhost[:port]` for the
 *   local ECR);
 * - `public.ecr.aws/<alias>/<repo>[:tags][@digest]`;
 * - `[docker://]host[:port]/repo[:tags][@digest]`, Docker Hub short names as docker expands them;
 * - `docker-archive:PATH[:name[:tag]]`, `oci:PATH[:tag]`, `oci-archive:PATH[:tag]`;
 * - a bare path: one that starts with `/`, `./`, `../` or ends in `.tar`/`.tgz`/`.tar.gz`, or that
 *   exists and is not a valid registry reference.
 * With neither tag nor digest, registry references get the tag `latest`, as docker does.
 * Throws `USAGE` with a one-line message naming the problem.
 */
export function parseReference(input: string, options: ParseReferenceOptions = {}): ImageReference {
  const exists = options.exists ?? existsSync;
  const text = input.trim();
  if (text === "") throw usage("empty image reference");
  if (text.startsWith("docker-archive:"))
    return parseDockerArchive(text.slice("docker-archive:".length), exists);
  if (text.startsWith("oci-archive:"))
    return parseOci("oci-archive", text.slice("oci-archive:".length), exists);
  if (text.startsWith("oci:")) return parseOci("oci", text.slice("oci:".length), exists);
  if (text.startsWith("docker://")) return parseRemoteReference(text.slice("docker://".length));
  if (PATH_LIKE.test(text)) {
    if (!exists(text)) throw usage(`no such file or folder: ${text}`);
    return { kind: "path", path: text };
  }
  try {
    return parseRemoteReference(text);
  } catch (err) {
    if (exists(text)) return { kind: "path", path: text };
    throw err;
  }
}

/** Parses a registry reference (ECR, ECR Public or any registry), without a transport prefix. */
export function parseRemoteReference(text: string): RemoteReference {
  if (/\s/.test(text)) throw usage(`image reference ${JSON.stringify(text)} contains whitespace`);
  let rest = text;
  let digest: Digest | undefined;
  const at = rest.indexOf("@");
  if (at >= 0) {
    digest = rest.slice(at + 1);
    if (!tryParseDigest(digest)) {
      throw usage(`invalid digest "${digest}" in ${text}`, "a digest is sha256:<64 lowercase hex digits>");
    }
    rest = rest.slice(0, at);
  }
  // The tag follows the last colon after the last slash; a colon before a slash is a port.
  const slash = rest.lastIndexOf("/");
  const colon = rest.lastIndexOf(":");
  let tagText: string | undefined;
  if (colon > slash) {
    tagText = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
  }
  const { registry, path } = splitRegistry(rest, text);
  const ecr = parseEcrHost(registry);
  const tags = parseTags(tagText, ecr || registry === PUBLIC_HOST ? MAX_ECR_TAG : MAX_TAG, text);
  const effectiveTags = tags.length === 0 && digest === undefined ? ["latest"] : tags;
  const withDigest = digest === undefined ? {} : { digest };

  if (ecr) {
    validateRepository(path, text, { min: 2, max: 256 });
    return { kind: "ecr", registry, ...ecr, repository: path, tags: effectiveTags, ...withDigest };
  }
  if (registry === PUBLIC_HOST) {
    const slashAt = path.indexOf("/");
    if (slashAt < 0) {
      throw usage(
        `ECR Public reference ${text} needs an alias and a repository`,
        "write public.ecr.aws/<alias>/<repo>",
      );
    }
    const alias = path.slice(0, slashAt);
    const repository = path.slice(slashAt + 1);
    if (!/^[a-z][a-z0-9-]{1,49}$/.test(alias) && !/^\d{12}$/.test(alias)) {
      throw usage(`invalid ECR Public alias "${alias}" in ${text}`);
    }
    validateRepository(repository, text, { min: 2, max: 205 });
    return {
      kind: "ecr-public",
      registry: PUBLIC_HOST,
      alias,
      repository,
      tags: effectiveTags,
      ...withDigest,
    };
  }
  const hostPort = splitHostPort(registry, text);
  const repository = registry === DOCKER_HUB && !path.includes("/") ? `library/${path}` : path;
  validateRepository(repository, text, { min: 1, max: 255 });
  return { kind: "registry", registry, ...hostPort, repository, tags: effectiveTags, ...withDigest };
}

/** Docker's rule: the first component is a registry when it has a dot or a port, or is localhost. */
function splitRegistry(name: string, text: string): { registry: string; path: string } {
  const slash = name.indexOf("/");
  const first = slash < 0 ? "" : name.slice(0, slash);
  if (
    slash >= 0 &&
    (first.includes(".") || first.includes(":") || first === "localhost" || first.startsWith("["))
  ) {
    const registry = first.toLowerCase();
    const path = name.slice(slash + 1);
    splitHostPort(registry, text);
    return {
      registry: registry === "index.docker.io" || registry === "registry-1.docker.io" ? DOCKER_HUB : registry,
      path,
    };
  }
  if (name === "") throw usage(`image reference ${text} has no repository`);
  return { registry: DOCKER_HUB, path: name };
}

function splitHostPort(registry: string, text: string): { host: string; port?: number } {
  const match = /^(.*?)(?::(\d+))?$/.exec(registry)!;
  const host = match[1]!;
  if (!HOST_PATTERN.test(host)) throw usage(`invalid registry host "${registry}" in ${text}`);
  if (match[2] === undefined) return { host };
  const port = Number(match[2]);
  if (port < 1 || port > 65535) throw usage(`invalid port ${match[2]} in ${text}`);
  return { host, port };
}

type EcrHostParts = Pick<EcrReference, "host" | "port" | "registryId" | "region" | "fips" | "dualStack">;

/** A private ECR registry named by its host alone, e.g. `123456789012.dkr.ecr.eu-west-1.amazonaws.com`. */
export type EcrRegistry = EcrHostParts & { registry: string };

/** Reads an ECR registry host (`host[:port]`, no repository); undefined when it is not one. */
export function parseEcrRegistry(text: string): EcrRegistry | undefined {
  const registry = text
    .trim()
    .replace(/^(?:https?|docker):\/\//, "")
    .replace(/\/+$/, "")
    .toLowerCase();
  if (registry.includes("/")) return undefined;
  const parts = parseEcrHost(registry);
  return parts === undefined ? undefined : { registry, ...parts };
}

function parseEcrHost(registry: string): EcrHostParts | undefined {
  const portMatch = /^(.*?)(?::(\d+))?$/.exec(registry)!;
  const host = portMatch[1]!;
  const portPart = portMatch[2] === undefined ? {} : { port: Number(portMatch[2]) };
  const standard = ECR_HOST_PATTERN.exec(host);
  if (standard) {
    return {
      host,
      ...portPart,
      registryId: standard[1]!,
      region: standard[3]!,
      fips: !!standard[2],
      dualStack: false,
    };
  }
  const dualStack = ECR_DUAL_STACK_HOST_PATTERN.exec(host);
  if (dualStack) {
    return {
      host,
      ...portPart,
      registryId: dualStack[1]!,
      region: dualStack[3]!,
      fips: !!dualStack[2],
      dualStack: true,
    };
  }
  return undefined;
}

function parseTags(tagText: string | undefined, maxLength: number, text: string): string[] {
  if (tagText === undefined) return [];
  const tags = tagText.split(",");
  for (const tag of tags) validateTag(tag, maxLength, text);
  return [...new Set(tags)];
}

/** Validates a tag: `[A-Za-z0-9_][A-Za-z0-9._-]*`, at most 128 characters (ECR: 300). */
export function validateTag(tag: string, maxLength = MAX_TAG, context = tag): void {
  if (tag === "") throw usage(`empty tag in ${context}`);
  if (!TAG_PATTERN.test(tag)) {
    throw usage(
      `invalid tag "${tag}" in ${context}`,
      "tags use letters, digits, _ . - and cannot start with . or -",
    );
  }
  if (tag.length > maxLength)
    throw usage(`tag "${tag.slice(0, 20)}..." in ${context} is over ${maxLength} characters`);
}

function validateRepository(repository: string, text: string, length: { min: number; max: number }): void {
  if (repository === "") throw usage(`image reference ${text} has no repository`);
  if (repository !== repository.toLowerCase() && REPOSITORY_PATTERN.test(repository.toLowerCase())) {
    throw usage(`repository "${repository}" in ${text} must be lowercase`);
  }
  if (!REPOSITORY_PATTERN.test(repository)) {
    throw usage(
      `invalid repository name "${repository}" in ${text}`,
      "use lowercase letters and digits separated by . _ __ - or /",
    );
  }
  if (repository.length < length.min || repository.length > length.max) {
    throw usage(
      `repository name "${repository}" in ${text} must be ${length.min} to ${length.max} characters`,
    );
  }
}

/** Splits `PATH[:rest]` at the first colon, unless the whole text is an existing path. */
function splitPath(text: string, exists: (path: string) => boolean): { path: string; rest?: string } {
  const colon = text.indexOf(":");
  if (colon < 0 || exists(text)) return { path: text };
  return { path: text.slice(0, colon), rest: text.slice(colon + 1) };
}

function parseDockerArchive(text: string, exists: (path: string) => boolean): DockerArchiveReference {
  const { path, rest } = splitPath(text, exists);
  if (path === "") throw usage("docker-archive: needs a path, e.g. docker-archive:image.tar");
  if (rest === undefined) return { kind: "docker-archive", path, repoTags: [] };
  const named = parseRemoteReference(rest);
  if (named.digest !== undefined) throw usage(`docker-archive names cannot hold a digest: ${rest}`);
  const name = formatName(named);
  return { kind: "docker-archive", path, repoTags: named.tags.map((tag) => `${name}:${tag}`) };
}

function parseOci(kind: OciReference["kind"], text: string, exists: (path: string) => boolean): OciReference {
  const { path, rest } = splitPath(text, exists);
  if (path === "")
    throw usage(`${kind}: needs a path, e.g. ${kind}:./image${kind === "oci" ? "" : ".tar"}[:tag]`);
  if (rest === undefined) return { kind, path, tags: [] };
  const tags = rest.split(",");
  for (const tag of tags) {
    if (!OCI_REF_NAME_PATTERN.test(tag)) throw usage(`invalid ${kind} tag "${tag}" in ${kind}:${text}`);
  }
  return { kind, path, tags: [...new Set(tags)] };
}

/** The repository's full name without tag or digest, e.g. `docker.io/library/alpine`. */
export function formatName(ref: RemoteReference): string {
  return ref.kind === "ecr-public"
    ? `${ref.registry}/${ref.alias}/${ref.repository}`
    : `${ref.registry}/${ref.repository}`;
}

/** The reference as text that parseReference reads back to the same value. */
export function formatReference(ref: ImageReference): string {
  switch (ref.kind) {
    case "ecr":
    case "ecr-public":
    case "registry": {
      const tags = ref.tags.length ? `:${ref.tags.join(",")}` : "";
      return `${formatName(ref)}${tags}${ref.digest ? `@${ref.digest}` : ""}`;
    }
    case "docker-archive":
      return `docker-archive:${ref.path}${formatRepoTags(ref.repoTags)}`;
    case "oci":
    case "oci-archive":
      return `${ref.kind}:${ref.path}${ref.tags.length ? `:${ref.tags.join(",")}` : ""}`;
    case "path":
      return ref.path;
  }
}

/** RepoTags of one name join as `name:a,b`; several names cannot be written in one reference. */
function formatRepoTags(repoTags: string[]): string {
  if (repoTags.length === 0) return "";
  const first = repoTags[0]!;
  const name = first.slice(0, first.lastIndexOf(":"));
  if (!repoTags.every((t) => t.slice(0, t.lastIndexOf(":")) === name)) {
    throw new EcrxError(
      "USAGE",
      `docker-archive tags of several repositories cannot be written as one reference`,
    );
  }
  return `:${name}:${repoTags.map((t) => t.slice(t.lastIndexOf(":") + 1)).join(",")}`;
}

function usage(message: string, hint?: string): EcrxError {
  return new EcrxError("USAGE", message, hint === undefined ? {} : { hint });
}
