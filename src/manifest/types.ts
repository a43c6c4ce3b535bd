/** The OCI / Docker v2 schema 2 structures, as far as ecrx reads them. */

/** `sha256:<64 hex>`; other algorithms are parsed but only sha256 is computed. */
export type Digest = string;

export interface Platform {
  architecture: string;
  os: string;
  variant?: string;
  "os.version"?: string;
  "os.features"?: string[];
}

export interface Descriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  urls?: string[];
  annotations?: Record<string, string>;
  platform?: Platform;
  artifactType?: string;
}

export interface ImageManifest {
  schemaVersion: 2;
  mediaType?: string;
  artifactType?: string;
  config: Descriptor;
  layers: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

export interface ImageIndex {
  schemaVersion: 2;
  mediaType?: string;
  artifactType?: string;
  manifests: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

export interface ImageConfig {
  architecture?: string;
  os?: string;
  variant?: string;
  created?: string;
  config?: {
    Env?: string[];
    Entrypoint?: string[] | null;
    Cmd?: string[] | null;
    Labels?: Record<string, string> | null;
    WorkingDir?: string;
    User?: string;
  };
  rootfs?: { type: string; diff_ids: Digest[] };
  history?: unknown[];
}

/**
 * A manifest exactly as stored: the bytes are carried verbatim so that its digest (the sha256 of
 * these bytes) survives every copy.
 */
export interface RawManifest {
  bytes: Buffer;
  mediaType: string;
  digest: Digest;
}
