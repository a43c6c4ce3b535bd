import { describe, expect, it } from "vitest";
import { ApiError } from "../../src/emulator/api.js";
import { sha256Hex, verifySignature, type VerifyExpectations } from "../../src/emulator/sigv4.js";
import { signedJsonRequest, type SignedJsonRequestOptions } from "../helpers/aws-sign.js";

const NOW = new Date("2026-03-04T05:06:07Z");
const EXPECT: VerifyExpectations = {
  credentials: { accessKeyId: "test", secretAccessKey: "test" },
  region: "us-east-1",
  service: "ecr",
  now: NOW,
};
const BODY = JSON.stringify({ repositoryName: "app" });

async function verify(
  options: Partial<SignedJsonRequestOptions> = {},
  change: (headers: Record<string, string>) => void = () => {},
  receivedBody?: string,
  expect: VerifyExpectations = EXPECT,
): Promise<ApiError | undefined> {
  const request = await signedJsonRequest({
    endpoint: "http://127.0.0.1:5000",
    target: "AmazonEC2ContainerRegistry_V20150921.CreateRepository",
    body: BODY,
    signingDate: NOW,
    ...options,
  });
  change(request.headers);
  const lower = Object.fromEntries(Object.entries(request.headers).map(([k, v]) => [k.toLowerCase(), v]));
  try {
    await verifySignature(
      {
        method: "POST",
        path: "/",
        query: "",
        headers: lower,
        bodySha256: sha256Hex(Buffer.from(receivedBody ?? BODY)),
      },
      expect,
    );
    return undefined;
  } catch (err) {
    if (err instanceof ApiError) return err;
    throw err;
  }
}

describe("verifySignature", () => {
  it("accepts a correctly signed request, with or without a signed payload hash", async () => {
    expect(await verify()).toBeUndefined();
    expect(await verify({ signPayloadHash: false })).toBeUndefined();
    // A header listed in SignedHeaders must be there.
    expect((await verify({}, (h) => void delete h["x-amz-content-sha256"]))?.type).toBe(
      "InvalidSignatureException",
    );
    expect(
      await verify({ service: "ecr-public" }, () => {}, undefined, { ...EXPECT, service: "ecr-public" }),
    ).toBeUndefined();
  });

  it("refuses an unknown access key as AWS does", async () => {
    const err = await verify({ accessKeyId: "AKIAOTHER" });
    expect(err?.type).toBe("UnrecognizedClientException");
    expect(err?.message).toBe("The security token included in the request is invalid.");
    expect(err?.status).toBe(400);
  });

  it("refuses a wrong secret and a tampered body", async () => {
    const wrongSecret = await verify({ secretAccessKey: "nope" });
    expect(wrongSecret?.type).toBe("InvalidSignatureException");
    expect(wrongSecret?.message).toMatch(/^The request signature we calculated does not match/);
    const tampered = await verify({}, () => {}, JSON.stringify({ repositoryName: "evil" }));
    expect(tampered?.type).toBe("InvalidSignatureException");
    const tamperedUnhashed = await verify(
      { signPayloadHash: false },
      () => {},
      JSON.stringify({ repositoryName: "evil" }),
    );
    expect(tamperedUnhashed?.type).toBe("InvalidSignatureException");
  });

  it("refuses a tampered signed header", async () => {
    const err = await verify(
      {},
      (h) => void (h["x-amz-target"] = "AmazonEC2ContainerRegistry_V20150921.DeleteRepository"),
    );
    expect(err?.type).toBe("InvalidSignatureException");
  });

  it("refuses an unsigned request", async () => {
    const err = await verify({}, (h) => void delete h.authorization);
    expect(err?.type).toBe("MissingAuthenticationTokenException");
    expect(err?.status).toBe(400);
  });

  it("refuses a signature for another service or region", async () => {
    expect((await verify({ service: "s3" }))?.message).toContain("correct service: 'ecr'");
    expect((await verify({ region: "eu-west-1" }))?.message).toContain("valid region, not 'eu-west-1'");
  });

  it("refuses requests signed more than 5 minutes away from the server's clock", async () => {
    const old = await verify({ signingDate: new Date(NOW.getTime() - 5 * 60_000 - 1000) });
    expect(old?.type).toBe("InvalidSignatureException");
    expect(old?.message).toBe(
      "Signature expired: 20260304T050106Z is now earlier than 20260304T050107Z (20260304T050607Z - 5 min.)",
    );
    const future = await verify({ signingDate: new Date(NOW.getTime() + 6 * 60_000) });
    expect(future?.message).toMatch(/^Signature not yet current: 20260304T051207Z is still later than/);
    expect(await verify({ signingDate: new Date(NOW.getTime() - 4 * 60_000) })).toBeUndefined();
  });

  it("refuses a malformed Authorization header", async () => {
    const err = await verify(
      {},
      (h) => void (h.authorization = "AWS4-HMAC-SHA256 Credential=test/20260304/us-east-1/ecr/aws4_request"),
    );
    expect(err?.type).toBe("IncompleteSignatureException");
    expect(err?.message).toContain("requires 'Signature' parameter");
    const v2 = await verify({}, (h) => void (h.authorization = "AWS test:abc"));
    expect(v2?.type).toBe("IncompleteSignatureException");
  });
});
