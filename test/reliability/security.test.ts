/**
 * Security: secrets never shown (refused Basic passwords, refused AWS signatures, presigned URL
 * signatures echoed by a server, `--debug` stacks); the transport rule (TLS everywhere but
 * loopback or insecure); the local server's defences (names and digests validated before they
 * touch the disk, bodies size-limited, stalled clients cut off while others are served).
 */
import { connect } from "node:net";
import { createServer, request as httpRequest } from "node:http";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GetDownloadUrlForLayerCommand, InitiateLayerUploadCommand } from "@aws-sdk/client-ecr";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { serve, type RunningServer } from "../../src/emulator/server.js";
import { EcrxError } from "../../src/errors.js";
import { downloadBlob } from "../../src/transports/http/blob-download.js";
import { isLoopbackHost } from "../../src/transports/registry/client.js";
import { redact } from "../../src/util/redact.js";
import { ensureBuilt, runCli } from "../helpers/cli.js";
import { ecrClient } from "../helpers/emulator-clients.js";
import { buildImage } from "../helpers/images.js";
import { request } from "undici";
import { basicAuth, v2 } from "../helpers/registry-http.js";

let server: RunningServer;
let work: string;
let layoutRef: string;

beforeAll(async () => {
  ensureBuilt();
  work = await mkdtemp(join(tmpdir(), "ecrx-security-"));
  server = await serve({ port: 0, rates: "off" });
  layoutRef = (await buildImage({ format: "oci-layout", dir: work, seed: "security" })).reference;
});

afterAll(async () => {
  await server?.close();
  if (work) await rm(work, { recursive: true, force: true });
});

function expectNoSecret(output: string, secrets: string[]): void {
  for (const secret of secrets) expect(output, `the output shows ${secret}`).not.toContain(secret);
}

describe("secrets never appear in output", () => {
  it("redact: presigned URL signatures and credentials, Authorization values", () => {
    const url =
      "https://x.s3.amazonaws.com/blob?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAEXAMPLE%2F20240101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Signature=0123456789abcdef0123456789abcdef&X-Amz-Security-Token=FQoGZXIvYXdzEXAMPLETOKEN";
    const out = redact(
      `GET ${url} failed; Authorization: Basic QVdTOnNlY3JldHBhc3N3b3Jk; Bearer eyJhbGciOi.x.y`,
    );
    expectNoSecret(out, [
      "0123456789abcdef0123456789abcdef",
      "AKIAEXAMPLE",
      "FQoGZXIvYXdzEXAMPLETOKEN",
      "QVdTOnNlY3JldHBhc3N3b3Jk",
      "eyJhbGciOi",
    ]);
    expect(out).toContain("X-Amz-Signature=***");
  });

  it("a refused Basic password (copy --dest-creds), with and without --debug", async () => {
    const password = "pw-Refused-0123456789";
    for (const debug of [[], ["--debug"]]) {
      const run = await runCli(
        [
          "copy",
          layoutRef,
          `127.0.0.1:${server.port}/secure/app:v1`,
          "--dest-creds",
          `AWS:${password}`,
          ...debug,
        ],
        {},
      );
      expect(run.code, run.stderr).toBe(4);
      expectNoSecret(run.stdout + run.stderr, [password, Buffer.from(`AWS:${password}`).toString("base64")]);
      if (debug.length === 0) expect(run.stderr).not.toMatch(/^\s+at /m);
      else expect(run.stderr).toMatch(/^\s+at /m);
    }
  });

  it("a refused AWS secret key (InvalidSignatureException), --debug stack included", async () => {
    const secret = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY";
    const run = await runCli(
      ["push", layoutRef, `${server.registryHost}/secure/app:v1`, "--create-repo", "--debug"],
      { ...server.env, AWS_SECRET_ACCESS_KEY: secret, ECRX_CACHE_DIR: join(work, "cache") },
    );
    expect(run.code, run.stderr).toBe(4);
    expect(run.stderr).toMatch(/InvalidSignatureException/);
    expectNoSecret(run.stdout + run.stderr, [secret]);
  });

  it("a refused presigned URL whose answer echoes the signature", async () => {
    const signature = "5eb1f00d5eb1f00d5eb1f00d5eb1f00d5eb1f00d5eb1f00d5eb1f00d5eb1f00d";
    const s3 = createServer((req, res) => {
      const body = `<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match</Message><SignatureProvided>${signature}</SignatureProvided><CanonicalRequest>GET /blob X-Amz-Signature=${signature}</CanonicalRequest></Error>`;
      res.writeHead(403, { "content-type": "application/xml", "content-length": Buffer.byteLength(body) });
      res.end(body);
    });
    await new Promise<void>((resolve) => s3.listen(0, "127.0.0.1", resolve));
    const port = (s3.address() as { port: number }).port;
    try {
      const stream = downloadBlob({
        size: 10,
        url: async () => `http://127.0.0.1:${port}/blob?X-Amz-Signature=${signature}`,
        attempts: 2,
      });
      const err = await (async () => {
        for await (const chunk of stream) void chunk;
      })().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(EcrxError);
      expect((err as EcrxError).message).toMatch(/HTTP 403/);
      expectNoSecret(`${(err as EcrxError).message}\n${(err as EcrxError).stack ?? ""}`, [signature]);
    } finally {
      s3.close();
    }
  });
});

describe("transport rule: TLS everywhere but loopback or --insecure", () => {
  it("only loopback names and addresses count as loopback", () => {
    for (const host of [
      "127.0.0.1",
      "127.1.2.3",
      "::1",
      "[::1]",
      "localhost",
      "x.dkr.ecr.us-east-1.localhost",
    ]) {
      expect(isLoopbackHost(host), host).toBe(true);
    }
    for (const host of [
      "registry.example.com",
      "localhost.example.com",
      "10.0.0.1",
      "128.0.0.1",
      "127.0.0.1.nip.io",
    ]) {
      expect(isLoopbackHost(host), host).toBe(false);
    }
  });

  it("refuses a registry that is not loopback by name over plain http or unverified TLS", async () => {
    // A TLS server on loopback reached as a non-loopback name is what a hosts entry would give;
    // 127.0.0.1.nip.io is not loopback by name, but it may not resolve here: either way, refused.
    const run = await runCli(["copy", layoutRef, "docker://127.0.0.1.nip.io:1/secure/app:v1"], {}, 30_000);
    expect(run.code, run.stderr).not.toBe(0);
    expect(run.stderr).not.toMatch(/^\s+at /m);
  });
});

describe("the local server's defences", () => {
  it("validates repository names and digests before they reach the disk", async () => {
    const ecr = ecrClient(server, { maxAttempts: 1 });
    try {
      await expect(
        ecr.send(
          new GetDownloadUrlForLayerCommand({
            repositoryName: "secure/app",
            layerDigest: "sha256:../../../etc/passwd",
          }),
        ),
      ).rejects.toThrow(/Invalid|digest|not/i);
      await expect(
        ecr.send(new InitiateLayerUploadCommand({ repositoryName: "../../etc" })),
      ).rejects.toThrow();
    } finally {
      ecr.destroy();
    }
    for (const path of [
      "/v2/..%2F..%2Fetc/blobs/sha256:" + "0".repeat(64),
      "/blobs/sha256/..%2F..%2Fetc%2Fpasswd",
    ]) {
      const answer = await request(`${server.url}${path}`, {
        headers: { authorization: basicAuth(server.registryPassword()) },
      });
      expect(answer.statusCode, path).toBeGreaterThanOrEqual(400);
      expect(await answer.body.text()).not.toMatch(/root:x:0:0/);
    }
  });

  it("refuses an API body over its size limit at once (413)", async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(`${server.url}/`, {
        method: "POST",
        headers: { "content-length": String(64 * 1024 * 1024), "content-type": "application/x-amz-json-1.1" },
      });
      req.on("response", (res) => resolve(res.statusCode ?? 0));
      req.on("error", reject);
      req.write("{");
    });
    expect(status).toBe(413);
  });

  it(
    "cuts off a client that sends part of its headers and then nothing, serving others meanwhile",
    { timeout: 40_000 },
    async () => {
      const started = performance.now();
      const socket = connect(server.port, "127.0.0.1");
      socket.write("POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Amz-Target: slow");
      const closed = new Promise<number>((resolve) =>
        socket.on("close", () => resolve(performance.now() - started)),
      );
      socket.on("error", () => undefined);
      let answer = "";
      socket.on("data", (chunk: Buffer) => (answer += chunk.toString("latin1")));
      // Others are served while it hangs.
      for (let i = 0; i < 3; i++) {
        const answer = await v2(server, "GET", "/v2/");
        expect(answer.status).toBe(200);
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
      const after = await closed;
      expect(after, "cut off by the headers timeout (20 s)").toBeLessThan(30_000);
      expect(answer).toMatch(/^HTTP\/1\.1 408/);
    },
  );
});
