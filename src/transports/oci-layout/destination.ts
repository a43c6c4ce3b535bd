import { mkdir, readdir, rename, rm, rmdir, stat, writeFile } from "node:fs/promises";
import { join, relative } from "node:path";
import type { Readable } from "node:stream";
import { EcrxError } from "../../errors.js";
import { verifyBytes } from "../../manifest/digest.js";
import { MediaType } from "../../manifest/media-types.js";
import type { Descriptor, ImageIndex, RawManifest } from "../../manifest/types.js";
import { BlobStaging } from "../../util/blob-staging.js";
import { openFolderTree } from "../../util/file-tree.js";
import { partialSibling, pathExists, writeFileAtomic } from "../../util/fs.js";
import { WorkLock } from "../../util/work-lock.js";
import { writeTar, type TarEntry } from "../../util/tar-write.js";
import type { BlobToPut, ImageDestination, PositionalSink, ProgressFn } from "../types.js";
import { blobPath, readLayoutIndex, REF_NAME_ANNOTATION } from "./layout-source.js";

const LAYOUT_MARKER = `${JSON.stringify({ imageLayoutVersion: "1.0.0" })}\n`;

/**
 * Writes into an OCI image layout folder, new or existing (what is there is kept). Blobs and
 * manifests are staged in a private folder; `commit` moves them into `blobs/` and then rewrites
 * `index.json` atomically, naming the root manifest (the last one put) with each tag. A new layout
 * is staged whole beside `path` (`.NAME.ecrx-partial`) and appears by one rename. Without
 * `commit`, `close` leaves the layout as it was; the verified blobs stay staged, and the next
 * transfer to the same destination resumes from them.
 */
export class OciLayoutDestination implements ImageDestination {
  readonly reference: string;
  private readonly path: string;
  private readonly tags: string[];
  /** Whether `path` already holds a layout that blobs and index entries are added to. */
  private readonly existing: boolean;
  private readonly staging: BlobStaging;
  private root: { manifest: RawManifest; tags: string[] } | undefined;
  private committed = false;

  private constructor(
    path: string,
    tags: string[],
    existing: boolean,
    stagingDir: string,
    private readonly lock: WorkLock,
  ) {
    this.path = path;
    this.tags = tags;
    this.existing = existing;
    this.staging = new BlobStaging(stagingDir);
    this.reference = `oci:${path}${tags.length ? `:${tags.join(",")}` : ""}`;
  }

  static async create(path: string, tags: string[] = []): Promise<OciLayoutDestination> {
    const info = await stat(path).catch(() => undefined);
    if (info && !info.isDirectory()) throw new EcrxError("USAGE", `${path} exists and is not a folder`);
    const entries = info ? await readdir(path) : [];
    if (entries.length > 0) {
      if (!entries.includes("oci-layout")) {
        throw new EcrxError("USAGE", `${path} is a folder that is not empty and not an OCI layout`, {
          hint: "choose a new or empty folder, or an existing OCI layout",
        });
      }
      // Refuse a broken layout now rather than after the transfer.
      await readLayoutIndex(await openFolderTree(path));
      const staging = join(path, ".ecrx-partial");
      return OciLayoutDestination.open(path, tags, true, staging, staging);
    }
    const work = partialSibling(path);
    return OciLayoutDestination.open(path, tags, false, join(work, "blobs"), work);
  }

  private static async open(
    path: string,
    tags: string[],
    existing: boolean,
    stagingDir: string,
    workDir: string,
  ): Promise<OciLayoutDestination> {
    const lock = await WorkLock.acquire(workDir, path);
    const destination = new OciLayoutDestination(path, tags, existing, stagingDir, lock);
    await destination.staging.resume();
    return destination;
  }

  async missing(blobs: Descriptor[]): Promise<Descriptor[]> {
    const result: Descriptor[] = [];
    for (const d of blobs) if (!(await this.hasBlob(d))) result.push(d);
    return result;
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
    verifyBytes(m.bytes, { digest: m.digest }, `${this.reference}: manifest ${m.digest}`);
    await this.staging.putBytes(m.bytes);
    // The engine puts the root last; until commit, the latest manifest is the root candidate.
    this.root = { manifest: m, tags };
  }

  async commit(): Promise<void> {
    if (!this.root) throw new EcrxError("INTERNAL", `${this.reference}: commit before any manifest was put`);
    const { manifest, tags } = this.root;
    const entry: Descriptor = {
      mediaType: manifest.mediaType,
      digest: manifest.digest,
      size: manifest.bytes.length,
    };
    const names = [...new Set([...this.tags, ...tags])];
    if (this.existing) {
      await this.moveStagedBlobs();
      const index = await readLayoutIndex(await openFolderTree(this.path));
      await writeFileAtomic(join(this.path, "index.json"), serializeIndex(addEntries(index, entry, names)));
      await rm(this.staging.dir, { recursive: true, force: true });
    } else {
      const layout = join(this.staging.dir, "..");
      await this.staging.discardPartials();
      await writeFile(join(layout, "oci-layout"), LAYOUT_MARKER);
      await writeFile(join(layout, "index.json"), serializeIndex(addEntries(emptyIndex(), entry, names)));
      // An empty folder at `path` is replaced by the rename; anything else was refused in create().
      await rename(layout, this.path);
    }
    this.committed = true;
    await this.lock.release();
  }

  async close(): Promise<void> {
    if (this.committed) return;
    // Verified blobs stay for the next run to resume from; a work folder without any goes.
    if (this.staging.count > 0) await this.staging.discardPartials();
    else
      await rm(this.existing ? this.staging.dir : join(this.staging.dir, ".."), {
        recursive: true,
        force: true,
      });
    await this.lock.release();
  }

  private async hasBlob(d: Descriptor): Promise<boolean> {
    if (this.staging.has(d.digest)) return true;
    if (!this.existing) return false;
    const info = await stat(join(this.path, blobPath(d.digest))).catch(() => undefined);
    return info?.isFile() === true && info.size === d.size;
  }

  private async moveStagedBlobs(): Promise<void> {
    for (const [digest] of this.staging.entries()) {
      const target = join(this.path, blobPath(digest));
      if (await pathExists(target)) continue; // content-addressed: the same bytes are already there
      await mkdir(join(target, ".."), { recursive: true });
      await rename(this.staging.path(digest), target);
    }
  }
}

function emptyIndex(): ImageIndex {
  return { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [] };
}

/**
 * Adds the root to index.json once per name; an entry that already carries one of these names is
 * replaced (a tag names one image). Without names the root is added untagged unless it is there.
 */
function addEntries(index: ImageIndex, entry: Descriptor, names: string[]): ImageIndex {
  const kept = index.manifests.filter((d) => {
    const name = d.annotations?.[REF_NAME_ANNOTATION];
    return name === undefined ? !(names.length === 0 && d.digest === entry.digest) : !names.includes(name);
  });
  const added = names.length
    ? names.map((name) => ({ ...entry, annotations: { [REF_NAME_ANNOTATION]: name } }))
    : [entry];
  return { ...index, manifests: [...kept, ...added] };
}

function serializeIndex(index: ImageIndex): string {
  return `${JSON.stringify(index)}\n`;
}

/**
 * Writes an OCI archive (a tar of a layout). The layout is staged beside the archive and packed in
 * `commit`, then renamed into place; an existing archive at `path` is replaced.
 */
export class OciArchiveDestination implements ImageDestination {
  readonly reference: string;
  private readonly path: string;
  private readonly layout: OciLayoutDestination;
  private readonly workDir: string;

  private constructor(path: string, tags: string[], layout: OciLayoutDestination, workDir: string) {
    this.path = path;
    this.layout = layout;
    this.workDir = workDir;
    this.reference = `oci-archive:${path}${tags.length ? `:${tags.join(",")}` : ""}`;
  }

  static async create(path: string, tags: string[] = []): Promise<OciArchiveDestination> {
    const info = await stat(path).catch(() => undefined);
    if (info?.isDirectory()) throw new EcrxError("USAGE", `${path} is a folder; an OCI archive is a file`);
    // The layout is staged in a work folder beside the archive, resumable like any layout.
    const workDir = partialSibling(path);
    await mkdir(workDir, { recursive: true });
    return new OciArchiveDestination(
      path,
      tags,
      await OciLayoutDestination.create(join(workDir, "layout"), tags),
      workDir,
    );
  }

  missing(blobs: Descriptor[]): Promise<Descriptor[]> {
    return this.layout.missing(blobs);
  }

  putBlob(blob: BlobToPut, body: Readable, progress: ProgressFn): Promise<Descriptor> {
    return this.layout.putBlob(blob, body, progress);
  }

  putBlobByPosition(
    blob: BlobToPut,
    fill: (sink: PositionalSink) => Promise<void>,
    progress: ProgressFn,
  ): Promise<Descriptor> {
    return this.layout.putBlobByPosition(blob, fill, progress);
  }

  putManifest(m: RawManifest, tags: string[]): Promise<void> {
    return this.layout.putManifest(m, tags);
  }

  async commit(): Promise<void> {
    await this.layout.commit();
    const layoutDir = join(this.workDir, "layout");
    const archive = join(this.workDir, "archive.tar");
    await writeTar(archive, await layoutEntries(layoutDir));
    await rename(archive, this.path);
    await rm(this.workDir, { recursive: true, force: true });
  }

  /** Without a commit, the staged layout stays in the work folder for the next run to resume. */
  async close(): Promise<void> {
    await this.layout.close();
    // An empty work folder (nothing was staged) is removed; rmdir refuses one that is not.
    await rmdir(this.workDir).catch(() => undefined);
  }
}

/** The members of a layout folder in the order readers like: marker, index, then blobs. */
async function layoutEntries(dir: string): Promise<TarEntry[]> {
  const entries: TarEntry[] = [
    { name: "oci-layout", file: join(dir, "oci-layout") },
    { name: "index.json", file: join(dir, "index.json") },
    { name: "blobs", directory: true },
  ];
  for (const algorithm of await readdir(join(dir, "blobs"))) {
    entries.push({ name: `blobs/${algorithm}`, directory: true });
    for (const hex of (await readdir(join(dir, "blobs", algorithm))).sort()) {
      const file = join(dir, "blobs", algorithm, hex);
      entries.push({ name: relative(dir, file), file });
    }
  }
  return entries;
}

export function createOciLayoutDestination(path: string, tags: string[] = []): Promise<OciLayoutDestination> {
  return OciLayoutDestination.create(path, tags);
}

export function createOciArchiveDestination(
  path: string,
  tags: string[] = [],
): Promise<OciArchiveDestination> {
  return OciArchiveDestination.create(path, tags);
}
