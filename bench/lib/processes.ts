import { spawn } from "node:child_process";
import { createInterface } from "node:readline";

export const ROOT = new URL("../../", import.meta.url).pathname;
export const ECRX = `${ROOT}dist/cli/main.js`;

export interface Measured {
  stdout: string;
  stderr: string;
  code: number;
  wallSeconds: number;
  userSeconds: number;
  systemSeconds: number;
  maxRssBytes: number;
}

/** Runs a command under /usr/bin/time: wall, CPU and peak RSS of that process alone. */
export async function measure(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<Measured> {
  const marker = "@@time@@";
  const child = spawn("/usr/bin/time", ["-f", `${marker} %e %U %S %M`, command, ...args], { env });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const code: number = await new Promise((resolve) => child.on("close", (c) => resolve(c ?? 1)));
  const line = stderr.split("\n").find((l) => l.startsWith(marker));
  if (!line) throw new Error(`no timing from ${command}: ${stderr}`);
  const [wall, user, sys, rssKb] = line.slice(marker.length).trim().split(" ").map(Number);
  return {
    stdout,
    stderr: stderr.replace(line, ""),
    code,
    wallSeconds: wall!,
    userSeconds: user!,
    systemSeconds: sys!,
    maxRssBytes: rssKb! * 1024,
  };
}

export interface BenchServer {
  url: string;
  registryHost: string;
  env: Record<string, string>;
  stop(): Promise<void>;
}

/** `ecrx serve` in its own process, so that its CPU is not the client's. */
export async function startServer(extraArgs: string[] = []): Promise<BenchServer> {
  const child = spawn("node", [ECRX, "serve", "--port", "0", ...extraArgs], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const lines = createInterface({ input: child.stdout });
  let url = "";
  let registryHost = "";
  for await (const line of lines) {
    const endpoint = /listening on (http:\/\/\S+)/.exec(line);
    if (endpoint) url = endpoint[1]!;
    const host = /image references:\s+(\S+)\//.exec(line);
    if (host) registryHost = host[1]!;
    if (url && registryHost) break;
  }
  if (!url) throw new Error("ecrx serve did not print its endpoint");
  return {
    url,
    registryHost,
    env: { AWS_ACCESS_KEY_ID: "test", AWS_SECRET_ACCESS_KEY: "test", AWS_REGION: "us-east-1" },
    stop: async () => {
      child.kill("SIGTERM");
      await new Promise((resolve) => child.on("close", resolve));
    },
  };
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
