/* eslint-disable @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-call, @typescript-eslint/no-unsafe-return, @typescript-eslint/no-unsafe-argument -- operation outputs are untyped wire JSON, inspected member by member */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Env, expectApiError, sha256 } from "./emulator-helpers.js";

const MiB = 1024 * 1024;
let env: Env;
beforeEach(async () => {
  env = await Env.create();
  await env.createRepo("app");
});
afterEach(async () => env.dispose());

function part(
  uploadId: string,
  first: number,
  data: Buffer,
  repositoryName = "app",
): Record<string, unknown> {
  return {
    repositoryName,
    uploadId,
    partFirstByte: first,
    partLastByte: first + data.length - 1,
    layerPartBlob: data.toString("base64"),
  };
}

describe("InitiateLayerUpload", () => {
  it("returns a UUID and the suggested part size", async () => {
    const out = await env.call("InitiateLayerUpload", { repositoryName: "app" });
    expect(out.uploadId).toMatch(/^[0-9a-f-]{36}$/);
    expect(out.partSize).toBe(10 * MiB);
  });

  it("never creates a missing repository", async () => {
    await expectApiError(
      env.call("InitiateLayerUpload", { repositoryName: "nope" }),
      "RepositoryNotFoundException",
    );
    const out = await env.call("DescribeRepositories", {});
    expect(out.repositories.map((r: any) => r.repositoryName)).toEqual(["app"]);
  });

  it("validates repositoryName and registryId", async () => {
    await expectApiError(
      env.call("InitiateLayerUpload", {}),
      "InvalidParameterException",
      /must not be null/,
    );
    await expectApiError(
      env.call("InitiateLayerUpload", { repositoryName: "a" }),
      "InvalidParameterException",
    );
    await expectApiError(
      env.call("InitiateLayerUpload", { repositoryName: "../etc" }),
      "InvalidParameterException",
    );
    await expectApiError(
      env.call("InitiateLayerUpload", { repositoryName: "App" }),
      "InvalidParameterException",
    );
    await expectApiError(
      env.call("InitiateLayerUpload", { repositoryName: "a".repeat(257) }),
      "InvalidParameterException",
    );
    await expectApiError(
      env.call("InitiateLayerUpload", { repositoryName: 42 }),
      "InvalidParameterException",
    );
    await expectApiError(
      env.call("InitiateLayerUpload", { repositoryName: "app", registryId: "12345" }),
      "InvalidParameterException",
    );
    // Another account's registry: its repositories are not visible here.
    await expectApiError(
      env.call("InitiateLayerUpload", { repositoryName: "app", registryId: "999999999999" }),
      "RepositoryNotFoundException",
    );
    await env.call("InitiateLayerUpload", { repositoryName: "app", registryId: "123456789012" });
  });

  it("accepts the name grammar of the spec", async () => {
    for (const name of ["a__b", "a---b/c.d", "ns/sub/leaf", "x_y"]) await env.createRepo(name);
    for (const name of ["a___b", "a/", "/a", "a..b", "a._b"]) {
      await expectApiError(env.createRepo(name), "InvalidParameterException");
    }
  });
});

describe("UploadLayerPart", () => {
  it("appends consecutive parts and reports the last byte", async () => {
    const { uploadId } = await env.call("InitiateLayerUpload", { repositoryName: "app" });
    const out = await env.call("UploadLayerPart", part(uploadId, 0, Buffer.from("hello")));
    expect(out).toEqual({ registryId: "123456789012", repositoryName: "app", uploadId, lastByteReceived: 4 });
    const out2 = await env.call("UploadLayerPart", part(uploadId, 5, Buffer.from(" world")));
    expect(out2.lastByteReceived).toBe(10);
  });

  it("refuses a non-consecutive part with lastValidByteReceived", async () => {
    const { uploadId } = await env.call("InitiateLayerUpload", { repositoryName: "app" });
    let err = await expectApiError(
      env.call("UploadLayerPart", part(uploadId, 3, Buffer.from("x"))),
      "InvalidLayerPartException",
    );
    expect(err.fields).toEqual({
      registryId: "123456789012",
      repositoryName: "app",
      uploadId,
      lastValidByteReceived: -1,
    });
    await env.call("UploadLayerPart", part(uploadId, 0, Buffer.from("abc")));
    // A retry of a part that already arrived (lost response) tells the client where to resume.
    err = await expectApiError(
      env.call("UploadLayerPart", part(uploadId, 0, Buffer.from("abc"))),
      "InvalidLayerPartException",
    );
    expect(err.fields.lastValidByteReceived).toBe(2);
    const resumed = await env.call("UploadLayerPart", part(uploadId, 3, Buffer.from("def")));
    expect(resumed.lastByteReceived).toBe(5);
  });

  it("requires the byte range to match the decoded length", async () => {
    const { uploadId } = await env.call("InitiateLayerUpload", { repositoryName: "app" });
    const input = { ...part(uploadId, 0, Buffer.from("abcd")), partLastByte: 9 };
    const err = await expectApiError(env.call("UploadLayerPart", input), "InvalidLayerPartException");
    expect(err.fields.lastValidByteReceived).toBe(-1);
    await expectApiError(
      env.call("UploadLayerPart", { ...part(uploadId, 0, Buffer.from("ab")), partFirstByte: -1 }),
      "InvalidParameterException",
    );
  });

  it("validates uploadId, types and base64", async () => {
    const { uploadId } = await env.call("InitiateLayerUpload", { repositoryName: "app" });
    const good = part(uploadId, 0, Buffer.from("abc"));
    await expectApiError(
      env.call("UploadLayerPart", { ...good, uploadId: "not-a-uuid" }),
      "InvalidParameterException",
    );
    await expectApiError(
      env.call("UploadLayerPart", { ...good, partFirstByte: "0" }),
      "InvalidParameterException",
    );
    await expectApiError(
      env.call("UploadLayerPart", { ...good, partLastByte: 1.5 }),
      "InvalidParameterException",
    );
    await expectApiError(
      env.call("UploadLayerPart", { ...good, layerPartBlob: "a!b=" }),
      "InvalidParameterException",
    );
    await expectApiError(
      env.call("UploadLayerPart", { ...good, layerPartBlob: undefined }),
      "InvalidParameterException",
    );
    await env.call("UploadLayerPart", good);
  });

  it("refuses a part over 20 MiB decoded", async () => {
    const { uploadId } = await env.call("InitiateLayerUpload", { repositoryName: "app" });
    const big = Buffer.alloc(20_971_521);
    await expectApiError(
      env.call("UploadLayerPart", part(uploadId, 0, big)),
      "InvalidParameterException",
      /20971520/,
    );
  });

  it("does not know an unknown upload, or one of another repository", async () => {
    await env.createRepo("other");
    const { uploadId } = await env.call("InitiateLayerUpload", { repositoryName: "other" });
    await expectApiError(
      env.call("UploadLayerPart", part(uploadId, 0, Buffer.from("a"))),
      "UploadNotFoundException",
    );
    await expectApiError(
      env.call("UploadLayerPart", part("0b6e1e0e-8d8c-4a3e-9d0f-2b8f1c2a3d4e", 0, Buffer.from("a"))),
      "UploadNotFoundException",
    );
    await expectApiError(
      env.call("UploadLayerPart", part(uploadId, 0, Buffer.from("a"), "gone")),
      "RepositoryNotFoundException",
    );
  });

  it("serializes concurrent parts of one upload: exactly one wins each offset", async () => {
    const { uploadId } = await env.call("InitiateLayerUpload", { repositoryName: "app" });
    const results = await Promise.allSettled(
      ["a", "b", "c", "d"].map((s) => env.call("UploadLayerPart", part(uploadId, 0, Buffer.from(s)))),
    );
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
  });

  it("runs many uploads of one repository at once without losing a layer", async () => {
    const blobs = Array.from({ length: 12 }, (_, i) => `blob-${i}`);
    const digests = await Promise.all(blobs.map((b) => env.pushBlob("app", b)));
    const out = await env.call("BatchCheckLayerAvailability", {
      repositoryName: "app",
      layerDigests: digests,
    });
    expect(out.layers).toHaveLength(12);
    expect(out.failures).toEqual([]);
  });
});

describe("CompleteLayerUpload", () => {
  it("refuses an upload without parts", async () => {
    const { uploadId } = await env.call("InitiateLayerUpload", { repositoryName: "app" });
    await expectApiError(
      env.call("CompleteLayerUpload", { repositoryName: "app", uploadId, layerDigests: [sha256("")] }),
      "EmptyUploadException",
    );
  });

  it("refuses a non-last part under 5 MiB, and accepts a small last part", async () => {
    const { uploadId } = await env.call("InitiateLayerUpload", { repositoryName: "app" });
    await env.call("UploadLayerPart", part(uploadId, 0, Buffer.from("small")));
    await env.call("UploadLayerPart", part(uploadId, 5, Buffer.from("tail")));
    await expectApiError(
      env.call("CompleteLayerUpload", {
        repositoryName: "app",
        uploadId,
        layerDigests: [sha256("smalltail")],
      }),
      "LayerPartTooSmallException",
    );

    const first = Buffer.alloc(5 * MiB, 7);
    const last = Buffer.from("end");
    const u2 = (await env.call("InitiateLayerUpload", { repositoryName: "app" })).uploadId as string;
    await env.call("UploadLayerPart", part(u2, 0, first));
    await env.call("UploadLayerPart", part(u2, first.length, last));
    const digest = sha256(Buffer.concat([first, last]));
    const done = await env.call("CompleteLayerUpload", {
      repositoryName: "app",
      uploadId: u2,
      layerDigests: [digest],
    });
    expect(done).toEqual({
      registryId: "123456789012",
      repositoryName: "app",
      uploadId: u2,
      layerDigest: digest,
    });
    expect(env.store.blobSize(digest)).toBe(5 * MiB + 3);
  });

  it("refuses a digest mismatch, keeping the upload for another try", async () => {
    const { uploadId } = await env.call("InitiateLayerUpload", { repositoryName: "app" });
    await env.call("UploadLayerPart", part(uploadId, 0, Buffer.from("content")));
    await expectApiError(
      env.call("CompleteLayerUpload", { repositoryName: "app", uploadId, layerDigests: [sha256("other")] }),
      "InvalidLayerException",
    );
    // Unsupported algorithms are valid syntax but never match.
    await expectApiError(
      env.call("CompleteLayerUpload", { repositoryName: "app", uploadId, layerDigests: ["sha512:abcd"] }),
      "InvalidLayerException",
    );
    const out = await env.call("CompleteLayerUpload", {
      repositoryName: "app",
      uploadId,
      layerDigests: [sha256("other"), sha256("content")],
    });
    expect(out.layerDigest).toBe(sha256("content"));
  });

  it("forgets a completed upload", async () => {
    const { uploadId } = await env.call("InitiateLayerUpload", { repositoryName: "app" });
    await env.call("UploadLayerPart", part(uploadId, 0, Buffer.from("x")));
    await env.call("CompleteLayerUpload", { repositoryName: "app", uploadId, layerDigests: [sha256("x")] });
    await expectApiError(
      env.call("CompleteLayerUpload", { repositoryName: "app", uploadId, layerDigests: [sha256("x")] }),
      "UploadNotFoundException",
    );
    await expectApiError(
      env.call("UploadLayerPart", part(uploadId, 1, Buffer.from("y"))),
      "UploadNotFoundException",
    );
  });

  it("reports a layer the repository already has", async () => {
    await env.pushBlob("app", "same");
    await expectApiError(env.pushBlob("app", "same"), "LayerAlreadyExistsException");
  });

  it("accepts in repository B a blob that only repository A has", async () => {
    await env.createRepo("bb");
    const digest = await env.pushBlob("app", "shared");
    expect(await env.pushBlob("bb", "shared")).toBe(digest);
  });

  it("validates layerDigests", async () => {
    const { uploadId } = await env.call("InitiateLayerUpload", { repositoryName: "app" });
    await expectApiError(
      env.call("CompleteLayerUpload", { repositoryName: "app", uploadId, layerDigests: [] }),
      "InvalidParameterException",
    );
    await expectApiError(
      env.call("CompleteLayerUpload", { repositoryName: "app", uploadId, layerDigests: ["nodigest"] }),
      "InvalidParameterException",
    );
    await expectApiError(
      env.call("CompleteLayerUpload", {
        repositoryName: "app",
        uploadId,
        layerDigests: Array(101).fill(sha256("a")),
      }),
      "InvalidParameterException",
    );
  });
});

describe("BatchCheckLayerAvailability", () => {
  it("reports available, missing and malformed digests; blobs are per repository", async () => {
    await env.createRepo("bb");
    const digest = await env.pushBlob("app", "layer-a");
    const input = { layerDigests: [digest, sha256("absent"), "sha256:XYZ", "sha256:abc", "sha512:abcd"] };
    const out = await env.call("BatchCheckLayerAvailability", { repositoryName: "app", ...input });
    expect(out.layers).toEqual([{ layerDigest: digest, layerAvailability: "AVAILABLE", layerSize: 7 }]);
    expect(out.failures).toEqual([
      { layerDigest: sha256("absent"), failureCode: "MissingLayerDigest", failureReason: expect.any(String) },
      { layerDigest: "sha256:XYZ", failureCode: "InvalidLayerDigest", failureReason: expect.any(String) },
      { layerDigest: "sha256:abc", failureCode: "InvalidLayerDigest", failureReason: expect.any(String) },
      { layerDigest: "sha512:abcd", failureCode: "MissingLayerDigest", failureReason: expect.any(String) },
    ]);
    const inB = await env.call("BatchCheckLayerAvailability", {
      repositoryName: "bb",
      layerDigests: [digest],
    });
    expect(inB.layers).toEqual([]);
    expect(inB.failures[0].failureCode).toBe("MissingLayerDigest");
  });

  it("reports the media type once a manifest names the layer", async () => {
    const { layerDigests } = await env.pushImage("app", { tag: "v1" });
    const out = await env.call("BatchCheckLayerAvailability", { repositoryName: "app", layerDigests });
    expect(out.layers[0].mediaType).toBe("application/vnd.oci.image.layer.v1.tar+gzip");
  });

  it("validates the list and the repository", async () => {
    await expectApiError(
      env.call("BatchCheckLayerAvailability", { repositoryName: "app", layerDigests: [] }),
      "InvalidParameterException",
    );
    await expectApiError(
      env.call("BatchCheckLayerAvailability", { repositoryName: "app", layerDigests: ["x".repeat(1001)] }),
      "InvalidParameterException",
    );
    await expectApiError(
      env.call("BatchCheckLayerAvailability", { repositoryName: "zzz", layerDigests: [sha256("a")] }),
      "RepositoryNotFoundException",
    );
  });
});
