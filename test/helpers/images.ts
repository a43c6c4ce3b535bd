/**
 * Builders of test images on disk, without Docker: deterministic seeded layers (tar archives of
 * generated files, compressible text or random bytes) in every shape ecrx reads: classic and
 * Docker 25+ `docker save` archives, OCI layouts, OCI archives, multi-platform indexes; layers
 * uncompressed, gzip or zstd. Everything is streamed: a 1 GiB layer is never held in memory.
 *
 *   const image = await buildImage({ format: "docker-archive-classic", layers: [{ size: 3 * MiB, compression: "none" }], dir });
 *   image.path, image.reference, image.root.digest, image.manifests[0].layers[0].digest ...
 *
 * The same options and seed always give the same bytes, hence the same digests.
 */
import { createCipheriv, createHash } from "node:crypto";
import { once } from "node:events";
import { createWriteStream } from "node:fs";
import { mkdir, mkdtemp, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { PassThrough, type Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGzip } from "node:zlib";
import tar from "tar-stream";
import zstd from "zstd-napi";
import { HashingCounter } from "../../src/manifest/digest.js";
import { writeTar, type TarEntry } from "../../src/util/tar-write.js";

export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;

export type LayerCompression = "none" | "gzip" | "zstd";
export type ImageFormat =
  | "oci-layout" // a folder
  | "oci-archive" // a tar of a layout
  | "docker-archive" // docker save of Docker 25+: an OCI layout plus manifest.json in a tar
  | "docker-archive-classic"; // docker save before 25: manifest.json, <id>.json, <id>/layer.tar

export interface LayerSpec {
  /** Bytes of file content in the layer; the tar adds headers and padding. */
  size: number;
  /** Default: "gzip" for OCI formats, "none" for docker archives (as docker save writes them). */
  compression?: LayerCompression;
  /** "compressible" (text, default) or "random" (incompressible). */
  content?: "compressible" | "random";
  /** Distinguishes layers of equal size; default: the layer's position and the image seed. */
  seed?: string;
  /** Largest file in the layer; default 1 MiB. */
  fileSize?: number;
}

export interface BuildImageOptions {
  format: ImageFormat;
  /** The folder the image is created in. */
  dir: string;
  /** File or folder name inside `dir`; default by format, e.g. "image.tar" or "layout". */
  name?: string;
  /** Default: one 64 KiB layer. */
  layers?: LayerSpec[];
  /** Two or more platforms (`os/arch[/variant]`) make a multi-platform index (OCI formats only). */
  platforms?: string[];
  /** Media types of manifests, configs and layers; default "oci" ("docker" for classic archives). */
  mediaTypes?: "oci" | "docker";
  /** OCI `ref.name` (and the tag of the docker name); default "latest". */
  tag?: string;
  /** The image's name in docker archives; default "ecrx-test/image". */
  repository?: string;
  /** Seeds all content; default "ecrx". */
  seed?: string;
  /** Gzip the whole docker archive (as `docker save | gzip`). */
  gzipArchive?: boolean;
}

export interface BuiltBlob {
  mediaType: string;
  digest: string;
  size: number;
}

export interface BuiltLayer extends BuiltBlob {
  /** Digest of the uncompressed tar, as in the config's rootfs.diff_ids. */
  diffId: string;
  uncompressedSize: number;
  compression: LayerCompression;
}

export interface BuiltManifest extends BuiltBlob {
  bytes: Buffer;
  platform: string;
  config: BuiltBlob & { bytes: Buffer };
  layers: BuiltLayer[];
}

export interface BuiltImage {
  format: ImageFormat;
  path: string;
  /** e.g. `oci:/tmp/x/layout:latest`, `docker-archive:/tmp/x/image.tar`. */
  reference: string;
  tag: string;
  /** `repository:tag` as in RepoTags of docker archives. */
  repoTag: string;
  /**
   * The root: the index for several platforms, else the image manifest. For classic docker
   * archives, which hold no manifest, the Docker v2 schema 2 manifest ecrx synthesizes from them.
   */
  root: BuiltBlob & { bytes: Buffer };
  /** One per platform, in order. */
  manifests: BuiltManifest[];
}

const MEDIA = {
  oci: {
    manifest: "application/vnd.oci.image.manifest.v1+json",
    index: "application/vnd.oci.image.index.v1+json",
    config: "application/vnd.oci.image.config.v1+json",
    layer: {
      none: "application/vnd.oci.image.layer.v1.tar",
      gzip: "application/vnd.oci.image.layer.v1.tar+gzip",
      zstd: "application/vnd.oci.image.layer.v1.tar+zstd",
    },
  },
  docker: {
    manifest: "application/vnd.docker.distribution.manifest.v2+json",
    index: "application/vnd.docker.distribution.manifest.list.v2+json",
    config: "application/vnd.docker.container.image.v1+json",
    layer: {
      none: "application/vnd.docker.image.rootfs.diff.tar",
      gzip: "application/vnd.docker.image.rootfs.diff.tar.gzip",
      zstd: "application/vnd.docker.image.rootfs.diff.tar.zstd",
    },
  },
} as const;

/** `count` layers of `size` bytes each (e.g. many small layers). */
export function layersOf(count: number, spec: LayerSpec): LayerSpec[] {
  return Array.from({ length: count }, (_, i) => ({ ...spec, seed: `${spec.seed ?? "layer"}-${i}` }));
}

/** Layers that add up to `total` bytes of content, split as evenly as possible. */
export function splitSize(total: number, count: number, spec: Omit<LayerSpec, "size"> = {}): LayerSpec[] {
  const base = Math.floor(total / count);
  return layersOf(count, { ...spec, size: base }).map((l, i) => ({
    ...l,
    size: i < total % count ? base + 1 : base,
  }));
}

/**
 * The registry interop tests' two OCI layouts, in `fresh("single")` and then `fresh("multi")`:
 * `single`, one platform of `singleLayers`, and `multi`, an OCI index of linux/amd64 and
 * linux/arm64 with a 48 KiB gzip and an 80 KiB zstd layer.
 */
export async function buildSingleAndMulti(
  fresh: (name: string) => string,
  singleLayers: LayerSpec[],
): Promise<{ single: BuiltImage; multi: BuiltImage }> {
  const single = await buildImage({ format: "oci-layout", dir: fresh("single"), layers: singleLayers });
  const multi = await buildImage({
    format: "oci-layout",
    dir: fresh("multi"),
    platforms: ["linux/amd64", "linux/arm64"],
    layers: [
      { size: 48 * KiB, compression: "gzip" },
      { size: 80 * KiB, compression: "zstd" },
    ],
  });
  return { single, multi };
}

export async function buildImage(options: BuildImageOptions): Promise<BuiltImage> {
  const { format, dir } = options;
  const classic = format === "docker-archive-classic";
  const docker = format === "docker-archive" || classic;
  const flavour = options.mediaTypes ?? (classic ? "docker" : "oci");
  const tag = options.tag ?? "latest";
  const repository = options.repository ?? "ecrx-test/image";
  const repoTag = `${repository}:${tag}`;
  const seed = options.seed ?? "ecrx";
  const platforms = options.platforms ?? ["linux/amd64"];
  if (platforms.length > 1 && docker) throw new Error("docker archives hold one platform");
  const layerSpecs = options.layers ?? [{ size: 64 * KiB }];

  await mkdir(dir, { recursive: true });
  const path = join(dir, options.name ?? (format === "oci-layout" ? "layout" : "image.tar"));
  const layout = format === "oci-layout" ? path : await mkdtemp(join(dir, ".build-"));
  const blobs = join(layout, "blobs", "sha256");
  await mkdir(blobs, { recursive: true });

  const manifests: BuiltManifest[] = [];
  for (const platform of platforms) {
    const layers: BuiltLayer[] = [];
    for (const [i, spec] of layerSpecs.entries()) {
      const compression = spec.compression ?? (docker ? "none" : "gzip");
      const layerSeed = `${seed}/${platform}/${spec.seed ?? i}`;
      layers.push(await writeLayer(blobs, spec, compression, layerSeed, MEDIA[flavour].layer[compression]));
    }
    const [os, architecture, variant] = platform.split("/") as [string, string, string?];
    const config = json({
      architecture,
      os,
      ...(variant ? { variant } : {}),
      created: "1970-01-01T00:00:00Z",
      config: {
        Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        Cmd: ["/bin/sh"],
      },
      rootfs: { type: "layers", diff_ids: layers.map((l) => l.diffId) },
      history: layers.map((_, i) => ({
        created: "1970-01-01T00:00:00Z",
        created_by: `ecrx test layer ${i}`,
      })),
    });
    const configBlob = {
      mediaType: MEDIA[flavour].config,
      ...(await writeBlob(blobs, config)),
      bytes: config,
    };
    const manifestBytes = json({
      schemaVersion: 2,
      mediaType: MEDIA[flavour].manifest,
      config: descriptor(configBlob),
      layers: layers.map(descriptor),
    });
    const manifest = { mediaType: MEDIA[flavour].manifest, ...(await writeBlob(blobs, manifestBytes)) };
    manifests.push({ ...manifest, bytes: manifestBytes, platform, config: configBlob, layers });
  }

  let root: BuiltImage["root"] = manifests[0]!;
  if (platforms.length > 1) {
    const bytes = json({
      schemaVersion: 2,
      mediaType: MEDIA[flavour].index,
      manifests: manifests.map((m) => ({ ...descriptor(m), platform: platformObject(m.platform) })),
    });
    root = { mediaType: MEDIA[flavour].index, ...(await writeBlob(blobs, bytes)), bytes };
  }
  const image = manifests[0]!;
  const annotations: Record<string, string> = { "org.opencontainers.image.ref.name": tag };
  if (format === "docker-archive") annotations["io.containerd.image.name"] = dockerName(repoTag);
  await writeFile(join(layout, "oci-layout"), json({ imageLayoutVersion: "1.0.0" }));
  await writeFile(
    join(layout, "index.json"),
    json({ schemaVersion: 2, mediaType: MEDIA.oci.index, manifests: [{ ...descriptor(root), annotations }] }),
  );

  if (format === "oci-archive") {
    await writeTar(path, await layoutEntries(layout, manifests, root));
  } else if (format === "docker-archive") {
    const entries = await layoutEntries(layout, manifests, root);
    entries.push(
      ...dockerSaveEntries(
        repoTag,
        `blobs/sha256/${hex(image.config.digest)}`,
        image.layers.map((l) => `blobs/sha256/${hex(l.digest)}`),
      ),
    );
    await writeTar(path, entries, options.gzipArchive ? createGzip() : undefined);
  } else if (classic) {
    const layerNames = image.layers.map((l) => `${hex(l.diffId)}/layer.tar`);
    // docker save stores a layer that occurs twice once.
    const entries = new Map<string, TarEntry>();
    image.layers.forEach((l, i) => {
      entries.set(hex(l.diffId), { name: hex(l.diffId), directory: true });
      entries.set(layerNames[i]!, { name: layerNames[i]!, file: join(blobs, hex(l.digest)) });
    });
    const configName = `${hex(image.config.digest)}.json`;
    const tail = [
      { name: configName, bytes: image.config.bytes },
      ...dockerSaveEntries(repoTag, configName, layerNames),
    ];
    await writeTar(path, [...entries.values(), ...tail], options.gzipArchive ? createGzip() : undefined);
    root = synthesizedManifest(image);
    manifests[0] = { ...image, ...root, bytes: root.bytes };
  }
  if (layout !== path) await rm(layout, { recursive: true, force: true });

  const prefix =
    format === "oci-layout" ? "oci" : format === "oci-archive" ? "oci-archive" : "docker-archive";
  const reference = docker ? `${prefix}:${path}` : `${prefix}:${path}:${tag}`;
  return { format, path, reference, tag, repoTag, root, manifests };
}

/** The manifest ecrx's docker-archive source presents for a classic archive (compact JSON, this key order). */
function synthesizedManifest(image: BuiltManifest): BuiltImage["root"] {
  const bytes = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA.docker.manifest,
      config: { mediaType: MEDIA.docker.config, digest: image.config.digest, size: image.config.size },
      layers: image.layers.map((l) => ({
        mediaType: MEDIA.docker.layer[l.compression],
        digest: l.compression === "none" ? l.diffId : l.digest,
        size: l.size,
      })),
    }),
  );
  return { mediaType: MEDIA.docker.manifest, digest: sha256(bytes), size: bytes.length, bytes };
}

function dockerSaveEntries(repoTag: string, config: string, layers: string[]): TarEntry[] {
  const colon = repoTag.lastIndexOf(":");
  const topId = layers.at(-1)?.split("/").at(-2) ?? "";
  return [
    { name: "manifest.json", bytes: json([{ Config: config, RepoTags: [repoTag], Layers: layers }]) },
    {
      name: "repositories",
      bytes: json({ [repoTag.slice(0, colon)]: { [repoTag.slice(colon + 1)]: topId } }),
    },
  ];
}

async function layoutEntries(
  layout: string,
  manifests: BuiltManifest[],
  root: BuiltBlob,
): Promise<TarEntry[]> {
  const digests = new Set<string>([root.digest]);
  for (const m of manifests) for (const d of [m, m.config, ...m.layers]) digests.add(d.digest);
  return [
    { name: "oci-layout", file: join(layout, "oci-layout") },
    { name: "index.json", file: join(layout, "index.json") },
    { name: "blobs", directory: true },
    { name: "blobs/sha256", directory: true },
    ...[...digests].map((d) => ({
      name: `blobs/sha256/${hex(d)}`,
      file: join(layout, "blobs", "sha256", hex(d)),
    })),
  ];
}

function dockerName(repoTag: string): string {
  const first = repoTag.split("/")[0]!;
  const hasRegistry =
    repoTag.includes("/") && (first.includes(".") || first.includes(":") || first === "localhost");
  if (hasRegistry) return repoTag;
  return repoTag.includes("/") ? `docker.io/${repoTag}` : `docker.io/library/${repoTag}`;
}

function platformObject(platform: string): Record<string, string> {
  const [os, architecture, variant] = platform.split("/") as [string, string, string?];
  return { os, architecture, ...(variant ? { variant } : {}) };
}

function descriptor(d: BuiltBlob): BuiltBlob {
  return { mediaType: d.mediaType, digest: d.digest, size: d.size };
}

function json(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value));
}

function sha256(bytes: Buffer): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

function hex(digest: string): string {
  return digest.slice("sha256:".length);
}

async function writeBlob(blobs: string, bytes: Buffer): Promise<{ digest: string; size: number }> {
  const digest = sha256(bytes);
  await writeFile(join(blobs, hex(digest)), bytes);
  return { digest, size: bytes.length };
}

/** Generates the layer tar, hashes it before and after compression, and stores it as a blob. */
async function writeLayer(
  blobs: string,
  spec: LayerSpec,
  compression: LayerCompression,
  seed: string,
  mediaType: string,
): Promise<BuiltLayer> {
  const pack = tar.pack();
  const uncompressed = new HashingCounter();
  const compressed = new HashingCounter();
  const temporary = join(blobs, `.layer-${hex(sha256(Buffer.from(seed))).slice(0, 16)}`);
  const compressor: Transform =
    compression === "gzip"
      ? createGzip({ level: 1 })
      : compression === "zstd"
        ? new zstd.CompressStream()
        : new PassThrough();
  const written = pipeline(pack, uncompressed, compressor, compressed, createWriteStream(temporary));

  const fileSize = spec.fileSize ?? MiB;
  const content = new ContentGenerator(seed, spec.content ?? "compressible");
  let remaining = spec.size;
  for (let n = 0; remaining > 0 || n === 0; n++) {
    const size = Math.min(fileSize, remaining);
    const entry = pack.entry({
      name: `data/${String(n).padStart(5, "0")}.txt`,
      size,
      mode: 0o644,
      mtime: new Date(0),
    });
    for (let left = size; left > 0;) {
      const chunk = content.next(Math.min(64 * KiB, left));
      left -= chunk.length;
      if (!entry.write(chunk)) await once(entry, "drain");
    }
    await new Promise<void>((resolve) => entry.end(resolve));
    remaining -= size;
  }
  pack.finalize();
  await written;

  const digest = compressed.digest;
  await rename(temporary, join(blobs, hex(digest)));
  return {
    mediaType,
    digest,
    size: compressed.bytes,
    diffId: uncompressed.digest,
    uncompressedSize: uncompressed.bytes,
    compression,
  };
}

const WORDS = (
  "the of and to in is was for on are with as his they be at one have this from or had by word but what some we can out " +
  "other were all there when up use your how said an each she which do their time if will way about many then them write " +
  "would like so these her long make thing see him two has look more day could go come did number sound no most people"
)
  .split(" ")
  .map((w) => Buffer.from(`${w} `));

/** Seeded bytes: an AES-CTR keystream (fast and reproducible), raw or turned into text. */
class ContentGenerator {
  private readonly cipher;
  private readonly kind: "compressible" | "random";

  constructor(seed: string, kind: "compressible" | "random") {
    const key = createHash("sha256").update(seed).digest();
    this.cipher = createCipheriv("aes-256-ctr", key, key.subarray(0, 16));
    this.kind = kind;
  }

  next(length: number): Buffer {
    if (this.kind === "random") return this.cipher.update(Buffer.alloc(length));
    const out = Buffer.allocUnsafe(length);
    const choices = this.cipher.update(Buffer.alloc(Math.ceil(length / 2)));
    let position = 0;
    for (let i = 0; position < length; i++) {
      const word = WORDS[choices[i % choices.length]! % WORDS.length]!;
      position += word.copy(out, position);
      if (choices[i % choices.length]! < 16 && position < length) out[position++] = 0x0a;
    }
    return out;
  }
}
