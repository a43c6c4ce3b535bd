/**
 * The Debian AWS CLI (`/usr/bin/aws`, v2.9: botocore, an SDK independent of ours) as a second
 * client of `ecrx serve`:
 * - `readImageWithAwsCli` reads a pushed image back the way any ECR client would: BatchGetImage
 *   (every manifest type accepted, so nothing is converted), each child of an index by digest,
 *   GetDownloadUrlForLayer for every blob and a plain GET of that URL (no Authorization header),
 *   checking every digest and size on the way; it returns what it read for tests to assert on;
 * - `pushImageWithAwsCli` pushes an image from an OCI layout through the layer-upload commands
 *   (initiate-layer-upload, upload-layer-part in parts of >= 5 MiB, complete-layer-upload,
 *   put-image), so that a pull can be tested on an image ecrx did not write.
 * v2.9 predates the service-specific AWS_ENDPOINT_URL_* variables: the endpoint goes in
 * --endpoint-url. Credentials and region are set for the child process only; no config file,
 * credentials file, pager or instance metadata is consulted.
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, open, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { once } from "node:events";
import type { Transform } from "node:stream";
import { promisify } from "node:util";
import { createGunzip } from "node:zlib";
import pLimit from "p-limit";
import { request } from "undici";
import { it } from "vitest";
import zstd from "zstd-napi";

const run = promisify(execFile);

export const AWS_CLI = "/usr/bin/aws";

/** Every manifest type ECR stores: asking for all of them means ECR never converts. */
export const ALL_MANIFEST_TYPES = [
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.docker.distribution.manifest.v2+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
];

const INDEX_TYPES = new Set([ALL_MANIFEST_TYPES[1], ALL_MANIFEST_TYPES[3]]);

/** What the CLI needs of a running emulator (RunningServer has it). */
export interface AwsCliEndpoint {
  url: string;
  region: string;
  env: Record<string, string>;
}

export function awsCliInstalled(): boolean {
  return existsSync(AWS_CLI);
}

/**
 * Whether the AWS CLI can run. Under CI=true a missing CLI fails a test instead of skipping
 * silently; elsewhere the skip is announced with its reason (the pattern of tools.ts).
 */
export function requireAwsCli(): boolean {
  const available = awsCliInstalled();
  if (!available) {
    if (process.env.CI === "true") {
      it(`${AWS_CLI} is installed (required under CI)`, () => {
        throw new Error(`${AWS_CLI} is not installed; the read-back checks need it (apt-get install awscli)`);
      });
    } else {
      console.warn(`skipping tests that read back through the AWS CLI: ${AWS_CLI} is not installed`);
    }
  }
  return available;
}

let scratch: Promise<string> | undefined;
/** A HOME for the CLI (it writes a cache there) and room for part files. */
function scratchDir(): Promise<string> {
  scratch ??= mkdtemp(join(tmpdir(), "ecrx-awscli-"));
  return scratch;
}

/** Removes the CLI's scratch folder; call in afterAll. */
export async function cleanupAwsCli(): Promise<void> {
  if (scratch === undefined) return;
  const dir = await scratch;
  scratch = undefined;
  await rm(dir, { recursive: true, force: true });
}

/** Runs `aws ecr <args>` against the server and parses its JSON output. */
export async function awsEcr(server: AwsCliEndpoint, args: string[]): Promise<Record<string, unknown>> {
  const home = await scratchDir();
  try {
    const { stdout } = await run(
      AWS_CLI,
      ["ecr", ...args, "--endpoint-url", server.url, "--region", server.region, "--output", "json"],
      {
        env: {
          PATH: "/usr/bin:/bin",
          HOME: home,
          AWS_ACCESS_KEY_ID: server.env.AWS_ACCESS_KEY_ID ?? "",
          AWS_SECRET_ACCESS_KEY: server.env.AWS_SECRET_ACCESS_KEY ?? "",
          AWS_REGION: server.region,
          AWS_CONFIG_FILE: "/dev/null",
          AWS_SHARED_CREDENTIALS_FILE: "/dev/null",
          AWS_PAGER: "",
          AWS_EC2_METADATA_DISABLED: "true",
        },
        maxBuffer: 64 * 1024 * 1024,
      },
    );
    return stdout.trim() === "" ? {} : (JSON.parse(stdout) as Record<string, unknown>);
  } catch (err) {
    const e = err as Error & { stderr?: string };
    throw new Error(`aws ecr ${args[0] ?? ""} failed: ${(e.stderr ?? e.message).trim()}`);
  }
}

export interface AwsCliBlob {
  digest: string;
  size: number;
  mediaType: string;
}

export interface AwsCliDownloadedBlob extends AwsCliBlob {
  /** sha256 of the decompressed bytes (gzip and zstd layers), else the digest itself. */
  uncompressedDigest: string;
}

export interface AwsCliImageManifest {
  digest: string;
  mediaType: string;
  bytes: Buffer;
  /** The manifest, parsed. */
  json: {
    mediaType?: string;
    config: AwsCliBlob;
    layers: AwsCliBlob[];
    [key: string]: unknown;
  };
  config: AwsCliBlob & { bytes: Buffer };
  layers: AwsCliBlob[];
  /** The platform of the index entry that names this image. */
  platform?: { os: string; architecture: string; variant?: string };
}

export interface AwsCliImage {
  /** sha256 of the manifest bytes the registry returned (checked against its imageDigest). */
  digest: string;
  mediaType: string;
  bytes: Buffer;
  /** For an index: the index document; for an image: undefined. */
  index:
    | { mediaType?: string; manifests: (AwsCliBlob & { platform?: AwsCliImageManifest["platform"] })[] }
    | undefined;
  /** The image manifests: the image itself, or each child of the index in order. */
  images: AwsCliImageManifest[];
  /** Every blob downloaded (each once), with the size and digest it was verified to have. */
  blobs: Map<string, AwsCliDownloadedBlob>;
}

interface BatchGetImageOutput {
  images?: {
    imageId?: { imageDigest?: string; imageTag?: string };
    imageManifest?: string;
    imageManifestMediaType?: string;
  }[];
  failures?: { imageId?: unknown; failureCode?: string; failureReason?: string }[];
}

function sha256(bytes: Uint8Array): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

async function batchGetImage(
  server: AwsCliEndpoint,
  repository: string,
  imageIds: string[],
): Promise<{ digest: string; mediaType: string; bytes: Buffer }[]> {
  const out = (await awsEcr(server, [
    "batch-get-image",
    "--repository-name",
    repository,
    "--image-ids",
    ...imageIds,
    "--accepted-media-types",
    ...ALL_MANIFEST_TYPES,
  ])) as BatchGetImageOutput;
  if ((out.failures ?? []).length > 0) {
    throw new Error(`batch-get-image ${repository} ${imageIds.join(" ")}: ${JSON.stringify(out.failures)}`);
  }
  const images = out.images ?? [];
  if (images.length !== imageIds.length) {
    throw new Error(`batch-get-image returned ${images.length} images for ${imageIds.length} ids`);
  }
  return images.map((image) => {
    const bytes = Buffer.from(image.imageManifest ?? "", "utf8");
    const digest = sha256(bytes);
    if (image.imageId?.imageDigest !== digest) {
      throw new Error(`manifest bytes hash to ${digest}, the registry says ${image.imageId?.imageDigest}`);
    }
    return { digest, mediaType: image.imageManifestMediaType ?? "", bytes };
  });
}

/** How a layer media type says its bytes are compressed. */
function compressionOf(mediaType: string): "gzip" | "zstd" | "none" {
  if (/[+.]gzip$/.test(mediaType)) return "gzip";
  if (/[+.]zstd$/.test(mediaType)) return "zstd";
  return "none";
}

/**
 * GETs a presigned URL without any Authorization header, hashing and counting the body; with
 * `uncompress`, also the digest of the decompressed bytes (a layer's diff_id).
 */
async function fetchBlob(
  url: string,
  options: { keep: boolean; uncompress: "gzip" | "zstd" | "none" },
): Promise<{ digest: string; size: number; uncompressedDigest: string; bytes?: Buffer }> {
  const response = await request(url, { method: "GET" });
  if (response.statusCode !== 200) {
    const text = await response.body.text();
    throw new Error(`GET of the download URL answered ${response.statusCode}: ${text.slice(0, 200)}`);
  }
  const hash = createHash("sha256");
  const plain = createHash("sha256");
  const decompress: Transform | undefined =
    options.uncompress === "gzip"
      ? createGunzip()
      : options.uncompress === "zstd"
        ? new zstd.DecompressStream()
        : undefined;
  const decompressed = decompress
    ? (async () => {
        for await (const chunk of decompress) plain.update(chunk as Buffer);
      })()
    : undefined;
  decompressed?.catch(() => undefined);
  const chunks: Buffer[] = [];
  let size = 0;
  // A corrupt compressed blob breaks the decompressor; the body is still read whole so that the
  // digest mismatch, the clearer message, is reported first.
  let decompressError: unknown;
  for await (const chunk of response.body) {
    const buffer = chunk as Buffer;
    hash.update(buffer);
    size += buffer.length;
    if (options.keep) chunks.push(buffer);
    if (!decompress) plain.update(buffer);
    else if (decompressError === undefined) {
      try {
        if (!decompress.write(buffer)) await once(decompress, "drain");
      } catch (err) {
        decompressError = err;
      }
    }
  }
  if (decompress && decompressError === undefined) {
    decompress.end();
    await decompressed!.catch((err: unknown) => (decompressError = err));
  }
  decompress?.destroy();
  return {
    digest: `sha256:${hash.digest("hex")}`,
    size,
    uncompressedDigest:
      decompressError === undefined
        ? `sha256:${plain.digest("hex")}`
        : `(not decompressible: ${decompressError instanceof Error ? decompressError.message : "error"})`,
    ...(options.keep ? { bytes: Buffer.concat(chunks) } : {}),
  };
}

/**
 * Reads `repository:tag` (or `@digest`) back through the AWS CLI and checks everything it reads:
 * the manifest's sha256 against the registry's imageDigest (and `expectDigest` when given), each
 * child of an index against its index entry, and every blob, downloaded from its presigned URL,
 * against the digest and size its manifest names. Throws on the first mismatch.
 */
export async function readImageWithAwsCli(
  server: AwsCliEndpoint,
  repository: string,
  ref: { tag: string } | { digest: string },
  options: { expectDigest?: string } = {},
): Promise<AwsCliImage> {
  const id = "tag" in ref ? `imageTag=${ref.tag}` : `imageDigest=${ref.digest}`;
  const [root] = await batchGetImage(server, repository, [id]);
  if (options.expectDigest !== undefined && root!.digest !== options.expectDigest) {
    throw new Error(`${repository} ${id} is ${root!.digest}, expected ${options.expectDigest}`);
  }
  if ("digest" in ref && root!.digest !== ref.digest) {
    throw new Error(`${repository}@${ref.digest} returned a manifest hashing to ${root!.digest}`);
  }
  const doc = JSON.parse(root!.bytes.toString("utf8")) as Record<string, unknown>;
  const rootType = typeof doc.mediaType === "string" ? doc.mediaType : root!.mediaType;

  let index: AwsCliImage["index"];
  let manifests: {
    digest: string;
    mediaType: string;
    bytes: Buffer;
    platform?: AwsCliImageManifest["platform"];
  }[];
  if (INDEX_TYPES.has(rootType)) {
    index = doc as unknown as NonNullable<AwsCliImage["index"]>;
    const children = await batchGetImage(
      server,
      repository,
      index.manifests.map((m) => `imageDigest=${m.digest}`),
    );
    manifests = index.manifests.map((entry, i) => {
      const child = children.find((c) => c.digest === entry.digest);
      if (child === undefined)
        throw new Error(`child ${entry.digest} was not returned (got #${i} of another digest)`);
      if (child.bytes.length !== entry.size) {
        throw new Error(
          `child ${entry.digest} has ${child.bytes.length} bytes, the index says ${entry.size}`,
        );
      }
      return { ...child, ...(entry.platform ? { platform: entry.platform } : {}) };
    });
  } else {
    index = undefined;
    manifests = [root!];
  }

  const blobs = new Map<string, AwsCliDownloadedBlob>();
  const configs = new Map<string, Buffer>();
  const limit = pLimit(3);
  const downloads = new Map<string, Promise<void>>();
  const download = (blob: AwsCliBlob, keep: boolean): Promise<void> => {
    let pending = downloads.get(blob.digest);
    if (pending === undefined) {
      pending = limit(async () => {
        const out = (await awsEcr(server, [
          "get-download-url-for-layer",
          "--repository-name",
          repository,
          "--layer-digest",
          blob.digest,
        ])) as { downloadUrl?: string; layerDigest?: string };
        if (out.layerDigest !== blob.digest || typeof out.downloadUrl !== "string") {
          throw new Error(`get-download-url-for-layer ${blob.digest} answered ${JSON.stringify(out)}`);
        }
        const got = await fetchBlob(out.downloadUrl, {
          keep,
          uncompress: keep ? "none" : compressionOf(blob.mediaType),
        });
        if (got.digest !== blob.digest) throw new Error(`blob ${blob.digest} downloaded as ${got.digest}`);
        if (got.size !== blob.size) {
          throw new Error(`blob ${blob.digest} has ${got.size} bytes, its manifest says ${blob.size}`);
        }
        if (keep) configs.set(blob.digest, got.bytes!);
        blobs.set(blob.digest, {
          digest: blob.digest,
          size: got.size,
          mediaType: blob.mediaType,
          uncompressedDigest: got.uncompressedDigest,
        });
      });
      downloads.set(blob.digest, pending);
    }
    return pending;
  };

  const parsed = manifests.map((m) => {
    const json = JSON.parse(m.bytes.toString("utf8")) as AwsCliImageManifest["json"];
    if (typeof json.config?.digest !== "string" || !Array.isArray(json.layers)) {
      throw new Error(`manifest ${m.digest} is not an image manifest`);
    }
    return { ...m, json };
  });
  await Promise.all(
    parsed.flatMap((m) => [download(m.json.config, true), ...m.json.layers.map((l) => download(l, false))]),
  );

  const images: AwsCliImageManifest[] = parsed.map((m) => ({
    digest: m.digest,
    mediaType: typeof m.json.mediaType === "string" ? m.json.mediaType : m.mediaType,
    bytes: m.bytes,
    json: m.json,
    config: { ...m.json.config, bytes: configs.get(m.json.config.digest)! },
    layers: m.json.layers,
    ...(m.platform ? { platform: m.platform } : {}),
  }));
  // Each layer, decompressed, is what its config's rootfs.diff_ids names: a recompressed layer
  // still holds the same files.
  for (const image of images) {
    const config = JSON.parse(image.config.bytes.toString("utf8")) as { rootfs?: { diff_ids?: string[] } };
    const diffIds = config.rootfs?.diff_ids;
    if (diffIds === undefined) continue;
    if (diffIds.length !== image.layers.length) {
      throw new Error(`${image.digest}: ${image.layers.length} layers, ${diffIds.length} diff_ids`);
    }
    image.layers.forEach((layer, i) => {
      const got = blobs.get(layer.digest)!.uncompressedDigest;
      if (got !== diffIds[i]) {
        throw new Error(
          `layer ${layer.digest} of ${image.digest} decompresses to ${got}, diff_id is ${diffIds[i]}`,
        );
      }
    });
  }
  return { digest: root!.digest, mediaType: rootType, bytes: root!.bytes, index, images, blobs };
}

/** The minimum part size of ECR's layer upload (all parts but the last). */
const PART_SIZE = 5 * 1024 * 1024;

/** Uploads one blob file through the CLI's layer-upload commands; returns the registry's digest. */
export async function uploadBlobWithAwsCli(
  server: AwsCliEndpoint,
  repository: string,
  file: string,
  partSize = PART_SIZE,
): Promise<string> {
  const dir = await scratchDir();
  const { uploadId } = (await awsEcr(server, ["initiate-layer-upload", "--repository-name", repository])) as {
    uploadId: string;
  };
  const handle = await open(file, "r");
  const hash = createHash("sha256");
  try {
    const { size } = await handle.stat();
    for (let first = 0; first < size; first += partSize) {
      const length = Math.min(partSize, size - first);
      const part = Buffer.alloc(length);
      await handle.read(part, 0, length, first);
      hash.update(part);
      const partFile = join(dir, `part-${uploadId}-${first}`);
      await writeFile(partFile, part);
      try {
        const out = await awsEcr(server, [
          "upload-layer-part",
          "--repository-name",
          repository,
          "--upload-id",
          uploadId,
          "--part-first-byte",
          String(first),
          "--part-last-byte",
          String(first + length - 1),
          "--layer-part-blob",
          `fileb://${partFile}`,
        ]);
        if (out.lastByteReceived !== first + length - 1) {
          throw new Error(`upload-layer-part acknowledged ${String(out.lastByteReceived)}`);
        }
      } finally {
        await rm(partFile, { force: true });
      }
    }
  } finally {
    await handle.close();
  }
  const digest = `sha256:${hash.digest("hex")}`;
  const done = await awsEcr(server, [
    "complete-layer-upload",
    "--repository-name",
    repository,
    "--upload-id",
    uploadId,
    "--layer-digests",
    digest,
  ]);
  if (done.layerDigest !== digest) throw new Error(`complete-layer-upload answered ${JSON.stringify(done)}`);
  return digest;
}

/** Puts manifest bytes through the CLI, untagged when `tag` is undefined; returns the digest. */
export async function putImageWithAwsCli(
  server: AwsCliEndpoint,
  repository: string,
  manifest: Buffer,
  mediaType: string,
  tag?: string,
): Promise<string> {
  const out = (await awsEcr(server, [
    "put-image",
    "--repository-name",
    repository,
    "--image-manifest",
    manifest.toString("utf8"),
    "--image-manifest-media-type",
    mediaType,
    ...(tag === undefined ? [] : ["--image-tag", tag]),
  ])) as { image?: { imageId?: { imageDigest?: string } } };
  const digest = out.image?.imageId?.imageDigest;
  if (digest !== sha256(manifest))
    throw new Error(`put-image stored ${digest}, expected ${sha256(manifest)}`);
  return digest;
}

/**
 * Pushes the image at the root of an OCI layout (as buildImage writes one) with the AWS CLI alone:
 * every blob through the layer-upload commands, the children of an index by digest, the root
 * under `tag`. Returns the root's digest.
 */
export async function pushLayoutWithAwsCli(
  server: AwsCliEndpoint,
  repository: string,
  layout: string,
  tag: string,
): Promise<string> {
  const blobFile = (digest: string) => join(layout, "blobs", "sha256", digest.slice("sha256:".length));
  const readJson = async (digest: string) => {
    const bytes = await readFile(blobFile(digest));
    return { bytes, doc: JSON.parse(bytes.toString("utf8")) as Record<string, unknown> };
  };
  const layoutIndex = JSON.parse(await readFile(join(layout, "index.json"), "utf8")) as {
    manifests: AwsCliBlob[];
  };
  const rootEntry = layoutIndex.manifests[0]!;
  const uploaded = new Set<string>();
  const pushImage = async (digest: string, mediaType: string, imageTag?: string) => {
    const { bytes, doc } = await readJson(digest);
    for (const blob of [doc.config, ...(doc.layers as AwsCliBlob[])] as AwsCliBlob[]) {
      if (uploaded.has(blob.digest)) continue;
      const got = await uploadBlobWithAwsCli(server, repository, blobFile(blob.digest));
      if (got !== blob.digest) throw new Error(`uploaded ${blob.digest} as ${got}`);
      uploaded.add(blob.digest);
    }
    return putImageWithAwsCli(server, repository, bytes, mediaType, imageTag);
  };
  if (INDEX_TYPES.has(rootEntry.mediaType)) {
    const { bytes, doc } = await readJson(rootEntry.digest);
    for (const child of doc.manifests as AwsCliBlob[]) await pushImage(child.digest, child.mediaType);
    return putImageWithAwsCli(server, repository, bytes, rootEntry.mediaType, tag);
  }
  return pushImage(rootEntry.digest, rootEntry.mediaType, tag);
}
