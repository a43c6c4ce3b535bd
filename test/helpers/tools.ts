import { execFile, execFileSync } from "node:child_process";
import { promisify } from "node:util";
import { it } from "vitest";
import { dockerRegistryInstalled, htpasswdInstalled } from "./docker-registry.js";

const run = promisify(execFile);

function installed(tool: string): boolean {
  // Most tools answer --version; tmux knows only -V.
  for (const flag of ["--version", "-V"]) {
    try {
      execFileSync(tool, [flag], { stdio: "ignore" });
      return true;
    } catch {
      // try the next spelling
    }
  }
  return false;
}

/**
 * Whether `tool` (skopeo, umoci) can run. Under CI=true a missing tool fails a test instead of
 * skipping silently; elsewhere the skip is announced with its reason.
 */
export function requireTool(tool: string): boolean {
  const available = installed(tool);
  if (!available) {
    if (process.env.CI === "true") {
      it(`${tool} is installed (required under CI)`, () => {
        throw new Error(`${tool} is not installed; interop tests need it`);
      });
    } else {
      console.warn(`skipping ${tool} interop tests: ${tool} is not installed`);
    }
  }
  return available;
}

/**
 * Like requireTool, for a tool whose presence is found another way (docker-registry and htpasswd
 * have no --version): under CI=true a missing one fails a test, elsewhere the skip is announced.
 */
export function requireInstalled(available: boolean, tool: string, debianPackage: string): boolean {
  if (!available) {
    if (process.env.CI === "true") {
      it(`${tool} is installed (required under CI)`, () => {
        throw new Error(`${tool} is missing; apt-get install ${debianPackage}`);
      });
    } else {
      console.warn(
        `skipping ${tool} interop tests: ${tool} is not installed (apt-get install ${debianPackage})`,
      );
    }
  }
  return available;
}

/** What the docker-registry interop tests use, each required as requireTool and requireInstalled do. */
export function requireRegistryTools(): { skopeo: boolean; registry: boolean; htpasswd: boolean } {
  return {
    skopeo: requireTool("skopeo"),
    registry: requireInstalled(dockerRegistryInstalled(), "docker-registry", "docker-registry"),
    htpasswd: requireInstalled(htpasswdInstalled(), "htpasswd", "apache2-utils"),
  };
}

/** Runs a tool, failing with its stderr. */
export async function tool(command: string, args: string[]): Promise<string> {
  try {
    return (await run(command, args, { maxBuffer: 64 * 1024 * 1024 })).stdout;
  } catch (err) {
    const e = err as Error & { stderr?: string };
    throw new Error(`${command} ${args.join(" ")} failed: ${e.stderr ?? e.message}`);
  }
}
