/**
 * Interruptions: the ecrx process killed (SIGKILL) in the middle of a push and of a pull and run
 * again; Ctrl-C (SIGINT) in the middle of each; the server restarted in the middle of a push.
 * Nothing half-done is ever visible (no tag on an incomplete image, no output file of a partial
 * pull), a second run completes and reuses what the first one finished, and every result is read
 * back by an independent reader.
 *
 * (A SIGKILLed pull into a docker-archive is in pull-resume.test.ts; here it is an OCI layout.)
 */
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BatchGetImageCommand } from "@aws-sdk/client-ecr";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { serve, type RunningServer } from "../../src/emulator/server.js";
import { push } from "../../src/push.js";
import type { TransferEvent } from "../../src/transfer/events.js";
import { cleanupAwsCli, readImageWithAwsCli, requireAwsCli } from "../helpers/awscli.js";
import { ensureBuilt, runCli } from "../helpers/cli.js";
import { ecrClient } from "../helpers/emulator-clients.js";
import { buildImage, MiB, type BuiltImage } from "../helpers/images.js";
import { awsFor, freePort, SEEDS, startCli, verifyLayout, visible } from "./support.js";

const hasAws = requireAwsCli();

let work: string;
let counter = 0;
let image: BuiltImage;
/** The data folder of the servers below: the same images, served fast or slowly. */
let dataDir: string;
let fast: RunningServer;
/** UploadLayerPart and downloads slowed down, so that a process can be stopped mid-way. */
let slow: RunningServer;

async function dir(name: string): Promise<string> {
  const path = join(work, `${name}-${++counter}`);
  await mkdir(path, { recursive: true });
  return path;
}

async function tagDigest(
  server: RunningServer,
  repository: string,
  tag: string,
): Promise<string | undefined> {
  const ecr = ecrClient(server);
  try {
    const out = await ecr.send(
      new BatchGetImageCommand({ repositoryName: repository, imageIds: [{ imageTag: tag }] }),
    );
    return out.images?.[0]?.imageId?.imageDigest;
  } finally {
    ecr.destroy();
  }
}

beforeAll(async () => {
  ensureBuilt();
  work = await mkdtemp(join(tmpdir(), "ecrx-interrupt-"));
  image = await buildImage({
    format: "oci-layout",
    dir: await dir("image"),
    seed: "interrupt",
    layers: [1, 2, 3, 4, 5, 6].map((i) => ({
      size: 2 * MiB,
      content: "random" as const,
      compression: "gzip" as const,
      seed: `interrupt-${i}`,
    })),
  });
  dataDir = await dir("data");
  fast = await serve({ port: 0, dataDir, rates: "off" });
  // Pulls read this image; pushes go to other repositories.
  await push(image.reference, `${fast.registryHost}/source/app:v1`, {
    aws: awsFor(fast),
    blobInfoCache: false,
    createRepository: true,
    compression: "keep",
  });
  slow = await serve({
    port: 0,
    dataDir,
    rates: "off",
    faults: "UploadLayerPart:latency=400,download:latency=400",
  });
}, 120_000);

afterAll(async () => {
  await slow?.close();
  await fast?.close();
  await cleanupAwsCli();
  if (work) await rm(work, { recursive: true, force: true });
});

const pushArgs = (server: RunningServer, repository: string) => [
  "push",
  image.reference,
  `${server.registryHost}/${repository}:v1`,
  "--compression",
  "keep",
  "--concurrency",
  "2",
  "--json",
  "--create-repo",
];

const env = (server: RunningServer) => ({ ...server.env, ECRX_CACHE_DIR: join(work, "cache") });

describe.skipIf(!hasAws)("SIGKILL and run again", () => {
  it("push: no tag while incomplete; the second run skips the blobs the first one finished", async () => {
    const cli = startCli(pushArgs(slow, "killed/push"), env(slow));
    await cli.waitFor(/"type":"blob-done"/);
    cli.child.kill("SIGKILL");
    expect((await cli.exited).signal).toBe("SIGKILL");
    expect(await tagDigest(slow, "killed/push", "v1"), "no tag on an incomplete image").toBeUndefined();

    // Run again against the same server (its store holds the repository and the finished blobs).
    const again = await runCli(pushArgs(slow, "killed/push"), env(slow));
    expect(again.code, again.stderr).toBe(0);
    const summary = JSON.parse(again.stdout.trim().split("\n").pop()!) as {
      digest: string;
      blobsSkipped: number;
      blobsSent: number;
    };
    expect(summary.digest).toBe(image.root.digest);
    expect(summary.blobsSkipped, "blobs completed before the kill are not sent again").toBeGreaterThan(0);
    expect(summary.blobsSent + summary.blobsSkipped).toBe(7);
    await readImageWithAwsCli(slow, "killed/push", { tag: "v1" }, { expectDigest: image.root.digest });
  });

  it("pull into an OCI layout: nothing visible while incomplete; the second run reuses verified blobs", async () => {
    const out = await dir("killed-pull");
    const target = `oci:${join(out, "layout")}:v1`;
    const cli = startCli(["pull", `${slow.registryHost}/source/app:v1`, target, "--json"], env(slow));
    await cli.waitFor(/"type":"blob-done"/);
    cli.child.kill("SIGKILL");
    await cli.exited;
    expect(await visible(out), "no layout of a partial pull").toEqual([]);

    const again = await runCli(["pull", `${fast.registryHost}/source/app:v1`, target, "--json"], env(fast));
    expect(again.code, again.stderr).toBe(0);
    const events = again.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as TransferEvent);
    expect(events.filter((e) => e.type === "blob-skipped").length).toBeGreaterThan(0);
    await verifyLayout(join(out, "layout"), image.root.digest);
    expect(await visible(out)).toEqual(["layout"]);
  });
});

describe.skipIf(!hasAws)("Ctrl-C", () => {
  it("push: stops within 2 s with exit 130, says so, leaves no tag", async () => {
    const cli = startCli(pushArgs(slow, "sigint/push"), env(slow));
    await cli.waitFor(/"type":"blob-done"/);
    const sent = performance.now();
    cli.child.kill("SIGINT");
    const exit = await cli.exited;
    expect(exit.at - sent, "stopped promptly").toBeLessThan(2_000);
    expect(exit.code).toBe(130);
    const lines = cli.stderr().trimEnd().split("\n");
    expect(lines.some((l) => /SIGINT: stopping/.test(l))).toBe(true);
    expect(lines.at(-1)).toMatch(/^ecrx: interrupted/);
    expect(cli.stderr()).not.toMatch(/^\s+at /m);
    expect(await tagDigest(slow, "sigint/push", "v1")).toBeUndefined();
    // What was done: the blobs finished before the signal were reported on the way.
    expect(cli.stdout()).toMatch(/"type":"blob-done"/);
  });

  it("pull: stops within 2 s with exit 130, writes no output", async () => {
    const out = await dir("sigint-pull");
    const cli = startCli(
      ["pull", `${slow.registryHost}/source/app:v1`, `docker-archive:${join(out, "image.tar")}`, "--json"],
      env(slow),
    );
    await cli.waitFor(/"type":"blob-done"/);
    const sent = performance.now();
    cli.child.kill("SIGINT");
    const exit = await cli.exited;
    expect(exit.at - sent).toBeLessThan(2_000);
    expect(exit.code).toBe(130);
    expect(cli.stderr().trimEnd().split("\n").at(-1)).toMatch(/^ecrx: interrupted/);
    expect(await visible(out)).toEqual([]);
  });
});

describe.skipIf(!hasAws)("the server restarted in the middle of a push", () => {
  it.each(SEEDS.slice(0, 2))(
    "closed after the first blob, back 1.5 s later on the same port and data: the push completes (run %i)",
    { timeout: 120_000 },
    async (run) => {
      const port = await freePort();
      const data = await dir("restart-data");
      const options = { port, dataDir: data, rates: "off" as const, faults: "UploadLayerPart:latency=100" };
      let server = await serve(options);
      let retries = 0;
      const aws = awsFor(server, { onRetry: () => void retries++ });
      let restarted: Promise<void> | undefined;
      const events: TransferEvent[] = [];
      const result = await push(image.reference, `${server.registryHost}/restart/app:v${run}`, {
        aws,
        blobInfoCache: false,
        createRepository: true,
        compression: "keep",
        partSize: 5 * MiB,
        concurrency: 2,
        onEvent: (e) => {
          events.push(e);
          if (e.type === "blob-done" && restarted === undefined) {
            restarted = (async () => {
              await server.close();
              await new Promise((resolve) => setTimeout(resolve, 1_500));
              server = await serve(options);
            })();
          }
        },
      });
      await restarted;
      try {
        expect(result.digest).toBe(image.root.digest);
        await readImageWithAwsCli(
          server,
          "restart/app",
          { tag: `v${run}` },
          { expectDigest: image.root.digest },
        );
      } finally {
        await server.close();
      }
    },
  );
});
