import {
  CreateRepositoryCommand,
  DescribeRepositoriesCommand,
  GetDownloadUrlForLayerCommand,
  type ECRServiceException,
} from "@aws-sdk/client-ecr";
import { request } from "undici";
import { describe, expect, it } from "vitest";
import { serve, type RunningServer, type ServeOptions } from "../../src/emulator/server.js";
import { ecrClient, pushTestImage } from "../helpers/emulator-clients.js";

async function withServer(
  options: ServeOptions,
  body: (server: RunningServer) => Promise<void>,
): Promise<void> {
  const server = await serve({ port: 0, ...options });
  try {
    await body(server);
  } finally {
    await server.close();
  }
}

async function failure(
  promise: Promise<unknown>,
): Promise<Error & Partial<ECRServiceException> & { code?: string }> {
  try {
    await promise;
  } catch (err) {
    return err as Error & Partial<ECRServiceException>;
  }
  throw new Error("the request succeeded");
}

async function repositoryNames(server: RunningServer): Promise<string[]> {
  const out = await ecrClient(server).send(new DescribeRepositoriesCommand({}));
  return (out.repositories ?? []).map((r) => r.repositoryName ?? "");
}

describe("faults on API operations", () => {
  it("throttle: ThrottlingException, nothing applied", () =>
    withServer({ faults: "CreateRepository:throttle=1" }, async (server) => {
      const err = await failure(
        ecrClient(server).send(new CreateRepositoryCommand({ repositoryName: "tx" })),
      );
      expect(err.name).toBe("ThrottlingException");
      expect(err.message).toBe("Rate exceeded");
      expect(err.$metadata?.httpStatusCode).toBe(400);
      expect(await repositoryNames(server)).toEqual([]);
    }));

  it("error: 500 ServerException, nothing applied", () =>
    withServer({ faults: "CreateRepository:error=1" }, async (server) => {
      const err = await failure(
        ecrClient(server).send(new CreateRepositoryCommand({ repositoryName: "ex" })),
      );
      expect(err.name).toBe("ServerException");
      expect(err.$metadata?.httpStatusCode).toBe(500);
      expect(await repositoryNames(server)).toEqual([]);
    }));

  it("reset: the connection dies, nothing applied", () =>
    withServer({ faults: "CreateRepository:reset=1" }, async (server) => {
      const err = await failure(
        ecrClient(server).send(new CreateRepositoryCommand({ repositoryName: "rx" })),
      );
      expect(err.$metadata?.httpStatusCode).toBeUndefined();
      expect(`${err.name} ${err.code ?? ""} ${err.message}`).toMatch(/ECONNRESET|socket hang up/i);
      expect(await repositoryNames(server)).toEqual([]);
    }));

  it("lost: the operation is applied but the client never hears", () =>
    withServer({ faults: "CreateRepository:lost=1" }, async (server) => {
      const err = await failure(
        ecrClient(server).send(new CreateRepositoryCommand({ repositoryName: "lost" })),
      );
      expect(err.$metadata?.httpStatusCode).toBeUndefined();
      expect(`${err.name} ${err.code ?? ""} ${err.message}`).toMatch(/ECONNRESET|socket hang up/i);
      expect(await repositoryNames(server)).toEqual(["lost"]);
    }));

  it("latency: answers come later", () =>
    withServer({ faults: "DescribeRepositories:latency=300" }, async (server) => {
      const started = performance.now();
      await ecrClient(server).send(new DescribeRepositoriesCommand({}));
      expect(performance.now() - started).toBeGreaterThanOrEqual(290);
    }));

  it("repeat with the same seed, and target only what they name", async () => {
    const outcomes = async (seed: number): Promise<string> => {
      let result = "";
      await withServer({ faults: "DescribeRepositories:error=0.5", faultSeed: seed }, async (server) => {
        const client = ecrClient(server);
        for (let i = 0; i < 24; i++) {
          result += await client.send(new DescribeRepositoriesCommand({})).then(
            () => ".",
            () => "E",
          );
        }
        // Not named by the spec: never faulted.
        await client.send(new CreateRepositoryCommand({ repositoryName: "untouched" }));
      });
      return result;
    };
    const first = await outcomes(1234);
    expect(first).toMatch(/E/);
    expect(first).toMatch(/\./);
    expect(await outcomes(1234)).toBe(first);
  });

  it("refuses a fault spec naming an operation that does not exist", async () => {
    await expect(serve({ port: 0, faults: "PushImage:error=1" })).rejects.toThrow(
      /PushImage is not an operation/,
    );
  });
});

describe("faults on download URLs", () => {
  async function withLayerUrl(
    faults: string,
    body: (url: string, layer: Buffer) => Promise<void>,
  ): Promise<void> {
    await withServer({ faults }, async (server) => {
      const client = ecrClient(server);
      await client.send(new CreateRepositoryCommand({ repositoryName: "dl" }));
      const image = await pushTestImage(client, "dl", { tag: "v1", layerSize: 200_000 });
      const out = await client.send(
        new GetDownloadUrlForLayerCommand({ repositoryName: "dl", layerDigest: image.layerDigest }),
      );
      await body(out.downloadUrl ?? "", image.layer);
    });
  }

  it("throttle: S3's 503 SlowDown", () =>
    withLayerUrl("download:throttle=1", async (url) => {
      const res = await request(url);
      expect(res.statusCode).toBe(503);
      expect(await res.body.text()).toContain("<Code>SlowDown</Code>");
    }));

  it("error: S3's 500 InternalError", () =>
    withLayerUrl("download:error=1", async (url) => {
      const res = await request(url);
      expect(res.statusCode).toBe(500);
      expect(await res.body.text()).toContain("<Code>InternalError</Code>");
    }));

  it("reset: the connection dies before an answer", () =>
    withLayerUrl("download:reset=1", async (url) => {
      await expect(request(url)).rejects.toThrow(/other side closed|socket|ECONNRESET/i);
    }));

  it("lost: the body is cut short", () =>
    withLayerUrl("download:lost=1", async (url, layer) => {
      const res = await request(url);
      expect(res.statusCode).toBe(200);
      expect(res.headers["content-length"]).toBe(String(layer.length));
      await expect(res.body.arrayBuffer()).rejects.toThrow();
    }));
});
