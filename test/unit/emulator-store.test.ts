/* eslint-disable @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-call, @typescript-eslint/no-unsafe-return, @typescript-eslint/no-unsafe-argument -- operation outputs are untyped wire JSON, inspected member by member */
import { readdir, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { KeyedMutex } from "../../src/emulator/keyed-mutex.js";
import { Env, expectApiError, sha256 } from "./emulator-helpers.js";

let env: Env;
beforeEach(async () => {
  env = await Env.create();
  await env.createRepo("app");
});
afterEach(async () => env.dispose());

function part(uploadId: string, first: number, data: Buffer): Record<string, unknown> {
  return {
    repositoryName: "app",
    uploadId,
    partFirstByte: first,
    partLastByte: first + data.length - 1,
    layerPartBlob: data.toString("base64"),
  };
}

describe("Store persistence", () => {
  it("serves repositories, images and blobs pushed before a restart", async () => {
    await env.createRepo("fixed", { imageTagMutability: "IMMUTABLE" });
    const img = await env.pushImage("app", { tag: "v1", layers: ["persisted"] });
    await env.restart();
    const repos = await env.call("DescribeRepositories", {});
    expect(repos.repositories.map((r: any) => [r.repositoryName, r.imageTagMutability])).toEqual([
      ["app", "MUTABLE"],
      ["fixed", "IMMUTABLE"],
    ]);
    const got = await env.call("BatchGetImage", { repositoryName: "app", imageIds: [{ imageTag: "v1" }] });
    expect(got.images[0].imageManifest).toBe(img.manifest);
    expect(env.store.blobSize(img.layerDigests[0]!)).toBe(9);
    const url = await env.call("GetDownloadUrlForLayer", {
      repositoryName: "app",
      layerDigest: img.layerDigests[0],
    });
    expect(url.layerDigest).toBe(img.layerDigests[0]);
  });

  it("continues an upload after a restart, hashing the file it kept", async () => {
    const MiB = 1024 * 1024;
    const first = Buffer.alloc(5 * MiB, 1);
    const second = Buffer.from("rest");
    const { uploadId } = await env.call("InitiateLayerUpload", { repositoryName: "app" });
    await env.call("UploadLayerPart", part(uploadId, 0, first));
    await env.restart();
    const err = await expectApiError(
      env.call("UploadLayerPart", part(uploadId, 0, first)),
      "InvalidLayerPartException",
    );
    expect(err.fields.lastValidByteReceived).toBe(5 * MiB - 1);
    await env.call("UploadLayerPart", part(uploadId, first.length, second));
    const digest = sha256(Buffer.concat([first, second]));
    const out = await env.call("CompleteLayerUpload", {
      repositoryName: "app",
      uploadId,
      layerDigests: [digest],
    });
    expect(out.layerDigest).toBe(digest);
  });

  it("remembers part sizes across a restart for the 5 MiB rule", async () => {
    const { uploadId } = await env.call("InitiateLayerUpload", { repositoryName: "app" });
    await env.call("UploadLayerPart", part(uploadId, 0, Buffer.from("tiny")));
    await env.call("UploadLayerPart", part(uploadId, 4, Buffer.from("more")));
    await env.restart();
    await expectApiError(
      env.call("CompleteLayerUpload", {
        repositoryName: "app",
        uploadId,
        layerDigests: [sha256("tinymore")],
      }),
      "LayerPartTooSmallException",
    );
  });

  it("cuts bytes a crash left past the recorded count", async () => {
    const { uploadId } = await env.call("InitiateLayerUpload", { repositoryName: "app" });
    await env.call("UploadLayerPart", part(uploadId, 0, Buffer.from("good")));
    await env.store.close();
    // As if the process died after appending a part but before recording it.
    await writeFile(join(env.dir, "uploads", `${uploadId}.data`), "goodhalf-a-part");
    await env.open();
    const err = await expectApiError(
      env.call("UploadLayerPart", part(uploadId, 15, Buffer.from("x"))),
      "InvalidLayerPartException",
    );
    expect(err.fields.lastValidByteReceived).toBe(3);
    const out = await env.call("CompleteLayerUpload", {
      repositoryName: "app",
      uploadId,
      layerDigests: [sha256("good")],
    });
    expect(out.layerDigest).toBe(sha256("good"));
  });

  it("leaves no temporary or upload files behind a completed push", async () => {
    await env.pushImage("app", { tag: "v1" });
    expect(await readdir(join(env.dir, "uploads"))).toEqual([]);
    expect(await readdir(join(env.dir, "tmp"))).toEqual([]);
    expect(await readdir(join(env.dir, "repositories", "private"))).toEqual(["app.json"]);
  });

  it("encodes nested repository names into one file name", async () => {
    await env.createRepo("team/sub/app");
    const files = await readdir(join(env.dir, "repositories", "private"));
    expect(files.sort()).toEqual(["app.json", "team%2Fsub%2Fapp.json"]);
    await env.restart();
    const out = await env.call("DescribeRepositories", { repositoryNames: ["team/sub/app"] });
    expect(out.repositories).toHaveLength(1);
  });

  it("gives blob paths only for stored, well-formed sha256 digests", async () => {
    const digest = await env.pushBlob("app", "abc");
    const path = env.store.blobPath(digest)!;
    expect((await stat(path)).size).toBe(3);
    expect(env.store.blobSize(digest)).toBe(3);
    expect(env.store.blobPath(sha256("absent"))).toBeUndefined();
    expect(env.store.blobPath("sha256:../../etc/passwd")).toBeUndefined();
    expect(env.store.blobSize("sha512:abcd")).toBeUndefined();
  });

  it("refuses unsafe repository names at the store itself", async () => {
    await expect(env.store.createUpload("private", "../x", 0)).rejects.toThrow(/unsafe/);
  });

  it("loses no metadata update under concurrent pushes to one repository", async () => {
    const pushes = Array.from({ length: 8 }, (_, i) => env.pushImage("app", { tag: `t${i}` }));
    await Promise.all(pushes);
    await env.restart();
    const out = await env.call("ListImages", { repositoryName: "app" });
    expect(out.imageIds).toHaveLength(8);
  });
});

describe("KeyedMutex", () => {
  it("runs calls with one key in order and others alongside", async () => {
    const mutex = new KeyedMutex();
    const log: string[] = [];
    const step = (name: string, ms: number) => async () => {
      log.push(`${name}+`);
      await new Promise((r) => setTimeout(r, ms));
      log.push(`${name}-`);
    };
    await Promise.all([
      mutex.run("a", step("a1", 20)),
      mutex.run("a", step("a2", 1)),
      mutex.run("b", step("b1", 5)),
    ]);
    expect(log.indexOf("a2+")).toBeGreaterThan(log.indexOf("a1-"));
    expect(log.indexOf("b1+")).toBeLessThan(log.indexOf("a1-"));
  });

  it("keeps going after a failure", async () => {
    const mutex = new KeyedMutex();
    const failed = mutex.run("k", async () => {
      throw new Error("boom");
    });
    await expect(failed).rejects.toThrow("boom");
    await expect(mutex.run("k", async () => 7)).resolves.toBe(7);
    await mutex.idle();
  });
});
