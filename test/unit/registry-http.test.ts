/**
 * The registry client and transport against tiny in-process HTTP servers that play a registry
 * (and its token service, and a storage host it redirects to): what goes over the wire.
 */
import { createHash } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { Readable } from "node:stream";
import { buffer } from "node:stream/consumers";
import { afterEach, describe, expect, it } from "vitest";
import type { CredentialSource } from "../../src/transports/registry/auth.js";
import {
  isLoopbackHost,
  parseRetryAfter,
  RegistryClient,
  resolveLocation,
  type RegistryClientOptions,
} from "../../src/transports/registry/client.js";
import { fromOptions } from "../../src/transports/registry/credentials.js";
import { RegistryDestination } from "../../src/transports/registry/destination.js";
import { RegistrySource } from "../../src/transports/registry/source.js";
import { expectEcrxError } from "../helpers/expect-error.js";

describe("isLoopbackHost", () => {
  it.each([
    ["127.0.0.1", true],
    ["127.255.3.4", true],
    ["localhost", true],
    ["123456789012.dkr.ecr.us-east-1.localhost", true],
    ["::1", true],
    ["[::1]", true],
    ["::ffff:127.0.0.1", true],
    ["128.0.0.1", false],
    ["127.0.0.1.example.com", false],
    ["localhost.example.com", false],
    ["10.0.0.1", false],
    ["registry.example.com", false],
    ["127.0.0.300", false],
  ])("%s -> %s", (host, loopback) => {
    expect(isLoopbackHost(host)).toBe(loopback);
  });
});

describe("resolveLocation", () => {
  const base = "http://127.0.0.1:5000/v2/a/b/blobs/uploads/";
  it("keeps absolute URLs and resolves relative ones", () => {
    expect(resolveLocation("https://s3.example.com/x?sig=1", base).toString()).toBe(
      "https://s3.example.com/x?sig=1",
    );
    expect(resolveLocation("/v2/a/b/blobs/uploads/u1?_state=s", base).toString()).toBe(
      "http://127.0.0.1:5000/v2/a/b/blobs/uploads/u1?_state=s",
    );
    expect(resolveLocation("u2", base).toString()).toBe("http://127.0.0.1:5000/v2/a/b/blobs/uploads/u2");
    expect(resolveLocation("//cdn.example.com/b", base).toString()).toBe("http://cdn.example.com/b");
  });
});

describe("parseRetryAfter", () => {
  it("reads seconds and HTTP dates", () => {
    const now = Date.parse("2026-01-01T00:00:00Z");
    expect(parseRetryAfter("3", now)).toBe(3000);
    expect(parseRetryAfter("Thu, 01 Jan 2026 00:00:05 GMT", now)).toBe(5000);
    expect(parseRetryAfter("Wed, 31 Dec 2025 00:00:05 GMT", now)).toBe(0);
    expect(parseRetryAfter("soon", now)).toBeUndefined();
    expect(parseRetryAfter(undefined, now)).toBeUndefined();
  });
});

type Handler = (req: IncomingMessage, res: ServerResponse, body: Buffer) => void;
const servers: Server[] = [];
const clients: RegistryClient[] = [];

async function serve(handler: Handler): Promise<{ host: string; url: string }> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => handler(req, res, Buffer.concat(chunks)));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  servers.push(server);
  const host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { host, url: `http://${host}` };
}

function client(
  host: string,
  credentials: CredentialSource = { get: async () => undefined },
  options: Partial<RegistryClientOptions> = {},
): RegistryClient {
  const c = new RegistryClient({
    registry: host,
    repository: "a/b",
    actions: "pull,push",
    credentials,
    baseDelayMs: 1,
    ...options,
  });
  clients.push(c);
  return c;
}

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
});

const BLOB = Buffer.from("the bytes of a blob");
const BLOB_DIGEST = `sha256:${createHash("sha256").update(BLOB).digest("hex")}`;
const basic = (user: string, password: string) =>
  `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;

describe("blob downloads", () => {
  it("follows a redirect to another host without our Authorization", async () => {
    const storageSaw: (string | undefined)[] = [];
    const storage = await serve((req, res) => {
      storageSaw.push(req.headers.authorization);
      res.writeHead(200, { "content-length": BLOB.length }).end(BLOB);
    });
    const registrySaw: (string | undefined)[] = [];
    const registry = await serve((req, res) => {
      registrySaw.push(req.headers.authorization);
      if (req.headers.authorization !== basic("AWS", "pw")) {
        res
          .writeHead(401, { "www-authenticate": 'Basic realm="https://x/",service="ecr.amazonaws.com"' })
          .end();
      } else if (req.url === "/v2/") {
        res.writeHead(200).end();
      } else {
        res.writeHead(307, { location: `${storage.url}/bucket/blob?X-Amz-Signature=abc` }).end();
      }
    });
    const source = new RegistrySource(
      client(registry.host, fromOptions({ username: "AWS", password: "pw" })),
      "r",
    );
    const body = await buffer(await source.blob({ mediaType: "x", digest: BLOB_DIGEST, size: BLOB.length }));
    expect(body.equals(BLOB)).toBe(true);
    expect(registrySaw.at(-1)).toBe(basic("AWS", "pw"));
    expect(storageSaw).toEqual([undefined]);
  });

  it("refuses a redirect to plain http on a host that is not loopback", async () => {
    const registry = await serve((req, res) => {
      if (req.url === "/v2/") res.writeHead(200).end();
      else res.writeHead(307, { location: "http://storage.example.com/blob" }).end();
    });
    const source = new RegistrySource(client(registry.host), "r");
    await expectEcrxError(
      source.blob({ mediaType: "x", digest: BLOB_DIGEST, size: BLOB.length }),
      "NETWORK",
      /refusing http:\/\/storage.example.com/,
    );
  });

  it("resumes a body the registry serves itself with Range after a dropped connection", async () => {
    const ranges: (string | undefined)[] = [];
    const registry = await serve((req, res) => {
      if (req.url === "/v2/") return void res.writeHead(200).end();
      ranges.push(req.headers.range);
      if (req.headers.range === undefined) {
        res.writeHead(200, { "content-length": BLOB.length });
        res.write(BLOB.subarray(0, 5));
        setTimeout(() => res.destroy(), 20);
      } else {
        const first = Number(/bytes=(\d+)-/.exec(req.headers.range)![1]);
        res
          .writeHead(206, { "content-range": `bytes ${first}-${BLOB.length - 1}/${BLOB.length}` })
          .end(BLOB.subarray(first));
      }
    });
    const source = new RegistrySource(client(registry.host), "r");
    const body = await buffer(await source.blob({ mediaType: "x", digest: BLOB_DIGEST, size: BLOB.length }));
    expect(body.equals(BLOB)).toBe(true);
    expect(ranges).toEqual([undefined, `bytes=5-${BLOB.length - 1}`]);
  });
});

describe("manifests", () => {
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: {
        mediaType: "application/vnd.oci.image.config.v1+json",
        digest: BLOB_DIGEST,
        size: BLOB.length,
      },
      layers: [],
    }),
  );
  const digest = `sha256:${createHash("sha256").update(manifest).digest("hex")}`;

  it("asks for every manifest type and keeps the bytes verbatim", async () => {
    let accept: string | undefined;
    const registry = await serve((req, res) => {
      if (req.url === "/v2/") return void res.writeHead(200).end();
      accept = req.headers.accept;
      res
        .writeHead(200, {
          "content-type": "application/vnd.oci.image.manifest.v1+json",
          "docker-content-digest": digest,
        })
        .end(manifest);
    });
    const raw = await new RegistrySource(client(registry.host), "r", { tag: "v1" }).manifest();
    expect(raw).toEqual({ bytes: manifest, digest, mediaType: "application/vnd.oci.image.manifest.v1+json" });
    expect(accept?.split(", ").sort()).toEqual([
      "application/vnd.docker.distribution.manifest.list.v2+json",
      "application/vnd.docker.distribution.manifest.v2+json",
      "application/vnd.oci.image.index.v1+json",
      "application/vnd.oci.image.manifest.v1+json",
    ]);
  });

  it("fails with INTEGRITY when the bytes do not hash to Docker-Content-Digest or the digest asked", async () => {
    const other = `sha256:${"b".repeat(64)}`;
    const registry = await serve((req, res) => {
      if (req.url === "/v2/") return void res.writeHead(200).end();
      res
        .writeHead(
          200,
          req.url?.endsWith(":v1") || req.url?.endsWith("/v1") ? { "docker-content-digest": other } : {},
        )
        .end(manifest);
    });
    const source = new RegistrySource(client(registry.host), "r");
    await expectEcrxError(source.manifest("v1"), "INTEGRITY", /the registry says sha256:b+/);
    await expectEcrxError(source.manifest(other), "INTEGRITY", new RegExp(`hashes to ${digest}`));
  });

  it("refuses a manifest over 4 MiB", async () => {
    const registry = await serve((req, res) => {
      if (req.url === "/v2/") return void res.writeHead(200).end();
      res.writeHead(200).end(Buffer.alloc(4 * 1024 * 1024 + 1, 32));
    });
    await expectEcrxError(
      new RegistrySource(client(registry.host), "r").manifest("v1"),
      "INVALID_INPUT",
      /limit/,
    );
  });
});

describe("retries and authentication", () => {
  it("backs off on 429 (honouring Retry-After) and 5xx, then succeeds", async () => {
    let calls = 0;
    const registry = await serve((req, res) => {
      if (req.url === "/v2/") return void res.writeHead(200).end();
      calls++;
      if (calls === 1) {
        res
          .writeHead(429, { "retry-after": "0", "content-type": "application/json" })
          .end('{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}');
      } else if (calls === 2) res.writeHead(503).end();
      else res.writeHead(404).end();
    });
    const destination = new RegistryDestination(client(registry.host), "r");
    const missing = await destination.missing([{ mediaType: "x", digest: BLOB_DIGEST, size: 1 }]);
    expect(missing).toHaveLength(1);
    expect(calls).toBe(3);
  });

  it("gives up on persistent throttling with NETWORK and a hint", async () => {
    const registry = await serve((req, res) => {
      if (req.url === "/v2/") return void res.writeHead(200).end();
      res
        .writeHead(429, { "content-type": "application/json" })
        .end('{"errors":[{"code":"TOOMANYREQUESTS","message":"Rate exceeded"}]}');
    });
    const c = client(registry.host, undefined, { attempts: 3 });
    await expectEcrxError(
      new RegistrySource(c, "r").manifest("v1"),
      "NETWORK",
      /GET manifest a\/b:v1 of .*: HTTP 429 TOOMANYREQUESTS: Rate exceeded/,
    );
  });

  it("retries a 401 once with a fresh token", async () => {
    let issued = 0;
    const tokens = await serve((_req, res) => {
      issued++;
      res
        .writeHead(200, { "content-type": "application/json" })
        .end(JSON.stringify({ token: `t${issued}`, expires_in: 300 }));
    });
    const registry = await serve((req, res) => {
      // The first token is revoked as soon as it is used for the blob.
      if (req.headers.authorization !== "Bearer t2") {
        res.writeHead(401, { "www-authenticate": `Bearer realm="${tokens.url}/token",service="fake"` }).end();
      } else if (req.url === "/v2/") res.writeHead(200).end();
      else res.writeHead(200, { "content-length": BLOB.length }).end(BLOB);
    });
    const source = new RegistrySource(client(registry.host), "r");
    const body = await buffer(await source.blob({ mediaType: "x", digest: BLOB_DIGEST, size: BLOB.length }));
    expect(body.equals(BLOB)).toBe(true);
    expect(issued).toBe(2);
  });

  it("keeps Basic credentials for the token service off the host it redirects to", async () => {
    const moved: (string | undefined)[] = [];
    const elsewhere = await serve((req, res) => {
      moved.push(req.headers.authorization);
      res.writeHead(200, { "content-type": "application/json" }).end('{"token":"t"}');
    });
    const asked: (string | undefined)[] = [];
    const tokens = await serve((req, res) => {
      asked.push(req.headers.authorization);
      res.writeHead(307, { location: `${elsewhere.url}/token${req.url!.slice("/token".length)}` }).end();
    });
    const registry = await serve((req, res) => {
      if (req.headers.authorization !== "Bearer t") {
        res.writeHead(401, { "www-authenticate": `Bearer realm="${tokens.url}/token",service="fake"` }).end();
      } else res.writeHead(404).end();
    });
    const c = client(registry.host, fromOptions({ username: "u", password: "pw" }));
    expect(
      await new RegistryDestination(c, "r").missing([{ mediaType: "x", digest: BLOB_DIGEST, size: 1 }]),
    ).toHaveLength(1);
    expect(asked).toEqual([basic("u", "pw")]);
    expect(moved).toEqual([undefined]);
  });

  it("maps DENIED to AUTH with a hint and keeps secrets out of the message", async () => {
    const registry = await serve((req, res) => {
      if (req.url === "/v2/") return void res.writeHead(200).end();
      res
        .writeHead(403, { "content-type": "application/json" })
        .end(
          '{"errors":[{"code":"DENIED","message":"requested access to the resource is denied for hunter22"}]}',
        );
    });
    const c = client(registry.host, fromOptions({ username: "u", password: "hunter22" }));
    const source = new RegistrySource(c, "r");
    // Basic credentials are only sent once challenged; make the client learn them first.
    c.auth.setChallenges('Basic realm="x"');
    await expectEcrxError(
      source.manifest("v1"),
      "AUTH",
      /HTTP 403 DENIED: requested access to the resource is denied for \*\*\*/,
    );
  });
});

describe("uploads", () => {
  /** A registry whose upload endpoints behave as ECR's: 201 on PATCH, a Range stuck at 0-0. */
  async function ecrLikeRegistry() {
    const log: { method: string; url: string; length: number }[] = [];
    let stored = Buffer.alloc(0);
    const registry = await serve((req, res, body) => {
      log.push({ method: req.method!, url: req.url!, length: body.length });
      const url = new URL(req.url!, "http://x");
      if (req.url === "/v2/") return void res.writeHead(200).end();
      if (req.method === "POST") {
        return void res
          .writeHead(202, { location: "/v2/a/b/blobs/uploads/u1?_state=s0", range: "0-0" })
          .end();
      }
      if (req.method === "PATCH") {
        stored = Buffer.concat([stored, body]);
        return void res
          .writeHead(201, { location: "/v2/a/b/blobs/uploads/u1?_state=s1", range: "0-0" })
          .end();
      }
      if (req.method === "PUT" && url.pathname.includes("/blobs/uploads/")) {
        stored = Buffer.concat([stored, body]);
        const digest = `sha256:${createHash("sha256").update(stored).digest("hex")}`;
        if (url.searchParams.get("digest") !== digest) {
          return void res
            .writeHead(400, { "content-type": "application/json" })
            .end(
              '{"errors":[{"code":"DIGEST_INVALID","message":"provided digest did not match uploaded content"}]}',
            );
        }
        return void res.writeHead(201, { "docker-content-digest": digest }).end();
      }
      if (req.method === "PUT") return void res.writeHead(201).end();
      res.writeHead(405).end();
    });
    return { registry, log, stored: () => stored };
  }

  it("streams a blob of unknown digest in one PATCH, tolerating ECR's 201 and stuck Range", async () => {
    const fake = await ecrLikeRegistry();
    const destination = new RegistryDestination(client(fake.registry.host), "r", { monolithicMax: 4 });
    let progress = 0;
    const result = await destination.putBlob(
      { mediaType: "m", digest: undefined, size: 1000, sizeIsExact: false },
      Readable.from([BLOB.subarray(0, 7), BLOB.subarray(7)]),
      (n) => (progress += n),
    );
    expect(result).toEqual({ mediaType: "m", digest: BLOB_DIGEST, size: BLOB.length });
    expect(progress).toBe(BLOB.length);
    expect(fake.stored().equals(BLOB)).toBe(true);
    expect(fake.log.slice(1).map((l) => `${l.method} ${l.url}`)).toEqual([
      "POST /v2/a/b/blobs/uploads/",
      "PATCH /v2/a/b/blobs/uploads/u1?_state=s0",
      `PUT /v2/a/b/blobs/uploads/u1?_state=s1&digest=${encodeURIComponent(BLOB_DIGEST)}`,
    ]);
  });

  it("puts a small blob of known digest in one request", async () => {
    const fake = await ecrLikeRegistry();
    const destination = new RegistryDestination(client(fake.registry.host), "r");
    const result = await destination.putBlob(
      { mediaType: "m", digest: BLOB_DIGEST, size: BLOB.length, sizeIsExact: true },
      Readable.from([BLOB]),
      () => undefined,
    );
    expect(result.digest).toBe(BLOB_DIGEST);
    expect(fake.log.slice(1).map((l) => l.method)).toEqual(["POST", "PUT"]);
    expect(fake.log.at(-1)!.length).toBe(BLOB.length);
  });

  it("reports the registry's digest refusal as INTEGRITY and cancels the upload", async () => {
    const fake = await ecrLikeRegistry();
    const destination = new RegistryDestination(client(fake.registry.host), "r");
    await expectEcrxError(
      destination.putBlob(
        { mediaType: "m", digest: `sha256:${"c".repeat(64)}`, size: BLOB.length, sizeIsExact: true },
        Readable.from([BLOB]),
        () => undefined,
      ),
      "INTEGRITY",
      /HTTP 400 DIGEST_INVALID/,
    );
    expect(fake.log.at(-1)!.method).toBe("DELETE");
  });

  it("puts a manifest by digest, then under each tag, with its media type", async () => {
    const seen: string[] = [];
    const registry = await serve((req, res) => {
      if (req.url === "/v2/") return void res.writeHead(200).end();
      seen.push(`${req.method} ${req.url} ${req.headers["content-type"]}`);
      res.writeHead(201).end();
    });
    const destination = new RegistryDestination(client(registry.host), "r");
    const bytes = Buffer.from("{}");
    const digest = `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
    await destination.putManifest({ bytes, digest, mediaType: "application/vnd.oci.image.index.v1+json" }, [
      "v1",
      "latest",
    ]);
    expect(seen).toEqual([
      `PUT /v2/a/b/manifests/${digest} application/vnd.oci.image.index.v1+json`,
      "PUT /v2/a/b/manifests/v1 application/vnd.oci.image.index.v1+json",
      "PUT /v2/a/b/manifests/latest application/vnd.oci.image.index.v1+json",
    ]);
  });
});
