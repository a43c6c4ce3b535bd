/**
 * An interrupted pull resumes: the blobs it verified stay in a hidden work folder beside the
 * destination (`.NAME.ecrx-partial`), and the next pull to the same destination takes them
 * instead of downloading them again. Interrupted two ways: an abort (what Ctrl-C does) and a
 * SIGKILL of the CLI in the middle of its downloads.
 */
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { serve, type RunningServer } from "../../src/emulator/server.js";
import { pull, type PullOptions } from "../../src/pull.js";
import { push } from "../../src/push.js";
import type { TransferEvent } from "../../src/transfer/events.js";
import { CLI_MAIN, ensureBuilt } from "../helpers/cli.js";
import { buildImage, MiB, type BuiltImage } from "../helpers/images.js";
import { requireTool, tool } from "../helpers/tools.js";

const hasSkopeo = requireTool("skopeo");

let server: RunningServer;
let slowServer: RunningServer;
let work: string;
let image: BuiltImage;

function aws(target: RunningServer): PullOptions["aws"] {
  return {
    region: target.region,
    credentials: {
      accessKeyId: target.env.AWS_ACCESS_KEY_ID!,
      secretAccessKey: target.env.AWS_SECRET_ACCESS_KEY!,
    },
  };
}

/** Blob files verified and staged in a work folder (any depth). */
async function stagedBlobs(folder: string): Promise<string[]> {
  if (!existsSync(folder)) return [];
  const entries = await readdir(folder, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile() && /^[0-9a-f]{64}$/.test(e.name)).map((e) => e.name);
}

beforeAll(async () => {
  ensureBuilt();
  work = await mkdtemp(join(tmpdir(), "ecrx-pull-resume-"));
  server = await serve({ port: 0, dataDir: join(work, "registry") });
  image = await buildImage({
    format: "oci-layout",
    dir: work,
    layers: [1, 2, 3, 4].map((i) => ({ size: 3 * MiB, content: "random" as const, seed: `resume-${i}` })),
  });
  await push(image.reference, `${server.registryHost}/resume/app:v1`, {
    aws: aws(server),
    createRepository: true,
    compression: "keep",
    blobInfoCache: false,
  });
  await server.close();
  // The same data, served slowly, so the CLI can be killed in the middle of its downloads.
  slowServer = await serve({ port: 0, dataDir: join(work, "registry"), faults: "download:latency=400" });
  server = await serve({ port: 0, dataDir: join(work, "registry") });
});

afterAll(async () => {
  await server.close();
  await slowServer.close();
  await rm(work, { recursive: true, force: true });
});

describe("an interrupted pull", () => {
  it("resumes from the blobs it verified after an abort, downloading only the rest", async () => {
    const target = join(work, "aborted", "layout");
    const controller = new AbortController();
    let done = 0;
    const first = pull(`${server.registryHost}/resume/app:v1`, `oci:${target}:v1`, {
      aws: aws(server),
      concurrency: 1,
      signal: controller.signal,
      onEvent: (event) => {
        // Stop once the config and one layer are in: the rest is still to come.
        if (event.type === "blob-done" && ++done === 2) controller.abort();
      },
    });
    await expect(first).rejects.toMatchObject({ code: "INTERRUPTED" });
    expect(existsSync(target)).toBe(false);
    const partial = join(work, "aborted", ".layout.ecrx-partial");
    expect((await stagedBlobs(partial)).length).toBeGreaterThanOrEqual(2);

    const events: TransferEvent[] = [];
    const second = await pull(`${server.registryHost}/resume/app:v1`, `oci:${target}:v1`, {
      aws: aws(server),
      onEvent: (event) => events.push(event),
    });
    expect(second.digest).toBe(image.root.digest);
    const skipped = events.filter((e) => e.type === "blob-skipped");
    expect(skipped.length).toBeGreaterThanOrEqual(2);
    expect(second.blobsSent).toBe(5 - skipped.length);
    expect(existsSync(partial)).toBe(false);
    if (hasSkopeo) await tool("skopeo", ["inspect", `oci:${target}:v1`]);
  });

  it("leaves no half-written file when aborted in the middle of a blob written by ranges", async () => {
    const target = join(work, "aborted-ranged", "layout");
    const partial = join(work, "aborted-ranged", ".layout.ecrx-partial");
    // Layers of 3 MiB in ranges of 256 KiB, two at a time: each goes into its file by position.
    const download = { rangeThreshold: MiB, rangeSize: 256 * 1024, parallel: 2 };
    const layers = new Set(image.manifests[0]!.layers.map((l) => l.digest));
    const controller = new AbortController();
    let progress = 0;
    const first = pull(`${server.registryHost}/resume/app:v1`, `oci:${target}:v1`, {
      aws: aws(server),
      concurrency: 2,
      download,
      signal: controller.signal,
      onEvent: (event) => {
        if (event.type === "blob-progress" && layers.has(event.id) && (progress += event.bytes) > MiB) {
          controller.abort();
        }
      },
    });
    await expect(first).rejects.toMatchObject({ code: "INTERRUPTED" });
    expect(existsSync(target)).toBe(false);
    // Whatever is staged is whole and verified; no `.partial-*` file is left for anyone.
    const left = await readdir(partial, { recursive: true });
    expect(left.filter((name) => name.includes(".partial-"))).toEqual([]);
    for (const hex of await stagedBlobs(partial)) {
      expect(
        createHash("sha256")
          .update(await readFile(join(partial, "blobs", "sha256", hex)))
          .digest("hex"),
      ).toBe(hex);
    }

    const second = await pull(`${server.registryHost}/resume/app:v1`, `oci:${target}:v1`, {
      aws: aws(server),
      download,
    });
    expect(second.digest).toBe(image.root.digest);
    expect(existsSync(partial)).toBe(false);
    for (const digest of layers) {
      const hex = digest.slice(7);
      expect(
        createHash("sha256")
          .update(await readFile(join(target, "blobs", "sha256", hex)))
          .digest("hex"),
      ).toBe(hex);
    }
  });

  it("resumes after the CLI was killed with SIGKILL mid-download, taking over its claim", async () => {
    const target = join(work, "killed", "image.tar");
    const partial = join(work, "killed", ".image.tar.ecrx-partial");
    const args = [
      CLI_MAIN,
      "pull",
      `${slowServer.registryHost}/resume/app:v1`,
      `docker-archive:${target}`,
      "--concurrency",
      "1",
      "-q",
    ];
    const env = { ...process.env, ...slowServer.env };
    const child = spawn("node", args, { env, stdio: "ignore" });
    // Kill it once a few blobs are verified, while it is still downloading.
    for (let waited = 0; (await stagedBlobs(partial)).length < 2; waited += 100) {
      if (waited > 20_000) throw new Error("the pull staged nothing in 20 s");
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    child.kill("SIGKILL");
    await new Promise((resolve) => child.on("close", resolve));
    expect(existsSync(target)).toBe(false);
    expect(existsSync(`${partial}.lock`)).toBe(true); // the dead process's claim is still there
    const staged = (await stagedBlobs(partial)).length;
    expect(staged).toBeGreaterThanOrEqual(2);

    const events: TransferEvent[] = [];
    const result = await pull(`${server.registryHost}/resume/app:v1`, `docker-archive:${target}`, {
      aws: aws(server),
      onEvent: (event) => events.push(event),
    });
    expect(result.digest).toBe(image.root.digest);
    expect(events.filter((e) => e.type === "blob-skipped").length).toBe(staged);
    expect(existsSync(partial)).toBe(false);
    expect(existsSync(`${partial}.lock`)).toBe(false);
    if (hasSkopeo) await tool("skopeo", ["inspect", `docker-archive:${target}`]);
  });

  it("refuses to write a destination another live ecrx is writing", async () => {
    const target = join(work, "busy", "layout");
    const args = [
      CLI_MAIN,
      "pull",
      `${slowServer.registryHost}/resume/app:v1`,
      `oci:${target}:v1`,
      "--concurrency",
      "1",
      "-q",
    ];
    const child = spawn("node", args, { env: { ...process.env, ...slowServer.env }, stdio: "ignore" });
    try {
      const lock = join(work, "busy", ".layout.ecrx-partial.lock");
      for (let waited = 0; !existsSync(lock); waited += 50) {
        if (waited > 10_000) throw new Error("the first pull never claimed its work folder");
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      await expect(
        pull(`${server.registryHost}/resume/app:v1`, `oci:${target}:v1`, { aws: aws(server) }),
      ).rejects.toMatchObject({
        code: "CONFLICT",
        message: expect.stringMatching(/another ecrx \(pid \d+\) is writing/),
      });
    } finally {
      child.kill("SIGKILL");
      await new Promise((resolve) => child.on("close", resolve));
    }
  });
});
