/**
 * Blob uploads on the emulator's registry API: monolithic, chunked and streamed, with ECR's quirks
 * (201 on PATCH, a Range that stops after the first chunk, 5 MiB chunks), refusals that change
 * nothing, and cross-repository mount behind `registryMount`.
 */
import { randomBytes } from "node:crypto";
import { BatchCheckLayerAvailabilityCommand, CreateRepositoryCommand } from "@aws-sdk/client-ecr";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { serve, type RunningServer } from "../../src/emulator/server.js";
import { ecrClient, pushTestImage } from "../helpers/emulator-clients.js";
import { pushBlob, sha256, v2 } from "../helpers/registry-http.js";

const MiB = 1024 * 1024;
let server: RunningServer;

beforeAll(async () => {
  server = await serve({ port: 0, rates: "off" });
  for (const repositoryName of ["app", "other"]) {
    await ecrClient(server).send(new CreateRepositoryCommand({ repositoryName }));
  }
});
afterAll(async () => {
  await server.close();
});

async function startUpload(repository = "app"): Promise<string> {
  const answer = await v2(server, "POST", `/v2/${repository}/blobs/uploads/`);
  expect(answer.status).toBe(202);
  return answer.headers.location!;
}

function patch(location: string, body: Buffer, contentRange?: string): ReturnType<typeof v2> {
  return v2(server, "PATCH", location, {
    body,
    headers: {
      "content-type": "application/octet-stream",
      ...(contentRange === undefined ? {} : { "content-range": contentRange }),
    },
  });
}

function complete(location: string, digest: string, body?: Buffer): ReturnType<typeof v2> {
  return v2(server, "PUT", `${location}?digest=${digest}`, body === undefined ? {} : { body });
}

async function visible(repository: string, digest: string): Promise<boolean> {
  return (await v2(server, "HEAD", `/v2/${repository}/blobs/${digest}`)).status === 200;
}

describe("starting and monolithic uploads", () => {
  it("starts an upload: 202, Location, Docker-Upload-UUID, Range 0-0", async () => {
    const answer = await v2(server, "POST", "/v2/app/blobs/uploads/");
    expect(answer.status).toBe(202);
    const id = answer.headers["docker-upload-uuid"]!;
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect(answer.headers.location).toBe(`/v2/app/blobs/uploads/${id}`);
    expect(answer.headers.range).toBe("0-0");
    const status = await v2(server, "GET", answer.headers.location!);
    expect([status.status, status.headers.range]).toEqual([204, "0-0"]);
  });

  it("pushes a blob in one POST ?digest=, visible to BatchCheckLayerAvailability", async () => {
    const blob = randomBytes(2048);
    const digest = sha256(blob);
    const answer = await v2(server, "POST", `/v2/app/blobs/uploads/?digest=${digest}`, { body: blob });
    expect(answer.status).toBe(201);
    expect(answer.headers.location).toBe(`/v2/app/blobs/${digest}`);
    expect(answer.headers["docker-content-digest"]).toBe(digest);
    const out = await ecrClient(server).send(
      new BatchCheckLayerAvailabilityCommand({ repositoryName: "app", layerDigests: [digest] }),
    );
    expect(out.layers?.[0]).toMatchObject({ layerAvailability: "AVAILABLE", layerSize: 2048 });
    // The same blob again is a success.
    expect((await v2(server, "POST", `/v2/app/blobs/uploads/?digest=${digest}`, { body: blob })).status).toBe(
      201,
    );
  });

  it("refuses a monolithic upload whose bytes do not match, keeping nothing", async () => {
    const blob = randomBytes(100);
    const claimed = sha256("something else");
    const answer = await v2(server, "POST", `/v2/app/blobs/uploads/?digest=${claimed}`, { body: blob });
    expect([answer.status, answer.code]).toEqual([400, "DIGEST_INVALID"]);
    expect(await visible("app", sha256(blob))).toBe(false);
    const malformed = await v2(server, "POST", "/v2/app/blobs/uploads/?digest=sha256:zz", { body: blob });
    expect(malformed.code).toBe("DIGEST_INVALID");
  });

  it("refuses uploads to a missing repository and an invalid name", async () => {
    expect((await v2(server, "POST", "/v2/missing/blobs/uploads/")).code).toBe("NAME_UNKNOWN");
    expect((await v2(server, "POST", "/v2/UPPER/blobs/uploads/")).code).toBe("NAME_INVALID");
  });

  it("refuses an empty upload (ECR cannot store a zero-byte blob)", async () => {
    const location = await startUpload();
    const answer = await complete(location, sha256(""));
    expect([answer.status, answer.code]).toEqual([400, "BLOB_UPLOAD_INVALID"]);
  });
});

describe("chunked uploads", () => {
  it("answers PATCH with 201 and a Range that stops after the first chunk", async () => {
    const blob = randomBytes(13 * MiB);
    const location = await startUpload();
    const first = await patch(location, blob.subarray(0, 6 * MiB), `0-${6 * MiB - 1}`);
    expect(first.status).toBe(201);
    expect(first.headers.range).toBe(`0-${6 * MiB - 1}`);
    expect(first.headers.location).toBe(location);
    const second = await patch(location, blob.subarray(6 * MiB, 12 * MiB), `${6 * MiB}-${12 * MiB - 1}`);
    expect(second.status).toBe(201);
    expect(second.headers.range).toBe(`0-${6 * MiB - 1}`);
    const status = await v2(server, "GET", location);
    expect([status.status, status.headers.range]).toEqual([204, `0-${6 * MiB - 1}`]);

    // A client that trusts the Range resends from there: 416, nothing appended.
    const trusting = await patch(location, blob.subarray(6 * MiB, 12 * MiB), `${6 * MiB}-${12 * MiB - 1}`);
    expect([trusting.status, trusting.code]).toEqual([416, "BLOB_UPLOAD_INVALID"]);

    const done = await complete(location, sha256(blob), blob.subarray(12 * MiB));
    expect(done.status).toBe(201);
    expect(done.headers["docker-content-digest"]).toBe(sha256(blob));
    expect((await v2(server, "HEAD", `/v2/app/blobs/${sha256(blob)}`)).headers["content-length"]).toBe(
      String(13 * MiB),
    );
    // The upload is gone.
    expect((await v2(server, "GET", location)).code).toBe("BLOB_UPLOAD_UNKNOWN");
  });

  it("refuses chunks under 5 MiB but the last at the final PUT; the upload stays, then is cancelled", async () => {
    const blob = randomBytes(3 * MiB);
    const location = await startUpload();
    expect((await patch(location, blob.subarray(0, MiB))).status).toBe(201);
    expect((await patch(location, blob.subarray(MiB, 2 * MiB))).status).toBe(201);
    const refused = await complete(location, sha256(blob), blob.subarray(2 * MiB));
    expect([refused.status, refused.code]).toEqual([400, "BLOB_UPLOAD_INVALID"]);
    expect(refused.body.toString()).toContain("at least 5242880 bytes");
    expect(await visible("app", sha256(blob))).toBe(false);
    expect((await v2(server, "GET", location)).status).toBe(204);
    expect((await v2(server, "DELETE", location)).status).toBe(204);
    expect((await v2(server, "GET", location)).code).toBe("BLOB_UPLOAD_UNKNOWN");
    expect((await v2(server, "DELETE", location)).code).toBe("BLOB_UPLOAD_UNKNOWN");
  });

  it("takes one streamed PATCH of any size, then a PUT without body", async () => {
    const blob = randomBytes(12 * MiB + 5);
    const location = await startUpload();
    expect((await patch(location, blob)).status).toBe(201);
    expect((await complete(location, sha256(blob))).status).toBe(201);
    expect(await visible("app", sha256(blob))).toBe(true);
  });

  it("a PUT refused for its digest takes its final chunk back", async () => {
    const blob = randomBytes(6 * MiB + 100);
    const location = await startUpload();
    await patch(location, blob.subarray(0, 6 * MiB));
    const wrong = await complete(location, sha256("wrong"), blob.subarray(6 * MiB));
    expect([wrong.status, wrong.code]).toEqual([400, "DIGEST_INVALID"]);
    const right = await complete(location, sha256(blob), blob.subarray(6 * MiB));
    expect(right.status).toBe(201);
  });

  it("refuses malformed and mismatched Content-Range, and uploads of another repository", async () => {
    const location = await startUpload();
    const malformed = await patch(location, Buffer.from("abc"), "bytes 0-2/3");
    expect([malformed.status, malformed.code]).toEqual([400, "BLOB_UPLOAD_INVALID"]);
    const mismatch = await patch(location, Buffer.from("abc"), "0-9");
    expect([mismatch.status, mismatch.code]).toEqual([400, "SIZE_INVALID"]);
    expect((await v2(server, "GET", location)).headers.range).toBe("0-0");
    const foreign = location.replace("/v2/app/", "/v2/other/");
    expect((await patch(foreign, Buffer.from("abc"))).code).toBe("BLOB_UPLOAD_UNKNOWN");
    expect((await v2(server, "GET", "/v2/app/blobs/uploads/not-a-uuid")).code).toBe("BLOB_UPLOAD_UNKNOWN");
    const noDigest = await v2(server, "PUT", location);
    expect([noDigest.status, noDigest.code]).toEqual([400, "DIGEST_INVALID"]);
    const sha512 = await complete(location, `sha512:${"0".repeat(128)}`);
    expect(sha512.code).toBe("DIGEST_INVALID");
  });
});

describe("cross-repository mount", () => {
  it("is off by default: the POST starts a plain upload", async () => {
    const pushed = await pushTestImage(ecrClient(server), "app");
    const answer = await v2(server, "POST", `/v2/other/blobs/uploads/?mount=${pushed.layerDigest}&from=app`);
    expect(answer.status).toBe(202);
    expect(answer.headers["docker-upload-uuid"]).toBeDefined();
    expect(await visible("other", pushed.layerDigest)).toBe(false);
  });

  it("with registryMount, mounts blobs an image references, and only those", async () => {
    const mounting = await serve({ port: 0, rates: "off", registryMount: true });
    try {
      const client = ecrClient(mounting);
      for (const repositoryName of ["src", "dst"]) {
        await client.send(new CreateRepositoryCommand({ repositoryName }));
      }
      const pushed = await pushTestImage(client, "src");
      const mounted = await v2(
        mounting,
        "POST",
        `/v2/dst/blobs/uploads/?mount=${pushed.layerDigest}&from=src`,
      );
      expect(mounted.status).toBe(201);
      expect(mounted.headers.location).toBe(`/v2/dst/blobs/${pushed.layerDigest}`);
      expect(mounted.headers["docker-content-digest"]).toBe(pushed.layerDigest);
      expect((await v2(mounting, "HEAD", `/v2/dst/blobs/${pushed.layerDigest}`)).status).toBe(200);

      const loose = await pushBlob(mounting, "src", randomBytes(64));
      const unreferenced = await v2(mounting, "POST", `/v2/dst/blobs/uploads/?mount=${loose}&from=src`);
      expect(unreferenced.status).toBe(202);
      const noSource = await v2(
        mounting,
        "POST",
        `/v2/dst/blobs/uploads/?mount=${pushed.configDigest}&from=nowhere`,
      );
      expect(noSource.status).toBe(202);
      expect((await v2(mounting, "HEAD", `/v2/dst/blobs/${loose}`)).status).toBe(404);
    } finally {
      await mounting.close();
    }
  });
});
