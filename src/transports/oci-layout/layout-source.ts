import type { Readable } from "node:stream";
import { EcrxError } from "../../errors.js";
import { parseDigest, verifyBytes } from "../../manifest/digest.js";
import { MediaType } from "../../manifest/media-types.js";
import {
  MAX_CONFIG_BYTES,
  MAX_MANIFEST_BYTES,
  parseManifest,
  type ParsedManifest,
} from "../../manifest/parse.js";
import type { Descriptor, Digest, ImageIndex, RawManifest } from "../../manifest/types.js";
import type { FileTree } from "../../util/file-tree.js";
import type { ByteRange, ImageSource } from "../types.js";

export const REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name";
/** Docker 25+ `docker save` names each image in index.json with its full reference here. */
export const IMAGE_NAME_ANNOTATION = "io.containerd.image.name";

export function blobPath(digest: Digest): string {
  const { algorithm, hex } = parseDigest(digest);
  return `blobs/${algorithm}/${hex}`;
}

/** Reads `oci-layout` and `index.json` of a layout (a folder or the inside of an archive). */
export async function readLayoutIndex(tree: FileTree): Promise<ImageIndex> {
  const marker = await tree.read("oci-layout", 4096);
  let version: unknown;
  try {
    version = (JSON.parse(marker.toString("utf8")) as { imageLayoutVersion?: unknown }).imageLayoutVersion;
  } catch {
    version = undefined;
  }
  if (typeof version !== "string" || !version.startsWith("1.")) {
    throw new EcrxError(
      "UNSUPPORTED",
      `${tree.location}: unsupported oci-layout version ${JSON.stringify(version)}`,
    );
  }
  const parsed = parseManifest(await tree.read("index.json", MAX_MANIFEST_BYTES), {
    mediaType: MediaType.OciIndex,
    what: `${tree.location}/index.json`,
  });
  if (parsed.kind !== "index")
    throw new EcrxError("INVALID_INPUT", `${tree.location}/index.json is not an image index`);
  return parsed.index;
}

/** How index.json entries are named, for choosing one and for listing them in errors. */
function entryNames(d: Descriptor): string[] {
  return [d.annotations?.[REF_NAME_ANNOTATION], d.annotations?.[IMAGE_NAME_ANNOTATION]].filter(
    (name): name is string => name !== undefined,
  );
}

/**
 * The index.json entry named `name` (a ref.name tag or, for docker archives, a full image name),
 * or the only entry when no name is given. Errors list what the layout holds.
 */
export function selectLayoutEntry(index: ImageIndex, location: string, names: string[]): Descriptor {
  const entries = index.manifests;
  if (names.length > 0) {
    const match = entries.find((d) => entryNames(d).some((n) => names.includes(n)));
    if (match) return match;
  } else if (entries.length === 1) {
    return entries[0]!;
  }
  const listed = entries.map((d) => entryNames(d)[0] ?? `(untagged) ${d.digest}`);
  const holds = listed.length ? `it holds ${listed.join(", ")}` : "it holds no images";
  const problem = names.length ? `no image named ${names.join(" or ")}` : `several images and no tag given`;
  throw new EcrxError("INVALID_INPUT", `${location}: ${problem}; ${holds}`, {
    hint: names.length ? undefined : "add the tag to the reference, e.g. oci:PATH:TAG",
  });
}

/**
 * An ImageSource over an OCI image layout held in a FileTree: an `oci:` folder, an `oci-archive:`
 * tar, or the layout inside a Docker 25+ `docker save` tar. Manifests are verified against their
 * digest and size when read; reading an image manifest also checks that its config and layers
 * exist with the sizes it states, so a broken image fails before anything is written.
 */
export class LayoutImageSource implements ImageSource {
  readonly reference: string;
  private readonly tree: FileTree;
  private readonly root: Descriptor;
  private readonly manifests = new Map<Digest, Promise<RawManifest>>();

  constructor(reference: string, tree: FileTree, root: Descriptor) {
    this.reference = reference;
    this.tree = tree;
    this.root = root;
  }

  /** Opens the layout in `tree`, choosing the entry by `names` (see selectLayoutEntry). */
  static async open(reference: string, tree: FileTree, names: string[]): Promise<LayoutImageSource> {
    try {
      const index = await readLayoutIndex(tree);
      const source = new LayoutImageSource(reference, tree, selectLayoutEntry(index, tree.location, names));
      await source.manifest();
      return source;
    } catch (err) {
      await tree.close();
      throw err;
    }
  }

  manifest(digest?: Digest): Promise<RawManifest> {
    const wanted = digest ?? this.root.digest;
    let pending = this.manifests.get(wanted);
    if (!pending) {
      pending = this.readManifest(digest === undefined ? this.root : { digest: wanted });
      this.manifests.set(wanted, pending);
    }
    return pending;
  }

  async blob(d: Descriptor, range?: ByteRange): Promise<Readable> {
    await this.checkBlob(d, "blob");
    return this.tree.open(blobPath(d.digest), range);
  }

  async close(): Promise<void> {
    await this.tree.close();
  }

  private async readManifest(d: { digest: Digest; size?: number; mediaType?: string }): Promise<RawManifest> {
    const path = blobPath(d.digest);
    const what = `${this.tree.location}: manifest ${d.digest}`;
    const bytes = await this.tree.read(path, MAX_MANIFEST_BYTES);
    verifyBytes(bytes, d, what);
    const parsed = parseManifest(bytes, { ...(d.mediaType ? { mediaType: d.mediaType } : {}), what });
    if (parsed.kind === "manifest") await this.checkImageBlobs(parsed);
    return parsed.raw;
  }

  private async checkImageBlobs(parsed: ParsedManifest & { kind: "manifest" }): Promise<void> {
    const { config, layers } = parsed.manifest;
    await this.checkBlob(config, "config");
    const configBytes = await this.tree.read(blobPath(config.digest), MAX_CONFIG_BYTES);
    verifyBytes(configBytes, config, `${this.tree.location}: config ${config.digest}`);
    // Foreign layers (with urls) live elsewhere and are not part of the layout.
    for (const layer of layers) if (!layer.urls?.length) await this.checkBlob(layer, "layer");
  }

  private async checkBlob(d: Descriptor, kind: string): Promise<void> {
    const size = await this.tree.size(blobPath(d.digest));
    if (size === undefined) {
      throw new EcrxError("INVALID_INPUT", `${this.tree.location}: ${kind} ${d.digest} is missing`, {
        hint: "the image is incomplete; export it again",
      });
    }
    if (size !== d.size) {
      throw new EcrxError(
        "INVALID_INPUT",
        `${this.tree.location}: ${kind} ${d.digest} is ${size} bytes, the manifest says ${d.size}`,
      );
    }
  }
}
