/**
 * `copy` (library and `ecrx copy`) against real peers: the Debian `docker-registry` (without auth
 * and with htpasswd), two local ECR servers of different accounts with different credentials, and
 * skopeo as the independent reader. Every result is checked the same way: the manifest skopeo reads
 * at the destination (`inspect --raw`) hashes to the source's digest, and `skopeo copy` of it into
 * an OCI layout succeeds (skopeo verifies every blob it reads against its digest).
 *
 * skopeo names a local ECR server `127.0.0.1:<port>` with `--creds AWS:<password>`: its Go resolver
 * does not resolve `*.localhost`.
 */
import { createHash } from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { copy, type CopyOptions } from "../../src/copy.js";
import { serve, type RunningServer } from "../../src/emulator/server.js";
import type { AwsOptions } from "../../src/transports/aws/client-config.js";
import type { TransferEvent } from "../../src/transfer/events.js";
import { ensureBuilt, runCli } from "../helpers/cli.js";
import { startDockerRegistry, type RunningDockerRegistry } from "../helpers/docker-registry.js";
import { expectEcrxError } from "../helpers/expect-error.js";
import { buildImage, buildSingleAndMulti, KiB, MiB, type BuiltImage } from "../helpers/images.js";
import { useScratch } from "../helpers/scratch.js";
import { requireRegistryTools, tool } from "../helpers/tools.js";

const { skopeo: hasSkopeo, registry: hasRegistry, htpasswd: hasHtpasswd } = requireRegistryTools();
const available = hasSkopeo && hasRegistry && hasHtpasswd;

const scratch = useScratch("copy-interop");
const USER = { username: "alice", password: "s3cret-alice" };
const ALICE = `${USER.username}:${USER.password}`;
const ACCOUNT_A = { accountId: "111111111111", accessKeyId: "AKIDACCOUNTA", secretAccessKey: "secret-a" };
const ACCOUNT_B = { accountId: "222222222222", accessKeyId: "AKIDACCOUNTB", secretAccessKey: "secret-b" };

function sha256(bytes: Buffer): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

/** Where skopeo finds an image, with its credentials. */
interface Place {
  ref: string;
  creds?: string | undefined;
}

/** A file reference as it is; a registry's `host/repo:tag` as `docker://…`. */
function transportRef(ref: string): string {
  return /^(oci|oci-archive|docker-archive):/.test(ref) ? ref : `docker://${ref}`;
}

/** The manifest bytes skopeo reads at `place` (`docker://` unless the ref names a transport). */
async function skopeoRaw(place: Place): Promise<Buffer> {
  const ref = transportRef(place.ref);
  const args = ["inspect", "--raw", ...(ref.startsWith("docker://") ? ["--tls-verify=false"] : [])];
  return Buffer.from(await tool("skopeo", [...args, ...(place.creds ? ["--creds", place.creds] : []), ref]));
}

/** skopeo copies the image at `place` (every platform) into an OCI layout, verifying each blob. */
async function skopeoReadsAll(place: Place): Promise<string> {
  const ref = transportRef(place.ref);
  const out = scratch.fresh("skopeo-read");
  await tool("skopeo", [
    "copy",
    "--all",
    ...(ref.startsWith("docker://") ? ["--src-tls-verify=false"] : []),
    ...(place.creds ? ["--src-creds", place.creds] : []),
    ref,
    `oci:${out}:read`,
  ]);
  return out;
}

/** The destination's manifest is the source's, byte for byte, and skopeo reads the whole image. */
async function expectSameImage(place: Place, digest: string, bytes: Buffer): Promise<void> {
  const raw = await skopeoRaw(place);
  expect(sha256(raw)).toBe(digest);
  expect(raw.equals(bytes)).toBe(true);
  await skopeoReadsAll(place);
}

function blobCount(image: BuiltImage): number {
  const digests = new Set<string>();
  for (const m of image.manifests) for (const d of [m.config, ...m.layers]) digests.add(d.digest);
  return digests.size;
}

describe.runIf(available)("copy between docker-registry, two local ECR servers, files; skopeo reads", () => {
  let open: RunningDockerRegistry;
  let locked: RunningDockerRegistry;
  let ecrA: RunningServer;
  let ecrB: RunningServer;
  let awsA: AwsOptions;
  let awsB: AwsOptions;
  /** One platform: gzip, zstd and uncompressed layers. */
  let single: BuiltImage;
  /** Two platforms behind an OCI index. */
  let multi: BuiltImage;
  /** One platform, gzip and uncompressed layers only. */
  let plain: BuiltImage;

  const atA = (name: string): Place => ({
    ref: `127.0.0.1:${ecrA.port}/${name}`,
    creds: `AWS:${ecrA.registryPassword()}`,
  });
  const atB = (name: string): Place => ({
    ref: `127.0.0.1:${ecrB.port}/${name}`,
    creds: `AWS:${ecrB.registryPassword()}`,
  });
  const atOpen = (name: string): Place => ({ ref: `${open.host}/${name}` });
  const atLocked = (name: string): Place => ({ ref: `${locked.host}/${name}`, creds: ALICE });

  beforeAll(async () => {
    [open, locked, ecrA, ecrB] = await Promise.all([
      startDockerRegistry(),
      startDockerRegistry({ users: { [USER.username]: USER.password } }),
      serve({ port: 0, ...ACCOUNT_A }),
      serve({ port: 0, ...ACCOUNT_B, region: "eu-west-1" }),
    ]);
    awsA = {
      credentials: { accessKeyId: ACCOUNT_A.accessKeyId, secretAccessKey: ACCOUNT_A.secretAccessKey },
    };
    awsB = {
      credentials: { accessKeyId: ACCOUNT_B.accessKeyId, secretAccessKey: ACCOUNT_B.secretAccessKey },
    };
    ({ single, multi } = await buildSingleAndMulti(scratch.fresh, [
      { size: 96 * KiB, compression: "gzip" },
      { size: 64 * KiB, compression: "zstd" },
      { size: 32 * KiB, compression: "none" },
      { size: 1 * MiB, compression: "gzip", content: "random" },
    ]));
    plain = await buildImage({
      format: "oci-layout",
      dir: scratch.fresh("plain"),
      seed: "plain",
      layers: [
        { size: 40 * KiB, compression: "gzip" },
        { size: 24 * KiB, compression: "none" },
      ],
    });
    // The sources the tests start from: both images in the locked registry, put there by ecrx
    // from OCI layouts (file -> registry with credentials).
    const a = await copy(single.reference, `${locked.host}/src/single:v1`, {
      destination: { credentials: USER },
    });
    const b = await copy(multi.reference, `${locked.host}/src/multi:v1`, {
      destination: { credentials: USER },
    });
    expect([a.digest, b.digest]).toEqual([single.root.digest, multi.root.digest]);
  }, 60_000);

  afterAll(async () => {
    await Promise.all([open?.stop(), locked?.stop(), ecrA?.close(), ecrB?.close()]);
  });

  it("file -> registry: an OCI layout arrives in the htpasswd registry with its digest", async () => {
    await expectSameImage(atLocked("src/single:v1"), single.root.digest, single.root.bytes);
  });

  it("registry -> ECR (API): createRepository creates it; without it, the missing repository is refused", async () => {
    await expectEcrxError(
      copy(`${locked.host}/src/single:v1`, `${ecrA.registryHost}/single:v1`, {
        source: { credentials: USER },
        destination: { aws: awsA },
      }),
      "NOT_FOUND",
      /single/,
    );
    const result = await copy(`${locked.host}/src/single:v1`, `${ecrA.registryHost}/single:v1`, {
      source: { credentials: USER },
      destination: { aws: awsA, createRepository: true },
    });
    expect(result.digest).toBe(single.root.digest);
    expect(result.sourceDigest).toBe(single.root.digest);
    expect(result.blobsSent).toBe(blobCount(single));
    await expectSameImage(atA("single:v1"), single.root.digest, single.root.bytes);
  });

  it("ECR -> ECR: two servers, other account, other credentials; a second copy skips every blob", async () => {
    const source = `${ecrA.registryHost}/single:v1`;
    const destination = `${ecrB.registryHost}/mirror/single:v1`;
    expect(destination.startsWith("222222222222.dkr.ecr.eu-west-1.localhost:")).toBe(true);
    // Each side uses its own credentials: A's keys are refused by B and the reverse.
    await expectEcrxError(
      copy(source, destination, {
        source: { aws: awsB },
        destination: { aws: awsB, createRepository: true },
      }),
      "AUTH",
      /UnrecognizedClientException/,
    );
    await expectEcrxError(
      copy(source, destination, {
        source: { aws: awsA },
        destination: { aws: awsA, createRepository: true },
      }),
      "AUTH",
      /UnrecognizedClientException/,
    );

    const options: CopyOptions = {
      source: { aws: awsA },
      destination: { aws: awsB, createRepository: true },
    };
    const first = await copy(source, destination, options);
    expect(first.digest).toBe(single.root.digest);
    expect(first.blobsSent).toBe(blobCount(single));
    await expectSameImage(atB("mirror/single:v1"), single.root.digest, single.root.bytes);

    const events: TransferEvent[] = [];
    const again = await copy(source, destination, { ...options, onEvent: (e) => events.push(e) });
    expect(again.digest).toBe(single.root.digest);
    expect(again.blobsSent).toBe(0);
    expect(again.bytesSent).toBe(0);
    expect(again.blobsSkipped).toBe(blobCount(single));
    expect(events.filter((e) => e.type === "blob-start")).toEqual([]);
    expect(events.filter((e) => e.type === "blob-skipped")).toHaveLength(blobCount(single));
  });

  it("ECR -> registry and registry -> registry, with and without htpasswd", async () => {
    const out = await copy(`${ecrA.registryHost}/single:v1`, `${open.host}/from-ecr/single:v1`, {
      source: { aws: awsA },
    });
    expect(out.digest).toBe(single.root.digest);
    await expectSameImage(atOpen("from-ecr/single:v1"), single.root.digest, single.root.bytes);

    const across = await copy(`${open.host}/from-ecr/single:v1`, `${locked.host}/from-open/single:v1`, {
      destination: { credentials: USER },
    });
    expect(across.digest).toBe(single.root.digest);
    expect(across.blobsSent).toBe(blobCount(single));
    await expectSameImage(atLocked("from-open/single:v1"), single.root.digest, single.root.bytes);

    const back = await copy(`${locked.host}/from-open/single:v1`, `${open.host}/from-locked/single:v1`, {
      source: { credentials: USER },
    });
    expect(back.digest).toBe(single.root.digest);
    await expectSameImage(atOpen("from-locked/single:v1"), single.root.digest, single.root.bytes);

    // The locked registry refuses a wrong password and anonymous pushes.
    await expectEcrxError(
      copy(`${open.host}/from-ecr/single:v1`, `${locked.host}/refused/single:v1`, {
        destination: { credentials: { username: USER.username, password: "wrong" } },
      }),
      "AUTH",
      /401|authentication required/i,
    );
    await expectEcrxError(
      copy(`${locked.host}/src/single:v1`, `${open.host}/refused/single:v1`),
      "AUTH",
      /401|authentication required/i,
    );
  });

  it("ECR through its registry endpoint (via: registry), as destination and as source", async () => {
    const calls: string[] = [];
    const aws: AwsOptions = { ...awsB, onCall: (c) => calls.push(c.operation) };
    const pushed = await copy(`${open.host}/from-ecr/single:v1`, `${ecrB.registryHost}/via-registry:v1`, {
      destination: { aws, via: "registry", createRepository: true },
    });
    expect(pushed.digest).toBe(single.root.digest);
    // The ECR API only checked (and created) the repository and gave the registry password: the
    // blobs and the manifest went through /v2/.
    expect(calls).toContain("GetAuthorizationToken");
    expect(calls).toContain("CreateRepository");
    for (const op of ["InitiateLayerUpload", "UploadLayerPart", "CompleteLayerUpload", "PutImage"]) {
      expect(calls).not.toContain(op);
    }
    await expectSameImage(atB("via-registry:v1"), single.root.digest, single.root.bytes);

    calls.length = 0;
    const layout = scratch.fresh("via-registry-out");
    const pulled = await copy(`${ecrB.registryHost}/via-registry:v1`, `oci:${layout}:v1`, {
      source: { aws, via: "registry" },
    });
    expect(pulled.digest).toBe(single.root.digest);
    expect(calls).toEqual(["GetAuthorizationToken"]);
    await expectSameImage({ ref: `oci:${layout}:v1` }, single.root.digest, single.root.bytes);
  });

  it("multi-arch: the whole index keeps its digest; --platform copies the child, with the child's digest", async () => {
    const whole = await copy(`${locked.host}/src/multi:v1`, `${ecrA.registryHost}/multi:v1`, {
      source: { credentials: USER },
      destination: { aws: awsA, createRepository: true },
    });
    expect(whole.digest).toBe(multi.root.digest);
    expect(whole.images).toBe(2);
    await expectSameImage(atA("multi:v1"), multi.root.digest, multi.root.bytes);
    for (const child of multi.manifests) {
      expect((await skopeoRaw(atA(`multi@${child.digest}`))).equals(child.bytes)).toBe(true);
    }

    const arm = multi.manifests.find((m) => m.platform === "linux/arm64")!;
    const picked = await copy(`${ecrA.registryHost}/multi:v1`, `${open.host}/multi-arm:v1`, {
      source: { aws: awsA },
      platform: "linux/arm64",
    });
    expect(picked.digest).toBe(arm.digest);
    expect(picked.digest).not.toBe(multi.root.digest);
    expect(picked.sourceDigest).toBe(multi.root.digest);
    expect(picked.images).toBe(1);
    await expectSameImage(atOpen("multi-arm:v1"), arm.digest, arm.bytes);

    // And the whole index out of ECR into a registry.
    const back = await copy(`${ecrA.registryHost}/multi:v1`, `${open.host}/multi:v1`, {
      source: { aws: awsA },
    });
    expect(back.digest).toBe(multi.root.digest);
    await expectSameImage(atOpen("multi:v1"), multi.root.digest, multi.root.bytes);
  });

  it("a Docker manifest list keeps its digests through the ECR API and ECR's registry endpoint", async () => {
    const list = await buildImage({
      format: "oci-layout",
      dir: scratch.fresh("docker-list"),
      mediaTypes: "docker",
      seed: "docker-list",
      platforms: ["linux/amd64", "linux/arm/v7"],
      layers: [{ size: 24 * KiB, compression: "gzip" }],
    });
    expect(list.root.mediaType).toBe("application/vnd.docker.distribution.manifest.list.v2+json");
    await copy(list.reference, `${open.host}/docker-list:v1`);
    const viaApi = await copy(`${open.host}/docker-list:v1`, `${ecrA.registryHost}/docker-list:v1`, {
      destination: { aws: awsA, createRepository: true },
    });
    expect(viaApi).toMatchObject({ digest: list.root.digest, mediaType: list.root.mediaType, images: 2 });
    await expectSameImage(atA("docker-list:v1"), list.root.digest, list.root.bytes);

    const viaRegistry = await copy(
      `${ecrA.registryHost}/docker-list:v1`,
      `${ecrB.registryHost}/docker-list:v1`,
      {
        source: { aws: awsA, via: "registry" },
        destination: { aws: awsB, via: "registry", createRepository: true },
      },
    );
    expect(viaRegistry.digest).toBe(list.root.digest);
    await expectSameImage(atB("docker-list:v1"), list.root.digest, list.root.bytes);

    const v7 = list.manifests.find((m) => m.platform === "linux/arm/v7")!;
    const picked = await copy(`${ecrB.registryHost}/docker-list:v1`, `${open.host}/docker-list-v7:v1`, {
      source: { aws: awsB },
      platform: "linux/arm/v7",
    });
    expect(picked.digest).toBe(v7.digest);
    await expectSameImage(atOpen("docker-list-v7:v1"), v7.digest, v7.bytes);
  });

  it("into and out of files: oci, oci-archive, docker-archive", async () => {
    // ECR -> oci layout -> registry
    const layout = scratch.fresh("layout");
    const toLayout = await copy(`${ecrA.registryHost}/multi:v1`, `oci:${layout}:v1`, {
      source: { aws: awsA },
    });
    expect(toLayout.digest).toBe(multi.root.digest);
    await expectSameImage({ ref: `oci:${layout}:v1` }, multi.root.digest, multi.root.bytes);
    const fromLayout = await copy(`oci:${layout}:v1`, `${open.host}/from-layout:v1`);
    expect(fromLayout.digest).toBe(multi.root.digest);
    await expectSameImage(atOpen("from-layout:v1"), multi.root.digest, multi.root.bytes);

    // registry -> oci-archive -> ECR
    const archive = scratch.fresh("image.oci.tar");
    const toArchive = await copy(`${locked.host}/src/single:v1`, `oci-archive:${archive}:v1`, {
      source: { credentials: USER },
    });
    expect(toArchive.digest).toBe(single.root.digest);
    await expectSameImage({ ref: `oci-archive:${archive}:v1` }, single.root.digest, single.root.bytes);
    const fromArchive = await copy(`oci-archive:${archive}:v1`, `${ecrB.registryHost}/from-archive:v1`, {
      destination: { aws: awsB, createRepository: true },
    });
    expect(fromArchive.digest).toBe(single.root.digest);
    await expectSameImage(atB("from-archive:v1"), single.root.digest, single.root.bytes);

    // ECR -> docker-archive. A classic docker archive holds no manifest, so the digest is not
    // kept; the blobs are, as they arrived (zstd too: docker load and skopeo decompress them).
    const tarball = scratch.fresh("image.docker.tar");
    await copy(`${ecrA.registryHost}/single:v1`, `docker-archive:${tarball}:app/single:v1`, {
      source: { aws: awsA },
      platform: "linux/amd64",
    });
    const inspected = JSON.parse(await tool("skopeo", ["inspect", `docker-archive:${tarball}`])) as {
      Layers: string[];
    };
    // containers/image names the layers of a docker archive by diff_id (it decompresses them).
    expect(inspected.Layers).toEqual(single.manifests[0]!.layers.map((l) => l.diffId));
    const saved = JSON.parse(await tool("tar", ["-xOf", tarball, "manifest.json"])) as {
      RepoTags: string[];
    }[];
    // The fully qualified name, as skopeo writes it; docker load takes both.
    expect(saved.map((m) => m.RepoTags)).toEqual([["docker.io/app/single:v1"]]);
    await skopeoReadsAll({ ref: `docker-archive:${tarball}` });

    // ECR -> docker-archive -> registry, for an image of gzip and uncompressed layers: the
    // Docker manifest made from the archive names the very blobs of the source.
    // (Not with the zstd layer: the manifest then types it `vnd.docker.image.rootfs.diff.tar.zstd`,
    // containerd's name, which skopeo 1.9 refuses to read.)
    await copy(plain.reference, `${ecrA.registryHost}/plain:v1`, {
      destination: { aws: awsA, createRepository: true },
    });
    const plainTarball = scratch.fresh("plain.docker.tar");
    await copy(`${ecrA.registryHost}/plain:v1`, `docker-archive:${plainTarball}:plain:v1`, {
      source: { aws: awsA },
      platform: "linux/amd64",
    });
    const fromTarball = await copy(`docker-archive:${plainTarball}`, `${open.host}/from-docker-archive:v1`);
    const raw = await skopeoRaw(atOpen("from-docker-archive:v1"));
    expect(sha256(raw)).toBe(fromTarball.digest);
    const manifest = JSON.parse(raw.toString()) as {
      mediaType: string;
      config: { digest: string };
      layers: { digest: string }[];
    };
    const image = plain.manifests[0]!;
    expect(manifest.mediaType).toBe("application/vnd.docker.distribution.manifest.v2+json");
    expect(manifest.config.digest).toBe(image.config.digest);
    expect(manifest.layers.map((l) => l.digest)).toEqual(image.layers.map((l) => l.digest));
    await skopeoReadsAll(atOpen("from-docker-archive:v1"));
  });

  describe("the CLI", () => {
    let configDir: string;
    const env = (): Record<string, string> => ({
      AWS_SHARED_CREDENTIALS_FILE: join(configDir, "credentials"),
      AWS_CONFIG_FILE: join(configDir, "config"),
      HOME: configDir,
      ECRX_CACHE_DIR: join(configDir, "cache"),
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
    });

    beforeAll(async () => {
      ensureBuilt();
      configDir = scratch.fresh("aws");
      await mkdir(configDir, { recursive: true });
      await writeFile(
        join(configDir, "credentials"),
        `[account-a]\naws_access_key_id = ${ACCOUNT_A.accessKeyId}\naws_secret_access_key = ${ACCOUNT_A.secretAccessKey}\n` +
          `[account-b]\naws_access_key_id = ${ACCOUNT_B.accessKeyId}\naws_secret_access_key = ${ACCOUNT_B.secretAccessKey}\n`,
      );
      await writeFile(join(configDir, "config"), "");
    }, 120_000);

    it("--src-creds and --dest-creds between the registries, --json summary", async () => {
      const run = await runCli(
        [
          "copy",
          `${locked.host}/src/multi:v1`,
          `${locked.host}/cli/multi:v1`,
          "--src-creds",
          ALICE,
          "--dest-creds",
          ALICE,
          "--json",
        ],
        env(),
      );
      expect(run.stderr).toBe("");
      expect(run.code).toBe(0);
      const lines = run.stdout.trim().split("\n");
      const summary = JSON.parse(lines.at(-1)!) as Record<string, unknown>;
      expect(summary).toMatchObject({
        type: "summary",
        digest: multi.root.digest,
        sourceDigest: multi.root.digest,
        images: 2,
        // Blobs are per repository in docker-registry: the new repository gets every one.
        blobsSent: blobCount(multi),
      });
      await expectSameImage(atLocked("cli/multi:v1"), multi.root.digest, multi.root.bytes);
    });

    it("--src-endpoint-url and --dest-endpoint-url: two servers, each with its own profile", async () => {
      // Names as on AWS: only the endpoint flags send them to the local servers.
      const source = `${ACCOUNT_A.accountId}.dkr.ecr.us-east-1.amazonaws.com/single:v1`;
      const destination = `${ACCOUNT_B.accountId}.dkr.ecr.eu-west-1.amazonaws.com/cli/single:v1`;
      const run = await runCli(
        [
          "copy",
          source,
          destination,
          "--src-endpoint-url",
          ecrA.url,
          "--src-profile",
          "account-a",
          "--dest-endpoint-url",
          ecrB.url,
          "--dest-profile",
          "account-b",
          "--create-repo",
          "--json",
        ],
        env(),
      );
      expect(run.code, run.stderr).toBe(0);
      const summary = JSON.parse(run.stdout.trim().split("\n").at(-1)!) as Record<string, unknown>;
      expect(summary).toMatchObject({
        type: "summary",
        source,
        destination,
        digest: single.root.digest,
        blobsSent: blobCount(single),
      });
      await expectSameImage(atB("cli/single:v1"), single.root.digest, single.root.bytes);
      const events = run.stdout
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as { type: string });
      expect(events.some((e) => e.type === "manifest-put")).toBe(true);
    });

    it("a refused credential: exit code 4, one line and a hint, no stack trace", async () => {
      const run = await runCli(
        [
          "copy",
          `${locked.host}/src/single:v1`,
          `oci:${scratch.fresh("refused")}:v1`,
          "--src-creds",
          `${USER.username}:wrong`,
        ],
        env(),
      );
      expect(run.code).toBe(4);
      expect(run.stdout).toBe("");
      const lines = run.stderr.trim().split("\n");
      expect(lines, run.stderr).toHaveLength(2);
      expect(lines[0]).toMatch(/^ecrx: .*(401|authentication required)/);
      expect(lines[1]).toMatch(/^hint: .*credentials/);
      expect(run.stderr).not.toMatch(/^\s+at /m);
      expect(run.stderr).not.toContain("wrong");
    });

    it("a refused AWS key at the destination: exit code 4, one line and a hint", async () => {
      const run = await runCli(
        [
          "copy",
          `oci:${single.path}:${single.tag}`,
          `${ACCOUNT_B.accountId}.dkr.ecr.eu-west-1.amazonaws.com/cli/refused:v1`,
          "--dest-endpoint-url",
          ecrB.url,
          "--dest-profile",
          "account-a",
        ],
        env(),
      );
      expect(run.code, run.stderr).toBe(4);
      const lines = run.stderr.trim().split("\n");
      expect(lines, run.stderr).toHaveLength(2);
      expect(lines[0]).toMatch(/^ecrx: .*UnrecognizedClientException/);
      expect(lines[1]).toMatch(/^hint: /);
      expect(run.stderr).not.toMatch(/^\s+at /m);
    });
  });
});
