import { connect } from "node:net";
import { Readable } from "node:stream";
import {
  CreateRepositoryCommand,
  DescribeRepositoriesCommand,
  InitiateLayerUploadCommand,
} from "@aws-sdk/client-ecr";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MAX_REQUEST_BODY_BYTES, serve, type RunningServer } from "../../src/emulator/server.js";
import { ECR_TARGET_PREFIX, signedJsonRequest } from "../helpers/aws-sign.js";
import { ecrClient } from "../helpers/emulator-clients.js";

let server: RunningServer;

beforeAll(async () => {
  server = await serve({ port: 0 });
  await ecrClient(server).send(new CreateRepositoryCommand({ repositoryName: "framing" }));
});
afterAll(async () => {
  await server.close();
});

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

async function send(options: {
  target?: string;
  body: string | Buffer;
  contentType?: string;
  method?: "POST" | "GET";
  path?: string;
}): Promise<Answer> {
  const signed = await signedJsonRequest({
    endpoint: server.url,
    target: options.target,
    body: options.body,
    ...(options.contentType ? { contentType: options.contentType } : {}),
  });
  const res = await request(`${server.url}${options.path ?? "/"}`, {
    method: options.method ?? "POST",
    headers: signed.headers,
    body: options.method === "GET" ? null : signed.body,
  });
  return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
}

async function stillServes(): Promise<void> {
  const out = await ecrClient(server).send(new DescribeRepositoriesCommand({}));
  expect(out.repositories?.map((r) => r.repositoryName)).toContain("framing");
}

function errorOf(answer: Answer): { __type: string; message: string } {
  expect(answer.headers["content-type"]).toBe("application/x-amz-json-1.1");
  expect(answer.headers["x-amzn-requestid"]).toMatch(/^[0-9a-f-]{36}$/);
  const body = JSON.parse(answer.text) as { __type: string; message: string };
  expect(answer.headers["x-amzn-errortype"]).toBe(body.__type);
  return body;
}

describe("AWS JSON 1.1 framing", () => {
  it("answers malformed JSON with SerializationException", async () => {
    const answer = await send({
      target: `${ECR_TARGET_PREFIX}CreateRepository`,
      body: '{"repositoryName": "x"',
    });
    expect(answer.status).toBe(400);
    expect(errorOf(answer).__type).toBe("SerializationException");
    const list = await send({ target: `${ECR_TARGET_PREFIX}CreateRepository`, body: '["x"]' });
    expect(errorOf(list).__type).toBe("SerializationException");
    await stillServes();
  });

  it("takes an empty body as {}", async () => {
    const answer = await send({ target: `${ECR_TARGET_PREFIX}DescribeRepositories`, body: "" });
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.text)).toMatchObject({ repositories: [{ repositoryName: "framing" }] });
  });

  it("answers a missing or unknown X-Amz-Target with UnknownOperationException", async () => {
    for (const target of [
      undefined,
      "Nope.CreateRepository",
      `${ECR_TARGET_PREFIX}FlyToTheMoon`,
      `${ECR_TARGET_PREFIX}constructor`,
    ]) {
      const answer = await send({ ...(target ? { target } : {}), body: "{}" });
      expect(answer.status, String(target)).toBe(400);
      expect(errorOf(answer).__type).toBe("UnknownOperationException");
    }
    // ECR Public operations are not ECR operations.
    const crossed = await send({ target: `${ECR_TARGET_PREFIX}DescribeRegistries`, body: "{}" });
    expect(errorOf(crossed).__type).toBe("UnknownOperationException");
    await stillServes();
  });

  it("answers a wrong Content-Type as AWS does, and accepts parameters on the right one", async () => {
    const answer = await send({
      target: `${ECR_TARGET_PREFIX}CreateRepository`,
      body: JSON.stringify({ repositoryName: "wrong-type" }),
      contentType: "application/json",
    });
    expect(answer.status).toBe(404);
    expect(answer.headers["x-amzn-errortype"]).toBe("UnknownOperationException");
    expect(answer.text).toBe("<UnknownOperationException/>\n");
    const withCharset = await send({
      target: `${ECR_TARGET_PREFIX}DescribeRepositories`,
      body: "{}",
      contentType: "application/x-amz-json-1.1; charset=utf-8",
    });
    expect(withCharset.status).toBe(200);
    const names = (await ecrClient(server).send(new DescribeRepositoriesCommand({}))).repositories?.map(
      (r) => r.repositoryName,
    );
    expect(names).not.toContain("wrong-type");
  });

  it("answers unknown paths with 404 and leaves /v2/ to the registry API", async () => {
    const get = await request(`${server.url}/`);
    expect(get.statusCode).toBe(404);
    await get.body.dump();
    const v2 = await request(`${server.url}/v2/`);
    expect(v2.statusCode).toBe(401);
    expect(v2.headers["docker-distribution-api-version"]).toBe("registry/2.0");
    await v2.body.dump();
    const other = await request(`${server.url}/favicon.ico`);
    expect(other.statusCode).toBe(404);
    await other.body.dump();
  });

  it("refuses a body over the limit without reading it, and goes on serving", async () => {
    const huge = Buffer.alloc(MAX_REQUEST_BODY_BYTES + 1, 0x20);
    let status: number | undefined;
    try {
      const res = await request(`${server.url}/`, {
        method: "POST",
        headers: {
          "content-type": "application/x-amz-json-1.1",
          "x-amz-target": `${ECR_TARGET_PREFIX}DescribeRepositories`,
        },
        body: huge,
      });
      status = res.statusCode;
      expect(JSON.parse(await res.body.text())).toMatchObject({ __type: "RequestEntityTooLargeException" });
    } catch (err) {
      // The server may close the connection while the client is still sending: that is the refusal too.
      expect(String((err as Error & { code?: string }).code)).toMatch(/ECONNRESET|EPIPE|UND_ERR_SOCKET/);
    }
    if (status !== undefined) expect(status).toBe(413);
    await stillServes();
  });

  it("refuses an over-limit chunked body (no Content-Length) too", async () => {
    const chunk = Buffer.alloc(1024 * 1024, 0x20);
    let sent = 0;
    const body = new Readable({
      read() {
        sent += chunk.length;
        this.push(sent > MAX_REQUEST_BODY_BYTES + 2 * chunk.length ? null : chunk);
      },
    });
    try {
      const res = await request(`${server.url}/`, {
        method: "POST",
        headers: {
          "content-type": "application/x-amz-json-1.1",
          "x-amz-target": `${ECR_TARGET_PREFIX}DescribeRepositories`,
        },
        body,
      });
      expect(res.statusCode).toBe(413);
      await res.body.dump();
    } catch (err) {
      expect(String((err as Error & { code?: string }).code)).toMatch(/ECONNRESET|EPIPE|UND_ERR_SOCKET/);
    }
    // It stopped reading near the limit rather than swallowing everything.
    expect(sent).toBeLessThan(MAX_REQUEST_BODY_BYTES + 64 * chunk.length);
    await stillServes();
  });

  it("frames the largest legal request (a 20 MiB part) without refusing it", async () => {
    const { uploadId } = await ecrClient(server).send(
      new InitiateLayerUploadCommand({ repositoryName: "framing" }),
    );
    const part = Buffer.alloc(20 * 1024 * 1024, 7);
    const answer = await send({
      target: `${ECR_TARGET_PREFIX}UploadLayerPart`,
      body: JSON.stringify({
        repositoryName: "framing",
        uploadId,
        partFirstByte: 0,
        partLastByte: part.length - 1,
        layerPartBlob: part.toString("base64"),
      }),
    });
    expect(answer.status, answer.text).toBe(200);
    expect(JSON.parse(answer.text)).toMatchObject({ uploadId, lastByteReceived: part.length - 1 });
  });

  it("survives bytes that are not HTTP", async () => {
    const reply = await new Promise<string>((resolve, reject) => {
      const socket = connect(server.port, "127.0.0.1", () => socket.write("NOT HTTP AT ALL\r\n\r\n"));
      let data = "";
      socket.on("data", (d: Buffer) => (data += d.toString()));
      socket.on("close", () => resolve(data));
      socket.on("error", reject);
    });
    expect(reply).toMatch(/^HTTP\/1\.1 400/);
    await stillServes();
  });
});
