import { execFileSync, spawn } from "node:child_process";
import { cp, readdir, readFile, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { ECRClient } from "@aws-sdk/client-ecr";
import type { LocalServer } from "../../src/bench/local-server.js";

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

/**
 * A copy of dist taken now, with node_modules linked: a rebuild in the checkout during a run
 * (other work goes on there) changes neither the measured client nor the server. Returns the
 * copy's cli/main.js.
 */
export async function snapshotDist(work: string): Promise<string> {
  const snapshot = join(work, "ecrx");
  await cp(join(ROOT, "dist"), join(snapshot, "dist"), { recursive: true });
  await writeFile(join(snapshot, "package.json"), JSON.stringify({ type: "module" }));
  await symlink(join(ROOT, "node_modules"), join(snapshot, "node_modules"));
  return join(snapshot, "dist", "cli", "main.js");
}

/** The fields of /proc/PID/stat after the command name: [state, ppid, ...]. */
async function procStat(pid: number | string): Promise<string[]> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8");
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
}

/**
 * The process id of this process's child whose command line contains `match` (a server started
 * with spawn: `ecrx serve`, docker-registry), to read its CPU time. Linux only.
 */
export async function childPid(match: string): Promise<number> {
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (Number((await procStat(entry))[1]) !== process.pid) continue;
      const cmdline = (await readFile(`/proc/${entry}/cmdline`, "utf8")).split("\0").join(" ");
      if (cmdline.includes(match)) return Number(entry);
    } catch {
      // Gone in the meantime.
    }
  }
  throw new Error(`no child process of ${process.pid} runs "${match}"`);
}

let clockTicks: number | undefined;

/** User + system CPU seconds a running process has used so far, from /proc/PID/stat. */
export async function cpuSecondsOf(pid: number): Promise<number> {
  clockTicks ??= Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim());
  const fields = await procStat(pid);
  return (Number(fields[11]) + Number(fields[12])) / clockTicks;
}

/** An ECR API client of the local server `startLocalServer` started, with the credentials it accepts. */
export function localEcrClient(server: LocalServer): ECRClient {
  return new ECRClient({
    endpoint: server.url,
    region: server.env.AWS_REGION!,
    credentials: {
      accessKeyId: server.env.AWS_ACCESS_KEY_ID!,
      secretAccessKey: server.env.AWS_SECRET_ACCESS_KEY!,
    },
  });
}
