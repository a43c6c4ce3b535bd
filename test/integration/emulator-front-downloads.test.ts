import { createHash } from "node:crypto";
import { CreateRepositoryCommand, GetDownloadUrlForLayerCommand } from "@aws-sdk/client-ecr";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { serve, type RunningServer } from "../../src/emulator/server.js";
import { ecrClient, pushTestImage, type PushedImage } from "../helpers/emulator-clients.js";

let server: RunningServer;
let image: PushedImage;
/** The server's clock, moved by the expiry test. */
let offsetMs = 0;

beforeAll(async () => {
  server = await serve({ port: 0, now: () => new Date(Date.now() + offsetMs) });
  const client = ecrClient(server);
  await client.send(new CreateRepositoryCommand({ repositoryName: "downloads" }));
  image = await pushTestImage(client, "downloads", { tag: "v1", layerSize: 100_000 });
});
afterAll(async () => {
  await server.close();
});

async function downloadUrl(): Promise<string> {
  const out = await ecrClient(server).send(
    new GetDownloadUrlForLayerCommand({ repositoryName: "downloads", layerDigest: image.layerDigest }),
  );
  expect(out.layerDigest).toBe(image.layerDigest);
  return out.downloadUrl ?? "";
}

async function fetchBytes(
  url: string,
  headers: Record<string, string> = {},
  method: "GET" | "HEAD" = "GET",
): Promise<{ status: number; headers: Record<string, unknown>; body: Buffer }> {
  const res = await request(url, { method, headers });
  return { status: res.statusCode, headers: res.headers, body: Buffer.from(await res.body.arrayBuffer()) };
}

describe("download URLs", () => {
  it("are presigned S3-style URLs on this server that serve the blob", async () => {
    const url = new URL(await downloadUrl());
    expect(url.origin).toBe(server.url);
    for (const param of [
      "X-Amz-Algorithm",
      "X-Amz-Credential",
      "X-Amz-Date",
      "X-Amz-Expires",
      "X-Amz-SignedHeaders",
      "X-Amz-Signature",
    ]) {
      expect(url.searchParams.has(param), param).toBe(true);
    }
    expect(url.searchParams.get("X-Amz-Expires")).toBe("3600");
    const got = await fetchBytes(url.toString());
    expect(got.status).toBe(200);
    expect(got.headers["content-length"]).toBe("100000");
    expect(got.headers["accept-ranges"]).toBe("bytes");
    expect(`sha256:${createHash("sha256").update(got.body).digest("hex")}`).toBe(image.layerDigest);
  });

  it("answer HEAD with the size and no body", async () => {
    const got = await fetchBytes(await downloadUrl(), {}, "HEAD");
    expect(got.status).toBe(200);
    expect(got.headers["content-length"]).toBe("100000");
    expect(got.body.length).toBe(0);
  });

  it("serve single byte ranges with 206, and 416 when unsatisfiable", async () => {
    const url = await downloadUrl();
    const middle = await fetchBytes(url, { range: "bytes=10-19" });
    expect(middle.status).toBe(206);
    expect(middle.headers["content-range"]).toBe("bytes 10-19/100000");
    expect(middle.body.equals(image.layer.subarray(10, 20))).toBe(true);
    const tail = await fetchBytes(url, { range: "bytes=99990-" });
    expect(tail.status).toBe(206);
    expect(tail.body.equals(image.layer.subarray(99990))).toBe(true);
    const suffix = await fetchBytes(url, { range: "bytes=-5" });
    expect(suffix.headers["content-range"]).toBe("bytes 99995-99999/100000");
    expect(suffix.body.equals(image.layer.subarray(99995))).toBe(true);
    const beyond = await fetchBytes(url, { range: "bytes=100000-" });
    expect(beyond.status).toBe(416);
    expect(beyond.headers["content-range"]).toBe("bytes */100000");
    expect(beyond.body.toString()).toContain("<Code>InvalidRange</Code>");
  });

  it("refuse an Authorization header as S3 does", async () => {
    const got = await fetchBytes(await downloadUrl(), { authorization: "Basic QVdTOnNlY3JldA==" });
    expect(got.status).toBe(400);
    const xml = got.body.toString();
    expect(xml).toContain("<Code>InvalidArgument</Code>");
    expect(xml).toContain("Only one auth mechanism allowed");
  });

  it("refuse tampered URLs with 403 SignatureDoesNotMatch", async () => {
    const url = new URL(await downloadUrl());
    url.searchParams.set("X-Amz-Expires", "604800");
    const got = await fetchBytes(url.toString());
    expect(got.status).toBe(403);
    expect(got.body.toString()).toContain("<Code>SignatureDoesNotMatch</Code>");
    const unsigned = await fetchBytes(`${server.url}${new URL(await downloadUrl()).pathname}`);
    expect(unsigned.status).toBe(403);
    expect(unsigned.body.toString()).toContain("<Code>AccessDenied</Code>");
  });

  it("expire after an hour with 403 AccessDenied", async () => {
    const url = await downloadUrl();
    offsetMs = 3601 * 1000;
    try {
      const got = await fetchBytes(url);
      expect(got.status).toBe(403);
      const xml = got.body.toString();
      expect(xml).toContain("<Code>AccessDenied</Code>");
      expect(xml).toContain("<Message>Request has expired</Message>");
      expect(xml).toContain("<X-Amz-Expires>3600</X-Amz-Expires>");
    } finally {
      offsetMs = 0;
    }
    expect((await fetchBytes(await downloadUrl(), { range: "bytes=0-0" })).status).toBe(206);
  });
});
