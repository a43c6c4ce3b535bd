import { formatReference, type ImageReference } from "../reference/reference.js";
import type { AwsOptions } from "./aws/client-config.js";
import { EcrDestination } from "./ecr/destination.js";
import { EcrSource, type EcrSourceOptions } from "./ecr/source.js";
import { openFileDestination, openFileSource } from "./open.js";
import { createRegistryDestination, openRegistrySource } from "./registry/open.js";
import type { RegistryCredentials } from "./registry/credentials.js";
import { openEcrApi, privateEcrClient } from "./remote.js";
import type { ImageDestination, ImageSource } from "./types.js";

/**
 * The transport chain: an image reference and the settings of its side give an image source or
 * destination. One place decides which transport serves which kind of reference:
 * - files (docker-archive, oci, oci-archive, a bare path): the file transports;
 * - ECR: the ECR API by default (layer upload, BatchGetImage, download URLs), its registry (v2)
 *   endpoint with `via: "registry"`;
 * - ECR Public: its API to push, its registry endpoint (public.ecr.aws) to pull, as ECR Public
 *   has no pull API;
 * - any other registry: the OCI distribution API.
 */
export interface SideOptions {
  /** Region, endpoint, profile and credentials for ECR and ECR Public. Default: the SDK's chains. */
  aws?: AwsOptions | undefined;
  /** For ECR references: the ECR API (default) or the registry endpoint. */
  via?: "api" | "registry" | undefined;
  /** For registries: credentials; default docker's config, else anonymous. */
  credentials?: RegistryCredentials | undefined;
  /** For registries: allow plain http or unverified TLS beyond loopback. */
  insecure?: boolean | undefined;
  dockerConfigPath?: string | undefined;
  signal?: AbortSignal | undefined;
}

export interface SourceOptions extends SideOptions {
  download?: EcrSourceOptions["download"];
}

export interface DestinationOptions extends SideOptions {
  /** ECR: create the repository when missing. Default false. */
  createRepository?: boolean | undefined;
  immutable?: boolean | undefined;
  /** ECR: UploadLayerPart size. */
  partSize?: number | undefined;
  /** ECR: UploadLayerPart requests prepared ahead of the one in flight. */
  readAhead?: number | undefined;
  /** Registries: a repository of the same registry to mount blobs from. */
  mountFrom?: string | undefined;
}

function registryOptions(options: SideOptions) {
  return {
    aws: options.aws,
    credentials: options.credentials,
    insecure: options.insecure,
    dockerConfigPath: options.dockerConfigPath,
    signal: options.signal,
  };
}

export async function openSource(ref: ImageReference, options: SourceOptions = {}): Promise<ImageSource> {
  switch (ref.kind) {
    case "ecr":
      if (options.via === "registry") {
        return openRegistrySource(ref, { ...registryOptions(options), download: options.download });
      }
      return new EcrSource(
        privateEcrClient(ref, options.aws ?? {}),
        { registryId: ref.registryId, region: ref.region, repositoryName: ref.repository },
        formatReference(ref),
        { tag: ref.tags[0], digest: ref.digest, download: options.download, signal: options.signal },
      );
    case "ecr-public":
    case "registry":
      return openRegistrySource(ref, { ...registryOptions(options), download: options.download });
    default:
      return openFileSource(ref);
  }
}

export async function openDestination(
  ref: ImageReference,
  options: DestinationOptions = {},
): Promise<ImageDestination> {
  switch (ref.kind) {
    case "ecr":
    case "ecr-public": {
      const api = await openEcrApi(ref, options.aws ?? {});
      const destination = new EcrDestination(api, formatReference(ref), {
        partSize: options.partSize,
        readAhead: options.readAhead,
        createRepository: options.createRepository,
        immutable: options.immutable,
        signal: options.signal,
      });
      if (ref.kind === "ecr-public" || options.via !== "registry") return destination;
      // Through ECR's registry endpoint: the repository is still checked (and created) with the
      // ECR API, which the v2 API cannot do.
      try {
        await destination.missing([]);
      } finally {
        await destination.close();
      }
      return createRegistryDestination(ref, { ...registryOptions(options), mountFrom: options.mountFrom });
    }
    case "registry":
      // Registries create a repository on its first push: createRepository has nothing to do.
      return createRegistryDestination(ref, { ...registryOptions(options), mountFrom: options.mountFrom });
    default:
      return openFileDestination(ref);
  }
}
