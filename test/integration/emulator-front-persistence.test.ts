import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  BatchGetImageCommand,
  CreateRepositoryCommand,
  DescribeRepositoriesCommand,
  GetDownloadUrlForLayerCommand,
} from "@aws-sdk/client-ecr";
import { request } from "undici";
import { afterEach, describe, expect, it } from "vitest";
import { serve } from "../../src/emulator/server.js";
import { ecrClient, pushTestImage } from "../helpers/emulator-clients.js";

const dirs: string[] = [];
afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

describe("data across restarts", () => {
  it("keeps repositories, images and blobs in the data dir", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "ecrx-front-persist-"));
    dirs.push(dataDir);
    const first = await serve({ port: 0, dataDir });
    const image = await (async () => {
      try {
        const client = ecrClient(first);
        await client.send(new CreateRepositoryCommand({ repositoryName: "kept" }));
        return await pushTestImage(client, "kept", { tag: "v1" });
      } finally {
        await first.close();
      }
    })();
    expect(existsSync(dataDir)).toBe(true);

    const second = await serve({ port: 0, dataDir });
    try {
      const client = ecrClient(second);
      const repos = await client.send(new DescribeRepositoriesCommand({}));
      expect(repos.repositories?.map((r) => r.repositoryName)).toEqual(["kept"]);
      const got = await client.send(
        new BatchGetImageCommand({ repositoryName: "kept", imageIds: [{ imageTag: "v1" }] }),
      );
      expect(got.images?.[0]?.imageManifest).toBe(image.manifest);
      const { downloadUrl } = await client.send(
        new GetDownloadUrlForLayerCommand({ repositoryName: "kept", layerDigest: image.layerDigest }),
      );
      const res = await request(downloadUrl ?? "");
      expect(res.statusCode).toBe(200);
      expect(Buffer.from(await res.body.arrayBuffer()).equals(image.layer)).toBe(true);
    } finally {
      await second.close();
    }
  });

  it("removes the temporary data dir on close", async () => {
    const server = await serve({ port: 0 });
    expect(existsSync(server.dataDir)).toBe(true);
    await server.close();
    expect(existsSync(server.dataDir)).toBe(false);
  });
});
