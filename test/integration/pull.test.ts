/**
 * End-to-end tests of `pull` from an in-process `ecrx serve`: an index pushed by the AWS CLI alone
 * (no ecrx code on the way in), single images pushed by ecrx; into docker-archive, OCI layout and
 * OCI archive, each checked by skopeo (which verifies digests as it reads); ranged downloads;
 * expired download URLs, dropped connections and corrupt stored blobs.
 */
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from "node:fs/promises";
import { Server, type IncomingMessage } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CreateRepositoryCommand } from "@aws-sdk/client-ecr";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { serve, type RunningServer, type ServeOptions } from "../../src/emulator/server.js";
import { hostPlatform } from "../../src/manifest/platform.js";
import { pull, type PullOptions } from "../../src/pull.js";
import { push } from "../../src/push.js";
import { cleanupAwsCli, pushLayoutWithAwsCli, requireAwsCli } from "../helpers/awscli.js";
import { awsOptionsFor, ecrClient } from "../helpers/emulator-clients.js";
import { expectEcrxError } from "../helpers/expect-error.js";
import { buildImage, KiB, MiB, type BuiltImage } from "../helpers/images.js";
import { requireTool, tool } from "../helpers/tools.js";

const hasAws = requireAwsCli();
const hasSkopeo = requireTool("skopeo");

const OCI_INDEX = "application/vnd.oci.image.index.v1+json";
const REF_NAME = "org.opencontainers.image.ref.name";

let server: RunningServer;
let work: string;
let counter = 0;
/** The two-platform index pushed by the AWS CLI (or by ecrx when the CLI is missing). */
let multi: BuiltImage;
/** A one-platform image with Docker media types, and one with OCI media types, pushed by ecrx. */
let dockerImage: BuiltImage;
let ociImage: BuiltImage;

function aws(target: RunningServer = server): PullOptions["aws"] {
  return awsOptionsFor(target);
}

function remote(repository: string, tagOrDigest: string, target: RunningServer = server): string {
  const separator = tagOrDigest.startsWith("sha256:") ? "@" : ":";
  return `${target.registryHost}/${repository}${separator}${tagOrDigest}`;
}

async function dir(name: string): Promise<string> {
  const path = join(work, `${name}-${++counter}`);
  await mkdir(path, { recursive: true });
  return path;
}

function sha256(bytes: Uint8Array): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

async function pushWithEcrx(image: BuiltImage, repository: string, tag: string, target = server) {
  return push(image.reference, remote(repository, tag, target), {
    aws: aws(target),
    blobInfoCache: false,
    createRepository: true,
    compression: "keep",
  });
}

/** The HTTP requests an in-process server receives while `work` runs (method, URL, headers). */
async function recordRequests<T>(
  work: () => Promise<T>,
  onRequest?: (req: IncomingMessage) => void,
): Promise<{ result: T; requests: IncomingMessage[] }> {
  const requests: IncomingMessage[] = [];
  // eslint-disable-next-line @typescript-eslint/unbound-method
  const original = Server.prototype.emit;
  Server.prototype.emit = function (this: Server, event: string | symbol, ...args: unknown[]) {
    if (event === "request") {
      const req = args[0] as IncomingMessage;
      requests.push(req);
      onRequest?.(req);
    }
    return original.apply(this, [event, ...args] as Parameters<typeof original>);
  } as typeof original;
  try {
    return { result: await work(), requests };
  } finally {
    Server.prototype.emit = original;
  }
}

function blobGets(requests: IncomingMessage[], digest: string): IncomingMessage[] {
  return requests.filter((r) => r.method === "GET" && (r.url ?? "").includes(digest.slice("sha256:".length)));
}

async function readLayoutIndex(layout: string) {
  return JSON.parse(await readFile(join(layout, "index.json"), "utf8")) as {
    manifests: { mediaType: string; digest: string; size: number; annotations?: Record<string, string> }[];
  };
}

/** An image with one random layer of `size` bytes (uncompressed, so kept as is) on a server of its own. */
async function serverWithImage(
  options: ServeOptions,
  size: number,
  seed: string,
): Promise<{ target: RunningServer; image: BuiltImage; digest: string }> {
  const target = await serve({ port: 0, ...options });
  const image = await buildImage({
    format: "oci-layout",
    dir: await dir(seed),
    seed,
    layers: [{ size, content: "random", compression: "none" }],
  });
  const pushed = await pushWithEcrx(image, "faults/app", "v1", target);
  return { target, image, digest: pushed.digest };
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "ecrx-pull-test-"));
  server = await serve({ port: 0 });

  // Two platforms with OCI media types (skopeo 1.9 reads only those from layouts); a 6 MiB random
  // layer per platform goes up in two parts.
  multi = await buildImage({
    format: "oci-layout",
    dir: await dir("multi"),
    seed: "pull-multi",
    platforms: ["linux/amd64", "linux/arm64"],
    layers: [{ size: 6 * MiB, content: "random" }, { size: 20 * KiB }],
  });
  if (hasAws) {
    const ecr = ecrClient(server);
    await ecr.send(new CreateRepositoryCommand({ repositoryName: "cli/multi" }));
    ecr.destroy();
    const digest = await pushLayoutWithAwsCli(server, "cli/multi", multi.path, "v1");
    expect(digest).toBe(multi.root.digest);
  } else {
    await pushWithEcrx(multi, "cli/multi", "v1");
  }

  dockerImage = await buildImage({
    format: "docker-archive-classic",
    dir: await dir("docker"),
    seed: "pull-docker",
    layers: [{ size: 300 * KiB }, { size: 10 * KiB }],
  });
  await pushWithEcrx(dockerImage, "single/docker", "v1");
  ociImage = await buildImage({ format: "oci-layout", dir: await dir("oci"), seed: "pull-oci" });
  await pushWithEcrx(ociImage, "single/oci", "v1");
}, 120_000);

afterAll(async () => {
  await server?.close();
  await cleanupAwsCli();
  if (work) await rm(work, { recursive: true, force: true });
});

describe("pull", () => {
  it("pulls a whole index pushed by the AWS CLI into an OCI layout; skopeo reads it; pushed back it keeps its digest", async () => {
    const layout = join(await dir("all"), "layout");
    const result = await pull(remote("cli/multi", "v1"), `oci:${layout}:v1`, {
      aws: aws(),
      allPlatforms: true,
    });
    expect(result).toMatchObject({
      digest: multi.root.digest,
      mediaType: OCI_INDEX,
      images: 2,
      destination: `oci:${layout}:v1`,
    });
    expect((await readLayoutIndex(layout)).manifests).toEqual([
      {
        mediaType: OCI_INDEX,
        digest: multi.root.digest,
        size: multi.root.size,
        annotations: { [REF_NAME]: "v1" },
      },
    ]);
    // Every blob of both platforms is in the layout, byte for byte.
    for (const m of multi.manifests) {
      for (const blob of [m, m.config, ...m.layers]) {
        const bytes = await readFile(join(layout, "blobs", "sha256", blob.digest.slice(7)));
        expect(sha256(bytes)).toBe(blob.digest);
      }
    }

    if (hasSkopeo) {
      const raw = await tool("skopeo", ["inspect", "--raw", `oci:${layout}:v1`]);
      expect(sha256(Buffer.from(raw))).toBe(multi.root.digest);
      // skopeo verifies every blob it copies against its digest.
      await tool("skopeo", ["copy", "--all", `oci:${layout}:v1`, `oci:${join(layout, "..", "copy")}:v1`]);
    }

    const back = await push(`oci:${layout}:v1`, remote("roundtrip/multi", "v1"), {
      aws: aws(),
      blobInfoCache: false,
      createRepository: true,
      compression: "keep",
    });
    expect(back.digest).toBe(multi.root.digest);
  });

  it("takes the host's platform out of an index by default, and --platform's when given", async () => {
    const host = hostPlatform();
    const hostIndex = multi.manifests.findIndex((m) => m.platform === `${host.os}/${host.architecture}`);
    expect(hostIndex, "the test image has this host's platform").toBeGreaterThanOrEqual(0);
    const layout = join(await dir("host"), "layout");
    const result = await pull(remote("cli/multi", "v1"), `oci:${layout}:v1`, { aws: aws() });
    expect(result.digest).toBe(multi.manifests[hostIndex]!.digest);
    expect(result.images).toBe(1);
    const entries = (await readLayoutIndex(layout)).manifests;
    expect(entries.map((e) => e.digest)).toEqual([multi.manifests[hostIndex]!.digest]);
    if (hasSkopeo) {
      const inspected = JSON.parse(await tool("skopeo", ["inspect", `oci:${layout}:v1`])) as {
        Digest: string;
        Architecture: string;
      };
      expect(inspected).toMatchObject({
        Digest: multi.manifests[hostIndex]!.digest,
        Architecture: host.architecture,
      });
    }

    const other = multi.manifests.find((_, i) => i !== hostIndex)!;
    const otherLayout = join(await dir("other"), "layout");
    const picked = await pull(remote("cli/multi", "v1"), `oci:${otherLayout}:v1`, {
      aws: aws(),
      platform: other.platform,
    });
    expect(picked.digest).toBe(other.digest);
  });

  it("pulls one platform of the index into a docker-archive that skopeo reads and copies", async () => {
    const arm = multi.manifests.find((m) => m.platform === "linux/arm64")!;
    const path = join(await dir("docker-arm"), "arm.tar");
    const result = await pull(remote("cli/multi", "v1"), `docker-archive:${path}`, {
      aws: aws(),
      platform: "linux/arm64",
    });
    expect(result.digest).toBe(arm.digest);

    const name = `${server.registryHost}/cli/multi`;
    const manifestJson = JSON.parse(await tool("tar", ["-xOf", path, "manifest.json"])) as unknown;
    expect(manifestJson).toEqual([
      {
        Config: `${arm.config.digest.slice(7)}.json`,
        RepoTags: [`${name}:v1`],
        Layers: arm.layers.map((l) => `${l.digest.slice(7)}/layer.tar`),
      },
    ]);
    const repositories = JSON.parse(await tool("tar", ["-xOf", path, "repositories"])) as unknown;
    expect(repositories).toEqual({ [name]: { v1: arm.layers.at(-1)!.digest.slice(7) } });
    const config = await tool("tar", ["-xOf", path, `${arm.config.digest.slice(7)}.json`]);
    expect(sha256(Buffer.from(config))).toBe(arm.config.digest);

    if (hasSkopeo) {
      const inspected = JSON.parse(await tool("skopeo", ["inspect", `docker-archive:${path}`])) as {
        Architecture: string;
        Layers: string[];
        RepoTags?: string[];
      };
      expect(inspected.Architecture).toBe("arm64");
      // skopeo names docker-archive layers by their diff_ids (it decompresses layer.tar itself).
      expect(inspected.Layers).toEqual(arm.layers.map((l) => l.diffId));
      const copied = join(path, "..", "copied");
      await tool("skopeo", ["copy", `docker-archive:${path}`, `oci:${copied}:v1`]);
      const copiedIndex = await readLayoutIndex(copied);
      const copiedManifest = JSON.parse(
        await readFile(join(copied, "blobs", "sha256", copiedIndex.manifests[0]!.digest.slice(7)), "utf8"),
      ) as { config: { digest: string } };
      // skopeo rewrites the config for the OCI manifest; the layers it names are the same.
      const copiedConfig = JSON.parse(
        await readFile(join(copied, "blobs", "sha256", copiedManifest.config.digest.slice(7)), "utf8"),
      ) as { architecture: string; rootfs: { diff_ids: string[] } };
      expect(copiedConfig.architecture).toBe("arm64");
      expect(copiedConfig.rootfs.diff_ids).toEqual(arm.layers.map((l) => l.diffId));
    }
  });

  it("pulls a Docker-typed image into a named docker-archive", async () => {
    const path = join(await dir("docker-single"), "single.tar");
    const result = await pull(remote("single/docker", "v1"), `docker-archive:${path}:example/app:1.0`, {
      aws: aws(),
    });
    expect(result.digest).toBe(dockerImage.root.digest);
    const manifestJson = JSON.parse(await tool("tar", ["-xOf", path, "manifest.json"])) as {
      RepoTags: string[];
      Layers: string[];
    }[];
    // Normalized as skopeo writes it; docker load tags it example/app:1.0 all the same.
    expect(manifestJson[0]!.RepoTags).toEqual(["docker.io/example/app:1.0"]);
    expect(manifestJson[0]!.Layers).toEqual(
      dockerImage.manifests[0]!.layers.map((l) => `${l.diffId.slice(7)}/layer.tar`),
    );
    if (hasSkopeo) {
      const inspected = JSON.parse(await tool("skopeo", ["inspect", `docker-archive:${path}`])) as {
        Layers: string[];
        RepoTags: string[];
      };
      expect(inspected.Layers).toEqual(dockerImage.manifests[0]!.layers.map((l) => l.diffId));
      await tool("skopeo", ["copy", `docker-archive:${path}`, `oci:${join(path, "..", "copied")}:v1`]);
    }
  });

  it("pulls into an OCI archive that skopeo reads", async () => {
    const path = join(await dir("oci-archive"), "image.tar");
    const result = await pull(remote("single/oci", ociImage.root.digest), `oci-archive:${path}:v1`, {
      aws: aws(),
    });
    expect(result.digest).toBe(ociImage.root.digest);
    const index = JSON.parse(await tool("tar", ["-xOf", path, "index.json"])) as {
      manifests: { digest: string }[];
    };
    expect(index.manifests.map((m) => m.digest)).toEqual([ociImage.root.digest]);
    if (hasSkopeo) {
      const raw = await tool("skopeo", ["inspect", "--raw", `oci-archive:${path}:v1`]);
      expect(sha256(Buffer.from(raw))).toBe(ociImage.root.digest);
      await tool("skopeo", ["copy", `oci-archive:${path}:v1`, `oci:${join(path, "..", "copied")}:v1`]);
    }
  });

  it("downloads a blob above the range threshold as several verified Range requests", async () => {
    const image = await buildImage({
      format: "oci-layout",
      dir: await dir("ranged"),
      seed: "ranged",
      layers: [{ size: 3 * MiB, content: "random", compression: "none" }],
    });
    await pushWithEcrx(image, "ranged/app", "v1");
    const layer = image.manifests[0]!.layers[0]!;
    const layout = join(await dir("ranged-out"), "layout");
    const { result, requests } = await recordRequests(() =>
      pull(remote("ranged/app", "v1"), `oci:${layout}:v1`, {
        aws: aws(),
        download: { rangeThreshold: MiB, rangeSize: 256 * KiB },
      }),
    );
    expect(result.digest).toBe(image.root.digest);
    const ranges = blobGets(requests, layer.digest).map((r) => r.headers.range);
    const expected = Math.ceil(layer.size / (256 * KiB));
    expect(ranges).toHaveLength(expected);
    expect(new Set(ranges)).toEqual(
      new Set(
        Array.from(
          { length: expected },
          (_, i) => `bytes=${i * 256 * KiB}-${Math.min((i + 1) * 256 * KiB, layer.size) - 1}`,
        ),
      ),
    );
    // The config is under the threshold: plain GETs only.
    const configGets = blobGets(requests, image.manifests[0]!.config.digest);
    expect(configGets.length).toBeGreaterThan(0);
    expect(configGets.map((r) => r.headers.range)).toEqual(configGets.map(() => undefined));
    expect(sha256(await readFile(join(layout, "blobs", "sha256", layer.digest.slice(7))))).toBe(layer.digest);

    // The same ranges written into a docker-archive's staged layer, which skopeo reads.
    const archive = join(await dir("ranged-archive"), "image.tar");
    const archived = await pull(remote("ranged/app", "v1"), `docker-archive:${archive}`, {
      aws: aws(),
      download: { rangeThreshold: MiB, rangeSize: 256 * KiB, parallel: 3 },
    });
    expect(archived.digest).toBe(image.root.digest);
    const unpacked = await dir("ranged-archive-unpacked");
    await tool("tar", ["-xf", archive, "-C", unpacked]);
    expect(sha256(await readFile(join(unpacked, layer.digest.slice(7), "layer.tar")))).toBe(layer.digest);
    if (hasSkopeo) {
      await tool("skopeo", ["copy", `docker-archive:${archive}`, `oci:${join(archive, "..", "copied")}:v1`]);
    }
  });

  it("gets a fresh download URL when the one in use expires mid-pull", async () => {
    // The server's clock jumps 20 s ahead once the third range of the layer is asked for: URLs
    // live 5 s, so the ranges still in flight and the next ones meet 403 "Request has expired".
    let offset = 0;
    const { target, image, digest } = await serverWithImage(
      { downloadUrlTtlSeconds: 5, now: () => new Date(Date.now() + offset) },
      2 * MiB,
      "expiry",
    );
    const layer = image.manifests[0]!.layers[0]!;
    try {
      let seen = 0;
      const layout = join(await dir("expiry-out"), "layout");
      const { result, requests } = await recordRequests(
        () =>
          pull(remote("faults/app", "v1", target), `oci:${layout}:v1`, {
            aws: aws(target),
            download: { rangeThreshold: MiB, rangeSize: 128 * KiB, parallel: 2 },
          }),
        (req) => {
          if (req.method === "GET" && (req.url ?? "").includes(layer.digest.slice(7)) && ++seen === 3) {
            offset = 20_000;
          }
        },
      );
      expect(result.digest).toBe(digest);
      expect(sha256(await readFile(join(layout, "blobs", "sha256", layer.digest.slice(7))))).toBe(
        layer.digest,
      );
      const gets = blobGets(requests, layer.digest);
      const signatures = new Set(
        gets.map((r) => new URL(r.url!, target.url).searchParams.get("X-Amz-Signature")),
      );
      expect(signatures.size).toBeGreaterThan(1);
      // More GETs than ranges: those refused as expired were asked again with the new URL.
      expect(gets.length).toBeGreaterThan(Math.ceil(layer.size / (128 * KiB)));
      const urlCalls = requests.filter((r) =>
        String(r.headers["x-amz-target"]).endsWith(".GetDownloadUrlForLayer"),
      );
      expect(urlCalls.length).toBeGreaterThan(2); // config + layer, and at least one refresh
    } finally {
      await target.close();
    }
  });

  it("resumes ranges whose connection drops mid-blob", async () => {
    const { target, image, digest } = await serverWithImage(
      { faults: "download:lost=0.3,download:reset=0.2", faultSeed: 7 },
      2 * MiB,
      "dropped",
    );
    const layer = image.manifests[0]!.layers[0]!;
    try {
      const layout = join(await dir("dropped-out"), "layout");
      const { result, requests } = await recordRequests(() =>
        pull(remote("faults/app", "v1", target), `oci:${layout}:v1`, {
          aws: aws(target),
          download: { rangeThreshold: MiB, rangeSize: 256 * KiB },
        }),
      );
      expect(result.digest).toBe(digest);
      expect(sha256(await readFile(join(layout, "blobs", "sha256", layer.digest.slice(7))))).toBe(
        layer.digest,
      );
      // Dropped requests were asked again, from the first byte not received.
      const gets = blobGets(requests, layer.digest);
      expect(gets.length).toBeGreaterThan(Math.ceil(layer.size / (256 * KiB)));
      const resumed = gets.filter((r) => {
        const match = /^bytes=(\d+)-/.exec(r.headers.range ?? "");
        return match !== null && Number(match[1]) % (256 * KiB) !== 0;
      });
      expect(resumed.length, "a range resumed mid-way").toBeGreaterThan(0);
    } finally {
      await target.close();
    }
  });

  it("asks for every layer's download URL up front, once each, so that no blob waits for its URL", async () => {
    // Downloads are slowed, URLs are not: with one blob at a time, a URL asked for only when its
    // blob's turn comes would arrive after the blob before it.
    const target = await serve({ port: 0, faults: "download:latency=150" });
    try {
      const image = await buildImage({
        format: "oci-layout",
        dir: await dir("prefetch"),
        seed: "prefetch",
        layers: [1, 2, 3].map(() => ({
          size: 64 * KiB,
          content: "random" as const,
          compression: "none" as const,
        })),
      });
      const pushed = await pushWithEcrx(image, "prefetch/app", "v1", target);
      const layout = join(await dir("prefetch-out"), "layout");
      const layers = image.manifests[0]!.layers.map((l) => l.digest.slice(7));
      const order: string[] = [];
      const { result } = await recordRequests(
        () =>
          pull(remote("prefetch/app", "v1", target), `oci:${layout}:v1`, {
            aws: aws(target),
            concurrency: 1,
          }),
        (req) => {
          if (String(req.headers["x-amz-target"]).endsWith(".GetDownloadUrlForLayer")) order.push("url");
          else if (req.method === "GET" && layers.some((l) => (req.url ?? "").includes(l))) order.push("get");
        },
      );
      expect(result.digest).toBe(pushed.digest);
      // The config's URL (read to validate the image), then the three layers' before their second GET.
      expect(order.filter((o) => o === "url")).toHaveLength(4);
      expect(order.filter((o) => o === "get")).toHaveLength(3);
      expect(order.lastIndexOf("url")).toBeLessThan(order.indexOf("get", order.indexOf("get") + 1));
    } finally {
      await target.close();
    }
  });

  it("fails with INTEGRITY on a blob served with wrong bytes, leaving nothing at the destination", async () => {
    const image = await buildImage({
      format: "oci-layout",
      dir: await dir("corrupt"),
      seed: "pull-corrupt",
      layers: [{ size: 200 * KiB, content: "random", compression: "none" }],
    });
    await pushWithEcrx(image, "corrupt/app", "v1");
    const layer = image.manifests[0]!.layers[0]!;
    const stored = join(server.dataDir, "blobs", "sha256", layer.digest.slice(7));
    const bytes = await readFile(stored);
    bytes[1000] = bytes[1000]! ^ 0xff;
    await writeFile(stored, bytes);

    for (const [kind, name] of [
      ["docker-archive", "image.tar"],
      ["oci", "layout"],
      ["oci-archive", "image.tar"],
    ] as const) {
      const out = await dir(`corrupt-${kind}`);
      const destination = `${kind}:${join(out, name)}${kind === "docker-archive" ? "" : ":v1"}`;
      await expectEcrxError(
        pull(remote("corrupt/app", "v1"), destination, { aws: aws() }),
        "INTEGRITY",
        new RegExp(`${layer.digest}.*digest mismatch`),
      );
      // Nothing that looks like an image: at most the hidden work folder of verified blobs that a
      // second pull would resume from.
      expect(await visible(out), `${kind}: nothing left behind`).toEqual([]);
    }
    // The same through ranged downloads.
    const out = await dir("corrupt-ranged");
    await expectEcrxError(
      pull(remote("corrupt/app", "v1"), `oci:${join(out, "layout")}`, {
        aws: aws(),
        download: { rangeThreshold: 64 * KiB, rangeSize: 32 * KiB },
      }),
      "INTEGRITY",
      new RegExp(`${layer.digest}.*digest mismatch`),
    );
    expect(await visible(out)).toEqual([]);
  });

  it("fails with NOT_FOUND on a missing tag, creating nothing", async () => {
    const out = await dir("missing-tag");
    const err = await expectEcrxError(
      pull(remote("single/oci", "nope"), `oci:${join(out, "layout")}`, { aws: aws() }),
      "NOT_FOUND",
      /image single\/oci:nope not found/,
    );
    expect(err.awsName).toBe("ImageNotFound");
    expect(await readdir(out)).toEqual([]);
  });

  it("refuses --all-platforms into a docker-archive (USAGE) before writing anything", async () => {
    const out = await dir("all-docker");
    await expectEcrxError(
      pull(remote("cli/multi", "v1"), `docker-archive:${join(out, "image.tar")}`, {
        aws: aws(),
        allPlatforms: true,
      }),
      "USAGE",
      /a docker-archive holds one platform; --all-platforms needs an oci: or oci-archive: destination/,
    );
    expect(await readdir(out)).toEqual([]);
    expect(existsSync(join(out, "image.tar"))).toBe(false);
    await stat(out);
  });
});

/** Entries of a folder that a person or a tool would take for output: hidden work folders aside. */
async function visible(folder: string): Promise<string[]> {
  return (await readdir(folder)).filter((name) => !name.startsWith("."));
}
