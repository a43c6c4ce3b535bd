/**
 * Faults the client must survive, against `serve({faults})` with fixed seeds: every scenario runs
 * a real push and/or pull to the end, once per seed, and then reads the result back with a client
 * that is not ours (the AWS CLI for the registry, a hashing walk of the layout for files).
 *
 * Already covered elsewhere, so not repeated here: one push under `UploadLayerPart:lost=0.3` and
 * one under `*:throttle=0.3` (push.test.ts), ranged downloads under expiry and drops and a stored
 * blob corrupted (pull.test.ts). This suite adds seeds, pulls, the wire-level proof of resumption,
 * the 200-layer push against AWS's default rates, 500s/resets/lost answers on every push
 * operation and on downloads, and a whole-blob download resumed across a URL refresh.
 *
 * ECRX_SOAK=1 runs each scenario over more seeds.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { serve, type RunningServer, type ServeOptions } from "../../src/emulator/server.js";
import { pull } from "../../src/pull.js";
import { push, type PushResult } from "../../src/push.js";
import type { TransferEvent } from "../../src/transfer/events.js";
import {
  ALL_MANIFEST_TYPES,
  awsEcr,
  cleanupAwsCli,
  readImageWithAwsCli,
  requireAwsCli,
} from "../helpers/awscli.js";
import { ensureBuilt, runCli } from "../helpers/cli.js";
import { buildImage, KiB, layersOf, MiB, type BuiltImage } from "../helpers/images.js";
import {
  awsFor,
  partOf,
  recordTraffic,
  SEEDS,
  sha256,
  verifyLayout,
  visible,
  type Exchange,
} from "./support.js";

const hasAws = requireAwsCli();
const soak = process.env.ECRX_SOAK === "1";
const seeds = soak ? [...SEEDS, 44, 55, 66, 77, 88, 99, 111] : SEEDS;

let work: string;
let counter = 0;
/** Scenario x run tallies, printed at the end (the figures of the report). */
const tally = new Map<string, number>();

async function dir(name: string): Promise<string> {
  const path = join(work, `${name}-${++counter}`);
  await mkdir(path, { recursive: true });
  return path;
}

/** Runs `work` against a server with `options` on a data folder of its own, then closes it. */
async function withServer<T>(
  options: ServeOptions,
  dataDir: string,
  work: (server: RunningServer) => Promise<T>,
): Promise<T> {
  const server = await serve({ port: 0, dataDir, ...options });
  try {
    return await work(server);
  } finally {
    await server.close();
  }
}

/** Reads the repository back through the AWS CLI, from a server without faults over the same data. */
async function readBackCalm(dataDir: string, repository: string, tag: string, digest: string) {
  return withServer({ rates: "off" }, dataDir, (calm) =>
    readImageWithAwsCli(calm, repository, { tag }, { expectDigest: digest }),
  );
}

function count(scenario: string): void {
  tally.set(scenario, (tally.get(scenario) ?? 0) + 1);
}

let mixed: BuiltImage;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "ecrx-reliability-"));
  // Two layers of two 5 MiB parts and more, a few small ones: every push operation is called
  // several times, and the big layers go up in several parts.
  mixed = await buildImage({
    format: "oci-layout",
    dir: await dir("mixed"),
    seed: "reliability-mixed",
    layers: [
      { size: 11 * MiB, content: "random", compression: "none" },
      { size: 7 * MiB, content: "random", compression: "none" },
      ...layersOf(4, { size: 40 * KiB, compression: "none", seed: "small" }),
    ],
  });
}, 120_000);

afterAll(async () => {
  await cleanupAwsCli();
  if (work) await rm(work, { recursive: true, force: true });
  const figures = [...tally.entries()].map(([name, runs]) => `  ${name}: ${runs} run(s), image intact`);
  if (figures.length > 0) console.log(`reliability scenarios:\n${figures.join("\n")}`);
});

/** Pushes `mixed` (parts of 5 MiB, layers as they are) and pulls it back into a layout. */
async function pushAndPull(
  server: RunningServer,
  repository: string,
  retry: Parameters<typeof awsFor>[1] = {},
): Promise<{ pushed: PushResult; layout: string; events: TransferEvent[] }> {
  const events: TransferEvent[] = [];
  const pushed = await push(mixed.reference, `${server.registryHost}/${repository}:v1`, {
    aws: awsFor(server, retry),
    blobInfoCache: false,
    createRepository: true,
    compression: "keep",
    partSize: 5 * MiB,
    concurrency: 3,
    onEvent: (e) => events.push(e),
  });
  expect(pushed.digest).toBe(mixed.root.digest);
  const layout = join(await dir("pulled"), "layout");
  const pulled = await pull(`${server.registryHost}/${repository}@${pushed.digest}`, `oci:${layout}:v1`, {
    aws: awsFor(server, retry),
    // Ranges of 1 MiB for the big layers: many download requests to meet the faults.
    download: { rangeThreshold: 2 * MiB, rangeSize: MiB, parallel: 3 },
  });
  expect(pulled.digest).toBe(pushed.digest);
  return { pushed, layout, events };
}

describe.skipIf(!hasAws)("throttling", () => {
  it.each(seeds)(
    "*:throttle=0.3 on every operation, push and pull (seed %i)",
    { timeout: 120_000 },
    async (seed) => {
      const dataDir = await dir("throttle-data");
      const throttles: string[] = [];
      const { layout, pushed } = await withServer(
        { faults: "*:throttle=0.3", faultSeed: seed, rates: "off" },
        dataDir,
        (server) =>
          pushAndPull(server, "throttle/app", {
            onRetry: (info) => {
              if (info.errorType === "THROTTLING") throttles.push(info.errorName);
            },
          }),
      );
      expect(throttles.length, "the SDK backed off and tried again").toBeGreaterThan(0);
      const digests = await verifyLayout(layout, pushed.digest);
      const read = await readBackCalm(dataDir, "throttle/app", "v1", pushed.digest);
      expect(new Set(read.blobs.keys())).toEqual(new Set([...digests].filter((d) => d !== pushed.digest)));
      count("throttle=0.3 on every operation (push + pull)");
    },
  );

  it(
    "AWS's default rates on a 200-layer image: InitiateLayerUpload at 100/s, PutImage at 10/s",
    { timeout: 180_000 },
    async () => {
      const image = await buildImage({
        format: "oci-layout",
        dir: await dir("many"),
        seed: "reliability-200",
        layers: layersOf(200, { size: 2 * KiB, compression: "gzip", seed: "many" }),
      });
      const dataDir = await dir("rates-data");
      const throttled = new Map<string, number>();
      // 25 tags: one PutImage each, more than PutImage's bucket holds.
      const tags = Array.from({ length: 24 }, (_, i) => `t${i}`);
      const { result, log } = await withServer({ rates: "aws" }, dataDir, (server) =>
        recordTraffic(() =>
          push(image.reference, `${server.registryHost}/rates/app:v1`, {
            // The SDK's own defaults: full jitter from 500 ms for throttling.
            aws: { ...awsFor(server), retry: {} },
            blobInfoCache: false,
            createRepository: true,
            compression: "keep",
            concurrency: 32,
            tags,
          }),
        ),
      );
      for (const e of log) {
        if (e.answer?.__type === "ThrottlingException" && e.operation !== undefined) {
          throttled.set(e.operation, (throttled.get(e.operation) ?? 0) + 1);
        }
      }
      expect(result.digest).toBe(image.root.digest);
      expect(result.blobsSent).toBe(201);
      // The rates were met (the server refused), and the push went on regardless.
      expect(throttled.get("PutImage") ?? 0, JSON.stringify([...throttled])).toBeGreaterThan(0);
      // Read back: the AWS CLI for the manifest of the last tag and the availability and size of
      // all 201 blobs (one CLI call per blob would take minutes), and a pull hashed blob by blob.
      await withServer({ rates: "off" }, dataDir, async (calm) => {
        const got = (await awsEcr(calm, [
          "batch-get-image",
          "--repository-name",
          "rates/app",
          "--image-ids",
          "imageTag=t23",
          "--accepted-media-types",
          ...ALL_MANIFEST_TYPES,
        ])) as { images: { imageManifest: string }[] };
        expect(sha256(Buffer.from(got.images[0]!.imageManifest, "utf8"))).toBe(image.root.digest);
        const blobs = [image.manifests[0]!.config, ...image.manifests[0]!.layers];
        for (let i = 0; i < blobs.length; i += 100) {
          const chunk = blobs.slice(i, i + 100);
          const out = (await awsEcr(calm, [
            "batch-check-layer-availability",
            "--repository-name",
            "rates/app",
            "--layer-digests",
            ...chunk.map((b) => b.digest),
          ])) as { layers: { layerDigest: string; layerAvailability: string; layerSize: number }[] };
          expect(out.layers.map((l) => [l.layerDigest, l.layerAvailability, l.layerSize])).toEqual(
            chunk.map((b) => [b.digest, "AVAILABLE", b.size]),
          );
        }
        const layout = join(await dir("rates-out"), "layout");
        await pull(`${calm.registryHost}/rates/app:t23`, `oci:${layout}`, {
          aws: awsFor(calm),
          concurrency: 16,
        });
        expect((await verifyLayout(layout, image.root.digest)).size).toBe(202);
      });
      count("rates aws, 200 layers, 25 tags");
      console.log(`rates aws, 200 layers: throttled ${JSON.stringify(Object.fromEntries(throttled))}`);
    },
  );
});

describe.skipIf(!hasAws)("500s, dropped connections and lost answers", () => {
  const spec = [
    "UploadLayerPart:error=0.15",
    "UploadLayerPart:reset=0.1",
    "CompleteLayerUpload:error=0.2",
    "CompleteLayerUpload:reset=0.15",
    "CompleteLayerUpload:lost=0.1",
    "PutImage:error=0.3",
    "PutImage:reset=0.2",
    "PutImage:lost=0.3",
    "download:error=0.2",
    "download:reset=0.15",
    "download:lost=0.1",
  ].join(",");

  it.each(seeds)(`${spec} (seed %i)`, { timeout: 120_000 }, async (seed) => {
    const dataDir = await dir("errors-data");
    const { result } = await withServer({ faults: spec, faultSeed: seed, rates: "off" }, dataDir, (server) =>
      recordTraffic(async (log) => {
        const out = await pushAndPull(server, "errors/app");
        const faulted = (op: string) =>
          log.filter((e) => (e.operation ?? "download") === op && (e.dropped || (e.status ?? 0) >= 500));
        // Every fault kind met its target in this run.
        expect(faulted("UploadLayerPart").length + faulted("CompleteLayerUpload").length).toBeGreaterThan(0);
        expect(faulted("download").length).toBeGreaterThan(0);
        return out;
      }),
    );
    await verifyLayout(result.layout, result.pushed.digest);
    await readBackCalm(dataDir, "errors/app", "v1", result.pushed.digest);
    count("500 / reset / lost on UploadLayerPart, CompleteLayerUpload, PutImage, downloads (push + pull)");
  });
});

/**
 * The wire-level proof that a lost UploadLayerPart answer is resumed at lastValidByteReceived + 1:
 * whenever the server answered InvalidLayerPartException, the next part of that upload starts at
 * the byte after the one it reported; the parts it applied tile each layer exactly once; and no
 * layer was started again in a new upload.
 */
function checkResumes(log: Exchange[]): { resumes: number; lost: number } {
  const byUpload = new Map<string, Exchange[]>();
  for (const e of log) {
    const part = partOf(e);
    if (part === undefined) continue;
    byUpload.set(part.uploadId, [...(byUpload.get(part.uploadId) ?? []), e]);
  }
  let resumes = 0;
  let lost = 0;
  for (const [uploadId, exchanges] of byUpload) {
    let applied = -1; // the last byte the server holds
    for (const [i, e] of exchanges.entries()) {
      const part = partOf(e)!;
      if (e.answer?.__type === "InvalidLayerPartException") {
        const lastValid = e.answer.lastValidByteReceived as number;
        expect(lastValid, `upload ${uploadId}`).toBe(applied);
        // The next part of this upload (if the layer has bytes left) starts after lastValid.
        const next = exchanges[i + 1];
        if (next !== undefined) {
          expect(partOf(next)!.first, `upload ${uploadId} resumes at lastValidByteReceived + 1`).toBe(
            lastValid + 1,
          );
        }
        resumes += 1;
        continue;
      }
      // A part applied (answered or lost after being applied) starts right after what the server has.
      if (e.status === 200 || (e.dropped && part.first === applied + 1)) {
        expect(part.first, `upload ${uploadId}: no byte sent twice, none skipped`).toBe(applied + 1);
        if (e.dropped) lost += 1;
        applied = part.last;
      }
    }
  }
  return { resumes, lost };
}

describe.skipIf(!hasAws)("lost UploadLayerPart answers", () => {
  it.each(seeds)(
    "UploadLayerPart:lost=0.35: resumed at lastValidByteReceived + 1 (seed %i)",
    { timeout: 120_000 },
    async (seed) => {
      const dataDir = await dir("lost-data");
      const { result, log } = await withServer(
        { faults: "UploadLayerPart:lost=0.35", faultSeed: seed, rates: "off" },
        dataDir,
        (server) =>
          recordTraffic(() =>
            push(mixed.reference, `${server.registryHost}/lost/app:v1`, {
              aws: awsFor(server),
              blobInfoCache: false,
              createRepository: true,
              compression: "keep",
              partSize: 5 * MiB,
              concurrency: 2,
            }),
          ),
      );
      expect(result.digest).toBe(mixed.root.digest);
      const { resumes, lost } = checkResumes(log);
      expect(lost, "answers were lost").toBeGreaterThan(0);
      expect(resumes, "InvalidLayerPartException was met and resumed from").toBeGreaterThan(0);
      // One upload per layer sent: nothing was started over from scratch.
      const initiated = log.filter((e) => e.operation === "InitiateLayerUpload" && e.status === 200).length;
      expect(initiated).toBe(result.blobsSent);
      await readBackCalm(dataDir, "lost/app", "v1", result.digest);
      count("UploadLayerPart lost=0.35, resumed at lastValidByteReceived+1, never from 0");
    },
  );
});

/** Seeds whose draws cut the first GET of the big layer short (`download:lost=0.5`, one blob at a time). */
const EXPIRY_SEEDS = soak ? [1, 2, 3, 4, 6, 8, 9] : [1, 2, 3];

describe.skipIf(!hasAws)("download URLs", () => {
  it.each(EXPIRY_SEEDS)(
    "a whole-blob GET cut short and its URL expired meanwhile: a fresh URL, resumed with Range (seed %i)",
    { timeout: 120_000 },
    async (seed) => {
      const dataDir = await dir("expiry-data");
      let offsetMs = 0;
      const layer = mixed.manifests[0]!.layers[0]!;
      const hex = layer.digest.slice("sha256:".length);
      // URLs live 5 s; the first GET of the big layer is cut short as the clock jumps a minute, so
      // every URL handed out before has expired; one in three bodies is cut short besides.
      const { result, log } = await withServer(
        {
          faults: "download:lost=0.5",
          faultSeed: seed,
          downloadUrlTtlSeconds: 5,
          now: () => new Date(Date.now() + offsetMs),
        },
        dataDir,
        async (server) => {
          await push(mixed.reference, `${server.registryHost}/expiry/app:v1`, {
            aws: awsFor(server),
            blobInfoCache: false,
            createRepository: true,
            compression: "keep",
          });
          const layout = join(await dir("expiry-out"), "layout");
          let cut = false;
          return recordTraffic(
            async () => {
              await pull(`${server.registryHost}/expiry/app:v1`, `oci:${layout}:v1`, {
                aws: awsFor(server),
                // Below the range threshold: one streamed GET per blob, resumed with Range.
                download: { rangeThreshold: 64 * MiB },
                concurrency: 1,
              });
              return layout;
            },
            (req, res) => {
              // Once the first GET of the big layer is over (cut short by the fault, for these
              // seeds), the clock jumps a minute: the URL it used has expired when it resumes.
              if (!cut && req.method === "GET" && (req.url ?? "").includes(hex)) {
                cut = true;
                res.on("close", () => (offsetMs += 60_000));
              }
            },
          );
        },
      );
      const digests = await verifyLayout(result, mixed.root.digest);
      expect(digests.has(layer.digest)).toBe(true);
      const gets = log.filter((e) => e.method === "GET" && e.url.includes(hex));
      const signatures = new Set(
        gets.map((e) => new URL(e.url, "http://x").searchParams.get("X-Amz-Signature")),
      );
      expect(signatures.size, "a fresh URL was asked for").toBeGreaterThan(1);
      expect(
        gets.some((e) => e.status === 403),
        "an expired URL was refused",
      ).toBe(true);
      const resumedAt = gets
        .map((e) => /^bytes=(\d+)-/.exec(String(e.headers.range ?? ""))?.[1])
        .filter(Boolean);
      // The cut body resumed at its first missing byte, not at 0.
      expect(resumedAt.some((at) => Number(at) > 0)).toBe(true);
      count("download URL expired mid-blob + bodies cut short (whole GET, resumed with Range)");
    },
  );

  it(
    "a body cut short every time: the pull fails (exit 9) and writes nothing",
    { timeout: 120_000 },
    async () => {
      ensureBuilt();
      const dataDir = await dir("truncated-data");
      await withServer({ rates: "off" }, dataDir, (server) =>
        push(mixed.reference, `${server.registryHost}/truncated/app:v1`, {
          aws: awsFor(server),
          blobInfoCache: false,
          createRepository: true,
          compression: "keep",
        }),
      );
      await withServer({ faults: "download:lost=1", faultSeed: 1 }, dataDir, async (server) => {
        const out = await dir("truncated-out");
        const run = await runCli(
          [
            "pull",
            `${server.registryHost}/truncated/app:v1`,
            `docker-archive:${join(out, "image.tar")}`,
            "-q",
          ],
          server.env,
        );
        expect(run.code, run.stderr).toBe(9);
        expect(run.stderr).toMatch(/^ecrx: .*download (ended at byte \d+ of \d+|failed: UND_ERR_SOCKET)/m);
        expect(run.stderr).not.toMatch(/^\s+at /m);
        expect(await visible(out)).toEqual([]);
      });
      count("download bodies always truncated: refused, exit 9, nothing written");
    },
  );

  it("a blob served with wrong bytes: exit 8, one line, nothing written", { timeout: 60_000 }, async () => {
    ensureBuilt();
    const dataDir = await dir("wrong-data");
    const small = await buildImage({
      format: "oci-layout",
      dir: await dir("wrong"),
      seed: "wrong-bytes",
      layers: [{ size: 300 * KiB, content: "random", compression: "none" }],
    });
    await withServer({ rates: "off" }, dataDir, async (server) => {
      await push(small.reference, `${server.registryHost}/wrong/app:v1`, {
        aws: awsFor(server),
        blobInfoCache: false,
        createRepository: true,
        compression: "keep",
      });
      const layer = small.manifests[0]!.layers[0]!;
      const stored = join(dataDir, "blobs", "sha256", layer.digest.slice(7));
      const bytes = await readFile(stored);
      bytes[bytes.length - 10] = bytes[bytes.length - 10]! ^ 0x01;
      await writeFile(stored, bytes);
      expect(sha256(bytes)).not.toBe(layer.digest);
      for (const [kind, name] of [
        ["docker-archive", "image.tar"],
        ["oci-archive", "image.tar"],
        ["oci", "layout"],
      ]) {
        const out = await dir(`wrong-${kind}`);
        const run = await runCli(
          ["pull", `${server.registryHost}/wrong/app:v1`, `${kind}:${join(out, name!)}`, "-q"],
          server.env,
        );
        expect(run.code, `${kind}: ${run.stderr}`).toBe(8);
        const lines = run.stderr.trimEnd().split("\n");
        expect(lines[0]).toMatch(new RegExp(`^ecrx: .*${layer.digest}.*digest mismatch`));
        expect(run.stderr).not.toMatch(/^\s+at /m);
        expect(await visible(out), kind).toEqual([]);
      }
    });
    count("blob with wrong bytes: refused (exit 8), nothing written, 3 destination kinds");
  });
});
