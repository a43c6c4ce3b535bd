import {
  CreateRepositoryCommand,
  DescribeRepositoriesCommand,
  type ECRServiceException,
} from "@aws-sdk/client-ecr";
import { CreateRepositoryCommand as CreatePublicRepositoryCommand } from "@aws-sdk/client-ecr-public";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { serve, type RunningServer } from "../../src/emulator/server.js";
import { ECR_TARGET_PREFIX, signedJsonRequest } from "../helpers/aws-sign.js";
import { ecrClient, ecrPublicClient } from "../helpers/emulator-clients.js";

let server: RunningServer;

beforeAll(async () => {
  server = await serve({ port: 0, accessKeyId: "AKIALOCAL", secretAccessKey: "local-secret" });
});
afterAll(async () => {
  await server.close();
});

async function repositoryNames(): Promise<string[]> {
  const out = await ecrClient(server).send(new DescribeRepositoriesCommand({}));
  return (out.repositories ?? []).map((r) => r.repositoryName ?? "");
}

async function refusal(promise: Promise<unknown>): Promise<ECRServiceException> {
  try {
    await promise;
  } catch (err) {
    return err as ECRServiceException;
  }
  throw new Error("the request was accepted");
}

/**
 * CreateRepository signed for `signedName` but sent with `sentName` in the body (the same name:
 * an untouched request). The payload hash is only inside the signature, as the SDK's ECR client
 * sends it.
 */
async function createRepositorySigned(endpoint: string, signedName: string, sentName: string) {
  const signed = await signedJsonRequest({
    endpoint,
    target: `${ECR_TARGET_PREFIX}CreateRepository`,
    body: JSON.stringify({ repositoryName: signedName }),
    accessKeyId: "AKIALOCAL",
    secretAccessKey: "local-secret",
    signPayloadHash: false,
  });
  const res = await request(signed.url, {
    method: "POST",
    headers: signed.headers,
    body: JSON.stringify({ repositoryName: sentName }),
  });
  return { status: res.statusCode, body: (await res.body.json()) as { __type?: string } };
}

describe("SigV4 on the ECR API", () => {
  it("accepts the SDK's signed requests with the configured credentials", async () => {
    await ecrClient(server).send(new CreateRepositoryCommand({ repositoryName: "signed-ok" }));
    expect(await repositoryNames()).toContain("signed-ok");
  });

  it("refuses an unknown access key, changing nothing", async () => {
    const client = ecrClient(server, {
      credentials: { accessKeyId: "AKIAOTHER", secretAccessKey: "local-secret" },
    });
    const err = await refusal(client.send(new CreateRepositoryCommand({ repositoryName: "wrong-key" })));
    expect(err.name).toBe("UnrecognizedClientException");
    expect(err.message).toBe("The security token included in the request is invalid.");
    expect(err.$metadata.httpStatusCode).toBe(400);
    expect(await repositoryNames()).not.toContain("wrong-key");
  });

  it("refuses a wrong secret, changing nothing", async () => {
    const client = ecrClient(server, { credentials: { accessKeyId: "AKIALOCAL", secretAccessKey: "guess" } });
    const err = await refusal(client.send(new CreateRepositoryCommand({ repositoryName: "wrong-secret" })));
    expect(err.name).toBe("InvalidSignatureException");
    expect(err.message).toMatch(
      /^The request signature we calculated does not match the signature you provided/,
    );
    expect(err.$metadata.httpStatusCode).toBe(400);
    expect(await repositoryNames()).not.toContain("wrong-secret");
  });

  it("refuses an unsigned request", async () => {
    const res = await request(`${server.url}/`, {
      method: "POST",
      headers: {
        "content-type": "application/x-amz-json-1.1",
        "x-amz-target": `${ECR_TARGET_PREFIX}CreateRepository`,
      },
      body: JSON.stringify({ repositoryName: "unsigned" }),
    });
    expect(res.statusCode).toBe(400);
    expect(res.headers["x-amzn-errortype"]).toBe("MissingAuthenticationTokenException");
    expect(await res.body.json()).toEqual({
      __type: "MissingAuthenticationTokenException",
      message: "Missing Authentication Token",
    });
    expect(await repositoryNames()).not.toContain("unsigned");
  });

  it("refuses a body changed after signing", async () => {
    const sent = await createRepositorySigned(server.url, "signed-body", "forged-body");
    expect(sent.status).toBe(400);
    expect(sent.body.__type).toBe("InvalidSignatureException");
    expect(await repositoryNames()).not.toContain("forged-body");
    expect(await repositoryNames()).not.toContain("signed-body");
  });

  it("refuses a body changed after signing on a shaped server too, which hashes bodies as they arrive", async () => {
    const shaped = await serve({
      port: 0,
      accessKeyId: "AKIALOCAL",
      secretAccessKey: "local-secret",
      network: { rttMs: 1 },
    });
    try {
      expect(await createRepositorySigned(shaped.url, "shaped-signed", "shaped-forged")).toMatchObject({
        status: 400,
        body: { __type: "InvalidSignatureException" },
      });
      // The same request sent as signed is accepted: the hash on arrival is the body's.
      expect(await createRepositorySigned(shaped.url, "shaped-signed", "shaped-signed")).toMatchObject({
        status: 200,
      });
    } finally {
      await shaped.close();
    }
  });

  it("refuses a request signed for another region", async () => {
    const client = ecrClient(server, { region: "eu-west-1" });
    const err = await refusal(client.send(new CreateRepositoryCommand({ repositoryName: "other-region" })));
    expect(err.name).toBe("InvalidSignatureException");
    expect(err.message).toContain("'eu-west-1'");
  });
});

describe("SigV4 on the ECR Public API", () => {
  it("accepts ecr-public signatures in us-east-1 only", async () => {
    await ecrPublicClient(server).send(new CreatePublicRepositoryCommand({ repositoryName: "public-ok" }));
    const elsewhere = ecrPublicClient(server, { region: "us-west-2" });
    const err = await refusal(
      elsewhere.send(new CreatePublicRepositoryCommand({ repositoryName: "public-west" })),
    );
    expect(err.name).toBe("InvalidSignatureException");
  });

  it("refuses an ECR signature on an ECR Public target", async () => {
    const signed = await signedJsonRequest({
      endpoint: server.url,
      target: "SpencerFrontendService.CreateRepository",
      body: JSON.stringify({ repositoryName: "crossed" }),
      accessKeyId: "AKIALOCAL",
      secretAccessKey: "local-secret",
      service: "ecr",
    });
    const res = await request(signed.url, { method: "POST", headers: signed.headers, body: signed.body });
    expect(res.statusCode).toBe(400);
    expect(await res.body.json()).toMatchObject({ __type: "InvalidSignatureException" });
  });
});

describe("clock skew", () => {
  it("refuses requests signed more than 5 minutes from the server's clock", async () => {
    const skewed = await serve({ port: 0, now: () => new Date(Date.now() + 10 * 60_000) });
    try {
      const err = await refusal(ecrClient(skewed).send(new DescribeRepositoriesCommand({})));
      expect(err.name).toBe("InvalidSignatureException");
      expect(err.message).toMatch(
        /^Signature expired: \d{8}T\d{6}Z is now earlier than \d{8}T\d{6}Z \(\d{8}T\d{6}Z - 5 min\.\)$/,
      );
    } finally {
      await skewed.close();
    }
  });
});
