/**
 * The emulator's storage: content-addressed blobs and manifests, one metadata file per repository,
 * and resumable layer-upload sessions, all under one directory.
 *
 * Layout under `dir`:
 *   blobs/sha256/<hex>                  layer and config blobs, shared by every repository
 *   manifests/sha256/<hex>              manifest bytes exactly as pushed
 *   repositories/<namespace>/<name>.json  repository settings, images, tags, visible layers
 *   uploads/<uuid>.data, <uuid>.json    an upload in progress: bytes so far, and its byte count
 *   tmp/                                staging for atomic writes (emptied at open)
 *   auth-secret                         HMAC key of the registry authorization tokens
 *
 * Every file appears by rename from tmp/ (or uploads/ for blobs), so a crash never exposes half a
 * file. Blobs are shared on disk; what a repository can see is its own `layers` map, kept by the
 * operations. Metadata updates of one repository, and the parts of one upload, are serialized.
 */
import { createHash, randomBytes, randomUUID, type Hash } from "node:crypto";
import { createReadStream, statSync } from "node:fs";
import { mkdir, open, readFile, readdir, rename, rm, truncate, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { KeyedMutex } from "./keyed-mutex.js";

export interface StoreOptions {
  dir: string;
}

/** Private ECR and ECR Public repositories live side by side but never see each other. */
export type Namespace = "private" | "public";

export interface LayerRecord {
  size: number;
  /** Known once a manifest of this repository names the blob. */
  mediaType?: string;
}

export interface ImageRecord {
  mediaType: string;
  /** Epoch seconds. */
  pushedAt: number;
  imageSizeInBytes: number;
  /** The config media type of an image manifest. */
  artifactMediaType?: string;
  /** Config and layer digests this manifest references. */
  blobs: string[];
  /** Manifests an index references. */
  children: string[];
  subject?: string;
}

export interface TagRecord {
  digest: string;
  /** Epoch seconds. */
  createdAt: number;
}

export interface TagMutabilityFilter {
  filterType: string;
  filter: string;
}

export interface RepositorySettings {
  imageTagMutability: string;
  imageTagMutabilityExclusionFilters?: TagMutabilityFilter[];
  imageScanningConfiguration: { scanOnPush: boolean };
  encryptionConfiguration: { encryptionType: string; kmsKey?: string };
  tags: { Key: string; Value: string }[];
  /** ECR Public's catalog data, as given at creation. */
  catalogData?: Record<string, unknown>;
}

export interface RepositoryRecord {
  namespace: Namespace;
  name: string;
  /** Epoch seconds. */
  createdAt: number;
  settings: RepositorySettings;
  layers: Record<string, LayerRecord>;
  images: Record<string, ImageRecord>;
  tags: Record<string, TagRecord>;
}

export interface UploadSession {
  id: string;
  namespace: Namespace;
  repository: string;
  /** Epoch seconds. */
  createdAt: number;
  /** Bytes received so far; the next part must start here. */
  received: number;
  /** Decoded size of each part, in order. */
  parts: number[];
}

/** One upload, held under its lock for the duration of a `withUpload` callback. */
export interface UploadHandle {
  readonly session: Readonly<UploadSession>;
  /** Appends a part's bytes and persists the new byte count with the part size. */
  append(data: Buffer): Promise<void>;
  /**
   * Appends everything `source` yields as one part (the registry API streams a chunk of any size).
   * If `source` throws, the bytes written so far are cut off and nothing changes. Resolves to the
   * part's size; an empty source adds no part.
   */
  appendStream(source: AsyncIterable<Buffer>): Promise<number>;
  /** Removes the last part (a final chunk whose upload was then refused). */
  dropLastPart(): Promise<void>;
  /** `sha256:<hex>` of the bytes received so far. */
  digest(): Promise<string>;
  /** Turns the received bytes into the blob `digest` (which the caller verified) and ends the upload. */
  commit(digest: string): Promise<void>;
  /** Ends the upload and drops its bytes. */
  discard(): Promise<void>;
}

interface UploadState {
  session: UploadSession;
  /** Running hash of the received bytes; absent after a restart until the file is hashed once. */
  hash: Hash | undefined;
}

const SHA256_DIGEST = /^sha256:([0-9a-f]{64})$/;
const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
/** Looser than the API patterns on purpose: this only guards the file system. */
const SAFE_REPOSITORY_NAME = /^[a-z0-9]+(?:[._/-]+[a-z0-9]+)*$/;
const NAMESPACES: readonly Namespace[] = ["private", "public"];

function sha256Hex(digest: string): string | undefined {
  return SHA256_DIGEST.exec(digest)?.[1];
}

function repositoryFileName(name: string): string {
  if (!SAFE_REPOSITORY_NAME.test(name) || name.includes("..")) {
    throw new Error(`unsafe repository name reached the store: ${JSON.stringify(name)}`);
  }
  return `${encodeURIComponent(name)}.json`;
}

function isNotFound(err: unknown): boolean {
  return (err as NodeJS.ErrnoException).code === "ENOENT";
}

export class Store {
  private readonly repositories = new Map<string, RepositoryRecord>();
  private readonly uploads = new Map<string, UploadState>();
  private readonly blobSizes = new Map<string, number>();
  private readonly locks = new KeyedMutex();
  private closed = false;

  private constructor(
    readonly dir: string,
    /** Key of the registry authorization tokens; persisted so tokens survive a restart. */
    readonly authSecret: Buffer,
  ) {}

  static async open(options: StoreOptions): Promise<Store> {
    const { dir } = options;
    for (const sub of [
      "blobs/sha256",
      "manifests/sha256",
      "uploads",
      ...NAMESPACES.map((n) => `repositories/${n}`),
    ]) {
      await mkdir(join(dir, sub), { recursive: true });
    }
    await rm(join(dir, "tmp"), { recursive: true, force: true });
    await mkdir(join(dir, "tmp"));
    const store = new Store(dir, await loadOrCreateSecret(join(dir, "auth-secret")));
    await store.loadRepositories();
    await store.recoverUploads();
    return store;
  }

  /** Waits for the operations in flight; the store refuses writes afterwards. */
  async close(): Promise<void> {
    this.closed = true;
    await this.locks.idle();
  }

  // ---- blobs -------------------------------------------------------------------------------

  /** The file of a stored sha256 blob, for download URLs; undefined for unknown or malformed digests. */
  blobPath(digest: string): string | undefined {
    const hex = sha256Hex(digest);
    if (hex === undefined || this.blobSize(digest) === undefined) return undefined;
    return join(this.dir, "blobs", "sha256", hex);
  }

  blobSize(digest: string): number | undefined {
    const hex = sha256Hex(digest);
    if (hex === undefined) return undefined;
    const known = this.blobSizes.get(hex);
    if (known !== undefined) return known;
    try {
      const size = statSync(join(this.dir, "blobs", "sha256", hex)).size;
      this.blobSizes.set(hex, size);
      return size;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  // ---- manifests ---------------------------------------------------------------------------

  /** Stores manifest bytes under their digest, which the caller computed from these bytes. */
  async putManifest(digest: string, bytes: Buffer): Promise<void> {
    this.assertOpen();
    const path = this.manifestPath(digest);
    if (await exists(path)) return;
    await this.writeAtomic(path, bytes);
  }

  async readManifest(digest: string): Promise<Buffer | undefined> {
    try {
      return await readFile(this.manifestPath(digest));
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  private manifestPath(digest: string): string {
    const hex = sha256Hex(digest);
    if (hex === undefined) throw new Error(`not a sha256 digest: ${digest}`);
    return join(this.dir, "manifests", "sha256", hex);
  }

  // ---- repositories ------------------------------------------------------------------------

  /** The current state of a repository. Do not mutate it: change it with `updateRepository`. */
  getRepository(namespace: Namespace, name: string): Readonly<RepositoryRecord> | undefined {
    return this.repositories.get(repositoryKey(namespace, name));
  }

  listRepositories(namespace: Namespace): Readonly<RepositoryRecord>[] {
    return [...this.repositories.values()]
      .filter((r) => r.namespace === namespace)
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** Creates the repository; false if it already exists. */
  async createRepository(record: RepositoryRecord): Promise<boolean> {
    const key = repositoryKey(record.namespace, record.name);
    return this.locks.run(key, async () => {
      this.assertOpen();
      if (this.repositories.has(key)) return false;
      await this.writeAtomic(this.repositoryPath(record.namespace, record.name), JSON.stringify(record));
      this.repositories.set(key, record);
      return true;
    });
  }

  /**
   * Applies `change` to a copy of the repository and persists it; if `change` throws, nothing
   * changes. Resolves to undefined when the repository does not exist.
   */
  async updateRepository<T>(
    namespace: Namespace,
    name: string,
    change: (draft: RepositoryRecord) => T,
  ): Promise<T | undefined> {
    const key = repositoryKey(namespace, name);
    return this.locks.run(key, async () => {
      this.assertOpen();
      const current = this.repositories.get(key);
      if (current === undefined) return undefined;
      const draft = structuredClone(current);
      const result = change(draft);
      await this.writeAtomic(this.repositoryPath(namespace, name), JSON.stringify(draft));
      this.repositories.set(key, draft);
      return result;
    });
  }

  /**
   * Deletes the repository after `check` (which may throw to refuse), along with its uploads in
   * progress. Resolves to the deleted record, or undefined when it did not exist.
   */
  async deleteRepository(
    namespace: Namespace,
    name: string,
    check: (current: Readonly<RepositoryRecord>) => void,
  ): Promise<Readonly<RepositoryRecord> | undefined> {
    const key = repositoryKey(namespace, name);
    const deleted = await this.locks.run(key, async () => {
      this.assertOpen();
      const current = this.repositories.get(key);
      if (current === undefined) return undefined;
      check(current);
      await unlink(this.repositoryPath(namespace, name));
      this.repositories.delete(key);
      return current;
    });
    if (deleted !== undefined) {
      // Outside the repository lock: completing an upload takes the upload lock, then this one.
      const orphans = [...this.uploads.values()].filter(
        (u) => u.session.namespace === namespace && u.session.repository === name,
      );
      for (const orphan of orphans) await this.withUpload(orphan.session.id, async (u) => u?.discard());
    }
    return deleted;
  }

  private repositoryPath(namespace: Namespace, name: string): string {
    return join(this.dir, "repositories", namespace, repositoryFileName(name));
  }

  private async loadRepositories(): Promise<void> {
    for (const namespace of NAMESPACES) {
      const folder = join(this.dir, "repositories", namespace);
      for (const file of await readdir(folder)) {
        if (!file.endsWith(".json")) continue;
        const record = JSON.parse(await readFile(join(folder, file), "utf8")) as RepositoryRecord;
        this.repositories.set(repositoryKey(namespace, record.name), record);
      }
    }
  }

  // ---- uploads -----------------------------------------------------------------------------

  async createUpload(namespace: Namespace, repository: string, createdAt: number): Promise<UploadSession> {
    this.assertOpen();
    repositoryFileName(repository);
    const session: UploadSession = {
      id: randomUUID(),
      namespace,
      repository,
      createdAt,
      received: 0,
      parts: [],
    };
    await writeFile(this.uploadDataPath(session.id), Buffer.alloc(0));
    await this.writeAtomic(this.uploadMetaPath(session.id), JSON.stringify(session));
    this.uploads.set(session.id, { session, hash: createHash("sha256") });
    return { ...session, parts: [] };
  }

  /** Runs `fn` holding the upload's lock; `upload` is undefined when no such upload is open. */
  async withUpload<T>(id: string, fn: (upload: UploadHandle | undefined) => Promise<T>): Promise<T> {
    return this.locks.run(`upload:${id}`, async () => {
      const state = UUID.test(id) ? this.uploads.get(id) : undefined;
      return fn(state === undefined ? undefined : this.uploadHandle(state));
    });
  }

  private uploadHandle(state: UploadState): UploadHandle {
    const { id } = state.session;
    const dataPath = this.uploadDataPath(id);
    const metaPath = this.uploadMetaPath(id);
    let ended = false;
    const live = (): void => {
      if (ended) throw new Error(`upload ${id} already ended`);
      this.assertOpen();
    };
    return {
      // A getter: the session is replaced by each append, and one handle may append then complete.
      get session() {
        return state.session;
      },
      append: async (data) => {
        live();
        const next: UploadSession = {
          ...state.session,
          received: state.session.received + data.length,
          parts: [...state.session.parts, data.length],
        };
        try {
          // The running hash takes this thread while the thread pool writes the file.
          const written = writeFile(dataPath, data, { flag: "a" });
          state.hash?.update(data);
          await written;
          await this.writeAtomic(metaPath, JSON.stringify(next));
        } catch (err) {
          // Put the file back to the persisted byte count; the running hash is ahead of it: drop it.
          state.hash = undefined;
          await truncate(dataPath, state.session.received).catch(() => undefined);
          throw err;
        }
        state.session = next;
      },
      appendStream: async (source) => {
        live();
        // A copy: the running hash stays exact if the stream fails halfway.
        const hash = state.hash?.copy();
        let size = 0;
        const file = await open(dataPath, "a");
        try {
          try {
            for await (const chunk of source) {
              await file.write(chunk);
              hash?.update(chunk);
              size += chunk.length;
            }
          } finally {
            await file.close();
          }
          if (size > 0) {
            const next: UploadSession = {
              ...state.session,
              received: state.session.received + size,
              parts: [...state.session.parts, size],
            };
            await this.writeAtomic(metaPath, JSON.stringify(next));
            state.session = next;
            state.hash = hash;
          }
        } catch (err) {
          await truncate(dataPath, state.session.received).catch(() => undefined);
          throw err;
        }
        return size;
      },
      dropLastPart: async () => {
        live();
        const last = state.session.parts.at(-1);
        if (last === undefined) return;
        const next: UploadSession = {
          ...state.session,
          received: state.session.received - last,
          parts: state.session.parts.slice(0, -1),
        };
        await this.writeAtomic(metaPath, JSON.stringify(next));
        state.session = next;
        // The hash cannot be rewound: the next digest() hashes the file again.
        state.hash = undefined;
        await truncate(dataPath, next.received);
      },
      digest: async () => {
        live();
        if (state.hash === undefined) state.hash = await hashFile(dataPath, state.session.received);
        return `sha256:${state.hash.copy().digest("hex")}`;
      },
      commit: async (digest) => {
        live();
        const hex = sha256Hex(digest);
        if (hex === undefined) throw new Error(`not a sha256 digest: ${digest}`);
        ended = true;
        await rename(dataPath, join(this.dir, "blobs", "sha256", hex));
        this.blobSizes.set(hex, state.session.received);
        this.uploads.delete(id);
        await rm(metaPath, { force: true });
      },
      discard: async () => {
        live();
        ended = true;
        this.uploads.delete(id);
        await rm(metaPath, { force: true });
        await rm(dataPath, { force: true });
      },
    };
  }

  private uploadDataPath(id: string): string {
    return join(this.dir, "uploads", `${id}.data`);
  }

  private uploadMetaPath(id: string): string {
    return join(this.dir, "uploads", `${id}.json`);
  }

  /**
   * Reloads sessions. A crash between appending a part and persisting the count leaves extra
   * bytes: cut them, the client resends that part. A session whose data is gone was completed.
   */
  private async recoverUploads(): Promise<void> {
    const folder = join(this.dir, "uploads");
    const files = new Set(await readdir(folder));
    for (const file of files) {
      const id = file.replace(/\.(json|data)$/, "");
      if (!UUID.test(id)) continue;
      const hasMeta = files.has(`${id}.json`);
      const hasData = files.has(`${id}.data`);
      if (!hasMeta || !hasData) {
        await rm(join(folder, file), { force: true });
        continue;
      }
      if (file !== `${id}.json`) continue;
      const session = JSON.parse(await readFile(join(folder, file), "utf8")) as UploadSession;
      await truncate(this.uploadDataPath(id), session.received);
      this.uploads.set(id, { session, hash: undefined });
    }
  }

  // ---- helpers -----------------------------------------------------------------------------

  private async writeAtomic(path: string, data: string | Buffer): Promise<void> {
    const temp = join(this.dir, "tmp", randomUUID());
    await writeFile(temp, data);
    await rename(temp, path);
  }

  private assertOpen(): void {
    if (this.closed) throw new Error("store is closed");
  }
}

function repositoryKey(namespace: Namespace, name: string): string {
  return `${namespace}:${name}`;
}

async function exists(path: string): Promise<boolean> {
  try {
    const handle = await open(path, "r");
    await handle.close();
    return true;
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
}

async function hashFile(path: string, length: number): Promise<Hash> {
  const hash = createHash("sha256");
  if (length === 0) return hash;
  for await (const chunk of createReadStream(path, { start: 0, end: length - 1 }))
    hash.update(chunk as Buffer);
  return hash;
}

async function loadOrCreateSecret(path: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
  const secret = randomBytes(32);
  const temp = `${path}.${randomUUID()}`;
  await writeFile(temp, secret, { mode: 0o600 });
  await rename(temp, path);
  return secret;
}
