/* eslint-disable @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-call, @typescript-eslint/no-unsafe-return, @typescript-eslint/no-unsafe-argument -- operation outputs are untyped wire JSON, inspected member by member */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { verifyAuthorizationToken } from "../../src/emulator/auth-tokens.js";
import { ACCOUNT, ALIAS, Env, expectApiError, sha256 } from "./emulator-helpers.js";

let env: Env;
beforeEach(async () => {
  env = await Env.create();
});
afterEach(async () => env.dispose());

describe("ECR Public", () => {
  it("creates repositories with catalog data and public URIs", async () => {
    const out = await env.callPublic("CreateRepository", {
      repositoryName: "tools/cli",
      catalogData: {
        description: "d",
        architectures: ["x86-64", "ARM 64"],
        operatingSystems: ["Linux"],
        usageText: "u",
      },
      tags: [{ Key: "k", Value: "v" }],
    });
    expect(out.repository).toEqual({
      repositoryArn: `arn:aws:ecr-public::${ACCOUNT}:repository/tools/cli`,
      registryId: ACCOUNT,
      repositoryName: "tools/cli",
      repositoryUri: `public.ecr.aws/${ALIAS}/tools/cli`,
      createdAt: env.now.getTime() / 1000,
    });
    expect(out.catalogData).toEqual({
      description: "d",
      architectures: ["x86-64", "ARM 64"],
      operatingSystems: ["Linux"],
      usageText: "u",
      marketplaceCertified: false,
    });
    await expectApiError(
      env.callPublic("CreateRepository", { repositoryName: "tools/cli" }),
      "RepositoryAlreadyExistsException",
    );
    await expectApiError(
      env.callPublic("CreateRepository", {
        repositoryName: "bad",
        catalogData: { architectures: ["sparc"] },
      }),
      "InvalidParameterException",
    );
    await expectApiError(
      env.callPublic("CreateRepository", { repositoryName: "a".repeat(206) }),
      "InvalidParameterException",
    );
  });

  it("keeps public and private repositories apart", async () => {
    await env.callPublic("CreateRepository", { repositoryName: "shared" });
    await expectApiError(
      env.call("DescribeRepositories", { repositoryNames: ["shared"] }),
      "RepositoryNotFoundException",
    );
    await env.createRepo("shared");
    const digest = await env.pushBlob("shared", "private-only");
    const out = await env.callPublic("BatchCheckLayerAvailability", {
      repositoryName: "shared",
      layerDigests: [digest],
    });
    expect(out.failures[0].failureCode).toBe("MissingLayerDigest");
  });

  it("pushes an image with the registry given as account id or alias", async () => {
    await env.callPublic("CreateRepository", { repositoryName: "web" });
    const img = await env.pushImage("web", { tag: "v1", service: "ecr-public" });
    const byAlias = await env.callPublic("BatchCheckLayerAvailability", {
      repositoryName: "web",
      registryId: ALIAS,
      layerDigests: img.layerDigests,
    });
    expect(byAlias.layers).toHaveLength(1);
    await expectApiError(
      env.callPublic("InitiateLayerUpload", { repositoryName: "web", registryId: "otheralias" }),
      "RegistryNotFoundException",
    );
    // Operations outside the push path take a 12-digit registry id only.
    await expectApiError(
      env.callPublic("DescribeImages", { repositoryName: "web", registryId: ALIAS }),
      "InvalidParameterException",
    );
    await expectApiError(
      env.callPublic("DescribeImages", { repositoryName: "web", registryId: "999999999999" }),
      "RegistryNotFoundException",
    );
    const images = await env.callPublic("DescribeImages", { repositoryName: "web" });
    expect(images.imageDetails[0]).toMatchObject({ imageDigest: img.digest, imageTags: ["v1"] });
    expect(images.imageDetails[0].subjectManifestDigest).toBeUndefined();
  });

  it("describes image tags, paged", async () => {
    await env.callPublic("CreateRepository", { repositoryName: "web" });
    const img = await env.pushImage("web", { tag: "a", service: "ecr-public", layers: ["abc"] });
    for (const tag of ["b", "c"]) {
      await env.callPublic("PutImage", { repositoryName: "web", imageManifest: img.manifest, imageTag: tag });
    }
    const first = await env.callPublic("DescribeImageTags", { repositoryName: "web", maxResults: 2 });
    expect(first.imageTagDetails.map((t: any) => t.imageTag)).toEqual(["a", "b"]);
    expect(first.imageTagDetails[0]).toEqual({
      imageTag: "a",
      createdAt: env.now.getTime() / 1000,
      imageDetail: {
        imageDigest: img.digest,
        imageSizeInBytes: 3,
        imagePushedAt: env.now.getTime() / 1000,
        imageManifestMediaType: "application/vnd.oci.image.manifest.v1+json",
        artifactMediaType: "application/vnd.oci.image.config.v1+json",
      },
    });
    const rest = await env.callPublic("DescribeImageTags", {
      repositoryName: "web",
      nextToken: first.nextToken,
    });
    expect(rest.imageTagDetails.map((t: any) => t.imageTag)).toEqual(["c"]);
  });

  it("describes the registry and issues a token", async () => {
    const regs = await env.callPublic("DescribeRegistries", {});
    expect(regs.registries).toEqual([
      {
        registryId: ACCOUNT,
        registryArn: `arn:aws:ecr-public::${ACCOUNT}:registry/${ACCOUNT}`,
        registryUri: `public.ecr.aws/${ALIAS}`,
        verified: false,
        aliases: [{ name: ALIAS, status: "ACTIVE", primaryRegistryAlias: true, defaultRegistryAlias: true }],
      },
    ]);
    const token = await env.callPublic("GetAuthorizationToken", {});
    expect(token.authorizationData.expiresAt).toBe(env.now.getTime() / 1000 + 12 * 3600);
    expect(verifyAuthorizationToken(env.store, token.authorizationData.authorizationToken, env.now)).toBe(
      true,
    );
  });

  it("has no pull operations of private ECR", () => {
    expect(env.pub.BatchGetImage).toBeUndefined();
    expect(env.pub.GetDownloadUrlForLayer).toBeUndefined();
    expect(env.pub.ListImages).toBeUndefined();
  });

  it("limits an upload to 1,000 parts", async () => {
    await env.callPublic("CreateRepository", { repositoryName: "web" });
    const { uploadId } = await env.callPublic("InitiateLayerUpload", { repositoryName: "web" });
    const one = Buffer.from("x").toString("base64");
    for (let i = 0; i < 1000; i++) {
      await env.callPublic("UploadLayerPart", {
        repositoryName: "web",
        uploadId,
        partFirstByte: i,
        partLastByte: i,
        layerPartBlob: one,
      });
    }
    await expectApiError(
      env.callPublic("UploadLayerPart", {
        repositoryName: "web",
        uploadId,
        partFirstByte: 1000,
        partLastByte: 1000,
        layerPartBlob: one,
      }),
      "LimitExceededException",
    );
  });

  it("deletes images and repositories", async () => {
    await env.callPublic("CreateRepository", { repositoryName: "web" });
    const img = await env.pushImage("web", { tag: "v1", service: "ecr-public" });
    await expectApiError(
      env.callPublic("DeleteRepository", { repositoryName: "web" }),
      "RepositoryNotEmptyException",
    );
    const del = await env.callPublic("BatchDeleteImage", {
      repositoryName: "web",
      imageIds: [{ imageDigest: img.digest }],
    });
    expect(del.imageIds).toEqual([{ imageDigest: img.digest, imageTag: "v1" }]);
    await env.callPublic("DeleteRepository", { repositoryName: "web" });
    const list = await env.callPublic("DescribeRepositories", {});
    expect(list.repositories).toEqual([]);
    await expectApiError(
      env.callPublic("CompleteLayerUpload", {
        repositoryName: "web",
        uploadId: crypto.randomUUID(),
        layerDigests: [sha256("a")],
      }),
      "RepositoryNotFoundException",
    );
  });
});
