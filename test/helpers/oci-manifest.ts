/** A blob as a manifest names it. */
export interface BlobRef {
  digest: string;
  size: number;
}

/**
 * The JSON text of an OCI image manifest of `config` and gzip `layers`, as the emulator tests push
 * it; `extra` fields (subject, annotations, ...) come last.
 */
export function ociImageManifest(
  config: BlobRef,
  layers: readonly BlobRef[],
  extra: Record<string, unknown> = {},
): string {
  return JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: {
      mediaType: "application/vnd.oci.image.config.v1+json",
      digest: config.digest,
      size: config.size,
    },
    layers: layers.map((l) => ({
      mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
      digest: l.digest,
      size: l.size,
    })),
    ...extra,
  });
}
