import { execFile, execFileSync } from "node:child_process";
import { promisify } from "node:util";
import { it } from "vitest";

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

/** Runs a tool, failing with its stderr. */
export async function tool(command: string, args: string[]): Promise<string> {
  try {
    return (await run(command, args, { maxBuffer: 64 * 1024 * 1024 })).stdout;
  } catch (err) {
    const e = err as Error & { stderr?: string };
    throw new Error(`${command} ${args.join(" ")} failed: ${e.stderr ?? e.message}`);
  }
}
