/**
 * `sync` (library and `ecrx sync`) of a repository of 20 tags between the local ECR server and a
 * real `docker-registry`: 12 distinct images that all share a base layer (and half of them a
 * second one), 8 tags naming an image another tag names too. Checked: every tag arrives with the
 * source's digest (skopeo's `inspect --raw` bytes hash to it; ListImages says it for ECR); a
 * second sync skips all 20; `--tags` matches whole tags; `--shard I/3` splits the tags into three
 * disjoint shards whose union is the tag set, the same on every run; one image whose blob is
 * corrupted in the server's store fails alone and the CLI exits non-zero with the summary; a blob
 * shared by images copied at the same time is uploaded once (counted at the registry, through a
 * proxy that sees every request).
 */
import { createServer, request, type Server } from "node:http";
import { createHash } from "node:crypto";
import { open as openFile } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { ListImagesCommand, type ImageIdentifier } from "@aws-sdk/client-ecr";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { copy } from "../../src/copy.js";
import { serve, type RunningServer } from "../../src/emulator/server.js";
import { inShard, sync, type SyncResult } from "../../src/sync.js";
import type { AwsOptions } from "../../src/transports/aws/client-config.js";
import { ensureBuilt, runCli } from "../helpers/cli.js";
import {
  dockerRegistryInstalled,
  startDockerRegistry,
  type RunningDockerRegistry,
} from "../helpers/docker-registry.js";
import { ecrClient } from "../helpers/emulator-clients.js";
import { buildImage, KiB, type BuiltImage } from "../helpers/images.js";
import { useScratch } from "../helpers/scratch.js";
import { requireTool, tool } from "../helpers/tools.js";

const hasSkopeo = requireTool("skopeo");
const hasRegistry = dockerRegistryInstalled();
if (!hasRegistry) {
  if (process.env.CI === "true") {
    it("docker-registry is installed (required under CI)", () => {
      throw new Error("docker-registry is missing; apt-get install docker-registry");
    });
  } else {
    console.warn("skipping sync interop tests: docker-registry is not installed");
  }
}

const scratch = useScratch("sync-interop");

/** 20 tags: `xv1.9` is there so that `v1\..*` has a tag to leave out when matched whole. */
const TAGS = [
  ...Array.from({ length: 9 }, (_, i) => `v1.${i}`),
  "xv1.9",
  ...Array.from({ length: 5 }, (_, i) => `v2.${i}`),
  ...["a", "b", "c", "d", "e"].map((s) => `dev-${s}`),
];
/** Tags 0..11 name images 0..11; tags 12..19 name images 0..3 again. */
const imageOf = (tagIndex: number): number => (tagIndex < 12 ? tagIndex : (tagIndex - 12) % 4);

function sha256(bytes: Buffer): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

interface CountingProxy {
  host: string;
  /** Digests of blob uploads the registry completed (201), in order. */
  uploaded: string[];
  close(): Promise<void>;
}

/**
 * A pass-through HTTP proxy in front of a registry that records every completed blob upload
 * (`PUT …/blobs/uploads/…?digest=` or a monolithic `POST …/blobs/uploads/?digest=` answered 201).
 * The Host header goes through unchanged, so the registry's Location headers point back here.
 */
async function countingProxy(target: RunningDockerRegistry): Promise<CountingProxy> {
  const uploaded: string[] = [];
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://proxy");
    const digest = url.searchParams.get("digest");
    const upload = /\/blobs\/uploads\//.test(url.pathname) && (req.method === "PUT" || req.method === "POST");
    const upstream = request(
      { host: "127.0.0.1", port: target.port, method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        if (upload && digest !== null && answer.statusCode === 201) uploaded.push(digest);
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on("error", () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    host: `127.0.0.1:${port}`,
    uploaded,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

describe.runIf(hasSkopeo && hasRegistry)("sync of 20 tags between the local ECR and docker-registry", () => {
  let ecr: RunningServer;
  let registry: RunningDockerRegistry;
  let proxy: CountingProxy;
  let aws: AwsOptions;
  let images: BuiltImage[];
  /** tag -> the digest of its image. */
  const expected = new Map<string, string>();

  /** The digest skopeo reads at a registry tag: the sha256 of the manifest bytes. */
  const skopeoDigest = async (host: string, repo: string, tag: string): Promise<string> =>
    sha256(
      Buffer.from(
        await tool("skopeo", ["inspect", "--raw", "--tls-verify=false", `docker://${host}/${repo}:${tag}`]),
      ),
    );

  /** tag -> digest of every tagged image in an ECR repository. */
  const ecrTags = async (repositoryName: string): Promise<Map<string, string>> => {
    const ids: ImageIdentifier[] = [];
    let nextToken: string | undefined;
    do {
      const page = await ecrClient(ecr).send(
        new ListImagesCommand({ repositoryName, nextToken, filter: { tagStatus: "TAGGED" } }),
      );
      ids.push(...(page.imageIds ?? []));
      nextToken = page.nextToken;
    } while (nextToken);
    return new Map(ids.map((id) => [id.imageTag!, id.imageDigest!]));
  };

  const cliEnv = (): Record<string, string> => ({
    ...ecr.env,
    HOME: scratch.root(),
    ECRX_CACHE_DIR: join(scratch.root(), "cache"),
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
  });

  beforeAll(async () => {
    [ecr, registry] = await Promise.all([serve({ port: 0, rates: "off" }), startDockerRegistry()]);
    proxy = await countingProxy(registry);
    aws = { credentials: { accessKeyId: "test", secretAccessKey: "test" } };
    // 12 images: a base layer in all, a second layer in the even ones, one layer of their own.
    images = [];
    for (let k = 0; k < 12; k++) {
      images.push(
        await buildImage({
          format: "oci-layout",
          dir: scratch.fresh(`image-${k}`),
          layers: [
            { size: 64 * KiB, seed: "base", content: "random" },
            ...(k % 2 === 0 ? [{ size: 32 * KiB, seed: "even" }] : []),
            { size: 8 * KiB, seed: `own-${k}` },
          ],
        }),
      );
    }
    for (const [i, tag] of TAGS.entries()) {
      const image = images[imageOf(i)]!;
      const pushed = await copy(image.reference, `${ecr.registryHost}/src:${tag}`, {
        destination: { aws, createRepository: true },
      });
      expect(pushed.digest).toBe(image.root.digest);
      expected.set(tag, image.root.digest);
    }
    ensureBuilt();
  }, 120_000);

  afterAll(async () => {
    await Promise.all([proxy?.close(), registry?.stop(), ecr?.close()]);
  });

  it("has 20 tags over 12 images sharing layers", async () => {
    expect(new Set(TAGS).size).toBe(20);
    expect(new Set(expected.values()).size).toBe(12);
    expect(await ecrTags("src")).toEqual(expected);
  });

  it("ECR -> docker-registry: every tag with the source's digest, each blob uploaded once; again: all skipped", async () => {
    const result = await sync(`${ecr.registryHost}/src`, `${proxy.host}/mirror`, {
      allTags: true,
      source: { aws },
      images: 4,
    });
    expect(result).toMatchObject({ tags: 20, copied: 20, skipped: 0, failed: 0 });
    expect(new Map(result.images.map((i) => [i.tag, i.digest]))).toEqual(expected);
    for (const tag of TAGS) {
      expect(await skopeoDigest(registry.host, "mirror", tag), tag).toBe(expected.get(tag));
    }
    await tool("skopeo", [
      "copy",
      "--src-tls-verify=false",
      `docker://${registry.host}/mirror:dev-e`,
      `oci:${scratch.fresh("read")}:x`,
    ]);

    // The base layer is in all 12 images and the first four go at once: one upload of it, and
    // of every other blob; the 8 tags whose image another tag has sent nothing new.
    const distinct = new Set<string>();
    for (const image of images) {
      const m = image.manifests[0]!;
      for (const d of [m.config, ...m.layers]) distinct.add(d.digest);
    }
    expect(distinct.size).toBe(1 + 1 + 12 + 12);
    expect([...proxy.uploaded].sort()).toEqual([...distinct].sort());

    const again = await sync(`${ecr.registryHost}/src`, `${proxy.host}/mirror`, {
      allTags: true,
      source: { aws },
    });
    expect(again).toMatchObject({ tags: 20, copied: 0, skipped: 20, failed: 0, bytesSent: 0 });
    expect(again.images.every((i) => i.digest === expected.get(i.tag))).toBe(true);
    expect(proxy.uploaded).toHaveLength(distinct.size);
  });

  it("docker-registry -> ECR: every tag with the source's digest; again: all skipped", async () => {
    const result = await sync(`${registry.host}/mirror`, `${ecr.registryHost}/back`, {
      allTags: true,
      destination: { aws, createRepository: true },
    });
    expect(result).toMatchObject({ tags: 20, copied: 20, skipped: 0, failed: 0 });
    expect(await ecrTags("back")).toEqual(expected);
    const host = `127.0.0.1:${ecr.port}`;
    const raw = await tool("skopeo", [
      "inspect",
      "--raw",
      "--tls-verify=false",
      "--creds",
      `AWS:${ecr.registryPassword()}`,
      `docker://${host}/back:v2.4`,
    ]);
    expect(sha256(Buffer.from(raw))).toBe(expected.get("v2.4"));

    const again = await sync(`${registry.host}/mirror`, `${ecr.registryHost}/back`, {
      allTags: true,
      destination: { aws },
    });
    expect(again).toMatchObject({ tags: 20, copied: 0, skipped: 20, failed: 0, bytesSent: 0 });
  });

  it("--tags matches whole tags only", async () => {
    const v1 = await sync(`${ecr.registryHost}/src`, `${registry.host}/filtered`, {
      tags: "v1\\..*",
      source: { aws },
    });
    const v1Tags = TAGS.filter((t) => t.startsWith("v1."));
    expect(v1Tags).toHaveLength(9);
    expect(v1.images.map((i) => i.tag).sort()).toEqual(v1Tags.sort());
    expect(v1).toMatchObject({ tags: 9, copied: 9, failed: 0 });
    for (const tag of v1Tags)
      expect(await skopeoDigest(registry.host, "filtered", tag)).toBe(expected.get(tag));
    await expect(skopeoDigest(registry.host, "filtered", "xv1.9")).rejects.toThrow(
      /manifest unknown|not found/i,
    );

    // A pattern that only a part of a tag matches takes nothing.
    const part = await sync(`${ecr.registryHost}/src`, `${registry.host}/filtered`, {
      tags: "v1",
      source: { aws },
    });
    expect(part).toMatchObject({ tags: 0, copied: 0, skipped: 0, failed: 0 });

    // The CLI's --tags is the same pattern.
    const run = await runCli(
      [
        "sync",
        `${ecr.registryHost}/src`,
        `${registry.host}/filtered-cli`,
        "--tags",
        "v2\\..*|dev-[ab]",
        "--json",
      ],
      cliEnv(),
    );
    expect(run.code, run.stderr).toBe(0);
    const taken = run.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { type: string; tag?: string })
      .filter((l) => l.type === "image")
      .map((l) => l.tag!)
      .sort();
    expect(taken).toEqual(["dev-a", "dev-b", "v2.0", "v2.1", "v2.2", "v2.3", "v2.4"]);
  });

  it("--shard I/3 with the CLI: disjoint shards, their union is every tag, the same on a second run", async () => {
    const runShard = async (index: number) => {
      const run = await runCli(
        [
          "sync",
          `${ecr.registryHost}/src`,
          `${registry.host}/sharded`,
          "--all-tags",
          "--shard",
          `${index}/3`,
          "--json",
        ],
        cliEnv(),
      );
      expect(run.code, run.stderr).toBe(0);
      const lines = run.stdout
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as { type: string; tag?: string; status?: string; digest?: string });
      const summary = lines.at(-1) as unknown as Omit<SyncResult, "images"> & { type: string };
      expect(summary.type).toBe("summary");
      const taken = lines.filter((l) => l.type === "image");
      expect(taken).toHaveLength(summary.tags);
      for (const image of taken) expect(image.digest).toBe(expected.get(image.tag!));
      return { tags: taken.map((l) => l.tag!).sort(), statuses: taken.map((l) => l.status), summary };
    };

    const first = [await runShard(0), await runShard(1), await runShard(2)];
    const union = first.flatMap((s) => s.tags);
    expect(union.sort()).toEqual([...TAGS].sort()); // every tag, none twice
    for (const [index, shard] of first.entries()) {
      expect(shard.tags.length).toBeGreaterThan(0);
      expect(shard.tags).toEqual(TAGS.filter((t) => inShard(t, { index, count: 3 })).sort());
      expect(shard.statuses.every((s) => s === "copied")).toBe(true);
    }
    for (const tag of TAGS) expect(await skopeoDigest(registry.host, "sharded", tag)).toBe(expected.get(tag));

    const second = [await runShard(0), await runShard(1), await runShard(2)];
    for (const [index, shard] of second.entries()) {
      expect(shard.tags).toEqual(first[index]!.tags);
      expect(shard.statuses.every((s) => s === "skipped")).toBe(true);
      expect(shard.summary).toMatchObject({ copied: 0, failed: 0, bytesSent: 0 });
    }
  });

  it("one image failing (a corrupted blob at the source): it alone fails; the CLI exits non-zero with the summary", async () => {
    // A repository of its own: tags of three good images and one whose own layer is corrupted.
    const broken = await buildImage({
      format: "oci-layout",
      dir: scratch.fresh("broken"),
      layers: [
        { size: 64 * KiB, seed: "base", content: "random" },
        { size: 16 * KiB, seed: "broken-own", content: "random" },
      ],
    });
    const sources: [string, BuiltImage][] = [
      ["ok-1", images[0]!],
      ["ok-2", images[5]!],
      ["ok-3", images[6]!],
      ["bad", broken],
    ];
    for (const [tag, image] of sources) {
      await copy(image.reference, `${ecr.registryHost}/fragile:${tag}`, {
        destination: { aws, createRepository: true },
      });
    }
    const own = broken.manifests[0]!.layers[1]!;
    const file = await openFile(
      join(ecr.dataDir, "blobs", "sha256", own.digest.slice("sha256:".length)),
      "r+",
    );
    try {
      // Same size, other bytes: only the digest tells.
      await file.write(Buffer.from("corrupted!"), 0, 10, 100);
    } finally {
      await file.close();
    }

    const result = await sync(`${ecr.registryHost}/fragile`, `${registry.host}/fragile-lib`, {
      allTags: true,
      source: { aws },
    });
    expect(result).toMatchObject({ tags: 4, copied: 3, skipped: 0, failed: 1 });
    const bad = result.images.find((i) => i.tag === "bad")!;
    expect(bad).toMatchObject({ status: "failed", code: "INTEGRITY", digest: broken.root.digest });
    expect(bad.error).toContain(own.digest.slice("sha256:".length, "sha256:".length + 12));
    for (const [tag, image] of sources.slice(0, 3)) {
      expect(await skopeoDigest(registry.host, "fragile-lib", tag)).toBe(image.root.digest);
    }
    await expect(skopeoDigest(registry.host, "fragile-lib", "bad")).rejects.toThrow(
      /manifest unknown|not found/i,
    );

    const run = await runCli(
      ["sync", `${ecr.registryHost}/fragile`, `${registry.host}/fragile-cli`, "--all-tags"],
      cliEnv(),
    );
    expect(run.code, run.stderr).toBe(8); // INTEGRITY, the first failure's code
    expect(run.stderr).toMatch(/^failed +bad /m);
    expect(run.stderr).toMatch(/^copied +ok-1 /m);
    expect(run.stderr).toContain("4 tag(s): 3 copied, 0 skipped, 1 failed");
    expect(run.stderr).toMatch(/^ecrx: 1 of 4 image\(s\) failed to sync; the first: bad: /m);
    expect(run.stderr).toMatch(/^hint: run the same sync again/m);
    expect(run.stderr).not.toMatch(/^\s+at /m);

    // The rerun skips the three that made it and fails the broken one again.
    const rerun = await runCli(
      ["sync", `${ecr.registryHost}/fragile`, `${registry.host}/fragile-cli`, "--all-tags", "--json"],
      cliEnv(),
    );
    expect(rerun.code).toBe(8);
    const summary = JSON.parse(
      rerun.stdout
        .trim()
        .split("\n")
        .find((l) => l.includes('"summary"'))!,
    ) as Record<string, unknown>;
    expect(summary).toMatchObject({ tags: 4, copied: 0, skipped: 3, failed: 1 });
  });
});
