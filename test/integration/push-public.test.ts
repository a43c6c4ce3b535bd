/**
 * Push to ECR Public (`public.ecr.aws/<alias>/<repo>`) through the ECR Public API of an in-process
 * `ecrx serve`: the alias is resolved to the registry with DescribeRegistries, blobs go through
 * the same layer-upload protocol with ECR Public's limits, and the result is read back through
 * the ECR Public API.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  BatchCheckLayerAvailabilityCommand,
  DescribeImageTagsCommand,
  DescribeRepositoriesCommand,
  type ECRPUBLICClient,
} from "@aws-sdk/client-ecr-public";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { serve, type RunningServer } from "../../src/emulator/server.js";
import { push, type PushOptions } from "../../src/push.js";
import { ecrPublicClient } from "../helpers/emulator-clients.js";
import { buildImage, MiB } from "../helpers/images.js";

let server: RunningServer;
let client: ECRPUBLICClient;
let work: string;

function options(extra: Partial<PushOptions> = {}): PushOptions {
  return {
    aws: {
      endpointUrl: server.url,
      credentials: {
        accessKeyId: server.env.AWS_ACCESS_KEY_ID!,
        secretAccessKey: server.env.AWS_SECRET_ACCESS_KEY!,
      },
    },
    blobInfoCache: false,
    ...extra,
  };
}

beforeAll(async () => {
  server = await serve({ port: 0 });
  client = ecrPublicClient(server);
  work = await mkdtemp(join(tmpdir(), "ecrx-push-public-"));
});

afterAll(async () => {
  client.destroy();
  await server.close();
  await rm(work, { recursive: true, force: true });
});

describe("push to ECR Public", () => {
  it("creates the repository, uploads every blob in parts and tags the image", async () => {
    const image = await buildImage({
      format: "oci-layout",
      dir: work,
      name: "public-image",
      layers: [{ size: 12 * MiB, content: "random" }, { size: 64 * 1024 }],
    });
    const alias = server.publicRegistryAlias;
    const result = await push(
      image.reference,
      `public.ecr.aws/${alias}/pub-app:1.0,stable`,
      options({ createRepository: true, partSize: 5 * MiB }),
    );

    expect(result.digest).toBe(image.root.digest);
    expect(result.repository).toBe(`public.ecr.aws/${alias}/pub-app`);
    const repos = await client.send(new DescribeRepositoriesCommand({ repositoryNames: ["pub-app"] }));
    expect(repos.repositories?.[0]?.repositoryUri).toBe(`public.ecr.aws/${alias}/pub-app`);
    const tags = await client.send(new DescribeImageTagsCommand({ repositoryName: "pub-app" }));
    expect(new Map(tags.imageTagDetails?.map((t) => [t.imageTag, t.imageDetail?.imageDigest]))).toEqual(
      new Map([
        ["1.0", image.root.digest],
        ["stable", image.root.digest],
      ]),
    );
    const blobs = [image.manifests[0]!.config, ...image.manifests[0]!.layers].map((b) => b.digest);
    const check = await client.send(
      new BatchCheckLayerAvailabilityCommand({ repositoryName: "pub-app", layerDigests: blobs }),
    );
    expect(check.failures ?? []).toEqual([]);
    expect(check.layers?.map((l) => l.layerAvailability)).toEqual(blobs.map(() => "AVAILABLE"));
  });

  it("refuses an alias that is not a registry of these credentials, naming the ones that are", async () => {
    const image = await buildImage({ format: "oci-layout", dir: work, name: "other-alias" });
    await expect(
      push(image.reference, "public.ecr.aws/someone-else/app:1", options({ createRepository: true })),
    ).rejects.toMatchObject({
      code: "NOT_FOUND",
      message: expect.stringContaining("public.ecr.aws/someone-else is not a registry of these credentials"),
      hint: expect.stringContaining(server.publicRegistryAlias),
    });
  });

  it("fails on a missing repository with the --create-repo hint", async () => {
    const image = await buildImage({ format: "oci-layout", dir: work, name: "missing-repo" });
    await expect(
      push(image.reference, `public.ecr.aws/${server.publicRegistryAlias}/nowhere:1`, options()),
    ).rejects.toMatchObject({
      code: "NOT_FOUND",
      hint: expect.stringContaining("--create-repo"),
    });
  });
});
