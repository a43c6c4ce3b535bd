/**
 * ecrx as a library: the same operations as the command line, with typed options and events.
 *
 *   import { push, pull, serve } from "ecrx";
 *   const server = await serve({ port: 0 });
 *   await push("docker-archive:app.tar", `${server.registryHost}/app:1.0`, { createRepository: true });
 */
export { push, type PushOptions, type PushResult } from "./push.js";
export { pull, type PullOptions, type PullResult } from "./pull.js";
export { demo, type DemoOptions, type DemoResult } from "./demo/demo.js";
export {
  inspect,
  type InspectOptions,
  type InspectResult,
  type ManifestSummary,
  type IndexEntry,
  type ConfigSummary,
} from "./inspect.js";
export {
  listRepositories,
  listImages,
  type ListOptions,
  type RepositoryList,
  type RepositorySummary,
  type ImageList,
  type ImageSummary,
} from "./list.js";
export { tag, type TagOptions, type TagResult } from "./retag.js";
export { remove, type RemoveOptions, type RemoveResult, type RemoveOutcome } from "./remove.js";
export {
  loginPassword,
  writeDockerLogin,
  type LoginOptions,
  type RegistryLogin,
  type DockerConfigWriteOptions,
} from "./login.js";
export { serve, type ServeOptions, type RunningServer } from "./emulator/server.js";
export {
  networkProfile,
  NETWORK_PROFILES,
  type NetworkShape,
  type NetworkProfile,
  type ResolvedNetworkShape,
} from "./emulator/network.js";
export { EcrxError, EXIT_CODES, type ErrorCode } from "./errors.js";
export {
  transferImage,
  type TransferOptions,
  type TransferResult,
  type CompressionMode,
} from "./transfer/engine.js";
export type { TransferEvent, TransferListener } from "./transfer/events.js";
export { FileBlobInfoCache, MemoryBlobInfoCache, type BlobInfoCache } from "./transfer/blob-info-cache.js";
export type { ImageSource, ImageDestination, BlobToPut, ByteRange, ProgressFn } from "./transports/types.js";
export { openFileSource, openFileDestination } from "./transports/open.js";
export type { AwsOptions } from "./transports/aws/client-config.js";
export { parseReference, formatReference, type ImageReference } from "./reference/reference.js";
export type {
  Descriptor,
  RawManifest,
  Platform,
  ImageManifest,
  ImageIndex,
  ImageConfig,
} from "./manifest/types.js";
