/**
 * The built binary (`node dist/cli/main.js`) as a user runs it: `push --json` (NDJSON events and a
 * final summary), `pull`, failing pushes (exit codes of src/errors.ts, one line on stderr, no
 * stack trace) and `demo`.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BatchGetImageCommand, type ECRClient } from "@aws-sdk/client-ecr";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { serve, type RunningServer } from "../../src/emulator/server.js";
import { EXIT_CODES } from "../../src/errors.js";
import { cliEnv, ensureBuilt, expectShortError, runCli } from "../helpers/cli.js";
import { ecrClient } from "../helpers/emulator-clients.js";
import { buildImage, KiB, type BuiltImage } from "../helpers/images.js";

let server: RunningServer;
let ecr: ECRClient;
let work: string;
let image: BuiltImage;

/** The environment of a user pointed at the local server: its credentials, a private cache. */
function env(): Record<string, string> {
  return cliEnv(work, {
    AWS_ACCESS_KEY_ID: server.env.AWS_ACCESS_KEY_ID!,
    AWS_SECRET_ACCESS_KEY: server.env.AWS_SECRET_ACCESS_KEY!,
  });
}

function ndjson(stdout: string): Record<string, unknown>[] {
  return stdout
    .trimEnd()
    .split("\n")
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

beforeAll(async () => {
  ensureBuilt();
  work = await mkdtemp(join(tmpdir(), "ecrx-cli-test-"));
  server = await serve({ port: 0 });
  ecr = ecrClient(server);
  image = await buildImage({
    format: "docker-archive-classic",
    dir: join(work, "image"),
    seed: "cli",
    layers: [{ size: 256 * KiB }, { size: 16 * KiB }],
  });
}, 180_000);

afterAll(async () => {
  ecr?.destroy();
  await server?.close();
  if (work) await rm(work, { recursive: true, force: true });
});

describe("ecrx CLI", () => {
  it("push --json prints NDJSON events and a summary; a second push skips every blob", async () => {
    const destination = `${server.registryHost}/cli/app:v1,latest`;
    const first = await runCli(["push", image.reference, destination, "--create-repo", "--json"], env());
    expect(first.code, first.stderr).toBe(0);
    const events = ndjson(first.stdout);
    const types = events.map((e) => e.type);
    expect(types[0]).toBe("plan");
    expect(types.filter((t) => t === "blob-done")).toHaveLength(3);
    expect(types.at(-2)).toBe("manifest-put");
    expect(types.at(-1)).toBe("summary");
    const summary = events.at(-1)!;
    expect(summary).toMatchObject({
      repository: `${server.registryHost}/cli/app`,
      tags: ["v1", "latest"],
      blobsSent: 3,
      blobsSkipped: 0,
      sourceDigest: image.root.digest,
    });
    expect(summary.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(summary.bytesSent).toBeGreaterThan(0);
    expect(summary.seconds).toBeGreaterThan(0);

    // What the summary says is what the registry holds, under both tags.
    const got = await ecr.send(
      new BatchGetImageCommand({
        repositoryName: "cli/app",
        imageIds: [{ imageTag: "v1" }, { imageTag: "latest" }],
      }),
    );
    expect(got.images?.map((i) => i.imageId?.imageDigest)).toEqual([summary.digest, summary.digest]);

    const second = await runCli(
      ["push", image.reference, `${server.registryHost}/cli/app:v2`, "--json"],
      env(),
    );
    expect(second.code, second.stderr).toBe(0);
    const again = ndjson(second.stdout);
    expect(again.filter((e) => e.type === "blob-skipped")).toHaveLength(3);
    expect(again.at(-1)).toMatchObject({
      type: "summary",
      digest: summary.digest,
      blobsSent: 0,
      blobsSkipped: 3,
      bytesSent: 0,
    });
  });

  it("pull writes the image and prints where", async () => {
    const destination = `oci:${join(work, "pulled")}:v1`;
    const run = await runCli(["pull", `${server.registryHost}/cli/app:v1`, destination, "--quiet"], env());
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toBe(`${destination}\n`);
    const index = JSON.parse(await readFile(join(work, "pulled", "index.json"), "utf8")) as {
      manifests: { digest: string }[];
    };
    const got = await ecr.send(
      new BatchGetImageCommand({ repositoryName: "cli/app", imageIds: [{ imageTag: "v1" }] }),
    );
    expect(index.manifests.map((m) => m.digest)).toEqual([got.images?.[0]?.imageId?.imageDigest]);
  });

  it("fails a push with the exit code of its error, one line and a hint on stderr", async () => {
    const missing = await runCli(["push", image.reference, `${server.registryHost}/cli/missing:v1`], env());
    expect(missing.code).toBe(EXIT_CODES.NOT_FOUND);
    expect(missing.stdout).toBe("");
    expectShortError(missing.stderr, /repository cli\/missing does not exist/);
    expect(missing.stderr).toContain("hint: create it first, or pass --create-repo");

    const junk = join(work, "junk.tar");
    await writeFile(junk, "not an image\n".repeat(64));
    const invalid = await runCli(
      ["push", `docker-archive:${junk}`, `${server.registryHost}/cli/app:v3`],
      env(),
    );
    expect(invalid.code).toBe(EXIT_CODES.INVALID_INPUT);
    expectShortError(invalid.stderr, /junk\.tar is not a tar archive/);

    const usage = await runCli(["push", image.reference, "docker.io/library/app:v1"], env());
    expect(usage.code).toBe(EXIT_CODES.USAGE);
    expectShortError(usage.stderr, /push sends to ECR or ECR Public/);
  });

  it(
    "demo pushes and pulls through a local ECR and says every digest was verified",
    { timeout: 120_000 },
    async () => {
      const home = join(work, "demo-home");
      await mkdir(home);
      const run = await runCli(["demo"], { HOME: home, ECRX_CACHE_DIR: join(home, "cache") }, 120_000);
      expect(run.code, run.stderr).toBe(0);
      expect(run.stdout).toMatch(/pushed \S+\/ecrx-demo:latest@sha256:[0-9a-f]{64}/);
      expect(run.stdout).toContain("every digest verified");
      expect(run.stderr).not.toMatch(/^\s+at /m);
    },
  );
});
