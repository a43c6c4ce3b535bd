/* eslint-disable @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-call, @typescript-eslint/no-unsafe-return, @typescript-eslint/no-unsafe-argument -- operation outputs are untyped wire JSON, inspected member by member */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { readAuthorizationToken, verifyAuthorizationToken } from "../../src/emulator/auth-tokens.js";
import { ACCOUNT, Env, REGION, expectApiError } from "./emulator-helpers.js";

let env: Env;
beforeEach(async () => {
  env = await Env.create();
});
afterEach(async () => env.dispose());

describe("CreateRepository", () => {
  it("returns the repository with AWS's member names and defaults", async () => {
    const out = await env.createRepo("team/app");
    expect(out.repository).toEqual({
      repositoryArn: `arn:aws:ecr:${REGION}:${ACCOUNT}:repository/team/app`,
      registryId: ACCOUNT,
      repositoryName: "team/app",
      repositoryUri: `${ACCOUNT}.dkr.ecr.${REGION}.amazonaws.com/team/app`,
      createdAt: env.now.getTime() / 1000,
      imageTagMutability: "MUTABLE",
      imageScanningConfiguration: { scanOnPush: false },
      encryptionConfiguration: { encryptionType: "AES256" },
    });
  });

  it("keeps the settings given", async () => {
    const out = await env.createRepo("app", {
      imageTagMutability: "IMMUTABLE",
      imageScanningConfiguration: { scanOnPush: true },
      encryptionConfiguration: {
        encryptionType: "KMS",
        kmsKey: "arn:aws:kms:eu-west-1:123456789012:key/abc",
      },
      tags: [{ Key: "team", Value: "x" }],
    });
    expect(out.repository.imageTagMutability).toBe("IMMUTABLE");
    expect(out.repository.imageScanningConfiguration).toEqual({ scanOnPush: true });
    expect(out.repository.encryptionConfiguration.encryptionType).toBe("KMS");
    await env.createRepo("dsse", { encryptionConfiguration: { encryptionType: "KMS_DSSE" } });
  });

  it("refuses duplicates and invalid settings", async () => {
    await env.createRepo("app");
    await expectApiError(env.createRepo("app"), "RepositoryAlreadyExistsException");
    await expectApiError(
      env.createRepo("x1", { imageTagMutability: "SOMETIMES" }),
      "InvalidParameterException",
    );
    await expectApiError(
      env.createRepo("x2", { imageTagMutability: "IMMUTABLE_WITH_EXCLUSION" }),
      "InvalidParameterException",
    );
    await expectApiError(
      env.createRepo("x3", {
        imageTagMutabilityExclusionFilters: [{ filterType: "WILDCARD", filter: "a*" }],
      }),
      "InvalidParameterException",
    );
    await expectApiError(
      env.createRepo("x4", {
        imageTagMutability: "MUTABLE_WITH_EXCLUSION",
        imageTagMutabilityExclusionFilters: [{ filterType: "WILDCARD", filter: "a b" }],
      }),
      "InvalidParameterException",
    );
    await expectApiError(
      env.createRepo("x5", { encryptionConfiguration: { encryptionType: "ROT13" } }),
      "InvalidParameterException",
    );
    await expectApiError(env.createRepo("x6", { encryptionConfiguration: {} }), "InvalidParameterException");
    await expectApiError(
      env.createRepo("x7", { encryptionConfiguration: { encryptionType: "AES256", kmsKey: "k" } }),
      "InvalidParameterException",
    );
    await expectApiError(
      env.createRepo("x8", { imageScanningConfiguration: { scanOnPush: "yes" } }),
      "InvalidParameterException",
    );
    await expectApiError(env.createRepo("x9", { registryId: "999999999999" }), "InvalidParameterException");
  });

  it("limits tags to 50 and refuses reserved keys", async () => {
    const tags = Array.from({ length: 51 }, (_, i) => ({ Key: `k${i}`, Value: "v" }));
    await expectApiError(env.createRepo("many", { tags }), "TooManyTagsException");
    await env.createRepo("fifty", { tags: tags.slice(0, 50) });
    await expectApiError(
      env.createRepo("reserved", { tags: [{ Key: "aws:x", Value: "v" }] }),
      "InvalidTagParameterException",
    );
    await expectApiError(env.createRepo("nokey", { tags: [{ Value: "v" }] }), "InvalidParameterException");
  });
});

describe("DescribeRepositories", () => {
  it("describes named repositories and fails on a missing one", async () => {
    await env.createRepo("aa");
    await env.createRepo("bb");
    const out = await env.call("DescribeRepositories", { repositoryNames: ["bb"] });
    expect(out.repositories.map((r: any) => r.repositoryName)).toEqual(["bb"]);
    await expectApiError(
      env.call("DescribeRepositories", { repositoryNames: ["aa", "zz"] }),
      "RepositoryNotFoundException",
      /zz/,
    );
    await expectApiError(
      env.call("DescribeRepositories", { repositoryNames: [] }),
      "InvalidParameterException",
    );
    await expectApiError(
      env.call("DescribeRepositories", { repositoryNames: ["aa"], maxResults: 1 }),
      "InvalidParameterException",
    );
  });

  it("pages through all repositories; another registry has none", async () => {
    const names = ["r01", "r02", "r03", "r04", "r05"];
    for (const name of names) await env.createRepo(name);
    const first = await env.call("DescribeRepositories", { maxResults: 2 });
    expect(first.repositories.map((r: any) => r.repositoryName)).toEqual(["r01", "r02"]);
    const second = await env.call("DescribeRepositories", { maxResults: 2, nextToken: first.nextToken });
    expect(second.repositories.map((r: any) => r.repositoryName)).toEqual(["r03", "r04"]);
    const third = await env.call("DescribeRepositories", { maxResults: 2, nextToken: second.nextToken });
    expect(third.repositories.map((r: any) => r.repositoryName)).toEqual(["r05"]);
    expect(third.nextToken).toBeUndefined();
    const foreign = await env.call("DescribeRepositories", { registryId: "999999999999" });
    expect(foreign.repositories).toEqual([]);
  });
});

describe("DeleteRepository", () => {
  it("refuses a repository with images unless forced", async () => {
    await env.createRepo("app");
    await env.pushImage("app", { tag: "v1" });
    await expectApiError(
      env.call("DeleteRepository", { repositoryName: "app" }),
      "RepositoryNotEmptyException",
    );
    const out = await env.call("DeleteRepository", { repositoryName: "app", force: true });
    expect(out.repository.repositoryName).toBe("app");
    await expectApiError(
      env.call("DescribeRepositories", { repositoryNames: ["app"] }),
      "RepositoryNotFoundException",
    );
    await expectApiError(
      env.call("DeleteRepository", { repositoryName: "app" }),
      "RepositoryNotFoundException",
    );
    await expectApiError(
      env.call("DeleteRepository", { repositoryName: "app", force: "yes" }),
      "InvalidParameterException",
    );
  });

  it("deletes an empty repository and its uploads; a new one of that name starts clean", async () => {
    await env.createRepo("app");
    await env.pushBlob("app", "blob");
    const { uploadId } = await env.call("InitiateLayerUpload", { repositoryName: "app" });
    await env.call("DeleteRepository", { repositoryName: "app" });
    await env.createRepo("app");
    await expectApiError(
      env.call("UploadLayerPart", {
        repositoryName: "app",
        uploadId,
        partFirstByte: 0,
        partLastByte: 0,
        layerPartBlob: "eA==",
      }),
      "UploadNotFoundException",
    );
    const out = await env.call("BatchCheckLayerAvailability", {
      repositoryName: "app",
      layerDigests: [await env.pushBlob("app", "x")],
    });
    expect(out.layers).toHaveLength(1);
  });
});

describe("GetAuthorizationToken", () => {
  it("issues a 12-hour token the registry can verify", async () => {
    const out = await env.call("GetAuthorizationToken", {});
    expect(out.authorizationData).toHaveLength(1);
    const data = out.authorizationData[0];
    expect(data.proxyEndpoint).toBe(`https://${ACCOUNT}.dkr.ecr.${REGION}.amazonaws.com`);
    expect(data.expiresAt).toBe(Math.floor(env.now.getTime() / 1000) + 12 * 3600);
    const decoded = Buffer.from(data.authorizationToken, "base64").toString();
    expect(decoded.startsWith("AWS:")).toBe(true);
    expect(verifyAuthorizationToken(env.store, data.authorizationToken, env.now)).toBe(true);
    expect(readAuthorizationToken(env.store, data.authorizationToken, env.now)).toEqual({
      service: "ecr",
      accountId: ACCOUNT,
      expiresAt: data.expiresAt,
    });
    const later = new Date(env.now.getTime() + 12 * 3600 * 1000 + 1000);
    expect(verifyAuthorizationToken(env.store, data.authorizationToken, later)).toBe(false);
    const forged = Buffer.from(decoded.replace(/\.\d+\./, `.${data.expiresAt + 9999}.`)).toString("base64");
    expect(verifyAuthorizationToken(env.store, forged, env.now)).toBe(false);
    expect(verifyAuthorizationToken(env.store, "garbage", env.now)).toBe(false);
    // The secret is persisted: a restarted server still accepts the token.
    await env.restart();
    expect(verifyAuthorizationToken(env.store, data.authorizationToken, env.now)).toBe(true);
  });

  it("answers one entry per registry asked, and validates ids", async () => {
    const out = await env.call("GetAuthorizationToken", { registryIds: [ACCOUNT, "111111111111"] });
    expect(out.authorizationData.map((d: any) => d.proxyEndpoint)).toEqual([
      `https://${ACCOUNT}.dkr.ecr.${REGION}.amazonaws.com`,
      `https://111111111111.dkr.ecr.${REGION}.amazonaws.com`,
    ]);
    await expectApiError(
      env.call("GetAuthorizationToken", { registryIds: ["abc"] }),
      "InvalidParameterException",
    );
    await expectApiError(env.call("GetAuthorizationToken", { registryIds: [] }), "InvalidParameterException");
  });
});
