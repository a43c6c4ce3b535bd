/**
 * End-to-end tests of `push` against an in-process `ecrx serve`: images in every local shape
 * (built by test/helpers/images.ts and by umoci + skopeo), every compression mode, multi-platform
 * indexes, many and large layers, tags, skipped blobs, the blob-info cache, immutable and missing
 * repositories, bad input and throttling. Every pushed image is read back through the Debian AWS
 * CLI (an independent client) with every digest and size checked.
 */
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { appendFile, mkdir, mkdtemp, readFile, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  BatchDeleteImageCommand,
  BatchGetImageCommand,
  CreateRepositoryCommand,
  DescribeImagesCommand,
  DescribeRepositoriesCommand,
  ListImagesCommand,
  type ECRClient,
} from "@aws-sdk/client-ecr";
import tar from "tar-stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { serve, type RunningServer } from "../../src/emulator/server.js";
import type { EcrxError } from "../../src/errors.js";
import { push, type PushOptions, type PushResult } from "../../src/push.js";
import { FileBlobInfoCache } from "../../src/transfer/blob-info-cache.js";
import type { TransferEvent } from "../../src/transfer/events.js";
import { cleanupAwsCli, readImageWithAwsCli, requireAwsCli, type AwsCliImage } from "../helpers/awscli.js";
import { CLI_MAIN, ensureBuilt, runCli } from "../helpers/cli.js";
import { awsOptionsFor, ecrClient } from "../helpers/emulator-clients.js";
import { expectEcrxError } from "../helpers/expect-error.js";
import { buildImage, GiB, KiB, layersOf, MiB } from "../helpers/images.js";
import { requireTool, tool } from "../helpers/tools.js";

const hasAws = requireAwsCli();
const hasSkopeo = requireTool("skopeo");
const hasUmoci = requireTool("umoci");

const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX = "application/vnd.oci.image.index.v1+json";
const DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip";
const OCI_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip";
const OCI_TAR = "application/vnd.oci.image.layer.v1.tar";

let server: RunningServer;
let ecr: ECRClient;
let work: string;
let counter = 0;

function aws(target: RunningServer = server): PushOptions["aws"] {
  return awsOptionsFor(target);
}

function ref(repository: string, tags: string, target: RunningServer = server): string {
  return `${target.registryHost}/${repository}:${tags}`;
}

/** A fresh folder for one test's images. */
async function dir(name: string): Promise<string> {
  const path = join(work, `${name}-${++counter}`);
  await mkdir(path, { recursive: true });
  return path;
}

function recorder(): { events: TransferEvent[]; onEvent: (e: TransferEvent) => void } {
  const events: TransferEvent[] = [];
  return { events, onEvent: (e) => events.push(e) };
}

/** Pushes into a repository created on the way; no on-disk cache unless a test brings one. */
function pushTo(
  source: string,
  repository: string,
  tags: string,
  options: PushOptions = {},
): Promise<PushResult> {
  return push(source, ref(repository, tags), {
    aws: aws(),
    blobInfoCache: false,
    createRepository: true,
    ...options,
  });
}

function readBack(repository: string, tag: string, expectDigest: string): Promise<AwsCliImage> {
  return readImageWithAwsCli(server, repository, { tag }, { expectDigest });
}

function sha256(bytes: Uint8Array): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

async function listImages(repository: string) {
  const out = await ecr.send(
    new ListImagesCommand({ repositoryName: repository, filter: { tagStatus: "ANY" } }),
  );
  return out.imageIds ?? [];
}

async function digestOfTag(repository: string, tag: string): Promise<string | undefined> {
  const out = await ecr.send(
    new BatchGetImageCommand({ repositoryName: repository, imageIds: [{ imageTag: tag }] }),
  );
  return out.images?.[0]?.imageId?.imageDigest;
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "ecrx-push-test-"));
  server = await serve({ port: 0 });
  ecr = ecrClient(server, { maxAttempts: 5 });
});

afterAll(async () => {
  ecr?.destroy();
  await server?.close();
  await cleanupAwsCli();
  if (work) await rm(work, { recursive: true, force: true });
});

describe.skipIf(!hasAws)("push, read back through the AWS CLI", () => {
  it("pushes a classic docker-archive: layers gzip-compressed on the way, the config byte-identical", async () => {
    const image = await buildImage({
      format: "docker-archive-classic",
      dir: await dir("classic"),
      layers: [{ size: 300 * KiB }, { size: 40 * KiB, content: "random" }],
    });
    const result = await pushTo(image.reference, "formats/classic", "v1");
    expect(result).toMatchObject({
      repository: `${server.registryHost}/formats/classic`,
      tags: ["v1"],
      sourceDigest: image.root.digest,
      blobsSent: 3,
      blobsSkipped: 0,
    });
    expect(result.digest).not.toBe(image.root.digest);

    const read = await readBack("formats/classic", "v1", result.digest);
    expect(read.mediaType).toBe(DOCKER_MANIFEST);
    const [pushed] = read.images;
    expect(pushed!.config.bytes.equals(image.manifests[0]!.config.bytes)).toBe(true);
    expect(pushed!.layers.map((l) => l.mediaType)).toEqual([DOCKER_GZIP, DOCKER_GZIP]);
    // The read-back checked each layer's decompressed digest against the config's diff_ids.
    expect(pushed!.layers.map((l) => read.blobs.get(l.digest)!.uncompressedDigest)).toEqual(
      image.manifests[0]!.layers.map((l) => l.diffId),
    );
    expect(result.bytesSent).toBe([...read.blobs.values()].reduce((sum, b) => sum + b.size, 0));
  });

  it("pushes a Docker 25+ docker-archive unchanged with compression keep (same digest)", async () => {
    const image = await buildImage({
      format: "docker-archive",
      dir: await dir("docker25"),
      layers: [{ size: 200 * KiB }, { size: 30 * KiB }],
    });
    const result = await pushTo(image.reference, "formats/docker25", "v1", { compression: "keep" });
    expect(result.digest).toBe(image.root.digest);
    const read = await readBack("formats/docker25", "v1", image.root.digest);
    expect(read.bytes.equals(image.root.bytes)).toBe(true);
    expect(read.images[0]!.layers.map((l) => l.mediaType)).toEqual([OCI_TAR, OCI_TAR]);
  });

  it("pushes a gzip-compressed docker-archive (docker save | gzip)", async () => {
    const image = await buildImage({
      format: "docker-archive-classic",
      dir: await dir("gzipped"),
      gzipArchive: true,
      layers: [{ size: 100 * KiB }],
    });
    const result = await pushTo(image.reference, "formats/gzipped", "v1", { compression: "keep" });
    // keep: the synthesized manifest of the archive, digest and all.
    expect(result.digest).toBe(image.root.digest);
    await readBack("formats/gzipped", "v1", image.root.digest);
  });

  it("pushes an OCI layout and an OCI archive with their own digests (gzip layers are kept)", async () => {
    const layout = await buildImage({ format: "oci-layout", dir: await dir("layout"), seed: "oci" });
    const archive = await buildImage({ format: "oci-archive", dir: await dir("archive"), seed: "oci" });
    expect(archive.root.digest).toBe(layout.root.digest);

    const fromLayout = await pushTo(layout.reference, "formats/oci", "layout");
    const fromArchive = await pushTo(archive.reference, "formats/oci", "archive");
    expect(fromLayout.digest).toBe(layout.root.digest);
    expect(fromArchive.digest).toBe(layout.root.digest);
    // The second push found every blob in the repository already.
    expect(fromArchive).toMatchObject({ blobsSent: 0, blobsSkipped: 2 });
    const read = await readBack("formats/oci", "archive", layout.root.digest);
    expect(read.mediaType).toBe(OCI_MANIFEST);
    expect(read.bytes.equals(layout.root.bytes)).toBe(true);
    await readBack("formats/oci", "layout", layout.root.digest);
  });

  it.skipIf(!hasSkopeo || !hasUmoci)(
    "pushes images made by umoci and converted by skopeo (oci, docker-archive, oci-archive)",
    async () => {
      const base = await dir("umoci");
      const layout = join(base, "layout");
      await tool("umoci", ["init", "--layout", layout]);
      await tool("umoci", ["new", "--image", `${layout}:v1`]);
      const content = join(base, "content.txt");
      await writeFile(content, "made by umoci\n".repeat(20_000));
      await tool("umoci", ["insert", "--image", `${layout}:v1`, content, "/data/content.txt"]);
      await tool("umoci", [
        "config",
        "--image",
        `${layout}:v1`,
        "--os",
        "linux",
        "--architecture",
        "amd64",
        "--config.cmd",
        "/bin/true",
      ]);
      const dockerArchive = join(base, "skopeo-docker.tar");
      const ociArchive = join(base, "skopeo-oci.tar");
      await tool("skopeo", ["copy", `oci:${layout}:v1`, `docker-archive:${dockerArchive}:umoci/app:v1`]);
      await tool("skopeo", ["copy", `oci:${layout}:v1`, `oci-archive:${ociArchive}:v1`]);

      const index = JSON.parse(await readFile(join(layout, "index.json"), "utf8")) as {
        manifests: { digest: string }[];
      };
      const umociDigest = index.manifests[0]!.digest;
      const umociManifest = JSON.parse(
        await readFile(join(layout, "blobs", "sha256", umociDigest.slice(7)), "utf8"),
      ) as { mediaType?: string; config: { digest: string } };
      // umoci writes no top-level mediaType: PutImage needs it as imageManifestMediaType.
      expect(umociManifest.mediaType).toBeUndefined();

      const fromLayout = await pushTo(`oci:${layout}:v1`, "tools/umoci", "layout");
      expect(fromLayout.digest).toBe(umociDigest);
      const layoutRead = await readBack("tools/umoci", "layout", umociDigest);
      expect(layoutRead.mediaType).toBe(OCI_MANIFEST);

      const fromOciArchive = await pushTo(`oci-archive:${ociArchive}`, "tools/umoci", "oci-archive", {
        compression: "keep",
      });
      const ociRead = await readBack("tools/umoci", "oci-archive", fromOciArchive.digest);
      expect(ociRead.images[0]!.config.digest).toBe(umociManifest.config.digest);

      // skopeo's docker-archive holds the layer uncompressed: it is gzip-compressed again on the way,
      // and the config (hence the diff_ids the read-back checks) is umoci's.
      const fromDocker = await pushTo(`docker-archive:${dockerArchive}`, "tools/umoci", "docker-archive");
      const dockerRead = await readBack("tools/umoci", "docker-archive", fromDocker.digest);
      expect(dockerRead.mediaType).toBe(DOCKER_MANIFEST);
      expect(dockerRead.images[0]!.config.digest).toBe(umociManifest.config.digest);
      expect(dockerRead.images[0]!.layers.map((l) => l.mediaType)).toEqual([DOCKER_GZIP]);
    },
  );

  it("pushes a multi-platform index: children by digest and untagged, the index tagged; --platform picks one", async () => {
    const image = await buildImage({
      format: "oci-layout",
      dir: await dir("multi"),
      platforms: ["linux/amd64", "linux/arm64", "linux/arm/v7"],
      layers: [{ size: 50 * KiB }, { size: 8 * KiB, seed: "shared" }],
    });
    const { events, onEvent } = recorder();
    const result = await pushTo(image.reference, "multi/app", "all", { onEvent });
    expect(result).toMatchObject({ digest: image.root.digest, mediaType: OCI_INDEX, images: 3 });
    // Children first, by digest and untagged; the index last, tagged.
    const puts = events.filter((e) => e.type === "manifest-put");
    expect(puts.map((p) => [p.digest, p.tags])).toEqual([
      ...image.manifests.map((m) => [m.digest, []]),
      [image.root.digest, ["all"]],
    ]);

    const read = await readBack("multi/app", "all", image.root.digest);
    expect(read.index?.manifests.map((m) => m.digest)).toEqual(image.manifests.map((m) => m.digest));
    expect(read.images.map((m) => m.platform?.architecture)).toEqual(["amd64", "arm64", "arm"]);
    const described = await ecr.send(new DescribeImagesCommand({ repositoryName: "multi/app" }));
    const tagsByDigest = Object.fromEntries(
      (described.imageDetails ?? []).map((d) => [d.imageDigest, d.imageTags ?? []]),
    );
    expect(tagsByDigest).toEqual({
      [image.root.digest]: ["all"],
      ...Object.fromEntries(image.manifests.map((m) => [m.digest, []])),
    });

    const arm = await pushTo(image.reference, "multi/app", "arm64", { platform: "linux/arm64" });
    expect(arm.digest).toBe(image.manifests[1]!.digest);
    expect(arm.digest).not.toBe(image.root.digest);
    expect(arm.sourceDigest).toBe(image.root.digest);
    const armRead = await readBack("multi/app", "arm64", image.manifests[1]!.digest);
    expect(armRead.index).toBeUndefined();
    expect(armRead.images[0]!.config.bytes.equals(image.manifests[1]!.config.bytes)).toBe(true);
  });

  it("pushes 30 small layers", async () => {
    const image = await buildImage({
      format: "oci-layout",
      dir: await dir("many"),
      layers: layersOf(30, { size: 2 * KiB, seed: "many" }),
    });
    const result = await pushTo(image.reference, "many/layers", "v1");
    expect(result).toMatchObject({ digest: image.root.digest, blobsSent: 31 });
    const read = await readBack("many/layers", "v1", image.root.digest);
    expect(read.blobs.size).toBe(31);
    expect(read.images[0]!.layers.map((l) => l.digest)).toEqual(
      image.manifests[0]!.layers.map((l) => l.digest),
    );
  });

  it("keeps zstd layers as they are, and decompresses them with compression none", async () => {
    const image = await buildImage({
      format: "oci-layout",
      dir: await dir("zstd"),
      layers: [
        { size: 200 * KiB, compression: "zstd" },
        { size: 20 * KiB, compression: "zstd" },
      ],
    });
    const kept = await pushTo(image.reference, "compression/zstd", "kept");
    expect(kept.digest).toBe(image.root.digest);
    const read = await readBack("compression/zstd", "kept", image.root.digest);
    expect(read.images[0]!.layers.map((l) => l.mediaType)).toEqual([
      "application/vnd.oci.image.layer.v1.tar+zstd",
      "application/vnd.oci.image.layer.v1.tar+zstd",
    ]);

    const plain = await pushTo(image.reference, "compression/zstd", "none", { compression: "none" });
    expect(plain.digest).not.toBe(image.root.digest);
    const plainRead = await readBack("compression/zstd", "none", plain.digest);
    // Decompressed, each layer is exactly what its diff_id names.
    expect(plainRead.images[0]!.layers).toEqual(
      image.manifests[0]!.layers.map((l) => ({
        mediaType: OCI_TAR,
        digest: l.diffId,
        size: l.uncompressedSize,
      })),
    );
    expect(plainRead.images[0]!.config.digest).toBe(image.manifests[0]!.config.digest);
  });

  it("compresses uncompressed layers by default; none and keep push them as they are", async () => {
    const image = await buildImage({
      format: "oci-layout",
      dir: await dir("plain"),
      layers: [
        { size: 400 * KiB, compression: "none" },
        { size: 10 * KiB, compression: "none" },
      ],
    });
    const source = image.manifests[0]!;
    const gzip = await pushTo(image.reference, "compression/plain", "gzip");
    expect(gzip.digest).not.toBe(image.root.digest);
    const gzipRead = await readBack("compression/plain", "gzip", gzip.digest);
    const pushed = gzipRead.images[0]!;
    expect(pushed.layers.map((l) => l.mediaType)).toEqual([OCI_GZIP, OCI_GZIP]);
    expect(pushed.layers.map((l) => l.digest)).not.toContain(source.layers[0]!.digest);
    // The config is byte-identical: the diff_ids still name the uncompressed layers.
    expect(pushed.config.digest).toBe(source.config.digest);
    expect(pushed.config.bytes.equals(source.config.bytes)).toBe(true);
    expect(pushed.layers[0]!.size).toBeLessThan(source.layers[0]!.size / 2);

    for (const mode of ["none", "keep"] as const) {
      const same = await pushTo(image.reference, "compression/plain", mode, { compression: mode });
      expect(same.digest, mode).toBe(image.root.digest);
      const read = await readBack("compression/plain", mode, image.root.digest);
      expect(read.images[0]!.layers).toEqual(
        source.layers.map((l) => ({ mediaType: OCI_TAR, digest: l.digest, size: l.size })),
      );
    }
  });

  it("pushes several tags: repo:a,b,c and the tags option", async () => {
    const image = await buildImage({ format: "oci-layout", dir: await dir("tags"), seed: "tags" });
    const result = await push(image.reference, ref("tags/app", "a,b,c"), {
      aws: aws(),
      blobInfoCache: false,
      createRepository: true,
      tags: ["d", "a"],
    });
    expect(result.tags).toEqual(["a", "b", "c", "d"]);
    const described = await ecr.send(new DescribeImagesCommand({ repositoryName: "tags/app" }));
    expect(described.imageDetails).toHaveLength(1);
    expect([...(described.imageDetails![0]!.imageTags ?? [])].sort()).toEqual(["a", "b", "c", "d"]);
    for (const tag of ["a", "b", "c", "d"])
      expect(await digestOfTag("tags/app", tag)).toBe(image.root.digest);
    await readBack("tags/app", "d", image.root.digest);
  });

  it("skips every blob on a second push of the same image", async () => {
    const image = await buildImage({
      format: "docker-archive-classic",
      dir: await dir("again"),
      layers: [
        { size: 64 * KiB, seed: "again-1" },
        { size: 64 * KiB, seed: "again-2" },
      ],
    });
    const first = await pushTo(image.reference, "again/app", "v1", { compression: "keep" });
    expect(first).toMatchObject({ blobsSent: 3, blobsSkipped: 0 });
    const { events, onEvent } = recorder();
    const second = await pushTo(image.reference, "again/app", "v2", { compression: "keep", onEvent });
    expect(second).toMatchObject({ digest: first.digest, blobsSent: 0, blobsSkipped: 3, bytesSent: 0 });
    expect(second.bytesSkipped).toBe(first.bytesSent);
    expect(events.filter((e) => e.type === "blob-start")).toEqual([]);
    expect(
      events
        .filter((e) => e.type === "blob-skipped")
        .map((e) => e.type === "blob-skipped" && e.digest)
        .sort(),
    ).toEqual([image.manifests[0]!.config.digest, ...image.manifests[0]!.layers.map((l) => l.diffId)].sort());
    await readBack("again/app", "v2", first.digest);
  });

  it("remembers compressed digests in the blob-info cache: a re-push skips compression and upload", async () => {
    const image = await buildImage({
      format: "docker-archive-classic",
      dir: await dir("cache"),
      layers: [
        { size: 512 * KiB, seed: "cache-1" },
        { size: 128 * KiB, seed: "cache-2" },
      ],
    });
    const cacheFile = join(await dir("cache-file"), "blob-info.json");
    const first = await pushTo(image.reference, "cache/app", "v1", {
      blobInfoCache: new FileBlobInfoCache(cacheFile),
    });
    const pushedLayers = (await readBack("cache/app", "v1", first.digest)).images[0]!.layers;
    // The file maps each uncompressed layer to what it became.
    const saved = JSON.parse(await readFile(cacheFile, "utf8")) as Record<string, { digest: string }>;
    expect(Object.keys(saved).sort()).toEqual(
      image.manifests[0]!.layers.map((l) => `${l.diffId} gzip`).sort(),
    );
    expect(image.manifests[0]!.layers.map((l) => saved[`${l.diffId} gzip`]!.digest)).toEqual(
      pushedLayers.map((l) => l.digest),
    );

    // The tag goes (and with it the image); the repository keeps the blobs.
    await ecr.send(
      new BatchDeleteImageCommand({ repositoryName: "cache/app", imageIds: [{ imageTag: "v1" }] }),
    );
    expect(await listImages("cache/app")).toEqual([]);

    // A new cache object over the same file: nothing is compressed or uploaded.
    const cached = recorder();
    const second = await pushTo(image.reference, "cache/app", "v1", {
      blobInfoCache: new FileBlobInfoCache(cacheFile),
      onEvent: cached.onEvent,
    });
    expect(second).toMatchObject({ digest: first.digest, blobsSent: 0, blobsSkipped: 3, bytesSent: 0 });
    expect(cached.events.filter((e) => e.type === "blob-start")).toEqual([]);
    await readBack("cache/app", "v1", first.digest);

    // Without the cache the same push compresses every layer again to learn its digest.
    const uncached = recorder();
    const third = await pushTo(image.reference, "cache/app", "v2", { onEvent: uncached.onEvent });
    expect(third.digest).toBe(first.digest);
    expect(
      uncached.events
        .filter((e) => e.type === "blob-start")
        .map((e) => e.type === "blob-start" && e.transform),
    ).toEqual(["compress gzip", "compress gzip"]);
  });

  it("does not trust a stale blob-info cache entry for a layer the repository lacks", async () => {
    const image = await buildImage({
      format: "docker-archive-classic",
      dir: await dir("stale-cache"),
      layers: [{ size: 256 * KiB, seed: "stale-1" }],
    });
    const layer = image.manifests[0]!.layers[0]!;
    // An entry written by another ecrx (another zlib, another gzip level): the same layer compressed
    // to other bytes, which this repository has never seen.
    const cacheFile = join(await dir("stale-cache-file"), "blob-info.json");
    const stale = { mediaType: DOCKER_GZIP, digest: sha256(Buffer.from("other bytes")), size: 11 };
    await writeFile(cacheFile, JSON.stringify({ [`${layer.diffId} gzip`]: stale }));
    const result = await pushTo(image.reference, "cache/stale", "v1", {
      blobInfoCache: new FileBlobInfoCache(cacheFile),
    });
    const read = await readBack("cache/stale", "v1", result.digest);
    const pushed = read.images[0]!.layers[0]!;
    expect(pushed.digest).not.toBe(stale.digest);
    expect(read.blobs.get(pushed.digest)!.uncompressedDigest).toBe(layer.diffId);
    // The entry now names what was pushed.
    const saved = JSON.parse(await readFile(cacheFile, "utf8")) as Record<string, { digest: string }>;
    expect(saved[`${layer.diffId} gzip`]!.digest).toBe(pushed.digest);
  });

  it("rewrites an index whose children's layers were compressed on the way", async () => {
    const image = await buildImage({
      format: "oci-layout",
      dir: await dir("multi-plain"),
      seed: "multi-plain",
      platforms: ["linux/amd64", "linux/arm64"],
      layers: [{ size: 100 * KiB, compression: "none" }],
    });
    const result = await pushTo(image.reference, "multi/plain", "v1");
    expect(result.digest).not.toBe(image.root.digest);
    const read = await readBack("multi/plain", "v1", result.digest);
    // The read-back checked each child against its index entry (digest and size) and each layer
    // against its diff_id; the configs are the source's.
    expect(read.index?.manifests.map((m) => m.platform)).toEqual([
      { os: "linux", architecture: "amd64" },
      { os: "linux", architecture: "arm64" },
    ]);
    expect(read.images.map((m) => m.config.digest)).toEqual(image.manifests.map((m) => m.config.digest));
    expect(read.images.flatMap((m) => m.layers.map((l) => l.mediaType))).toEqual([OCI_GZIP, OCI_GZIP]);
  });

  it("re-pushes the identical image to an IMMUTABLE tag; refuses another image on it (CONFLICT)", async () => {
    const first = await buildImage({ format: "oci-layout", dir: await dir("immutable-a"), seed: "imm-a" });
    const other = await buildImage({ format: "oci-layout", dir: await dir("immutable-b"), seed: "imm-b" });
    const pushed = await pushTo(first.reference, "immutable/app", "v1", { immutable: true });
    const repo = await ecr.send(new DescribeRepositoriesCommand({ repositoryNames: ["immutable/app"] }));
    expect(repo.repositories?.[0]?.imageTagMutability).toBe("IMMUTABLE");

    const again = await pushTo(first.reference, "immutable/app", "v1");
    expect(again.digest).toBe(pushed.digest);

    const err = await expectEcrxError(
      pushTo(other.reference, "immutable/app", "v1"),
      "CONFLICT",
      /tag v1 of immutable repository immutable\/app already points at sha256:/,
    );
    expect(err.message).toContain(first.root.digest);
    expect(await digestOfTag("immutable/app", "v1")).toBe(first.root.digest);
    await readBack("immutable/app", "v1", first.root.digest);
  });

  it("fails on a missing repository with the --create-repo hint and creates nothing", async () => {
    const image = await buildImage({ format: "oci-layout", dir: await dir("missing-repo"), seed: "missing" });
    const { events, onEvent } = recorder();
    const err = await expectEcrxError(
      push(image.reference, ref("nowhere/app", "v1"), { aws: aws(), blobInfoCache: false, onEvent }),
      "NOT_FOUND",
      /repository nowhere\/app does not exist/,
    );
    expect(err.hint).toContain("--create-repo");
    expect(events.filter((e) => e.type === "blob-start")).toEqual([]);
    await expect(
      ecr.send(new DescribeRepositoriesCommand({ repositoryNames: ["nowhere/app"] })),
    ).rejects.toMatchObject({ name: "RepositoryNotFoundException" });

    // createRepository makes a MUTABLE repository and pushes into it.
    const created = await push(image.reference, ref("nowhere/app", "v1"), {
      aws: aws(),
      blobInfoCache: false,
      createRepository: true,
    });
    const repo = await ecr.send(new DescribeRepositoriesCommand({ repositoryNames: ["nowhere/app"] }));
    expect(repo.repositories?.[0]?.imageTagMutability).toBe("MUTABLE");
    await readBack("nowhere/app", "v1", created.digest);
  });

  it("pushes a single layer larger than 1 GiB [large: ~30 s]", { timeout: 240_000 }, async () => {
    // Random content, uncompressed and kept so: 1 GiB + 1 MiB through UploadLayerPart, nothing
    // buffered whole. The layer's seed marks it in the registry's data.
    const image = await buildImage({
      format: "oci-layout",
      dir: await dir("large"),
      layers: [
        { size: GiB + MiB, compression: "none", content: "random", fileSize: 64 * MiB, seed: "large-1GiB" },
      ],
    });
    const layer = image.manifests[0]!.layers[0]!;
    expect(layer.size).toBeGreaterThan(GiB);
    try {
      const result = await pushTo(image.reference, "large/app", "v1", { compression: "keep" });
      expect(result.digest).toBe(image.root.digest);
      expect(result.bytesSent).toBe(layer.size + image.manifests[0]!.config.size);
      const read = await readBack("large/app", "v1", image.root.digest);
      expect(read.blobs.get(layer.digest)).toMatchObject({ digest: layer.digest, size: layer.size });
    } finally {
      await rm(image.path, { recursive: true, force: true });
    }
  });
});

describe("push refuses bad input and leaves no image behind", () => {
  let repoCount = 0;
  /** A new, empty repository for one refused push. */
  async function emptyRepository(): Promise<string> {
    const name = `bad/input-${++repoCount}`;
    await ecr.send(new CreateRepositoryCommand({ repositoryName: name }));
    return name;
  }

  async function expectRefused(
    source: string,
    code: string,
    message: RegExp,
    options: PushOptions = {},
  ): Promise<EcrxError> {
    const repository = await emptyRepository();
    const err = await expectEcrxError(
      push(source, ref(repository, "v1"), { aws: aws(), blobInfoCache: false, ...options }),
      code,
      message,
    );
    expect(await listImages(repository)).toEqual([]);
    return err;
  }

  it("refuses a file that is not a tar", async () => {
    const path = join(await dir("not-tar"), "image.tar");
    await writeFile(path, "this is not a tar archive\n".repeat(100));
    await expectRefused(`docker-archive:${path}`, "INVALID_INPUT", /image\.tar is not a tar archive/);
  });

  it("refuses a truncated tar", async () => {
    const image = await buildImage({
      format: "docker-archive-classic",
      dir: await dir("truncated"),
      layers: [{ size: 256 * KiB }],
    });
    await truncate(image.path, 100 * KiB);
    await expectRefused(image.reference, "INVALID_INPUT", /image\.tar is truncated/);
  });

  it("refuses an image with a missing blob", async () => {
    const image = await buildImage({
      format: "oci-layout",
      dir: await dir("missing-blob"),
      seed: "missing-blob",
    });
    const layer = image.manifests[0]!.layers[0]!;
    await rm(join(image.path, "blobs", "sha256", layer.digest.slice(7)));
    await expectRefused(image.reference, "INVALID_INPUT", new RegExp(`layer ${layer.digest} is missing`));
  });

  it("refuses a corrupt blob (digest mismatch) before any manifest is put", async () => {
    const image = await buildImage({
      format: "oci-layout",
      dir: await dir("corrupt"),
      seed: "corrupt",
      layers: [{ size: 64 * KiB, compression: "none" }],
    });
    const layer = image.manifests[0]!.layers[0]!;
    const file = join(image.path, "blobs", "sha256", layer.digest.slice(7));
    const bytes = await readFile(file);
    bytes[bytes.length - 600] = bytes[bytes.length - 600]! ^ 0xff; // same size, other bytes
    await writeFile(file, bytes);
    const { events, onEvent } = recorder();
    await expectRefused(
      image.reference,
      "INTEGRITY",
      new RegExp(`blob ${layer.digest} of .*digest mismatch, expected ${layer.digest}, got sha256:`),
      { onEvent, compression: "keep" },
    );
    expect(events.filter((e) => e.type === "manifest-put")).toEqual([]);
  });

  it("refuses a blob whose size differs from its descriptor", async () => {
    const image = await buildImage({ format: "oci-layout", dir: await dir("size"), seed: "size" });
    const layer = image.manifests[0]!.layers[0]!;
    await appendFile(join(image.path, "blobs", "sha256", layer.digest.slice(7)), "extra");
    await expectRefused(
      image.reference,
      "INVALID_INPUT",
      new RegExp(`layer ${layer.digest} is ${layer.size + 5} bytes, the manifest says ${layer.size}`),
    );
  });

  it("refuses an archive with a ../ member name", async () => {
    const path = join(await dir("dotdot"), "image.tar");
    const pack = tar.pack();
    pack.entry({ name: "manifest.json" }, '[{"Config":"c.json","RepoTags":[],"Layers":[]}]');
    pack.entry({ name: "../escape.txt" }, "outside");
    pack.finalize();
    const chunks: Buffer[] = [];
    for await (const chunk of pack) chunks.push(chunk as Buffer);
    await writeFile(path, Buffer.concat(chunks));
    await expectRefused(
      `docker-archive:${path}`,
      "INVALID_INPUT",
      /member "\.\.\/escape\.txt" points outside the archive/,
    );
  });

  it("refuses a manifest of an unknown media type", async () => {
    const image = await buildImage({
      format: "oci-layout",
      dir: await dir("media-type"),
      seed: "media-type",
    });
    const strange = "application/vnd.example.unknown.manifest+json";
    const doc = JSON.parse(image.root.bytes.toString("utf8")) as Record<string, unknown>;
    const bytes = Buffer.from(JSON.stringify({ ...doc, mediaType: strange }));
    const digest = sha256(bytes);
    await writeFile(join(image.path, "blobs", "sha256", digest.slice(7)), bytes);
    await writeFile(
      join(image.path, "index.json"),
      JSON.stringify({
        schemaVersion: 2,
        manifests: [
          {
            mediaType: strange,
            digest,
            size: bytes.length,
            annotations: { "org.opencontainers.image.ref.name": "latest" },
          },
        ],
      }),
    );
    await expectRefused(
      image.reference,
      "UNSUPPORTED",
      /unsupported media type "application\/vnd\.example\.unknown\.manifest\+json"/,
    );
  });

  it("refuses a platform the index does not have, listing those it has", async () => {
    const image = await buildImage({
      format: "oci-archive",
      dir: await dir("platform"),
      platforms: ["linux/amd64", "linux/arm64"],
      seed: "platform",
    });
    await expectRefused(
      image.reference,
      "UNSUPPORTED",
      /no image for platform linux\/s390x; the index has linux\/amd64, linux\/arm64/,
      {
        platform: "linux/s390x",
      },
    );
  });

  it("exits 4 with a hint when there are no credentials (CLI, empty environment)", async () => {
    ensureBuilt();
    expect(existsSync(CLI_MAIN)).toBe(true);
    const repository = await emptyRepository();
    const image = await buildImage({ format: "oci-layout", dir: await dir("no-creds"), seed: "no-creds" });
    const home = await dir("no-creds-home");
    const run = await runCli(["push", image.reference, ref(repository, "v1"), "--endpoint-url", server.url], {
      HOME: home,
      AWS_CONFIG_FILE: join(home, "none"),
      AWS_SHARED_CREDENTIALS_FILE: join(home, "none"),
      AWS_EC2_METADATA_DISABLED: "true",
      ECRX_CACHE_DIR: home,
    });
    expect(run.code, run.stderr).toBe(4);
    const lines = run.stderr.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^ecrx: .*credentials/i);
    expect(lines.find((l) => l.startsWith("hint: "))).toMatch(/AWS_ACCESS_KEY_ID|--profile/);
    expect(run.stderr).not.toMatch(/^\s+at /m);
    expect(await listImages(repository)).toEqual([]);
  });

  it.skipIf(!hasAws)(
    "survives lost UploadLayerPart answers (the part applied, the connection dropped)",
    { timeout: 120_000 },
    async () => {
      const dataDir = await dir("lost-data");
      const lossy = await serve({ port: 0, dataDir, faults: "UploadLayerPart:lost=0.3", faultSeed: 4242 });
      const image = await buildImage({
        format: "oci-layout",
        dir: await dir("lost"),
        seed: "lost",
        layers: [{ size: 16 * MiB, content: "random", compression: "none" }],
      });
      let result: PushResult;
      let retries = 0;
      try {
        result = await push(image.reference, ref("lossy/app", "v1", lossy), {
          aws: { ...aws(lossy), retry: { baseDelayMs: 10, onRetry: () => void retries++ } },
          blobInfoCache: false,
          createRepository: true,
          compression: "keep",
          partSize: 5 * MiB,
        });
      } finally {
        await lossy.close();
      }
      expect(result.digest).toBe(image.root.digest);
      expect(retries, "some answers were lost and the parts asked again").toBeGreaterThan(0);
      const calm = await serve({ port: 0, dataDir });
      try {
        await readImageWithAwsCli(calm, "lossy/app", { tag: "v1" }, { expectDigest: image.root.digest });
      } finally {
        await calm.close();
      }
    },
  );

  it.skipIf(!hasAws)(
    "succeeds against a registry that throttles 30% of requests",
    { timeout: 120_000 },
    async () => {
      const dataDir = await dir("throttled-data");
      const throttled = await serve({ port: 0, dataDir, faults: "*:throttle=0.3", faultSeed: 20_261_130 });
      const image = await buildImage({
        format: "docker-archive-classic",
        dir: await dir("throttled"),
        layers: layersOf(6, { size: 16 * KiB, seed: "throttled" }),
      });
      const throttles: string[] = [];
      let result: PushResult;
      try {
        result = await push(image.reference, ref("throttled/app", "v1", throttled), {
          aws: {
            ...aws(throttled),
            retry: {
              throttlingBaseDelayMs: 50,
              onRetry: (info) => {
                if (info.errorType === "THROTTLING") throttles.push(info.errorName);
              },
            },
          },
          blobInfoCache: false,
          createRepository: true,
        });
      } finally {
        await throttled.close();
      }
      expect(throttles.length).toBeGreaterThan(0);
      expect(new Set(throttles)).toEqual(new Set(["ThrottlingException"]));
      // Read back through a server without faults over the same data.
      const calm = await serve({ port: 0, dataDir });
      try {
        const read = await readImageWithAwsCli(
          calm,
          "throttled/app",
          { tag: "v1" },
          { expectDigest: result.digest },
        );
        expect(read.blobs.size).toBe(7);
      } finally {
        await calm.close();
      }
    },
  );
});
