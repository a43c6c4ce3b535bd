import { EcrxError } from "./errors.js";
import { MAX_CONFIG_BYTES, parseImageConfig, parseRawManifest } from "./manifest/parse.js";
import { formatPlatform, listPlatforms, parsePlatform, selectManifest } from "./manifest/platform.js";
import type { Descriptor, ImageConfig, ImageIndex, Platform, RawManifest } from "./manifest/types.js";
import { formatReference, parseReference } from "./reference/reference.js";
import { readBlob } from "./transfer/graph.js";
import { openSource, type SourceOptions } from "./transports/resolve.js";
import type { ImageSource } from "./transports/types.js";

export interface InspectOptions extends Omit<SourceOptions, "download"> {
  /** Inspect this platform of a multi-platform image instead of its index. */
  platform?: string | Platform;
}

/** A manifest's identity: what a registry stores it as. */
export interface ManifestSummary {
  mediaType: string;
  digest: string;
  size: number;
}

export interface IndexEntry extends ManifestSummary {
  /** `os/arch[/variant]`; undefined for entries without a platform. */
  platform: string | undefined;
  /** Whether the entry is an image for its platform rather than an attachment (attestation). */
  runnable: boolean;
  artifactType?: string;
}

/** What an image config says about how the image runs; fields are absent when the config has none. */
export interface ConfigSummary extends ManifestSummary {
  platform: string | undefined;
  created?: string;
  entrypoint?: string[];
  cmd?: string[];
  env?: string[];
  workingDir?: string;
  user?: string;
  labels?: Record<string, string>;
}

export interface InspectResult {
  /** The reference as parsed, e.g. `oci:./layout:1.0`. */
  reference: string;
  kind: "image" | "index";
  /** The manifest shown: the root, or the child of `--platform`. */
  manifest: ManifestSummary;
  /** The manifest's bytes, verbatim. */
  manifestBytes: Buffer;
  /** When a platform was picked out of an index: that index. */
  parentIndex?: ManifestSummary;
  /** Index: its entries. */
  manifests?: IndexEntry[];
  /** Image: its config, parsed (undefined for artifacts whose config is not an image config). */
  config?: ConfigSummary;
  /** Image: the config's bytes, verbatim. */
  configBytes?: Buffer;
  /** Image: its layers in order. */
  layers?: ManifestSummary[];
  /** Image: config plus layers, as stored (compressed). */
  size?: number;
  annotations?: Record<string, string>;
  artifactType?: string;
}

const IMAGE_CONFIG_TYPES = new Set([
  "application/vnd.docker.container.image.v1+json",
  "application/vnd.oci.image.config.v1+json",
]);

/**
 * Reads an image's manifest and config from any transport (ECR, ECR Public, any registry,
 * docker-archive, OCI layout, OCI archive) without downloading a layer: manifest, config and layer
 * descriptors, or an index's entries. Every byte read is verified against its digest.
 */
export async function inspect(reference: string, options: InspectOptions = {}): Promise<InspectResult> {
  const ref = parseReference(reference);
  const platform = typeof options.platform === "string" ? parsePlatform(options.platform) : options.platform;
  const source = await openSource(ref, options);
  try {
    const rootRaw = await source.manifest();
    const root = parseRawManifest(rootRaw, `manifest of ${source.reference}`);
    const name = formatReference(ref);
    if (root.kind === "index") {
      if (platform === undefined) return describeIndex(name, root.raw, root.index);
      const chosen = selectManifest(root.index, platform);
      const child = await source.manifest(chosen.digest);
      if (child.bytes.length !== chosen.size) {
        throw new EcrxError(
          "INTEGRITY",
          `manifest ${chosen.digest} has ${child.bytes.length} bytes, its index says ${chosen.size}`,
        );
      }
      const result = await describeImage(source, name, { ...child, digest: chosen.digest });
      return { ...result, parentIndex: summary(root.raw) };
    }
    return await describeImage(source, name, root.raw);
  } finally {
    await source.close();
  }
}

function summary(raw: RawManifest): ManifestSummary {
  return { mediaType: raw.mediaType, digest: raw.digest, size: raw.bytes.length };
}

function describeIndex(reference: string, raw: RawManifest, index: ImageIndex): InspectResult {
  const runnable = new Set(listPlatforms(index));
  return {
    reference,
    kind: "index",
    manifest: summary(raw),
    manifestBytes: raw.bytes,
    manifests: index.manifests.map((d) => {
      const platform = d.platform === undefined ? undefined : formatPlatform(d.platform);
      return {
        mediaType: d.mediaType,
        digest: d.digest,
        size: d.size,
        platform,
        runnable: platform !== undefined && runnable.has(platform) && !isAttestation(d),
        ...(d.artifactType === undefined ? {} : { artifactType: d.artifactType }),
      };
    }),
    ...(index.annotations === undefined ? {} : { annotations: index.annotations }),
    ...(index.artifactType === undefined ? {} : { artifactType: index.artifactType }),
  };
}

function isAttestation(d: Descriptor): boolean {
  return d.annotations?.["vnd.docker.reference.type"] === "attestation-manifest";
}

async function describeImage(
  source: ImageSource,
  reference: string,
  raw: RawManifest,
): Promise<InspectResult> {
  const parsed = parseRawManifest(raw, `manifest ${raw.digest} of ${source.reference}`);
  if (parsed.kind === "index") {
    throw new EcrxError("UNSUPPORTED", `manifest ${raw.digest} is an index inside an index`);
  }
  const { manifest } = parsed;
  const layers = manifest.layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size }));
  const result: InspectResult = {
    reference,
    kind: "image",
    manifest: summary(raw),
    manifestBytes: raw.bytes,
    layers,
    size: manifest.config.size + layers.reduce((sum, l) => sum + l.size, 0),
    ...(manifest.annotations === undefined ? {} : { annotations: manifest.annotations }),
    ...(manifest.artifactType === undefined ? {} : { artifactType: manifest.artifactType }),
  };
  const configDescriptor = manifest.config;
  if (!IMAGE_CONFIG_TYPES.has(configDescriptor.mediaType) || configDescriptor.size > MAX_CONFIG_BYTES) {
    return result;
  }
  const what = `config ${configDescriptor.digest} of ${source.reference}`;
  const configBytes = await readBlob(source, configDescriptor, what);
  return {
    ...result,
    config: configSummary(configDescriptor, parseImageConfig(configBytes, what)),
    configBytes,
  };
}

function configSummary(d: Descriptor, config: ImageConfig): ConfigSummary {
  const run = config.config ?? {};
  const platform =
    config.os !== undefined && config.architecture !== undefined
      ? formatPlatform({
          os: config.os,
          architecture: config.architecture,
          ...(config.variant ? { variant: config.variant } : {}),
        })
      : undefined;
  return {
    mediaType: d.mediaType,
    digest: d.digest,
    size: d.size,
    platform,
    ...(config.created === undefined ? {} : { created: config.created }),
    ...(run.Entrypoint ? { entrypoint: run.Entrypoint } : {}),
    ...(run.Cmd ? { cmd: run.Cmd } : {}),
    ...(run.Env ? { env: run.Env } : {}),
    ...(run.WorkingDir ? { workingDir: run.WorkingDir } : {}),
    ...(run.User ? { user: run.User } : {}),
    ...(run.Labels && Object.keys(run.Labels).length > 0 ? { labels: run.Labels } : {}),
  };
}
