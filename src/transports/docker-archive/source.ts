import type { Readable } from "node:stream";
import { buffer } from "node:stream/consumers";
import { finished } from "node:stream/promises";
import { EcrxError } from "../../errors.js";
import { sniffCompression, SNIFF_BYTES } from "../../manifest/detect.js";
import { sha256Digest, verifiedStream } from "../../manifest/digest.js";
import { MediaType, layerMediaType } from "../../manifest/media-types.js";
import { MAX_CONFIG_BYTES, parseImageConfig, printable } from "../../manifest/parse.js";
import type { Descriptor, Digest, ImageManifest, RawManifest } from "../../manifest/types.js";
import { formatName, parseRemoteReference } from "../../reference/reference.js";
import { openTarTree, type FileTree } from "../../util/file-tree.js";
import { LayoutImageSource } from "../oci-layout/layout-source.js";
import type { ByteRange, ImageSource } from "../types.js";

/** One entry of `manifest.json` in a `docker save` archive. */
export interface DockerArchiveEntry {
  Config: string;
  RepoTags: string[] | null;
  Layers: string[];
}

/**
 * Opens a `docker save` archive (plain, gzip or zstd compressed). A Docker 25+ archive holds an
 * OCI layout beside `manifest.json`, which is read as such; a classic one is presented as a
 * Docker v2 schema 2 manifest synthesized from `manifest.json` (see ClassicDockerArchiveSource).
 * `repoTag` (`name:tag`) chooses among several images; one image needs none.
 */
export async function openDockerArchiveSource(path: string, repoTag?: string): Promise<ImageSource> {
  const tree = await openTarTree(path);
  const reference = `docker-archive:${path}${repoTag ? `:${repoTag}` : ""}`;
  try {
    if ((await tree.size("index.json")) !== undefined && (await tree.size("oci-layout")) !== undefined) {
      return await LayoutImageSource.open(reference, tree, repoTag ? nameVariants(repoTag) : []);
    }
    return await ClassicDockerArchiveSource.open(reference, tree, repoTag);
  } catch (err) {
    await tree.close();
    throw err;
  }
}

/** `alpine:3` as docker writes it in RepoTags, and `docker.io/library/alpine:3` as in index.json. */
function nameVariants(repoTag: string): string[] {
  return [repoTag, normalizeRepoTag(repoTag)];
}

function normalizeRepoTag(repoTag: string): string {
  try {
    const ref = parseRemoteReference(repoTag);
    return `${formatName(ref)}:${ref.tags[0] ?? "latest"}`;
  } catch {
    return repoTag;
  }
}

/**
 * The classic `docker save` format: `manifest.json`, a config `<id>.json` and `<id>/layer.tar`
 * per layer. The manifest is synthesized: the config is its file, verbatim; an uncompressed layer's
 * digest is its diff_id from the config (checked by whoever streams it), a compressed layer's
 * digest is computed once here; sizes come from the tar headers.
 */
export class ClassicDockerArchiveSource implements ImageSource {
  readonly reference: string;
  private readonly tree: FileTree;
  private readonly raw: RawManifest;
  /** Archive member of each blob, by digest. */
  private readonly members: Map<Digest, string>;

  private constructor(reference: string, tree: FileTree, raw: RawManifest, members: Map<Digest, string>) {
    this.reference = reference;
    this.tree = tree;
    this.raw = raw;
    this.members = members;
  }

  static async open(
    reference: string,
    tree: FileTree,
    repoTag?: string,
  ): Promise<ClassicDockerArchiveSource> {
    const entry = selectEntry(await readManifestJson(tree), tree.location, repoTag);
    const configBytes = await tree.read(entry.Config, MAX_CONFIG_BYTES);
    const configDigest = sha256Digest(configBytes);
    const namedHex = /(?:^|\/)([0-9a-f]{64})(?:\.json)?$/.exec(entry.Config)?.[1];
    if (namedHex !== undefined && `sha256:${namedHex}` !== configDigest) {
      throw new EcrxError("INTEGRITY", `${tree.location}: config ${entry.Config} hashes to ${configDigest}`);
    }
    const diffIds = parseImageConfig(configBytes, `${tree.location}: config`).rootfs?.diff_ids ?? [];
    if (diffIds.length !== entry.Layers.length) {
      throw new EcrxError(
        "INVALID_INPUT",
        `${tree.location}: manifest.json lists ${entry.Layers.length} layers but the config has ${diffIds.length} diff_ids`,
      );
    }
    const members = new Map<Digest, string>([[configDigest, entry.Config]]);
    const layers: Descriptor[] = [];
    for (const [i, layerPath] of entry.Layers.entries()) {
      const layer = await describeLayer(tree, layerPath, diffIds[i]!);
      members.set(layer.digest, layerPath);
      layers.push(layer);
    }
    const manifest: ImageManifest = {
      schemaVersion: 2,
      mediaType: MediaType.DockerManifest,
      config: { mediaType: MediaType.DockerConfig, digest: configDigest, size: configBytes.length },
      layers,
    };
    const bytes = Buffer.from(JSON.stringify(manifest));
    return new ClassicDockerArchiveSource(
      reference,
      tree,
      { bytes, mediaType: MediaType.DockerManifest, digest: sha256Digest(bytes) },
      members,
    );
  }

  async manifest(digest?: Digest): Promise<RawManifest> {
    if (digest !== undefined && digest !== this.raw.digest) {
      throw new EcrxError("NOT_FOUND", `${this.reference} has no manifest ${digest}`);
    }
    return this.raw;
  }

  async blob(d: Descriptor, range?: ByteRange): Promise<Readable> {
    const member = this.members.get(d.digest);
    if (member === undefined) throw new EcrxError("NOT_FOUND", `${this.reference} has no blob ${d.digest}`);
    return this.tree.open(member, range);
  }

  async close(): Promise<void> {
    await this.tree.close();
  }
}

async function describeLayer(tree: FileTree, path: string, diffId: Digest): Promise<Descriptor> {
  const size = await tree.size(path);
  if (size === undefined) {
    throw new EcrxError("INVALID_INPUT", `${tree.location}: layer "${path}" is missing`, {
      hint: "the archive is incomplete; save it again",
    });
  }
  const head =
    size === 0
      ? Buffer.alloc(0)
      : await buffer(await tree.open(path, { start: 0, end: Math.min(size, SNIFF_BYTES) - 1 }));
  const compression = sniffCompression(head);
  if (compression === "none") return { mediaType: MediaType.DockerLayer, digest: diffId, size };
  // The compressed digest is nowhere in the archive: hash the layer once (streaming) to learn it.
  const verifier = verifiedStream(await tree.open(path), { size });
  await finished(verifier.resume());
  return { mediaType: layerMediaType(compression, "docker"), digest: verifier.digest!, size };
}

async function readManifestJson(tree: FileTree): Promise<DockerArchiveEntry[]> {
  if ((await tree.size("manifest.json")) === undefined) {
    throw new EcrxError(
      "INVALID_INPUT",
      `${tree.location} is not a docker archive: it has no manifest.json`,
      {
        hint: "create it with docker save, or name the format (oci-archive:PATH)",
      },
    );
  }
  let doc: unknown;
  try {
    doc = JSON.parse((await tree.read("manifest.json", 16 * 1024 * 1024)).toString("utf8"));
  } catch (err) {
    throw new EcrxError(
      "INVALID_INPUT",
      `${tree.location}: manifest.json is not valid JSON (${printable((err as Error).message)})`,
    );
  }
  const valid =
    Array.isArray(doc) &&
    doc.every(
      (e: Partial<DockerArchiveEntry> | null) =>
        typeof e === "object" &&
        e !== null &&
        typeof e.Config === "string" &&
        Array.isArray(e.Layers) &&
        e.Layers.every((l) => typeof l === "string") &&
        (e.RepoTags == null || (Array.isArray(e.RepoTags) && e.RepoTags.every((t) => typeof t === "string"))),
    );
  if (!valid)
    throw new EcrxError(
      "INVALID_INPUT",
      `${tree.location}: manifest.json is not a list of {Config, RepoTags, Layers}`,
    );
  return doc as DockerArchiveEntry[];
}

function selectEntry(entries: DockerArchiveEntry[], location: string, repoTag?: string): DockerArchiveEntry {
  if (repoTag !== undefined) {
    const wanted = normalizeRepoTag(repoTag);
    const match = entries.find((e) => (e.RepoTags ?? []).some((t) => normalizeRepoTag(t) === wanted));
    if (match) return match;
  } else if (entries.length === 1) {
    return entries[0]!;
  }
  const listed = entries.map((e, i) => (e.RepoTags?.length ? e.RepoTags.join(" ") : `(untagged #${i + 1})`));
  const problem = repoTag ? `no image tagged ${repoTag}` : "several images and no name:tag given";
  throw new EcrxError(
    "INVALID_INPUT",
    `${location}: ${problem}; it holds ${listed.join(", ") || "no images"}`,
    {
      hint: repoTag ? undefined : "add it to the reference, e.g. docker-archive:PATH:name:tag",
    },
  );
}
