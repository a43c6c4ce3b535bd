/**
 * The Debian `aws` CLI (an independent SigV4 and AWS JSON client, botocore) against `ecrx serve`:
 * a push through the layer-upload API in two parts, then the pull path down to the blob bytes.
 * Debian ships awscli 2.9, older than service-specific AWS_ENDPOINT_URL_* (2.13), so the endpoint
 * goes in --endpoint-url.
 */
import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { serve, type RunningServer } from "../../src/emulator/server.js";

const AWS = "/usr/bin/aws";
const available = existsSync(AWS);
const ci = process.env.CI === "true";
if (!available && !ci) {
  console.warn(`skipping the aws CLI interop test: ${AWS} is not installed (apt-get install awscli)`);
}

const run = promisify(execFile);
let server: RunningServer;
let work: string;

function sha256(data: Buffer): string {
  return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}

/** Runs `aws <service> <args>` against the server, with no config file, pager or instance metadata. */
async function aws(service: "ecr" | "ecr-public", ...args: string[]): Promise<Record<string, unknown>> {
  const { stdout } = await run(
    AWS,
    [
      service,
      ...args,
      "--endpoint-url",
      server.url,
      "--region",
      service === "ecr" ? server.region : "us-east-1",
      "--output",
      "json",
      "--no-cli-pager",
    ],
    {
      env: {
        PATH: process.env.PATH ?? "/usr/bin:/bin",
        HOME: work,
        AWS_ACCESS_KEY_ID: server.env.AWS_ACCESS_KEY_ID ?? "",
        AWS_SECRET_ACCESS_KEY: server.env.AWS_SECRET_ACCESS_KEY ?? "",
        AWS_CONFIG_FILE: "/dev/null",
        AWS_SHARED_CREDENTIALS_FILE: "/dev/null",
        AWS_PAGER: "",
        AWS_EC2_METADATA_DISABLED: "true",
        AWS_MAX_ATTEMPTS: "1",
      },
      maxBuffer: 16 * 1024 * 1024,
    },
  );
  return stdout.trim() === "" ? {} : (JSON.parse(stdout) as Record<string, unknown>);
}

/** Uploads `blob` in parts of `partSize` through the CLI; returns its digest. */
async function uploadWithCli(repositoryName: string, blob: Buffer, partSize: number): Promise<string> {
  const { uploadId } = (await aws("ecr", "initiate-layer-upload", "--repository-name", repositoryName)) as {
    uploadId: string;
  };
  for (let first = 0; first < blob.length; first += partSize) {
    const part = blob.subarray(first, Math.min(blob.length, first + partSize));
    const file = join(work, `part-${first}`);
    await writeFile(file, part);
    const out = await aws(
      "ecr",
      "upload-layer-part",
      "--repository-name",
      repositoryName,
      "--upload-id",
      uploadId,
      "--part-first-byte",
      String(first),
      "--part-last-byte",
      String(first + part.length - 1),
      "--layer-part-blob",
      `fileb://${file}`,
    );
    expect(out.lastByteReceived).toBe(first + part.length - 1);
  }
  const digest = sha256(blob);
  const done = await aws(
    "ecr",
    "complete-layer-upload",
    "--repository-name",
    repositoryName,
    "--upload-id",
    uploadId,
    "--layer-digests",
    digest,
  );
  expect(done.layerDigest).toBe(digest);
  return digest;
}

describe.skipIf(!available && !ci)("aws CLI against ecrx serve", () => {
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), "ecrx-awscli-"));
    server = await serve({ port: 0, accessKeyId: "AKIAINTEROP", secretAccessKey: "interop/secret+key" });
  });
  afterAll(async () => {
    await server?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("is installed (CI installs it)", () => {
    expect(available, `${AWS} is missing; .ci/run installs the Debian awscli package`).toBe(true);
  });

  it("pushes an image in two parts and pulls the layer back by its download URL", async () => {
    const created = (await aws("ecr", "create-repository", "--repository-name", "interop/app")) as {
      repository: { repositoryName: string; repositoryUri: string };
    };
    expect(created.repository.repositoryName).toBe("interop/app");

    const layer = randomBytes(5 * 1024 * 1024 + 12_345);
    const layerDigest = await uploadWithCli("interop/app", layer, 5 * 1024 * 1024);
    const config = Buffer.from(
      JSON.stringify({
        architecture: "amd64",
        os: "linux",
        rootfs: { type: "layers", diff_ids: [layerDigest] },
      }),
    );
    const configDigest = await uploadWithCli("interop/app", config, 5 * 1024 * 1024);
    const manifest = JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: {
        mediaType: "application/vnd.oci.image.config.v1+json",
        digest: configDigest,
        size: config.length,
      },
      layers: [
        { mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: layerDigest, size: layer.length },
      ],
    });
    const put = (await aws(
      "ecr",
      "put-image",
      "--repository-name",
      "interop/app",
      "--image-tag",
      "v1",
      "--image-manifest",
      manifest,
    )) as {
      image: { imageId: { imageDigest: string } };
    };
    expect(put.image.imageId.imageDigest).toBe(sha256(Buffer.from(manifest)));

    const got = (await aws(
      "ecr",
      "batch-get-image",
      "--repository-name",
      "interop/app",
      "--image-ids",
      "imageTag=v1",
    )) as {
      images: { imageManifest: string }[];
      failures: unknown[];
    };
    expect(got.failures).toEqual([]);
    expect(got.images[0]?.imageManifest).toBe(manifest);

    const { downloadUrl } = (await aws(
      "ecr",
      "get-download-url-for-layer",
      "--repository-name",
      "interop/app",
      "--layer-digest",
      layerDigest,
    )) as { downloadUrl: string };
    const res = await request(downloadUrl);
    expect(res.statusCode).toBe(200);
    expect(sha256(Buffer.from(await res.body.arrayBuffer()))).toBe(layerDigest);
  });

  it("reaches ECR Public on the same port", async () => {
    const out = (await aws("ecr-public", "describe-registries")) as { registries: { registryUri: string }[] };
    expect(out.registries[0]?.registryUri).toBe(`public.ecr.aws/${server.publicRegistryAlias}`);
  });

  it("gets the AWS error for a refused signature", async () => {
    const wrong = run(
      AWS,
      [
        "ecr",
        "describe-repositories",
        "--endpoint-url",
        server.url,
        "--region",
        server.region,
        "--no-cli-pager",
      ],
      {
        env: {
          PATH: process.env.PATH ?? "/usr/bin:/bin",
          HOME: work,
          AWS_ACCESS_KEY_ID: "AKIAINTEROP",
          AWS_SECRET_ACCESS_KEY: "not-the-secret",
          AWS_CONFIG_FILE: "/dev/null",
          AWS_SHARED_CREDENTIALS_FILE: "/dev/null",
          AWS_EC2_METADATA_DISABLED: "true",
          AWS_MAX_ATTEMPTS: "1",
        },
      },
    );
    await expect(wrong).rejects.toMatchObject({
      stderr: expect.stringContaining("(InvalidSignatureException)"),
    });
  });
});
