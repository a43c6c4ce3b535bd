/**
 * The everyday operations as a library, against the local server: inspect on every transport (the
 * ECR API, the registry endpoint, docker-archive, oci, oci-archive), listings of repositories and
 * images (newest first, platforms of an index), tag without moving a blob (immutable conflicts),
 * remove (refusal of an image an index references, not found), and login (password, docker config
 * merged with mode 0600).
 */
import { mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { BatchGetImageCommand, DescribeImagesCommand, type ECRClient } from "@aws-sdk/client-ecr";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { serve, type RunningServer } from "../../src/emulator/server.js";
import { inspect } from "../../src/inspect.js";
import { listImages, listRepositories } from "../../src/list.js";
import { loginPassword, writeDockerLogin } from "../../src/login.js";
import { push } from "../../src/push.js";
import { remove } from "../../src/remove.js";
import { tag } from "../../src/retag.js";
import { MemoryBlobInfoCache } from "../../src/transfer/blob-info-cache.js";
import { ecrClient } from "../helpers/emulator-clients.js";
import { expectEcrxError } from "../helpers/expect-error.js";
import { buildImage, KiB, type BuiltImage } from "../helpers/images.js";
import { useScratch } from "../helpers/scratch.js";

const scratch = useScratch("everyday");
let server: RunningServer;
let ecr: ECRClient;
let aws: { region: string; credentials: { accessKeyId: string; secretAccessKey: string } };
let single: BuiltImage;
let multi: BuiltImage;
let singleDigest: string;

async function pushAs(image: BuiltImage, destination: string, options: { immutable?: boolean } = {}) {
  return push(image.reference, `${server.registryHost}/${destination}`, {
    aws,
    createRepository: true,
    immutable: options.immutable ?? false,
    compression: "keep",
    blobInfoCache: new MemoryBlobInfoCache(),
  });
}

beforeAll(async () => {
  server = await serve({ port: 0 });
  ecr = ecrClient(server);
  aws = {
    region: server.region,
    credentials: {
      accessKeyId: server.env.AWS_ACCESS_KEY_ID!,
      secretAccessKey: server.env.AWS_SECRET_ACCESS_KEY!,
    },
  };
  const dir = scratch.fresh("images");
  single = await buildImage({
    format: "oci-layout",
    dir,
    name: "single",
    seed: "single",
    layers: [{ size: 48 * KiB }, { size: 8 * KiB }],
  });
  multi = await buildImage({
    format: "oci-archive",
    dir,
    name: "multi.tar",
    seed: "multi",
    platforms: ["linux/amd64", "linux/arm64/v8"],
  });
  singleDigest = (await pushAs(single, "everyday/app:1.0")).digest;
  await pushAs(multi, "everyday/app:multi");
}, 120_000);

afterAll(async () => {
  ecr?.destroy();
  await server?.close();
});

describe("inspect", () => {
  it("reads an image in ECR: manifest, config and layers, every digest the one pushed", async () => {
    const result = await inspect(`${server.registryHost}/everyday/app:1.0`, { aws });
    const built = single.manifests[0]!;
    expect(result.kind).toBe("image");
    expect(result.manifest).toEqual({
      mediaType: built.mediaType,
      digest: singleDigest,
      size: built.bytes.length,
    });
    expect(result.manifestBytes.equals(built.bytes)).toBe(true);
    expect(result.configBytes?.equals(built.config.bytes)).toBe(true);
    expect(result.config).toMatchObject({ digest: built.config.digest, platform: "linux/amd64" });
    expect(result.layers).toEqual(
      built.layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
    );
    expect(result.size).toBe(built.config.size + built.layers.reduce((s, l) => s + l.size, 0));
  });

  it("lists an index's platforms, and --platform inspects one child with its parent named", async () => {
    const ref = `${server.registryHost}/everyday/app:multi`;
    const index = await inspect(ref, { aws });
    expect(index.kind).toBe("index");
    expect(index.manifest.digest).toBe(multi.root.digest);
    expect(index.config).toBeUndefined();
    expect(index.manifests?.map((m) => [m.platform, m.digest, m.runnable])).toEqual([
      ["linux/amd64", multi.manifests[0]!.digest, true],
      ["linux/arm64/v8", multi.manifests[1]!.digest, true],
    ]);

    const arm = await inspect(ref, { aws, platform: "linux/arm64" });
    expect(arm.kind).toBe("image");
    expect(arm.manifest.digest).toBe(multi.manifests[1]!.digest);
    expect(arm.parentIndex?.digest).toBe(multi.root.digest);
    expect(arm.config?.platform).toBe("linux/arm64/v8");

    await expectEcrxError(
      inspect(ref, { aws, platform: "linux/s390x" }),
      "UNSUPPORTED",
      /no image for platform linux\/s390x/,
    );
  });

  it("works on every file transport and through ECR's registry endpoint, with the same digests", async () => {
    const dir = scratch.fresh("archive");
    const archive = await buildImage({
      format: "docker-archive",
      dir,
      seed: "single",
      layers: [{ size: 48 * KiB }, { size: 8 * KiB }],
    });
    const viaFiles = await Promise.all([
      inspect(single.reference),
      inspect(multi.reference),
      inspect(`oci-archive:${multi.path}`, { platform: "linux/amd64" }),
      inspect(archive.reference),
    ]);
    expect(viaFiles.map((r) => r.manifest.digest)).toEqual([
      single.root.digest,
      multi.root.digest,
      multi.manifests[0]!.digest,
      archive.root.digest,
    ]);
    const viaRegistry = await inspect(`${server.registryHost}/everyday/app:multi`, {
      aws,
      via: "registry",
      platform: "linux/arm64/v8",
    });
    expect(viaRegistry.manifestBytes.equals(multi.manifests[1]!.bytes)).toBe(true);
  });

  it("fails on a missing tag with NOT_FOUND, on a bad reference with USAGE", async () => {
    await expectEcrxError(inspect(`${server.registryHost}/everyday/app:nope`, { aws }), "NOT_FOUND", /nope/);
    await expectEcrxError(inspect(`${server.registryHost}/Everyday/App:x`, { aws }), "USAGE", /lowercase/);
  });
});

describe("ls", () => {
  it("lists the repositories of a registry host, and of the default registry", async () => {
    await pushAs(single, "everyday/zeta:1");
    const byHost = await listRepositories(server.registryHost, { aws });
    expect(byHost.registry).toBe(server.registryHost);
    const names = byHost.repositories.map((r) => r.name);
    expect(names).toEqual([...names].sort());
    expect(names).toEqual(expect.arrayContaining(["everyday/app", "everyday/zeta"]));
    const withEndpoint = await listRepositories(undefined, { aws: { ...aws, endpointUrl: server.url } });
    expect(withEndpoint.repositories.map((r) => r.name)).toEqual(names);
  });

  it("lists images newest first with tags, sizes and an index's platforms", async () => {
    await pushAs(single, "everyday/order:old");
    // ECR records push times; a later push must list first.
    await new Promise((r) => setTimeout(r, 20));
    const newer = await pushAs(multi, "everyday/order:new");
    const list = await listImages(`${server.registryHost}/everyday/order`, { aws });
    expect(list.source).toBe("ecr");
    expect(list.images[0]).toMatchObject({
      digest: newer.digest,
      tags: ["new"],
      mediaType: "application/vnd.oci.image.index.v1+json",
      platforms: ["linux/amd64", "linux/arm64/v8"],
    });
    const old = list.images.find((i) => i.tags.includes("old"))!;
    expect(old.digest).toBe(singleDigest);
    expect(old.platforms).toBeUndefined();
    const times = list.images.map((i) => i.pushedAt!);
    expect(times).toEqual([...times].sort().reverse());
    // The two children, untagged, are listed too.
    expect(list.images.filter((i) => i.tags.length === 0)).toHaveLength(2);
  });

  it("lists tags of a registry through the v2 API", async () => {
    const list = await listImages(`127.0.0.1:${server.port}/everyday/app`, {
      credentials: { username: "AWS", password: server.registryPassword() },
    });
    expect(list.source).toBe("registry");
    expect(list.images.map((i) => i.tags[0])).toEqual(["1.0", "multi"]);
  });

  it("fails on a missing repository with NOT_FOUND", async () => {
    await expectEcrxError(
      listImages(`${server.registryHost}/everyday/none`, { aws }),
      "NOT_FOUND",
      /RepositoryNotFound/,
    );
  });
});

describe("tag", () => {
  it("adds tags with the same manifest bytes and digest; an existing tag is unchanged", async () => {
    const result = await tag(`${server.registryHost}/everyday/app:1.0`, ["stable", "1,1.0"], { aws });
    expect(result.digest).toBe(singleDigest);
    expect(result.tags).toEqual([
      { tag: "stable", status: "tagged" },
      { tag: "1", status: "tagged" },
      { tag: "1.0", status: "unchanged" },
    ]);
    const got = await ecr.send(
      new BatchGetImageCommand({
        repositoryName: "everyday/app",
        imageIds: [{ imageTag: "stable" }, { imageTag: "1" }],
      }),
    );
    expect(got.images?.map((i) => i.imageId?.imageDigest)).toEqual([singleDigest, singleDigest]);
    expect(got.images?.[0]?.imageManifest).toBe(single.manifests[0]!.bytes.toString("utf8"));
  });

  it("tags by digest, and refuses to move a tag of an IMMUTABLE repository (CONFLICT)", async () => {
    await pushAs(single, "everyday/frozen:1.0", { immutable: true });
    const multiPushed = await pushAs(multi, "everyday/frozen:2.0");
    await expectEcrxError(
      tag(`${server.registryHost}/everyday/frozen:2.0`, ["1.0"], { aws }),
      "CONFLICT",
      /tag 1\.0 already names another image/,
    );
    const byDigest = await tag(`${server.registryHost}/everyday/frozen@${multiPushed.digest}`, ["2"], {
      aws,
    });
    expect(byDigest.tags).toEqual([{ tag: "2", status: "tagged" }]);
    // Tagging the image a tag already names is no move, even when immutable.
    const same = await tag(`${server.registryHost}/everyday/frozen:1.0`, ["1.0"], { aws });
    expect(same.tags).toEqual([{ tag: "1.0", status: "unchanged" }]);
  });

  it("fails on a missing image (NOT_FOUND), a bad tag or a non-ECR reference (USAGE)", async () => {
    await expectEcrxError(
      tag(`${server.registryHost}/everyday/app:nope`, ["x"], { aws }),
      "NOT_FOUND",
      /nope/,
    );
    await expectEcrxError(
      tag(`${server.registryHost}/everyday/app:1.0`, ["-bad"], { aws }),
      "USAGE",
      /invalid tag/,
    );
    await expectEcrxError(tag(single.reference, ["x"], { aws }), "USAGE", /private ECR/);
  });
});

describe("rm", () => {
  it("deletes tags and digests, refuses an index's child with ECR's reason, reports what was not found", async () => {
    const pushed = await pushAs(multi, "everyday/trash:multi");
    await pushAs(single, "everyday/trash:a,b");
    const child = multi.manifests[0]!.digest;
    const result = await remove(
      [`${server.registryHost}/everyday/trash@${child}`, `${server.registryHost}/everyday/trash:a,gone`],
      { aws },
    );
    expect(result.ok).toBe(false);
    expect(result.outcomes).toEqual([
      expect.objectContaining({
        reference: `${server.registryHost}/everyday/trash@${child}`,
        status: "refused",
        failureCode: "ImageReferencedByManifestList",
        reason: expect.stringContaining(pushed.digest),
      }),
      {
        reference: `${server.registryHost}/everyday/trash:a`,
        status: "deleted",
        removed: [{ digest: singleDigest, tag: "a" }],
      },
      expect.objectContaining({
        reference: `${server.registryHost}/everyday/trash:gone`,
        status: "not-found",
        failureCode: "ImageNotFound",
      }),
    ]);
    // The child is still there; b still names the single image.
    const left = await ecr.send(new DescribeImagesCommand({ repositoryName: "everyday/trash" }));
    expect(left.imageDetails?.map((d) => d.imageDigest)).toEqual(
      expect.arrayContaining([child, singleDigest]),
    );

    const index = await remove(
      [
        `${server.registryHost}/everyday/trash@${pushed.digest}`,
        `${server.registryHost}/everyday/trash@${child}`,
      ],
      { aws },
    );
    expect(index.ok).toBe(true);
    expect(index.outcomes[0]!.removed).toEqual([{ digest: pushed.digest, tag: "multi" }]);
  });

  it("wants the tag or digest written out, and only ECR references", async () => {
    await expectEcrxError(
      remove([`${server.registryHost}/everyday/trash`], { aws }),
      "USAGE",
      /say which image/,
    );
    await expectEcrxError(remove([single.reference], { aws }), "USAGE", /private ECR/);
  });
});

describe("login", () => {
  it("gives GetAuthorizationToken's password, which the registry API accepts", async () => {
    const login = await loginPassword(server.registryHost, { aws });
    expect(login.registry).toBe(server.registryHost);
    expect(login.hosts).toEqual([server.registryHost, `127.0.0.1:${server.port}`]);
    expect(login.username).toBe("AWS");
    expect(login.expiresAt!.getTime()).toBeGreaterThan(Date.now() + 11 * 3600_000);
    const res = await fetch(`${server.url}/v2/everyday/app/tags/list`, {
      headers: { authorization: `Basic ${Buffer.from(`AWS:${login.password}`).toString("base64")}` },
    });
    expect(res.status).toBe(200);

    const publicLogin = await loginPassword("public.ecr.aws", { aws: { ...aws, endpointUrl: server.url } });
    expect(publicLogin).toMatchObject({
      registry: "public.ecr.aws",
      hosts: ["public.ecr.aws"],
      username: "AWS",
    });
    expect(publicLogin.password.length).toBeGreaterThan(10);

    // Without a registry, the local server's registry host comes from the endpoint it answers on.
    const byDefault = await loginPassword(undefined, { aws: { ...aws, endpointUrl: server.url } });
    expect(byDefault.registry).toBe(server.registryHost);
  });

  it("merges auths into docker's config, keeping the rest, atomically and with mode 0600", async () => {
    const dir = scratch.fresh("docker");
    await mkdir(dir);
    const path = join(dir, "config.json");
    const existing = {
      auths: { "ghcr.io": { auth: "dXNlcjpwYXNz" }, [server.registryHost]: { auth: "b2xkOm9sZA==" } },
      credHelpers: { "public.ecr.aws": "ecr-login" },
      psFormat: "table {{.ID}}",
    };
    await writeFile(path, JSON.stringify(existing), { mode: 0o644 });
    const login = await loginPassword(server.registryHost, { aws });
    const written = await writeDockerLogin(login, { env: { DOCKER_CONFIG: dir } });
    expect(written).toBe(path);
    const config = JSON.parse(await readFile(path, "utf8")) as typeof existing & {
      auths: Record<string, { auth: string }>;
    };
    const auth = Buffer.from(`AWS:${login.password}`).toString("base64");
    expect(config).toEqual({
      ...existing,
      auths: {
        "ghcr.io": { auth: "dXNlcjpwYXNz" },
        [server.registryHost]: { auth },
        [`127.0.0.1:${server.port}`]: { auth },
      },
    });
    expect((await stat(path)).mode & 0o777).toBe(0o600);

    const fresh = join(scratch.fresh("new-docker"), "nested", "config.json");
    await writeDockerLogin(login, { path: fresh });
    expect((await stat(fresh)).mode & 0o777).toBe(0o600);
  });

  it("leaves a docker config it cannot parse untouched", async () => {
    const dir = scratch.fresh("broken");
    await mkdir(dir);
    await writeFile(join(dir, "config.json"), "{ not json");
    const login = await loginPassword(server.registryHost, { aws });
    await expectEcrxError(
      writeDockerLogin(login, { env: { DOCKER_CONFIG: dir } }),
      "INVALID_INPUT",
      /cannot update docker config/,
    );
    expect(await readFile(join(dir, "config.json"), "utf8")).toBe("{ not json");
  });

  it("is refused with AUTH for wrong credentials, and never shows the password in the error", async () => {
    const wrong = {
      ...aws,
      credentials: { accessKeyId: "nope", secretAccessKey: "nope" },
      retry: { maxAttempts: 1 },
    };
    await expectEcrxError(
      loginPassword(server.registryHost, { aws: wrong }),
      "AUTH",
      /GetAuthorizationToken/,
    );
  });
});
