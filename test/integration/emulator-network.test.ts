/**
 * `serve({ network })` against real clients: the bandwidth cap per connection in both directions,
 * the round trips of new and kept-alive connections, the API latency (not on download URLs), a
 * push and pull through a shaped server, and a close that cuts a transfer and leaves nothing behind.
 *
 * Timing assertions: lower bounds follow from the model (bytes / rate, round trips), so they hold
 * on any machine; upper bounds are only there to show the model is not wildly off, and are loose
 * (three times the expected figure), because the machine may be busy.
 */
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import {
  CreateRepositoryCommand,
  DescribeRepositoriesCommand,
  GetDownloadUrlForLayerCommand,
  InitiateLayerUploadCommand,
  UploadLayerPartCommand,
} from "@aws-sdk/client-ecr";
import { DescribeRegistriesCommand } from "@aws-sdk/client-ecr-public";
import { Client, request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { serve, type RunningServer } from "../../src/emulator/server.js";
import { pull } from "../../src/pull.js";
import { push } from "../../src/push.js";
import { signedJsonRequest } from "../helpers/aws-sign.js";
import { REPO_ROOT } from "../helpers/cli.js";
import { ecrClient, ecrPublicClient, pushTestImage, sha256Digest } from "../helpers/emulator-clients.js";
import { buildImage, MiB } from "../helpers/images.js";

/** Bytes per second of the capped server: slow enough that a few MiB take a measurable while. */
const RATE = 4_000_000;
/**
 * What the token bucket lets through at once after an idle spell (two slices of about 5 ms, at
 * least 16 KiB each): a transfer of N bytes takes at least (N - BURST) / RATE.
 */
const BURST = 2 * 20_000;

let work: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "ecrx-network-test-"));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

function elapsedSince(start: number): number {
  return performance.now() - start;
}

async function downloadUrl(
  server: RunningServer,
  repositoryName: string,
  layerDigest: string,
): Promise<string> {
  const out = await ecrClient(server).send(
    new GetDownloadUrlForLayerCommand({ repositoryName, layerDigest }),
  );
  return out.downloadUrl!;
}

/** GETs `url` on a connection of its own; the body's digest and the time it took. */
async function timedDownload(url: string): Promise<{ ms: number; digest: string; size: number }> {
  const client = new Client(new URL(url).origin);
  try {
    const start = performance.now();
    const res = await client.request({ method: "GET", path: url.slice(new URL(url).origin.length) });
    expect(res.statusCode).toBe(200);
    const body = Buffer.from(await res.body.arrayBuffer());
    return { ms: elapsedSince(start), digest: sha256Digest(body), size: body.length };
  } finally {
    await client.close();
  }
}

describe("a bandwidth cap per connection", () => {
  let server: RunningServer;
  let big: { digest: string; size: number };
  let small: { digest: string; size: number };

  beforeAll(async () => {
    // Filled without a cap, then served with one over the same data.
    const dataDir = join(work, "capped");
    const filler = await serve({ port: 0, dataDir, rates: "off" });
    const client = ecrClient(filler);
    await client.send(new CreateRepositoryCommand({ repositoryName: "capped/app" }));
    const bigImage = await pushTestImage(client, "capped/app", { tag: "big", layerSize: 4 * MiB });
    const smallImage = await pushTestImage(client, "capped/app", { tag: "small", layerSize: 2 * MiB });
    big = { digest: bigImage.layerDigest, size: bigImage.layer.length };
    small = { digest: smallImage.layerDigest, size: smallImage.layer.length };
    client.destroy();
    await filler.close();
    server = await serve({ port: 0, dataDir, rates: "off", network: { connBandwidth: RATE } });
  });
  afterAll(async () => {
    await server?.close();
  });

  it("paces a download URL GET to the rate, bytes intact", async () => {
    const url = await downloadUrl(server, "capped/app", big.digest);
    const got = await timedDownload(url);
    expect(got.size).toBe(big.size);
    expect(got.digest).toBe(big.digest);
    const expectedMs = (big.size / RATE) * 1000;
    expect(got.ms).toBeGreaterThanOrEqual(((big.size - BURST) / RATE) * 1000);
    expect(got.ms).toBeLessThan(3 * expectedMs);
  });

  it("paces what the client sends too: UploadLayerPart of 5 MiB takes its wire bytes / rate", async () => {
    const client = ecrClient(server);
    try {
      const { uploadId } = await client.send(
        new InitiateLayerUploadCommand({ repositoryName: "capped/app" }),
      );
      const part = Buffer.alloc(5 * MiB, 7);
      // The part travels as base64 inside the JSON body: 4 bytes for every 3.
      const wireBytes = Math.ceil(part.length / 3) * 4;
      const start = performance.now();
      const out = await client.send(
        new UploadLayerPartCommand({
          repositoryName: "capped/app",
          uploadId,
          partFirstByte: 0,
          partLastByte: part.length - 1,
          layerPartBlob: part,
        }),
      );
      const ms = elapsedSince(start);
      expect(out.lastByteReceived).toBe(part.length - 1);
      expect(ms).toBeGreaterThanOrEqual(((wireBytes - BURST) / RATE) * 1000);
      expect(ms).toBeLessThan(3 * (wireBytes / RATE) * 1000);
    } finally {
      client.destroy();
    }
  });

  it("gives each connection its own cap: two downloads at once take about as long as one", async () => {
    const url = await downloadUrl(server, "capped/app", small.digest);
    const single = await timedDownload(url);
    const start = performance.now();
    const both = await Promise.all([timedDownload(url), timedDownload(url)]);
    const parallelMs = elapsedSince(start);
    for (const one of [single, ...both]) {
      expect(one.digest).toBe(small.digest);
      expect(one.ms).toBeGreaterThanOrEqual(((small.size - BURST) / RATE) * 1000);
    }
    // One shared cap would take twice as long.
    expect(parallelMs).toBeLessThan(1.6 * single.ms);
  });
});

/** One signed DescribeRepositories on `agent`: its time and whether the socket was reused. */
async function describeRepositories(
  server: RunningServer,
  agent: http.Agent,
): Promise<{ ms: number; status: number; reused: boolean }> {
  const signed = await signedJsonRequest({
    endpoint: server.url,
    target: "AmazonEC2ContainerRegistry_V20150921.DescribeRepositories",
    body: "{}",
    signPayloadHash: false,
  });
  const start = performance.now();
  return new Promise((resolve, reject) => {
    const req = http.request(signed.url, { method: "POST", headers: signed.headers, agent }, (res) => {
      res.resume();
      res.on("end", () =>
        resolve({ ms: elapsedSince(start), status: res.statusCode ?? 0, reused: req.reusedSocket }),
      );
    });
    req.on("error", reject);
    req.end(signed.body);
  });
}

describe("a round-trip time", () => {
  const RTT = 100;
  let server: RunningServer;

  beforeAll(async () => {
    server = await serve({ port: 0, rates: "off", network: { rttMs: RTT } });
  });
  afterAll(async () => {
    await server?.close();
  });

  it("costs an API call two round trips on a new connection, one on a kept-alive one", async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const first = await describeRepositories(server, agent);
      const second = await describeRepositories(server, agent);
      expect([first.status, second.status]).toEqual([200, 200]);
      expect([first.reused, second.reused]).toEqual([false, true]);
      // Handshake, request, answer: 2 RTT; then request and answer: 1 RTT.
      expect(first.ms).toBeGreaterThanOrEqual(2 * RTT);
      expect(first.ms).toBeLessThan(3 * 2 * RTT);
      expect(second.ms).toBeGreaterThanOrEqual(RTT);
      expect(second.ms).toBeLessThan(3 * RTT);
    } finally {
      agent.destroy();
    }
  });
});

describe("an API latency", () => {
  const LATENCY = 600;
  let server: RunningServer;
  let layerDigest: string;

  beforeAll(async () => {
    const dataDir = join(work, "latency");
    const filler = await serve({ port: 0, dataDir, rates: "off" });
    const client = ecrClient(filler);
    await client.send(new CreateRepositoryCommand({ repositoryName: "slow/app" }));
    layerDigest = (await pushTestImage(client, "slow/app", { tag: "v1", layerSize: 64 * 1024 })).layerDigest;
    client.destroy();
    await filler.close();
    server = await serve({ port: 0, dataDir, rates: "off", network: { apiLatencyMs: LATENCY } });
  });
  afterAll(async () => {
    await server?.close();
  });

  it("delays every ECR, ECR Public and registry API call", async () => {
    const ecr = ecrClient(server);
    const ecrPublic = ecrPublicClient(server);
    try {
      let start = performance.now();
      await ecr.send(new DescribeRepositoriesCommand({}));
      expect(elapsedSince(start)).toBeGreaterThanOrEqual(LATENCY);

      start = performance.now();
      await ecrPublic.send(new DescribeRegistriesCommand({}));
      expect(elapsedSince(start)).toBeGreaterThanOrEqual(LATENCY);

      start = performance.now();
      const res = await request(`${server.url}/v2/slow/app/manifests/v1`, {
        headers: {
          authorization: `Basic ${Buffer.from(`AWS:${server.registryPassword()}`).toString("base64")}`,
          accept: "application/vnd.oci.image.manifest.v1+json",
        },
      });
      await res.body.arrayBuffer();
      expect(res.statusCode).toBe(200);
      expect(elapsedSince(start)).toBeGreaterThanOrEqual(LATENCY);
    } finally {
      ecr.destroy();
      ecrPublic.destroy();
    }
  });

  it("does not delay download URLs, which S3 serves", async () => {
    const url = await downloadUrl(server, "slow/app", layerDigest);
    const got = await timedDownload(url);
    expect(got.digest).toBe(layerDigest);
    // 64 KiB from a loopback server with no latency of its own: far below the API's.
    expect(got.ms).toBeLessThan(LATENCY);
  });
});

describe("push and pull through a shaped server", () => {
  it("round-trips an image, every digest verified", async () => {
    const server = await serve({
      port: 0,
      rates: "off",
      network: { rttMs: 20, connBandwidth: 20_000_000, apiLatencyMs: 5 },
    });
    try {
      const aws = {
        region: server.region,
        credentials: {
          accessKeyId: server.env.AWS_ACCESS_KEY_ID!,
          secretAccessKey: server.env.AWS_SECRET_ACCESS_KEY!,
        },
      };
      const image = await buildImage({
        format: "oci-layout",
        dir: join(work, "image"),
        seed: "network",
        layers: [
          { size: 3 * MiB, content: "random", compression: "none" },
          { size: 256 * 1024, content: "random", compression: "gzip" },
        ],
      });
      const target = `${server.registryHost}/net/app:v1`;
      const pushed = await push(image.reference, target, {
        aws,
        blobInfoCache: false,
        createRepository: true,
        compression: "keep",
      });
      expect(pushed.digest).toBe(image.root.digest);

      const layout = join(work, "pulled");
      const pulled = await pull(target, `oci:${layout}:v1`, { aws });
      expect(pulled.digest).toBe(image.root.digest);
      for (const blob of [image.manifests[0]!.config, ...image.manifests[0]!.layers]) {
        const bytes = await readFile(join(layout, "blobs", "sha256", blob.digest.slice("sha256:".length)));
        expect(sha256Digest(bytes)).toBe(blob.digest);
      }
    } finally {
      await server.close();
    }
  });
});

describe("closing a shaped server", () => {
  it("cuts a transfer in progress promptly and leaves nothing to keep the process alive", async () => {
    // Filled here, served by a child process that downloads slowly, closes mid-transfer and must
    // then exit on its own: a timer or socket left behind would keep it running.
    const dataDir = join(work, "closing");
    const filler = await serve({ port: 0, dataDir, rates: "off" });
    const client = ecrClient(filler);
    await client.send(new CreateRepositoryCommand({ repositoryName: "closing/app" }));
    const { layerDigest } = await pushTestImage(client, "closing/app", { tag: "v1", layerSize: 4 * MiB });
    client.destroy();
    await filler.close();

    const serverModule = pathToFileURL(join(REPO_ROOT, "src", "emulator", "server.ts")).href;
    const script = join(work, "close-mid-transfer.mts");
    await writeFile(
      script,
      `
import http from "node:http";
import { serve } from ${JSON.stringify(serverModule)};

const server = await serve({
  port: 0,
  dataDir: ${JSON.stringify(dataDir)},
  rates: "off",
  network: { rttMs: 10, connBandwidth: 1_000_000 },
});
const auth = "Basic " + Buffer.from("AWS:" + server.registryPassword()).toString("base64");
function get(url, headers) {
  return new Promise((resolve, reject) => {
    http.get(url, { headers }, resolve).on("error", reject);
  });
}
// The registry API redirects a blob GET to a download URL; the blob then comes at 1 MB/s.
const redirect = await get(server.url + "/v2/closing/app/blobs/${layerDigest}", { authorization: auth });
redirect.resume();
const res = await get(redirect.headers.location, {});
let received = 0;
const ended = new Promise((resolve) => {
  res.on("data", (chunk) => (received += chunk.length));
  res.on("end", () => resolve("end"));
  res.on("error", (err) => resolve(err.code ?? err.message));
  res.on("close", () => resolve("close"));
});
await new Promise((resolve) => res.once("data", resolve));
const start = performance.now();
await server.close();
const closeMs = performance.now() - start;
console.log(JSON.stringify({ closeMs, received, outcome: await ended, status: res.statusCode }));
`,
    );
    const child = spawn(process.execPath, ["--import", "tsx", script], {
      cwd: REPO_ROOT,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = await new Promise<number | null | "hung">((resolve) => {
      const hung = setTimeout(() => {
        child.kill("SIGKILL");
        resolve("hung");
      }, 30_000);
      child.on("exit", (code) => {
        clearTimeout(hung);
        resolve(code);
      });
    });
    expect({ exited, stderr }).toEqual({ exited: 0, stderr: "" });
    const report = JSON.parse(stdout.trim()) as {
      closeMs: number;
      received: number;
      outcome: string;
      status: number;
    };
    expect(report.status).toBe(200);
    // Cut: the client got part of the 4 MiB (the whole would take 4 s), and no clean end.
    expect(report.received).toBeLessThan(4 * MiB);
    expect(report.outcome).not.toBe("end");
    // close() lets requests in flight run for its 2 s of grace, then cuts them.
    expect(report.closeMs).toBeLessThan(3 * 2_000);
  });
});
