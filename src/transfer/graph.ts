import { EcrxError } from "../errors.js";
import { verifiedStream } from "../manifest/digest.js";
import { MediaType } from "../manifest/media-types.js";
import { MAX_CONFIG_BYTES, parseImageConfig, parseRawManifest } from "../manifest/parse.js";
import { formatPlatform, selectManifest } from "../manifest/platform.js";
import type { Descriptor, ImageIndex, ImageManifest, Platform, RawManifest } from "../manifest/types.js";
import type { ImageSource } from "../transports/types.js";

/** One image manifest of the graph, with what the engine needs to know of its config. */
export interface ImageNode {
  raw: RawManifest;
  manifest: ImageManifest;
  /** The config's rootfs.diff_ids, one per layer, when the config is an image config. */
  diffIds: string[] | undefined;
  /** The config's bytes, verified, when they were read to validate the image (sent from here). */
  configBytes: Buffer | undefined;
  /** The index entry that names this image, when there is an index. */
  descriptor: Descriptor | undefined;
}

export interface ImageGraph {
  /** The root as read from the source (an index, or the image itself). */
  sourceRoot: RawManifest;
  /** The index to write, or undefined when the result is a single image. */
  index: { raw: RawManifest; index: ImageIndex } | undefined;
  images: ImageNode[];
  /** The platform that was picked out of an index, if one was. */
  selectedPlatform: string | undefined;
}

const IMAGE_CONFIG_TYPES = new Set<string>([MediaType.DockerConfig, MediaType.OciConfig]);

/**
 * Reads and validates the manifests and configs of an image: an index and its children, or one
 * image; with `platform`, only that platform of an index. Every digest and size is checked before
 * anything is written anywhere.
 */
export async function loadImageGraph(
  source: ImageSource,
  options: { platform?: Platform | undefined } = {},
): Promise<ImageGraph> {
  const sourceRoot = await source.manifest();
  const root = parseRawManifest(sourceRoot, `manifest of ${source.reference}`);
  if (root.kind === "manifest") {
    return {
      sourceRoot,
      index: undefined,
      images: [await imageNode(source, root.raw, root.manifest, undefined)],
      selectedPlatform: undefined,
    };
  }
  if (options.platform) {
    const chosen = selectManifest(root.index, options.platform);
    return {
      sourceRoot,
      index: undefined,
      images: [await loadChild(source, chosen)],
      selectedPlatform: formatPlatform(options.platform),
    };
  }
  const images: ImageNode[] = [];
  for (const child of root.index.manifests) images.push(await loadChild(source, child));
  return { sourceRoot, index: { raw: root.raw, index: root.index }, images, selectedPlatform: undefined };
}

async function loadChild(source: ImageSource, descriptor: Descriptor): Promise<ImageNode> {
  const what = `manifest ${descriptor.digest} of ${source.reference}`;
  const raw = await source.manifest(descriptor.digest);
  const parsed = parseRawManifest({ ...raw, digest: descriptor.digest }, what);
  if (raw.bytes.length !== descriptor.size) {
    throw new EcrxError(
      "INTEGRITY",
      `${what} has ${raw.bytes.length} bytes, its index says ${descriptor.size}`,
    );
  }
  if (parsed.kind === "index") {
    throw new EcrxError("UNSUPPORTED", `${what} is an index inside an index, which ecrx does not copy`);
  }
  return imageNode(source, parsed.raw, parsed.manifest, descriptor);
}

async function imageNode(
  source: ImageSource,
  raw: RawManifest,
  manifest: ImageManifest,
  descriptor: Descriptor | undefined,
): Promise<ImageNode> {
  if (!IMAGE_CONFIG_TYPES.has(manifest.config.mediaType)) {
    // An artifact (attestation, signature, SBOM): its blobs are copied as they are.
    return { raw, manifest, diffIds: undefined, configBytes: undefined, descriptor };
  }
  const what = `config ${manifest.config.digest} of ${source.reference}`;
  if (manifest.config.size > MAX_CONFIG_BYTES) {
    throw new EcrxError(
      "INVALID_INPUT",
      `${what} is ${manifest.config.size} bytes, over ${MAX_CONFIG_BYTES}`,
    );
  }
  const configBytes = await readBlob(source, manifest.config, what);
  const config = parseImageConfig(configBytes, what);
  const diffIds = config.rootfs?.diff_ids;
  if (diffIds !== undefined && diffIds.length !== manifest.layers.length) {
    throw new EcrxError(
      "INVALID_INPUT",
      `${source.reference}: the config lists ${diffIds.length} diff_ids for ${manifest.layers.length} layers`,
    );
  }
  return { raw, manifest, diffIds, configBytes, descriptor };
}

/** Reads a small blob whole, verified. Only for configs: layers always stream. */
export async function readBlob(source: ImageSource, d: Descriptor, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of verifiedStream(await source.blob(d), d, { what })) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
