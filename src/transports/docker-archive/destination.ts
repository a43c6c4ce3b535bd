import { mkdir, readFile, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { EcrxError } from "../../errors.js";
import { digestHex, verifyBytes } from "../../manifest/digest.js";
import { isIndexType } from "../../manifest/media-types.js";
import { parseImageConfig, parseManifest } from "../../manifest/parse.js";
import type { Descriptor, ImageManifest, RawManifest } from "../../manifest/types.js";
import { BlobStaging } from "../../util/blob-staging.js";
import { partialSibling } from "../../util/fs.js";
import { WorkLock } from "../../util/work-lock.js";
import { writeTar, type TarEntry } from "../../util/tar-write.js";
import type { BlobToPut, ImageDestination, PositionalSink, ProgressFn } from "../types.js";
import type { DockerArchiveEntry } from "./source.js";

/**
 * Writes the classic `docker save` layout that `docker load`, `podman load` and skopeo read:
 * `manifest.json` ({Config, RepoTags, Layers}), `repositories`, the config as `<hex>.json` and each
 * layer as `<hex>/layer.tar`. Layers are stored as they arrive: docker load (since 1.10) and
 * containers/image decompress gzip or zstd layer.tar files themselves, and recompressing here
 * would cost a pass without helping either. One image, one platform: an index must be resolved
 * to a single platform before it reaches this destination.
 *
 * Blobs are staged in a folder beside `path`; `commit` packs the archive under a temporary name
 * and renames it into place. RepoTags are the `repoTags` given here plus any `name:tag` passed to
 * putManifest (a bare tag names no repository and docker would ignore it).
 */
export class DockerArchiveDestination implements ImageDestination {
  readonly reference: string;
  private readonly path: string;
  private readonly repoTags: string[];
  private readonly workDir: string;
  private readonly staging: BlobStaging;
  private image: { manifest: ImageManifest; repoTags: string[] } | undefined;

  private committed = false;

  private constructor(
    path: string,
    repoTags: string[],
    workDir: string,
    private readonly lock: WorkLock,
  ) {
    this.path = path;
    this.repoTags = repoTags;
    this.workDir = workDir;
    this.staging = new BlobStaging(join(workDir, "blobs"));
    this.reference = `docker-archive:${path}${repoTags.length ? `:${repoTags.join(",")}` : ""}`;
  }

  static async create(
    path: string,
    options: { repoTags?: string[] } = {},
  ): Promise<DockerArchiveDestination> {
    const info = await stat(path).catch(() => undefined);
    if (info?.isDirectory()) throw new EcrxError("USAGE", `${path} is a folder; a docker archive is a file`);
    // Blobs are staged beside the archive, where an interrupted run finds them again.
    const workDir = partialSibling(path);
    const lock = await WorkLock.acquire(workDir, path);
    await mkdir(workDir, { recursive: true });
    const destination = new DockerArchiveDestination(path, options.repoTags ?? [], workDir, lock);
    await destination.staging.resume();
    return destination;
  }

  async missing(blobs: Descriptor[]): Promise<Descriptor[]> {
    return blobs.filter((d) => !this.staging.has(d.digest));
  }

  putBlob(blob: BlobToPut, body: Readable, progress: ProgressFn): Promise<Descriptor> {
    return this.staging.put(blob, body, progress, this.reference);
  }

  putBlobByPosition(
    blob: BlobToPut,
    fill: (sink: PositionalSink) => Promise<void>,
    progress: ProgressFn,
  ): Promise<Descriptor> {
    return this.staging.putByPosition(blob, fill, progress, this.reference);
  }

  async putManifest(m: RawManifest, tags: string[]): Promise<void> {
    if (isIndexType(m.mediaType)) {
      throw new EcrxError(
        "UNSUPPORTED",
        `${this.reference}: a docker archive holds one platform, not an image index`,
        {
          hint: "choose a platform, e.g. --platform linux/amd64",
        },
      );
    }
    verifyBytes(m.bytes, { digest: m.digest }, `${this.reference}: manifest ${m.digest}`);
    const parsed = parseManifest(m.bytes, { mediaType: m.mediaType, what: `${this.reference}: manifest` });
    if (parsed.kind !== "manifest")
      throw new EcrxError("UNSUPPORTED", `${this.reference}: not an image manifest`);
    const { config, layers } = parsed.manifest;
    for (const d of [config, ...layers]) {
      if (!this.staging.has(d.digest)) {
        throw new EcrxError(
          "INTERNAL",
          `${this.reference}: blob ${d.digest} was not written before its manifest`,
        );
      }
    }
    const diffIds = parseImageConfig(await readFile(this.staging.path(config.digest))).rootfs?.diff_ids ?? [];
    if (diffIds.length !== layers.length) {
      throw new EcrxError(
        "INVALID_INPUT",
        `${this.reference}: the image has ${layers.length} layers but its config lists ${diffIds.length} diff_ids; docker load would refuse it`,
      );
    }
    this.image = { manifest: parsed.manifest, repoTags: tags.filter((t) => t.includes(":")) };
  }

  async commit(): Promise<void> {
    if (!this.image) throw new EcrxError("INTERNAL", `${this.reference}: commit before the manifest was put`);
    const { manifest } = this.image;
    const repoTags = [...new Set([...this.repoTags, ...this.image.repoTags])];
    const configName = `${digestHex(manifest.config.digest)}.json`;
    const layerNames = manifest.layers.map((l) => `${digestHex(l.digest)}/layer.tar`);
    const entry: DockerArchiveEntry = { Config: configName, RepoTags: repoTags, Layers: layerNames };
    const entries: TarEntry[] = [];
    for (const [i, layer] of manifest.layers.entries()) {
      const name = layerNames[i]!;
      if (entries.some((e) => e.name === name)) continue; // the same layer twice is stored once
      entries.push(
        { name: name.slice(0, name.indexOf("/")), directory: true },
        { name, file: this.staging.path(layer.digest) },
      );
    }
    entries.push(
      { name: configName, file: this.staging.path(manifest.config.digest) },
      { name: "manifest.json", bytes: Buffer.from(`${JSON.stringify([entry])}\n`) },
    );
    const repositories = repositoriesFile(repoTags, layerNames.at(-1));
    if (repositories) entries.push({ name: "repositories", bytes: repositories });
    const archive = join(this.workDir, "archive.tar");
    await writeTar(archive, entries);
    await rename(archive, this.path);
    await rm(this.workDir, { recursive: true, force: true });
    this.committed = true;
    await this.lock.release();
  }

  /** Without a commit, the verified blobs stay in the work folder for the next run to resume. */
  async close(): Promise<void> {
    if (this.committed) return;
    // Verified blobs stay for the next run to resume from; a work folder without any goes.
    if (this.staging.count > 0) {
      await rm(join(this.workDir, "archive.tar"), { force: true });
      await this.staging.discardPartials();
    } else {
      await rm(this.workDir, { recursive: true, force: true });
    }
    await this.lock.release();
  }
}

/** The legacy `repositories` file: repository -> tag -> top layer id, as docker save writes it. */
function repositoriesFile(repoTags: string[], topLayer: string | undefined): Buffer | undefined {
  if (repoTags.length === 0 || topLayer === undefined) return undefined;
  const topId = topLayer.slice(0, topLayer.indexOf("/"));
  const repositories: Record<string, Record<string, string>> = {};
  for (const repoTag of repoTags) {
    const colon = repoTag.lastIndexOf(":");
    (repositories[repoTag.slice(0, colon)] ??= {})[repoTag.slice(colon + 1)] = topId;
  }
  return Buffer.from(`${JSON.stringify(repositories)}\n`);
}

export function createDockerArchiveDestination(
  path: string,
  options: { repoTags?: string[] } = {},
): Promise<DockerArchiveDestination> {
  return DockerArchiveDestination.create(path, options);
}
