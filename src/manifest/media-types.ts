/** Media types of the manifests and blobs that ecrx moves. */
export const MediaType = {
  OciManifest: "application/vnd.oci.image.manifest.v1+json",
  OciIndex: "application/vnd.oci.image.index.v1+json",
  OciConfig: "application/vnd.oci.image.config.v1+json",
  OciLayer: "application/vnd.oci.image.layer.v1.tar",
  OciLayerGzip: "application/vnd.oci.image.layer.v1.tar+gzip",
  OciLayerZstd: "application/vnd.oci.image.layer.v1.tar+zstd",
  OciLayerNondistributable: "application/vnd.oci.image.layer.nondistributable.v1.tar",
  OciLayerNondistributableGzip: "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
  OciEmptyJson: "application/vnd.oci.empty.v1+json",
  DockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  DockerManifestList: "application/vnd.docker.distribution.manifest.list.v2+json",
  DockerConfig: "application/vnd.docker.container.image.v1+json",
  DockerLayer: "application/vnd.docker.image.rootfs.diff.tar",
  DockerLayerGzip: "application/vnd.docker.image.rootfs.diff.tar.gzip",
  DockerLayerZstd: "application/vnd.docker.image.rootfs.diff.tar.zstd",
  DockerForeignLayerGzip: "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
} as const;
export type KnownMediaType = (typeof MediaType)[keyof typeof MediaType];

/** The manifest media types that ECR's PutImage accepts (ecr-spec.md section 3). */
export const IMAGE_MANIFEST_TYPES: readonly string[] = [MediaType.OciManifest, MediaType.DockerManifest];
export const INDEX_TYPES: readonly string[] = [MediaType.OciIndex, MediaType.DockerManifestList];
export const MANIFEST_TYPES: readonly string[] = [...IMAGE_MANIFEST_TYPES, ...INDEX_TYPES];

export function isIndexType(mediaType: string): boolean {
  return INDEX_TYPES.includes(mediaType);
}
export function isImageManifestType(mediaType: string): boolean {
  return IMAGE_MANIFEST_TYPES.includes(mediaType);
}
export function isManifestType(mediaType: string): boolean {
  return MANIFEST_TYPES.includes(mediaType);
}

export type Compression = "gzip" | "zstd" | "none";

export type MediaTypeFlavour = "docker" | "oci";

const LAYER_COMPRESSION: Record<string, Compression> = {
  [MediaType.OciLayer]: "none",
  [MediaType.OciLayerGzip]: "gzip",
  [MediaType.OciLayerZstd]: "zstd",
  [MediaType.OciLayerNondistributable]: "none",
  [MediaType.OciLayerNondistributableGzip]: "gzip",
  [MediaType.DockerLayer]: "none",
  [MediaType.DockerLayerGzip]: "gzip",
  [MediaType.DockerLayerZstd]: "zstd",
  [MediaType.DockerForeignLayerGzip]: "gzip",
};

export function isLayerType(mediaType: string): boolean {
  return mediaType in LAYER_COMPRESSION;
}

/** The compression a layer media type announces; undefined for media types that are not layers. */
export function layerCompression(mediaType: string): Compression | undefined {
  return LAYER_COMPRESSION[mediaType];
}

const LAYER_TYPES: Record<MediaTypeFlavour, Record<Compression, string>> = {
  docker: { none: MediaType.DockerLayer, gzip: MediaType.DockerLayerGzip, zstd: MediaType.DockerLayerZstd },
  oci: { none: MediaType.OciLayer, gzip: MediaType.OciLayerGzip, zstd: MediaType.OciLayerZstd },
};

/** The layer media type of a compression, in Docker or OCI flavour. */
export function layerMediaType(compression: Compression, flavour: MediaTypeFlavour): string {
  return LAYER_TYPES[flavour][compression];
}

/** Docker <-> OCI counterparts of manifest, index, config and layer types. */
const DOCKER_TO_OCI: Record<string, string> = {
  [MediaType.DockerManifest]: MediaType.OciManifest,
  [MediaType.DockerManifestList]: MediaType.OciIndex,
  [MediaType.DockerConfig]: MediaType.OciConfig,
  [MediaType.DockerLayer]: MediaType.OciLayer,
  [MediaType.DockerLayerGzip]: MediaType.OciLayerGzip,
  [MediaType.DockerLayerZstd]: MediaType.OciLayerZstd,
  [MediaType.DockerForeignLayerGzip]: MediaType.OciLayerNondistributableGzip,
};
const OCI_TO_DOCKER: Record<string, string> = Object.fromEntries(
  Object.entries(DOCKER_TO_OCI).map(([docker, oci]) => [oci, docker]),
);

/** The media type in the requested flavour; media types with no counterpart come back unchanged. */
export function convertMediaType(mediaType: string, flavour: MediaTypeFlavour): string {
  const table = flavour === "oci" ? DOCKER_TO_OCI : OCI_TO_DOCKER;
  return table[mediaType] ?? mediaType;
}

/** Whether a media type is Docker's or OCI's; undefined for others (artifacts). */
export function mediaTypeFlavour(mediaType: string): MediaTypeFlavour | undefined {
  if (mediaType.startsWith("application/vnd.docker.")) return "docker";
  if (mediaType.startsWith("application/vnd.oci.")) return "oci";
  return undefined;
}
