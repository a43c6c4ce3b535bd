/**
 * The registry transport against a real Debian `docker-registry` (distribution 2.8) on loopback,
 * without auth and with htpasswd: images copied in from OCI layouts (one platform with gzip, zstd
 * and uncompressed layers, and a two-platform index) and back out with identical digests; skopeo
 * confirms the registry holds exactly those bytes (`copy` verifies every digest it reads).
 * Also: a second copy skips every blob, a cross-repository mount, refused credentials, a registry
 * that answers garbage and one that redirects in a loop.
 */
import { createServer, type Server } from "node:http";
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CreateRepositoryCommand } from "@aws-sdk/client-ecr";
import { serve, type RunningServer } from "../../src/emulator/server.js";
import { EcrxError } from "../../src/errors.js";
import {
  parseRemoteReference,
  type EcrReference,
  type RegistryReference,
} from "../../src/reference/reference.js";
import { transferImage, type TransferOptions } from "../../src/transfer/engine.js";
import type { TransferEvent } from "../../src/transfer/events.js";
import { createOciLayoutDestination } from "../../src/transports/oci-layout/destination.js";
import { openOciLayoutSource } from "../../src/transports/oci-layout/source.js";
import {
  createRegistryDestination,
  openRegistrySource,
  type RegistryDestinationOpenOptions,
  type RegistryOptions,
} from "../../src/transports/registry/open.js";
import {
  startTokenService,
  type TokenService,
  startDockerRegistry,
  type RunningDockerRegistry,
} from "../helpers/docker-registry.js";
import { ecrClient } from "../helpers/emulator-clients.js";
import { expectEcrxError } from "../helpers/expect-error.js";
import { buildImage, buildSingleAndMulti, KiB, MiB, type BuiltImage } from "../helpers/images.js";
import { useScratch } from "../helpers/scratch.js";
import { requireRegistryTools, tool } from "../helpers/tools.js";

const { skopeo: hasSkopeo, registry: hasRegistry, htpasswd: hasHtpasswd } = requireRegistryTools();

const scratch = useScratch("registry-interop");
/** One platform: a gzip, a zstd, an uncompressed and a 6 MiB (streamed PATCH) layer. */
let single: BuiltImage;
/** Two platforms behind an OCI index. */
let multi: BuiltImage;

beforeAll(async () => {
  if (!hasRegistry) return;
  ({ single, multi } = await buildSingleAndMulti(scratch.fresh, [
    { size: 64 * KiB, compression: "gzip" },
    { size: 96 * KiB, compression: "zstd" },
    { size: 32 * KiB, compression: "none" },
    { size: 6 * MiB, compression: "gzip", content: "random" },
  ]));
}, 120_000);

function ref(registry: RunningDockerRegistry, name: string): RegistryReference {
  return parseRemoteReference(`${registry.host}/${name}`) as RegistryReference;
}

async function push(
  image: BuiltImage,
  registry: RunningDockerRegistry,
  name: string,
  options: RegistryDestinationOpenOptions = {},
  transfer: TransferOptions = {},
) {
  const target = ref(registry, name);
  const source = await openOciLayoutSource(image.path, image.tag);
  const destination = await createRegistryDestination(target, options);
  try {
    return await transferImage(source, destination, { tags: target.tags, ...transfer });
  } finally {
    await source.close();
    await destination.close();
  }
}

/** Copies `name` out of the registry into a fresh OCI layout; returns its path. */
async function pull(registry: RunningDockerRegistry, name: string, options: RegistryOptions = {}) {
  const path = scratch.fresh("pulled");
  const source = await openRegistrySource(ref(registry, name), options);
  const destination = await createOciLayoutDestination(path, ["pulled"]);
  try {
    const result = await transferImage(source, destination);
    return { path, result };
  } finally {
    await source.close();
    await destination.close();
  }
}

async function skopeoRaw(registry: RunningDockerRegistry, name: string, creds?: string): Promise<Buffer> {
  const args = ["inspect", "--raw", "--tls-verify=false", ...(creds ? ["--creds", creds] : [])];
  return Buffer.from(await tool("skopeo", [...args, `docker://${registry.host}/${name}`]));
}

/** skopeo reads every blob of the image (all platforms) and checks each digest. */
async function skopeoCopyAll(registry: RunningDockerRegistry, name: string, creds?: string): Promise<void> {
  const dest = scratch.fresh("skopeo");
  await tool("skopeo", [
    "copy",
    "--all",
    "--src-tls-verify=false",
    ...(creds ? ["--src-creds", creds] : []),
    `docker://${registry.host}/${name}`,
    `oci:${dest}:copied`,
  ]);
}

async function blobFiles(layout: string): Promise<string[]> {
  return (await readdir(join(layout, "blobs", "sha256"))).sort();
}

function allDigests(image: BuiltImage): string[] {
  const digests = new Set<string>([image.root.digest]);
  for (const m of image.manifests) {
    digests.add(m.digest);
    digests.add(m.config.digest);
    for (const l of m.layers) digests.add(l.digest);
  }
  return [...digests].map((d) => d.slice("sha256:".length)).sort();
}

describe.runIf(hasRegistry)("docker-registry without authentication", () => {
  let registry: RunningDockerRegistry;
  beforeAll(async () => {
    registry = await startDockerRegistry();
  });
  afterAll(async () => {
    await registry?.stop();
  });

  it("copies one image in and out with identical digests; skopeo reads the same bytes", async () => {
    const pushed = await push(single, registry, "app/one:v1");
    expect(pushed.digest).toBe(single.root.digest);
    expect(pushed.blobsSent).toBe(5);

    if (hasSkopeo) {
      expect((await skopeoRaw(registry, "app/one:v1")).equals(single.root.bytes)).toBe(true);
      await skopeoCopyAll(registry, "app/one:v1");
    }

    const { path, result } = await pull(registry, "app/one:v1");
    expect(result.digest).toBe(single.root.digest);
    expect(await blobFiles(path)).toEqual(allDigests(single));
    const layer = single.manifests[0]!.layers[3]!;
    const hex = layer.digest.slice("sha256:".length);
    expect(
      (await readFile(join(path, "blobs", "sha256", hex))).equals(
        await readFile(join(single.path, "blobs", "sha256", hex)),
      ),
    ).toBe(true);
  });

  it("copies a two-platform index: children by digest, the index under its tag", async () => {
    const pushed = await push(multi, registry, "app/multi:v1");
    expect(pushed.digest).toBe(multi.root.digest);
    expect(pushed.images).toBe(2);
    if (hasSkopeo) {
      expect((await skopeoRaw(registry, "app/multi:v1")).equals(multi.root.bytes)).toBe(true);
      for (const child of multi.manifests) {
        expect((await skopeoRaw(registry, `app/multi@${child.digest}`)).equals(child.bytes)).toBe(true);
      }
      await skopeoCopyAll(registry, "app/multi:v1");
    }
    const { path, result } = await pull(registry, "app/multi:v1");
    expect(result.digest).toBe(multi.root.digest);
    expect(await blobFiles(path)).toEqual(allDigests(multi));
  });

  it("skips every blob the second time (HEAD finds them)", async () => {
    await push(single, registry, "app/again:v1");
    const again = await push(single, registry, "app/again:v2");
    expect(again.blobsSent).toBe(0);
    expect(again.blobsSkipped).toBe(5);
    expect(again.digest).toBe(single.root.digest);
  });

  it("mounts blobs from another repository instead of uploading them", async () => {
    await push(single, registry, "app/origin:v1");
    const events: TransferEvent[] = [];
    const mounted = await push(
      single,
      registry,
      "app/mounted:v1",
      { mountFrom: "app/origin" },
      { onEvent: (e) => events.push(e) },
    );
    expect(mounted.blobsSent).toBe(5);
    // Progress counts bytes that went to the registry: none did.
    const uploaded = events.filter((e) => e.type === "blob-progress").reduce((n, e) => n + e.bytes, 0);
    expect(uploaded).toBe(0);
    if (hasSkopeo) await skopeoCopyAll(registry, "app/mounted:v1");
  });

  it("uploads blobs whose digest is computed on the way (compressed by the engine)", async () => {
    const plain = await buildImage({
      format: "oci-layout",
      dir: scratch.fresh("plain"),
      layers: [
        { size: 40 * KiB, compression: "none" },
        { size: 5 * MiB, compression: "none" },
      ],
    });
    const pushed = await push(plain, registry, "app/compressed:v1", {}, { compression: "gzip" });
    expect(pushed.digest).not.toBe(plain.root.digest);
    if (hasSkopeo) {
      const raw = JSON.parse((await skopeoRaw(registry, "app/compressed:v1")).toString()) as {
        layers: { mediaType: string }[];
      };
      expect(raw.layers.map((l) => l.mediaType)).toEqual([
        "application/vnd.oci.image.layer.v1.tar+gzip",
        "application/vnd.oci.image.layer.v1.tar+gzip",
      ]);
      await skopeoCopyAll(registry, "app/compressed:v1");
    }
  });

  it("reports a missing image as NOT_FOUND", async () => {
    await expectEcrxError(pull(registry, "app/none:v1"), "NOT_FOUND", /MANIFEST_UNKNOWN|NAME_UNKNOWN/);
  });
});

describe.runIf(hasRegistry && hasHtpasswd)("docker-registry with htpasswd", () => {
  let registry: RunningDockerRegistry;
  const creds = { username: "alice", password: "s3cret-pass" };
  beforeAll(async () => {
    registry = await startDockerRegistry({ users: { alice: creds.password } });
  });
  afterAll(async () => {
    await registry?.stop();
  });

  it("refuses wrong credentials with AUTH before anything is uploaded", async () => {
    const err = await push(single, registry, "secure/app:v1", {
      credentials: { username: "alice", password: "wrong-password" },
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(EcrxError);
    expect((err as EcrxError).code).toBe("AUTH");
    expect((err as EcrxError).message).not.toContain("wrong-password");
    expect((err as EcrxError).hint).toMatch(/credentials/);
    // Nothing reached the storage: the registry has no blob at all.
    await expect(readdir(join(registry.storage, "docker", "registry", "v2", "blobs"))).rejects.toThrow();
  });

  it("refuses anonymous access with AUTH", async () => {
    await expectEcrxError(
      push(single, registry, "secure/app:v1", { dockerConfigPath: scratch.fresh("no-config.json") }),
      "AUTH",
      /HTTP 401/,
    );
  });

  it("copies in and out with credentials given as options", async () => {
    const pushed = await push(single, registry, "secure/app:v1", { credentials: creds });
    expect(pushed.digest).toBe(single.root.digest);
    const { result } = await pull(registry, "secure/app:v1", { credentials: creds });
    expect(result.digest).toBe(single.root.digest);
    if (hasSkopeo) {
      const login = `${creds.username}:${creds.password}`;
      expect((await skopeoRaw(registry, "secure/app:v1", login)).equals(single.root.bytes)).toBe(true);
      await skopeoCopyAll(registry, "secure/app:v1", login);
    }
  });

  it("reads credentials from a docker config file", async () => {
    const dir = scratch.fresh("docker-config");
    await mkdir(dir, { recursive: true });
    const path = join(dir, "config.json");
    const auth = Buffer.from(`${creds.username}:${creds.password}`).toString("base64");
    await writeFile(path, JSON.stringify({ auths: { [`http://${registry.host}`]: { auth } } }));
    const pushed = await push(multi, registry, "secure/multi:v1", { dockerConfigPath: path });
    expect(pushed.digest).toBe(multi.root.digest);
  });
});

describe.runIf(hasRegistry)("docker-registry with token authentication", () => {
  let tokens: TokenService;
  let registry: RunningDockerRegistry;
  const creds = { username: "carol", password: "token-pass" };
  beforeAll(async () => {
    tokens = await startTokenService({ users: { carol: creds.password } });
    registry = await startDockerRegistry({ token: tokens.config });
  });
  afterAll(async () => {
    await registry?.stop();
    await tokens?.stop();
  });

  it("pushes with a token for pull,push got with credentials, and pulls with an anonymous token", async () => {
    const pushed = await push(single, registry, "tok/app:v1", { credentials: creds });
    expect(pushed.digest).toBe(single.root.digest);
    expect(tokens.requests).toContainEqual({ user: "carol", scopes: ["repository:tok/app:pull,push"] });

    const { result } = await pull(registry, "tok/app:v1", { dockerConfigPath: scratch.fresh("none.json") });
    expect(result.digest).toBe(single.root.digest);
    expect(tokens.requests.at(-1)).toEqual({ user: undefined, scopes: ["repository:tok/app:pull"] });
    if (hasSkopeo) await skopeoCopyAll(registry, "tok/app:v1");
  });

  it("asks for pull on the mount source too, and mounts", async () => {
    await push(single, registry, "tok/base:v1", { credentials: creds });
    const events: TransferEvent[] = [];
    await push(
      single,
      registry,
      "tok/derived:v1",
      { credentials: creds, mountFrom: "tok/base" },
      {
        onEvent: (e) => events.push(e),
      },
    );
    expect(tokens.requests.at(-1)?.scopes).toEqual([
      "repository:tok/derived:pull,push",
      "repository:tok/base:pull",
    ]);
    expect(events.filter((e) => e.type === "blob-progress")).toEqual([]);
  });

  it("refuses an anonymous push (a pull-only token) with AUTH", async () => {
    await expectEcrxError(
      push(single, registry, "tok/anon:v1", { dockerConfigPath: scratch.fresh("none.json") }),
      "AUTH",
      /HTTP 401 UNAUTHORIZED/,
    );
  });

  it("refuses wrong credentials at the token service with AUTH", async () => {
    await expectEcrxError(
      push(single, registry, "tok/app:v2", { credentials: { username: "carol", password: "nope" } }),
      "AUTH",
      /token service of 127.0.0.1:\d+ \(127.0.0.1:\d+\) refused the credentials/,
    );
  });
});

describe("the local ECR server's registry API, with ECR's Basic token", () => {
  let server: RunningServer;
  let mounting: RunningServer;
  beforeAll(async () => {
    server = await serve({ port: 0 });
    mounting = await serve({ port: 0, registryMount: true });
    for (const target of [server, mounting]) {
      const ecr = ecrClient(target);
      for (const repositoryName of ["app", "copy", "mounted"]) {
        await ecr.send(new CreateRepositoryCommand({ repositoryName }));
      }
      ecr.destroy();
    }
  });
  afterAll(async () => {
    await server?.close();
    await mounting?.close();
  });

  const options = (target: RunningServer): RegistryOptions => ({
    aws: {
      region: target.region,
      credentials: {
        accessKeyId: target.env.AWS_ACCESS_KEY_ID!,
        secretAccessKey: target.env.AWS_SECRET_ACCESS_KEY!,
      },
    },
  });
  const ecrRef = (target: RunningServer, name: string) =>
    parseRemoteReference(`${target.registryHost}/${name}`) as EcrReference;

  async function copy(
    from: Parameters<typeof openRegistrySource>[0] | BuiltImage,
    to: EcrReference,
    target: RunningServer,
    extra: RegistryDestinationOpenOptions = {},
    transfer: TransferOptions = {},
  ) {
    const source =
      "kind" in from
        ? await openRegistrySource(from, options(target))
        : await openOciLayoutSource(from.path, from.tag);
    const destination = await createRegistryDestination(to, { ...options(target), ...extra });
    try {
      return await transferImage(source, destination, { tags: to.tags, ...transfer });
    } finally {
      await source.close();
      await destination.close();
    }
  }

  it("copies an index in (one streamed PATCH answered 201 for the big layer) and back out", async () => {
    const single1 = await copy(single, ecrRef(server, "app:one"), server);
    expect(single1.digest).toBe(single.root.digest);
    const pushed = await copy(multi, ecrRef(server, "app:multi"), server);
    expect(pushed.digest).toBe(multi.root.digest);

    // Out again through blob GETs answered 307 to download URLs.
    const path = scratch.fresh("from-ecr");
    const source = await openRegistrySource(ecrRef(server, "app:one"), options(server));
    const destination = await createOciLayoutDestination(path, ["x"]);
    try {
      expect((await transferImage(source, destination)).digest).toBe(single.root.digest);
    } finally {
      await source.close();
      await destination.close();
    }
    expect(await blobFiles(path)).toEqual(allDigests(single));

    if (hasSkopeo) {
      const creds = `AWS:${server.registryPassword()}`;
      const name = `127.0.0.1:${server.port}/app:multi`;
      const raw = await tool("skopeo", [
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--creds",
        creds,
        `docker://${name}`,
      ]);
      expect(Buffer.from(raw).equals(multi.root.bytes)).toBe(true);
      await tool("skopeo", [
        "copy",
        "--all",
        "--src-tls-verify=false",
        "--src-creds",
        creds,
        `docker://${name}`,
        `oci:${scratch.fresh("skopeo-ecr")}:x`,
      ]);
    }
  });

  it("copies between repositories, registry to registry; a second copy skips every blob", async () => {
    await copy(single, ecrRef(server, "app:two"), server);
    const first = await copy(ecrRef(server, "app:two"), ecrRef(server, "copy:two"), server);
    expect(first.digest).toBe(single.root.digest);
    const second = await copy(ecrRef(server, "app:two"), ecrRef(server, "copy:two-again"), server);
    expect(second.blobsSent).toBe(0);
    expect(second.blobsSkipped).toBe(5);
  });

  it("falls back to an upload when ECR answers a mount with 202, and mounts where enabled", async () => {
    await copy(single, ecrRef(server, "app:three"), server);
    const progress = (events: TransferEvent[]) =>
      events.filter((e) => e.type === "blob-progress").reduce((n, e) => n + e.bytes, 0);
    const uploadedEvents: TransferEvent[] = [];
    await copy(
      single,
      ecrRef(server, "mounted:three"),
      server,
      { mountFrom: "app" },
      {
        onEvent: (e) => uploadedEvents.push(e),
      },
    );
    expect(progress(uploadedEvents)).toBeGreaterThan(6 * MiB);

    await copy(single, ecrRef(mounting, "app:three"), mounting);
    const mountedEvents: TransferEvent[] = [];
    const mounted = await copy(
      single,
      ecrRef(mounting, "mounted:three"),
      mounting,
      { mountFrom: "app" },
      {
        onEvent: (e) => mountedEvents.push(e),
      },
    );
    expect(mounted.digest).toBe(single.root.digest);
    expect(progress(mountedEvents)).toBe(0);
  });

  it("refuses a repository that does not exist with NOT_FOUND", async () => {
    await expectEcrxError(copy(single, ecrRef(server, "nosuch:v1"), server), "NOT_FOUND", /NAME_UNKNOWN/);
  });
});

describe("registries that misbehave", () => {
  let server: Server;
  let host = "";
  let mode: "garbage" | "loop" | "garbage-manifest" = "garbage";
  beforeAll(async () => {
    server = createServer((req, res) => {
      if (mode === "loop") {
        res.writeHead(307, { location: req.url ?? "/" }).end();
      } else if (mode === "garbage-manifest" && req.url === "/v2/") {
        res.writeHead(200).end();
      } else {
        res
          .writeHead(200, { "content-type": "text/html" })
          .end("<html><body>hello \u0000\u0001 world</body></html>");
      }
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  const open = () => openRegistrySource(parseRemoteReference(`${host}/some/app:v1`));

  it("fails cleanly on a registry that answers garbage", async () => {
    mode = "garbage-manifest";
    const source = await open();
    try {
      await expectEcrxError(source.manifest(), "INVALID_INPUT", /manifest some\/app:v1 .*not.*JSON/i);
    } finally {
      await source.close();
    }
  });

  it("fails cleanly on a redirect loop", async () => {
    mode = "loop";
    await expectEcrxError(
      (async () => {
        const source = await open();
        try {
          return await source.blob({ mediaType: "x", digest: `sha256:${"a".repeat(64)}`, size: 10 });
        } finally {
          await source.close();
        }
      })(),
      "NETWORK",
      /redirect/,
    );
  });
});
