import { describe, expect, it } from "vitest";
import { DownloadUrlSigner, resolveRange, s3ErrorXml } from "../../src/emulator/download-urls.js";

const DIGEST = `sha256:${"ab".repeat(32)}`;
const T0 = new Date("2026-01-02T03:04:05Z");

function parts(url: string): { host: string; path: string; query: URLSearchParams } {
  const u = new URL(url);
  return { host: u.host, path: u.pathname, query: u.searchParams };
}

function at(seconds: number): Date {
  return new Date(T0.getTime() + seconds * 1000);
}

describe("DownloadUrlSigner", () => {
  const signer = new DownloadUrlSigner({ baseUrl: "http://127.0.0.1:5000", region: "us-east-1" });

  it("presigns like S3 and verifies its own URLs", async () => {
    const url = await signer.sign(DIGEST, T0);
    const u = new URL(url);
    expect(u.pathname).toBe(`/blobs/sha256/${"ab".repeat(32)}`);
    expect(u.searchParams.get("X-Amz-Algorithm")).toBe("AWS4-HMAC-SHA256");
    expect(u.searchParams.get("X-Amz-Credential")).toMatch(/^[A-Z]+\/20260102\/us-east-1\/s3\/aws4_request$/);
    expect(u.searchParams.get("X-Amz-Date")).toBe("20260102T030405Z");
    expect(u.searchParams.get("X-Amz-Expires")).toBe("3600");
    expect(u.searchParams.get("X-Amz-SignedHeaders")).toBe("host");
    expect(u.searchParams.get("X-Amz-Signature")).toMatch(/^[0-9a-f]{64}$/);
    expect(await signer.verify(parts(url), at(0))).toEqual({ ok: true, digest: DIGEST });
    expect(await signer.verify(parts(url), at(3600))).toEqual({ ok: true, digest: DIGEST });
  });

  it("expires after its lifetime with S3's answer", async () => {
    const url = await signer.sign(DIGEST, T0);
    const result = await signer.verify(parts(url), at(3601));
    expect(result).toEqual({
      ok: false,
      error: {
        status: 403,
        code: "AccessDenied",
        message: "Request has expired",
        extra: {
          "X-Amz-Expires": "3600",
          Expires: "2026-01-02T04:04:05Z",
          ServerTime: "2026-01-02T04:04:06Z",
        },
      },
    });
    const early = await signer.verify(parts(url), at(-60));
    expect(early.ok ? "" : early.error.message).toBe("Request is not yet valid");
  });

  it("honours a custom lifetime", async () => {
    const short = new DownloadUrlSigner({
      baseUrl: "http://127.0.0.1:5000",
      region: "us-east-1",
      ttlSeconds: 60,
    });
    const url = await short.sign(DIGEST, T0);
    expect((await short.verify(parts(url), at(60))).ok).toBe(true);
    expect((await short.verify(parts(url), at(61))).ok).toBe(false);
    expect(
      () => new DownloadUrlSigner({ baseUrl: "http://x", region: "us-east-1", ttlSeconds: 604801 }),
    ).toThrow();
  });

  it.each([
    ["the digest in the path", (u: URL) => void (u.pathname = `/blobs/sha256/${"cd".repeat(32)}`)],
    ["the lifetime", (u: URL) => u.searchParams.set("X-Amz-Expires", "7200")],
    ["the date", (u: URL) => u.searchParams.set("X-Amz-Date", "20260102T030406Z")],
    ["the signature", (u: URL) => u.searchParams.set("X-Amz-Signature", "0".repeat(64))],
    ["the signed headers", (u: URL) => u.searchParams.set("X-Amz-SignedHeaders", "host;range")],
    ["an added parameter", (u: URL) => u.searchParams.set("response-content-type", "text/html")],
    ["the host", (u: URL) => void (u.host = "localhost:5000")],
  ])("refuses a URL with tampered %s", async (_what, tamper) => {
    const u = new URL(await signer.sign(DIGEST, T0));
    tamper(u);
    const result = await signer.verify(parts(u.toString()), at(10));
    expect(result.ok).toBe(false);
    expect(result.ok ? "" : result.error.code).toBe("SignatureDoesNotMatch");
    expect(result.ok ? 0 : result.error.status).toBe(403);
  });

  it("refuses URLs of another signer (another secret)", async () => {
    const other = new DownloadUrlSigner({ baseUrl: "http://127.0.0.1:5000", region: "us-east-1" });
    const result = await signer.verify(parts(await other.sign(DIGEST, T0)), at(1));
    expect(result.ok ? "" : result.error.code).toBe("SignatureDoesNotMatch");
  });

  it("answers missing or malformed parameters like S3", async () => {
    const bare = await signer.verify(parts(`http://127.0.0.1:5000/blobs/sha256/${"ab".repeat(32)}`), T0);
    expect(bare.ok ? "" : bare.error.code).toBe("AccessDenied");
    const u = new URL(await signer.sign(DIGEST, T0));
    u.searchParams.delete("X-Amz-Credential");
    const partial = await signer.verify(parts(u.toString()), T0);
    expect(partial.ok ? 0 : partial.error.status).toBe(400);
    expect(partial.ok ? "" : partial.error.code).toBe("AuthorizationQueryParametersError");
  });

  it("refuses to sign what is not a sha256 digest", async () => {
    await expect(signer.sign("sha256:../../etc/passwd", T0)).rejects.toThrow(RangeError);
  });
});

describe("resolveRange", () => {
  it.each([
    ["bytes=0-9", 100, { start: 0, end: 9 }],
    ["bytes=90-", 100, { start: 90, end: 99 }],
    ["bytes=-10", 100, { start: 90, end: 99 }],
    ["bytes=-1000", 100, { start: 0, end: 99 }],
    ["bytes=50-1000", 100, { start: 50, end: 99 }],
    ["bytes=99-99", 100, { start: 99, end: 99 }],
    ["bytes=100-", 100, "unsatisfiable"],
    ["bytes=100-200", 100, "unsatisfiable"],
    ["bytes=-0", 100, "unsatisfiable"],
    ["bytes=0-", 0, "unsatisfiable"],
    // S3 ignores what it cannot use and sends the whole object.
    ["bytes=0-1,5-6", 100, undefined],
    ["bytes=9-3", 100, undefined],
    ["items=0-1", 100, undefined],
    ["bytes=-", 100, undefined],
  ] as const)("%s of %i bytes", (header, size, expected) => {
    expect(resolveRange(header, size)).toEqual(expected);
  });

  it("sends everything without a Range header", () => {
    expect(resolveRange(undefined, 10)).toBeUndefined();
  });
});

describe("s3ErrorXml", () => {
  it("escapes what it embeds", () => {
    const xml = s3ErrorXml(
      { status: 400, code: "InvalidArgument", message: "a<b", extra: { ArgumentValue: "x&y" } },
      "RID",
    );
    expect(xml).toContain("<Message>a&#60;b</Message>");
    expect(xml).toContain("<ArgumentValue>x&#38;y</ArgumentValue>");
    expect(xml).toContain("<RequestId>RID</RequestId>");
  });
});
