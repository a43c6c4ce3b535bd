/**
 * Bad input through the CLI, as a user meets it: the corpus of test/fixtures/bad-input/cases.ts
 * pushed to the local server, bad reference syntax, and registries that answer garbage or
 * redirect in a loop. Each: the expected exit code and one-line message, no stack trace (unless
 * --debug), no file written outside the destination, no image in the registry.
 */
import { createServer, type Server } from "node:http";
import { mkdir, mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ListImagesCommand } from "@aws-sdk/client-ecr";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { serve, type RunningServer } from "../../src/emulator/server.js";
import { ensureBuilt, runCli, type CliRun } from "../helpers/cli.js";
import { ecrClient } from "../helpers/emulator-clients.js";
import { buildImage } from "../helpers/images.js";
import { CASES } from "../fixtures/bad-input/cases.js";

let server: RunningServer;
let work: string;
let counter = 0;

async function dir(name: string): Promise<string> {
  const path = join(work, `${++counter}-${name.replace(/\W+/g, "-")}`);
  await mkdir(path, { recursive: true });
  return path;
}

async function tree(root: string): Promise<string[]> {
  return (await readdir(root, { recursive: true })).map(String).sort();
}

function expectOneLine(run: CliRun, code: number, message: RegExp): void {
  expect(run.code, run.stderr).toBe(code);
  const lines = run.stderr.trimEnd().split("\n");
  expect(lines[0]).toMatch(/^ecrx: /);
  expect(lines[0]).toMatch(message);
  expect(
    lines.slice(1).every((l) => l.startsWith("hint: ")),
    run.stderr,
  ).toBe(true);
  expect(run.stderr).not.toMatch(/^\s+at /m);
  // eslint-disable-next-line no-control-regex
  expect(run.stderr).not.toMatch(/\u001b\[3/); // no escape sequence from the input
}

async function images(repository: string): Promise<unknown[]> {
  const ecr = ecrClient(server);
  try {
    const out = await ecr.send(new ListImagesCommand({ repositoryName: repository }));
    return out.imageIds ?? [];
  } catch {
    return []; // the repository was never created: nothing in it either
  } finally {
    ecr.destroy();
  }
}

beforeAll(async () => {
  ensureBuilt();
  work = await mkdtemp(join(tmpdir(), "ecrx-bad-input-"));
  server = await serve({ port: 0, rates: "off" });
});

afterAll(async () => {
  await server?.close();
  if (work) await rm(work, { recursive: true, force: true });
});

describe("the bad-input corpus, pushed", () => {
  it.each(CASES.map((c) => [c.name, c] as const))("%s", { timeout: 60_000 }, async (_name, testCase) => {
    const folder = await dir(testCase.name);
    const source = await testCase.build(folder);
    const before = await tree(folder);
    const repository = `bad/case-${counter}`;
    const run = await runCli(
      ["push", source, `${server.registryHost}/${repository}:v1`, "--create-repo", "-q"],
      {
        ...server.env,
        ECRX_CACHE_DIR: join(work, "cache"),
      },
    );
    if (testCase.exitCode === -1) {
      expect([3, 7, 8], run.stderr).toContain(run.code);
      expectOneLine(run, run.code, testCase.message);
    } else {
      expectOneLine(run, testCase.exitCode, testCase.message);
    }
    expect(await tree(folder), "nothing written beside the input").toEqual(before);
    expect(await images(repository), "no image in the registry").toEqual([]);
  });

  it("--debug adds the stack, and only then", async () => {
    const testCase = CASES.find((c) => c.name === "truncated tar")!;
    const source = await testCase.build(await dir("debug"));
    const run = await runCli(
      ["push", source, `${server.registryHost}/bad/debug:v1`, "--create-repo", "-q", "--debug"],
      {
        ...server.env,
        ECRX_CACHE_DIR: join(work, "cache"),
      },
    );
    expect(run.code).toBe(3);
    expect(run.stderr).toMatch(/^\s+at /m);
  });
});

describe("references with bad syntax", () => {
  it.each([
    ["push", "oci:", "a repository"],
    ["push", "IMAGE.tar", `x.dkr.ecr.us-east-1.localhost:1/Upper/Case:v1`],
    ["push", "IMAGE.tar", `000000000000.dkr.ecr.us-east-1.localhost:1/app:bad tag`],
    ["push", "IMAGE.tar", `000000000000.dkr.ecr.us-east-1.localhost:1/app@sha256:1234`],
    ["pull", `000000000000.dkr.ecr.us-east-1.localhost:1/app::v1`, "oci:out"],
    ["copy", "docker://", "oci:out"],
  ])("%s %s %s: exit 2, one line, nothing written", async (command, a, b) => {
    const folder = await dir("syntax");
    const image = await buildImage({ format: "docker-archive-classic", dir: folder, seed: "syntax" });
    const before = await tree(folder);
    const args = [command, a, b].map((x) =>
      x.replace("IMAGE.tar", image.path).replace("oci:out", `oci:${join(folder, "out")}`),
    );
    const run = await runCli(args, { ...server.env, ECRX_CACHE_DIR: join(work, "cache") }, 30_000);
    expect(run.code, run.stderr).toBe(2);
    expect(run.stderr).not.toMatch(/^\s+at /m);
    expect(
      run.stderr
        .trimEnd()
        .split("\n")
        .filter((l) => l.startsWith("ecrx: ") || l.startsWith("error:")),
    ).toHaveLength(1);
    expect(await tree(folder)).toEqual(before);
  });
});

describe("registries that misbehave", () => {
  let hostile: Server;
  let port = 0;
  beforeAll(async () => {
    hostile = createServer((req, res) => {
      const url = req.url ?? "/";
      if (url === "/v2/" || url === "/v2") {
        res.writeHead(200, { "content-type": "application/json" });
        res.end("{}");
      } else if (url.startsWith("/v2/garbage/")) {
        // A manifest answer that is not a manifest.
        res.writeHead(200, {
          "content-type": "application/vnd.oci.image.manifest.v1+json",
          "docker-content-digest": `sha256:${"0".repeat(64)}`,
        });
        res.end("\u0000\u0001 this is not json \u001b[31m red");
      } else if (url.startsWith("/v2/loop/")) {
        res.writeHead(302, { location: url });
        res.end();
      } else {
        res.writeHead(404);
        res.end();
      }
    });
    await new Promise<void>((resolve) => hostile.listen(0, "127.0.0.1", resolve));
    port = (hostile.address() as { port: number }).port;
  });
  afterAll(() => {
    hostile.close();
  });

  it("garbage for a manifest: refused, one line, no output", async () => {
    const folder = await dir("garbage");
    const run = await runCli(
      ["copy", `docker://127.0.0.1:${port}/garbage/app:v1`, `oci:${join(folder, "out")}:v1`],
      {},
      30_000,
    );
    expect([3, 8], run.stderr).toContain(run.code);
    expectOneLine(run, run.code, /./);
    expect(await tree(folder)).toEqual([]);
  });

  it("a redirect loop: refused after 10 redirects (exit 9), no output", async () => {
    const folder = await dir("loop");
    const run = await runCli(
      ["copy", `docker://127.0.0.1:${port}/loop/app:v1`, `oci:${join(folder, "out")}:v1`],
      {},
      60_000,
    );
    expectOneLine(run, 9, /redirect loop/);
    expect(await tree(folder)).toEqual([]);
  });
});
