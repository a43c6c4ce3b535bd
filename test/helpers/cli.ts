/**
 * Runs the built ecrx binary (`node dist/cli/main.js`) as a user would. `npm test` builds first;
 * `ensureBuilt` rebuilds only when dist is missing or older than a source file, so a single test
 * file can be run on its own.
 */
import { execFile, execFileSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { expect } from "vitest";

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const CLI_MAIN = join(REPO_ROOT, "dist", "cli", "main.js");

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(path) : statSync(path).mtimeMs);
  }
  return newest;
}

/** Builds dist with tsconfig.build.json when it is missing or stale. */
export function ensureBuilt(): void {
  let built = 0;
  try {
    built = statSync(CLI_MAIN).mtimeMs;
  } catch {
    // not built yet
  }
  if (built >= newestMtime(join(REPO_ROOT, "src"))) return;
  try {
    execFileSync("npx", ["tsc", "-p", "tsconfig.build.json"], { cwd: REPO_ROOT, stdio: "pipe" });
  } catch (err) {
    const out = (err as { stdout?: Buffer }).stdout?.toString() ?? "";
    throw new Error(`building dist failed (npx tsc -p tsconfig.build.json):\n${out}`);
  }
}

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `node dist/cli/main.js ...args` with exactly `env` (plus PATH); never throws on exit codes. */
export function runCli(args: string[], env: Record<string, string>, timeoutMs = 120_000): Promise<CliRun> {
  return new Promise((resolvePromise, reject) => {
    execFile(
      process.execPath,
      [CLI_MAIN, ...args],
      {
        env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...env },
        cwd: REPO_ROOT,
        timeout: timeoutMs,
        maxBuffer: 64 * 1024 * 1024,
      },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : (err as { code?: unknown }).code;
        if (typeof code !== "number") {
          reject(new Error(`ecrx ${args.join(" ")} did not exit normally: ${err?.message ?? ""}\n${stderr}`));
          return;
        }
        resolvePromise({ code, stdout, stderr });
      },
    );
  });
}

/**
 * The environment of a CLI user whose home is `home`: a private cache, no AWS config or credentials
 * files, no instance metadata; then `vars` (a server's AWS_* variables, a test's own).
 */
export function cliEnv(home: string, vars: Record<string, string> = {}): Record<string, string> {
  return {
    HOME: home,
    ECRX_CACHE_DIR: join(home, "cache"),
    AWS_CONFIG_FILE: join(home, "no-aws-config"),
    AWS_SHARED_CREDENTIALS_FILE: join(home, "no-aws-credentials"),
    AWS_EC2_METADATA_DISABLED: "true",
    ...vars,
  };
}

/** One `ecrx: ...` line, perhaps a `hint: ...` line, and never a stack frame. */
export function expectShortError(stderr: string, message: RegExp): void {
  const lines = stderr.trimEnd().split("\n");
  expect(lines[0]).toMatch(/^ecrx: /);
  expect(lines[0]).toMatch(message);
  expect(
    lines.slice(1).every((l) => l.startsWith("hint: ")),
    stderr,
  ).toBe(true);
  expect(stderr).not.toMatch(/^\s+at /m);
}
