/**
 * Every emulator operation through the unchanged AWS SDK clients, against `serve({ port: 0 })`:
 * the operations' member names, types and exception names must be what the SDK parses.
 */
import { createHash } from "node:crypto";
import {
  BatchCheckLayerAvailabilityCommand,
  BatchDeleteImageCommand,
  BatchGetImageCommand,
  CompleteLayerUploadCommand,
  CreateRepositoryCommand,
  DeleteRepositoryCommand,
  DescribeImagesCommand,
  DescribeRepositoriesCommand,
  type ECRClient,
  GetAuthorizationTokenCommand,
  GetDownloadUrlForLayerCommand,
  InitiateLayerUploadCommand,
  InvalidLayerPartException,
  ListImagesCommand,
  PutImageCommand,
  RepositoryNotFoundException,
  UploadLayerPartCommand,
  ImageAlreadyExistsException,
} from "@aws-sdk/client-ecr";
import * as pub from "@aws-sdk/client-ecr-public";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { serve, type RunningServer } from "../../src/emulator/server.js";
import { ecrClient, ecrPublicClient } from "../helpers/emulator-clients.js";
import { ociImageManifest } from "../helpers/oci-manifest.js";

const ACCOUNT = "123456789012";
let server: RunningServer;
let ecr: ECRClient;
let ecrPublic: pub.ECRPUBLICClient;

function sha256(data: Buffer | string): string {
  return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}

beforeAll(async () => {
  server = await serve({ port: 0, accountId: ACCOUNT, rates: "off" });
  ecr = ecrClient(server);
  ecrPublic = ecrPublicClient(server);
});

afterAll(async () => {
  ecr?.destroy();
  ecrPublic?.destroy();
  await server?.close();
});

async function pushBlob(repositoryName: string, data: Buffer): Promise<string> {
  const { uploadId } = await ecr.send(new InitiateLayerUploadCommand({ repositoryName }));
  await ecr.send(
    new UploadLayerPartCommand({
      repositoryName,
      uploadId,
      partFirstByte: 0,
      partLastByte: data.length - 1,
      layerPartBlob: data,
    }),
  );
  const done = await ecr.send(
    new CompleteLayerUploadCommand({ repositoryName, uploadId, layerDigests: [sha256(data)] }),
  );
  return done.layerDigest!;
}

describe("private ECR through @aws-sdk/client-ecr", () => {
  it("creates, pushes, reads, lists, downloads and deletes", async () => {
    const created = await ecr.send(new CreateRepositoryCommand({ repositoryName: "sdk/app" }));
    expect(created.repository?.repositoryUri).toBe(
      `${ACCOUNT}.dkr.ecr.${server.region}.amazonaws.com/sdk/app`,
    );
    expect(created.repository?.createdAt).toBeInstanceOf(Date);

    const config = Buffer.from('{"architecture":"amd64","os":"linux"}');
    const layer = Buffer.from("layer payload");
    const configDigest = await pushBlob("sdk/app", config);
    const layerDigest = await pushBlob("sdk/app", layer);

    const check = await ecr.send(
      new BatchCheckLayerAvailabilityCommand({
        repositoryName: "sdk/app",
        layerDigests: [layerDigest, sha256("x")],
      }),
    );
    expect(check.layers?.[0]).toMatchObject({
      layerDigest,
      layerAvailability: "AVAILABLE",
      layerSize: layer.length,
    });
    expect(check.failures?.[0]?.failureCode).toBe("MissingLayerDigest");

    const manifest = ociImageManifest({ digest: configDigest, size: config.length }, [
      { digest: layerDigest, size: layer.length },
    ]);
    const put = await ecr.send(
      new PutImageCommand({ repositoryName: "sdk/app", imageManifest: manifest, imageTag: "v1" }),
    );
    expect(put.image?.imageId?.imageDigest).toBe(sha256(manifest));
    await expect(
      ecr.send(new PutImageCommand({ repositoryName: "sdk/app", imageManifest: manifest, imageTag: "v1" })),
    ).rejects.toBeInstanceOf(ImageAlreadyExistsException);

    const got = await ecr.send(
      new BatchGetImageCommand({ repositoryName: "sdk/app", imageIds: [{ imageTag: "v1" }] }),
    );
    expect(got.images?.[0]?.imageManifest).toBe(manifest);

    const described = await ecr.send(new DescribeImagesCommand({ repositoryName: "sdk/app" }));
    expect(described.imageDetails?.[0]?.imagePushedAt).toBeInstanceOf(Date);
    expect(described.imageDetails?.[0]?.imageSizeInBytes).toBe(layer.length);

    const listed = await ecr.send(
      new ListImagesCommand({ repositoryName: "sdk/app", filter: { tagStatus: "TAGGED" } }),
    );
    expect(listed.imageIds).toEqual([{ imageDigest: sha256(manifest), imageTag: "v1" }]);

    const url = await ecr.send(new GetDownloadUrlForLayerCommand({ repositoryName: "sdk/app", layerDigest }));
    const download = await fetch(url.downloadUrl!);
    expect(download.status).toBe(200);
    expect(Buffer.from(await download.arrayBuffer())).toEqual(layer);

    const repos = await ecr.send(new DescribeRepositoriesCommand({ repositoryNames: ["sdk/app"] }));
    expect(repos.repositories?.[0]?.repositoryArn).toBe(
      `arn:aws:ecr:${server.region}:${ACCOUNT}:repository/sdk/app`,
    );

    const token = await ecr.send(new GetAuthorizationTokenCommand({}));
    expect(token.authorizationData?.[0]?.expiresAt).toBeInstanceOf(Date);
    expect(Buffer.from(token.authorizationData![0]!.authorizationToken!, "base64").toString()).toMatch(
      /^AWS:/,
    );

    const deleted = await ecr.send(
      new BatchDeleteImageCommand({ repositoryName: "sdk/app", imageIds: [{ imageTag: "v1" }] }),
    );
    expect(deleted.imageIds).toEqual([{ imageDigest: sha256(manifest), imageTag: "v1" }]);
    await ecr.send(new DeleteRepositoryCommand({ repositoryName: "sdk/app" }));
    await expect(
      ecr.send(new DescribeRepositoriesCommand({ repositoryNames: ["sdk/app"] })),
    ).rejects.toBeInstanceOf(RepositoryNotFoundException);
  });

  it("carries lastValidByteReceived in InvalidLayerPartException", async () => {
    await ecr.send(new CreateRepositoryCommand({ repositoryName: "sdk/parts" }));
    const { uploadId } = await ecr.send(new InitiateLayerUploadCommand({ repositoryName: "sdk/parts" }));
    const data = Buffer.from("0123456789");
    await ecr.send(
      new UploadLayerPartCommand({
        repositoryName: "sdk/parts",
        uploadId,
        partFirstByte: 0,
        partLastByte: 9,
        layerPartBlob: data,
      }),
    );
    const err = await ecr
      .send(
        new UploadLayerPartCommand({
          repositoryName: "sdk/parts",
          uploadId,
          partFirstByte: 0,
          partLastByte: 9,
          layerPartBlob: data,
        }),
      )
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidLayerPartException);
    expect((err as InvalidLayerPartException).lastValidByteReceived).toBe(9);
    expect((err as InvalidLayerPartException).uploadId).toBe(uploadId);
  });
});

describe("ECR Public through @aws-sdk/client-ecr-public", () => {
  it("creates, pushes, describes and deletes", async () => {
    const created = await ecrPublic.send(
      new pub.CreateRepositoryCommand({ repositoryName: "tool", catalogData: { description: "a tool" } }),
    );
    expect(created.repository?.repositoryUri).toBe(`public.ecr.aws/${server.publicRegistryAlias}/tool`);
    expect(created.catalogData?.description).toBe("a tool");

    const config = Buffer.from('{"os":"linux"}');
    const { uploadId } = await ecrPublic.send(
      new pub.InitiateLayerUploadCommand({ repositoryName: "tool", registryId: server.publicRegistryAlias }),
    );
    await ecrPublic.send(
      new pub.UploadLayerPartCommand({
        repositoryName: "tool",
        uploadId,
        partFirstByte: 0,
        partLastByte: config.length - 1,
        layerPartBlob: config,
      }),
    );
    await ecrPublic.send(
      new pub.CompleteLayerUploadCommand({
        repositoryName: "tool",
        uploadId,
        layerDigests: [sha256(config)],
      }),
    );
    const check = await ecrPublic.send(
      new pub.BatchCheckLayerAvailabilityCommand({ repositoryName: "tool", layerDigests: [sha256(config)] }),
    );
    expect(check.layers?.[0]?.layerAvailability).toBe("AVAILABLE");

    const manifest = ociImageManifest({ digest: sha256(config), size: config.length }, []);
    await ecrPublic.send(
      new pub.PutImageCommand({ repositoryName: "tool", imageManifest: manifest, imageTag: "latest" }),
    );

    const images = await ecrPublic.send(new pub.DescribeImagesCommand({ repositoryName: "tool" }));
    expect(images.imageDetails?.[0]?.imageTags).toEqual(["latest"]);
    const tags = await ecrPublic.send(new pub.DescribeImageTagsCommand({ repositoryName: "tool" }));
    expect(tags.imageTagDetails?.[0]?.imageDetail?.imageDigest).toBe(sha256(manifest));
    const registries = await ecrPublic.send(new pub.DescribeRegistriesCommand({}));
    expect(registries.registries?.[0]?.aliases?.[0]?.name).toBe(server.publicRegistryAlias);
    const repos = await ecrPublic.send(new pub.DescribeRepositoriesCommand({}));
    expect(repos.repositories?.map((r) => r.repositoryName)).toEqual(["tool"]);
    const token = await ecrPublic.send(new pub.GetAuthorizationTokenCommand({}));
    expect(token.authorizationData?.expiresAt).toBeInstanceOf(Date);

    await expect(
      ecrPublic.send(new pub.InitiateLayerUploadCommand({ repositoryName: "tool", registryId: "nobody" })),
    ).rejects.toBeInstanceOf(pub.RegistryNotFoundException);

    await ecrPublic.send(
      new pub.BatchDeleteImageCommand({ repositoryName: "tool", imageIds: [{ imageTag: "latest" }] }),
    );
    await ecrPublic.send(new pub.DeleteRepositoryCommand({ repositoryName: "tool" }));
    await expect(
      ecrPublic.send(new pub.DescribeRepositoriesCommand({ repositoryNames: ["tool"] })),
    ).rejects.toBeInstanceOf(pub.RepositoryNotFoundException);
  });
});
