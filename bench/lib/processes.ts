import { spawn } from "node:child_process";

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

/** One client's figures for one run: MB/s over its own transfer time, CPU and RSS of its process. */
export interface ClientRow {
  client: string;
  scenario: string;
  mbps: number;
  cpuSecondsPerGiB: number;
  maxRssMB: number;
}

export function clientRow(
  client: string,
  scenario: string,
  bytes: number,
  transferSeconds: number,
  measured: Measured,
): ClientRow {
  return {
    client,
    scenario,
    mbps: bytes / 1e6 / transferSeconds,
    cpuSecondsPerGiB: (measured.userSeconds + measured.systemSeconds) / (bytes / 1024 ** 3),
    maxRssMB: measured.maxRssBytes / 1e6,
  };
}
