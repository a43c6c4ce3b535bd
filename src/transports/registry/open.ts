import {
  formatName,
  formatReference,
  type EcrPublicReference,
  type EcrReference,
  type RegistryReference,
} from "../../reference/reference.js";
import type { AwsOptions } from "../aws/client-config.js";
import { privateEcrClient } from "../remote.js";
import type { CredentialSource } from "./auth.js";
import { RegistryClient } from "./client.js";
import { ecrTokenSource, fromDockerConfig, fromOptions, type RegistryCredentials } from "./credentials.js";
import { RegistryDestination, type RegistryDestinationOptions } from "./destination.js";
import { RegistrySource, type RegistrySourceOptions } from "./source.js";

/** Any registry reached over the OCI distribution API: ECR's and ECR Public's registry endpoints too. */
export type RegistryTarget = RegistryReference | EcrReference | EcrPublicReference;

export interface RegistryOptions {
  /**
   * Allow plain http and unverified TLS to any host. Default false: TLS with certificate checks,
   * plain http only to loopback hosts (127.0.0.0/8, ::1, localhost, *.localhost).
   */
  insecure?: boolean | undefined;
  /**
   * Default: for ECR hosts, ECR's GetAuthorizationToken (refreshed before it expires); for others,
   * docker's config (`auths`, `credHelpers`, `credsStore`); else anonymous tokens.
   */
  credentials?: RegistryCredentials | undefined;
  /** docker's config.json; default `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`. */
  dockerConfigPath?: string | undefined;
  /** How to reach the ECR API (GetAuthorizationToken) for ECR hosts. Default: the SDK's chain. */
  aws?: AwsOptions | undefined;
  signal?: AbortSignal | undefined;
}

export interface RegistrySourceOpenOptions extends RegistryOptions {
  /** Tuning of ranged downloads from redirect targets. */
  download?: RegistrySourceOptions["download"];
}

export interface RegistryDestinationOpenOptions extends RegistryOptions, RegistryDestinationOptions {}

/**
 * Opens a repository as an image source (the root is `ref.digest`, else its first tag) and checks
 * that the registry answers (`GET /v2/`) before returning.
 */
export async function openRegistrySource(
  ref: RegistryTarget,
  options: RegistrySourceOpenOptions = {},
): Promise<RegistrySource> {
  const client = await connect(ref, "pull", options, []);
  return new RegistrySource(client, formatReference(ref), {
    digest: ref.digest,
    tag: ref.tags[0],
    ...(options.download === undefined ? {} : { download: options.download }),
    signal: options.signal,
  });
}

/**
 * Opens a repository as an image destination (tags come with each putManifest) and checks that
 * the registry answers before returning. `mountFrom` (a repository of the same registry) asks for
 * pull access to it too.
 */
export async function createRegistryDestination(
  ref: RegistryTarget,
  options: RegistryDestinationOpenOptions = {},
): Promise<RegistryDestination> {
  const from = options.mountFrom;
  const client = await connect(
    ref,
    "pull,push",
    options,
    from === undefined ? [] : [`repository:${from}:pull`],
  );
  return new RegistryDestination(client, formatName(ref), {
    mountFrom: from,
    ...(options.checkConcurrency === undefined ? {} : { checkConcurrency: options.checkConcurrency }),
    ...(options.monolithicMax === undefined ? {} : { monolithicMax: options.monolithicMax }),
  });
}

async function connect(
  ref: RegistryTarget,
  actions: "pull" | "pull,push",
  options: RegistryOptions,
  extraScopes: string[],
): Promise<RegistryClient> {
  const client = new RegistryClient({
    registry: apiHost(ref),
    repository: ref.kind === "ecr-public" ? `${ref.alias}/${ref.repository}` : ref.repository,
    actions,
    extraScopes,
    credentials: credentialsFor(ref, options),
    ...(options.insecure === undefined ? {} : { insecure: options.insecure }),
    signal: options.signal,
  });
  try {
    await client.ready();
    return client;
  } catch (err) {
    await client.close();
    throw err;
  }
}

/** Where the v2 API lives: Docker Hub's is not at docker.io. */
function apiHost(ref: RegistryTarget): string {
  if (ref.kind === "registry" && ref.registry === "docker.io") return "registry-1.docker.io";
  return ref.registry;
}

function credentialsFor(ref: RegistryTarget, options: RegistryOptions): CredentialSource {
  if (options.credentials !== undefined) return fromOptions(options.credentials);
  if (ref.kind === "ecr") return ecrTokenSource(privateEcrClient(ref, options.aws ?? {}));
  return fromDockerConfig(ref.registry, { path: options.dockerConfigPath });
}
