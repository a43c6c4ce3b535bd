/**
 * The README's examples work as documented: every line of its ```sh ecrx-test blocks runs, in
 * order, in bash against a local server on port 5000 when free (the README's examples name it),
 * with REGISTRY set and `ecrx` the built binary; the exit code must be the one written after
 * `# exit N` (else 0), and the output must hold the text after `# prints:`.
 */
import { execFile } from "node:child_process";
import { chmod, mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { serve, type RunningServer } from "../../src/emulator/server.js";
import { CLI_MAIN, ensureBuilt, REPO_ROOT } from "../helpers/cli.js";
import { buildImage, KiB } from "../helpers/images.js";
import { useScratch } from "../helpers/scratch.js";

interface Example {
  command: string;
  exitCode: number;
  prints: string | undefined;
}

/** The lines of ```sh ecrx-test blocks, with what their comments promise. */
function readmeExamples(markdown: string): Example[] {
  const examples: Example[] = [];
  for (const block of markdown.matchAll(/^```sh ecrx-test\n([\s\S]*?)^```$/gm)) {
    for (const line of block[1]!.split("\n")) {
      if (line.trim() === "") continue;
      const exit = /#\s*exit (\d+)/.exec(line);
      const prints = /#\s*prints: (.*)$/.exec(line);
      examples.push({
        command: line,
        exitCode: exit ? Number(exit[1]) : 0,
        prints: prints?.[1]?.trim(),
      });
    }
  }
  return examples;
}

function bash(
  command: string,
  cwd: string,
  env: Record<string, string>,
): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(
      "bash",
      ["-o", "pipefail", "-c", command],
      { cwd, env, timeout: 60_000 },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === "number" ? err.code : -1;
        resolve({ code, output: `${stdout}${stderr}` });
      },
    );
  });
}

const scratch = useScratch("readme");
let server: RunningServer;
let work: string;
let env: Record<string, string>;

beforeAll(async () => {
  ensureBuilt();
  try {
    server = await serve({ port: 5000 });
  } catch {
    // Port 5000 taken: the examples' text naming it cannot match, but their exit codes still can.
    server = await serve({ port: 0 });
  }
  work = scratch.fresh("work");
  await mkdir(join(work, "bin"), { recursive: true });
  const ecrx = join(work, "bin", "ecrx");
  await writeFile(ecrx, `#!/bin/sh\nexec "${process.execPath}" "${CLI_MAIN}" "$@"\n`);
  await chmod(ecrx, 0o755);
  // The images the README's examples name: app.tar (docker save) and multi (two platforms).
  await buildImage({
    format: "docker-archive-classic",
    dir: work,
    name: "app.tar",
    layers: [{ size: 300 * KiB }, { size: 20 * KiB }],
  });
  await buildImage({
    format: "oci-layout",
    dir: work,
    name: "multi",
    platforms: ["linux/amd64", "linux/arm64"],
    tag: "v1",
  });
  env = {
    PATH: `${join(work, "bin")}:${process.env.PATH ?? "/usr/bin:/bin"}`,
    HOME: join(work, "home"),
    ECRX_CACHE_DIR: join(work, "cache"),
    AWS_CONFIG_FILE: join(work, "none"),
    AWS_SHARED_CREDENTIALS_FILE: join(work, "none"),
    AWS_EC2_METADATA_DISABLED: "true",
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
    ...server.env,
    REGISTRY: server.registryHost,
  };
}, 120_000);

afterAll(async () => {
  await server?.close();
});

describe("README examples", () => {
  it("finds the marked examples", async () => {
    const examples = readmeExamples(await readFile(join(REPO_ROOT, "README.md"), "utf8"));
    expect(examples.length).toBeGreaterThan(20);
    expect(examples.filter((e) => e.exitCode !== 0).length).toBeGreaterThan(3);
    for (const command of ["ls", "inspect", "tag", "rm", "login", "completion", "push", "pull"]) {
      expect(examples.some((e) => e.command.startsWith(`ecrx ${command} `))).toBe(true);
    }
  });

  it("run against a local server with the exit codes and output they promise", async () => {
    const examples = readmeExamples(await readFile(join(REPO_ROOT, "README.md"), "utf8"));
    const onDocumentedPort = server.port === 5000;
    for (const example of examples) {
      const { code, output } = await bash(example.command, work, env);
      expect(code, `${example.command}\n${output}`).toBe(example.exitCode);
      if (example.prints !== undefined && (onDocumentedPort || !example.prints.includes(":5000"))) {
        expect(output, example.command).toContain(example.prints);
      }
      // Errors are one line and a hint, never a stack trace.
      expect(output, example.command).not.toMatch(/^\s+at /m);
    }
    // What the completion examples wrote is what the shells read.
    await expect(bash("bash -n ecrx.bash", work, env)).resolves.toMatchObject({ code: 0 });
  }, 120_000);
});
