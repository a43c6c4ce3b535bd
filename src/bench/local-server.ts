import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { EcrxError } from "../errors.js";

/** The built command line, next to this module in dist. */
export const CLI_MAIN = fileURLToPath(new URL("../cli/main.js", import.meta.url));

export interface LocalServer {
  url: string;
  /** `<account>.dkr.ecr.<region>.localhost:<port>`, for image references. */
  registryHost: string;
  /** The credentials and region it accepts. */
  env: Record<string, string>;
  stop(): Promise<void>;
}

/**
 * `ecrx serve --port 0` in a child process, so that its CPU is not counted as the client's.
 * `cli` is the ecrx entry point to run (scripts run from source give dist's).
 */
export async function startLocalServer(
  options: { cli?: string; args?: string[] } = {},
): Promise<LocalServer> {
  const child = spawn(
    process.execPath,
    [options.cli ?? CLI_MAIN, "serve", "--port", "0", ...(options.args ?? [])],
    {
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  // Kept for the error message should it fail to start; its "stopping" line is not worth showing.
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const closed = new Promise<void>((resolve) => child.once("close", () => resolve()));
  let url = "";
  let registryHost = "";
  for await (const line of createInterface({ input: child.stdout })) {
    url ||= /listening on (http:\/\/\S+)/.exec(line)?.[1] ?? "";
    registryHost ||= /image references:\s+(\S+)\//.exec(line)?.[1] ?? "";
    if (url && registryHost) break;
  }
  if (!url || !registryHost) {
    child.kill("SIGTERM");
    await closed;
    throw new EcrxError("INTERNAL", `the local server (ecrx serve) did not start: ${stderr.trim()}`);
  }
  // Nothing more is read from it; keep its pipe from filling should it print more.
  child.stdout.resume();
  return {
    url,
    registryHost,
    env: { AWS_ACCESS_KEY_ID: "test", AWS_SECRET_ACCESS_KEY: "test", AWS_REGION: "us-east-1" },
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      await closed;
    },
  };
}
