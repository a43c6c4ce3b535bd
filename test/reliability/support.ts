/**
 * Shared pieces of the reliability suite: servers with faults, SDK options for them, a recorder of
 * the HTTP traffic an in-process server sees (requests and the answers it sent), an independent
 * verified read of OCI layouts and docker archives on disk, and child CLI processes to kill.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import { Server, type IncomingMessage, type ServerResponse } from "node:http";
import { join } from "node:path";
import { expect } from "vitest";
import type { RunningServer } from "../../src/emulator/server.js";
import type { PushOptions } from "../../src/push.js";
import { CLI_MAIN, REPO_ROOT } from "../helpers/cli.js";

export { freePort } from "../helpers/docker-registry.js";

/** Fixed seeds: every scenario runs once per seed, so a failure names the seed that repeats it. */
export const SEEDS = [11, 22, 33];

/** SDK options for an in-process server; fast backoff keeps the suite short. */
export function awsFor(target: RunningServer, retry: NonNullable<PushOptions["aws"]>["retry"] = {}) {
  return {
    region: target.region,
    credentials: {
      accessKeyId: target.env.AWS_ACCESS_KEY_ID!,
      secretAccessKey: target.env.AWS_SECRET_ACCESS_KEY!,
    },
    retry: { baseDelayMs: 20, throttlingBaseDelayMs: 50, maxDelayMs: 2_000, ...retry },
  };
}

export function sha256(bytes: Uint8Array): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

/** One API call or download as the server saw it, with the answer it sent (if any). */
export interface Exchange {
  method: string;
  url: string;
  /** The ECR operation (X-Amz-Target's last part), or undefined for downloads and /v2/. */
  operation: string | undefined;
  headers: IncomingMessage["headers"];
  /** The first 4 KiB of the request body (UploadLayerPart's members come before the blob). */
  bodyHead: string;
  status: number | undefined;
  /** The answer's body when it was JSON of an error (never a blob). */
  answer: Record<string, unknown> | undefined;
  /** The socket was destroyed before an answer (faults `reset`, `lost`). */
  dropped: boolean;
}

/**
 * Records every request an in-process http.Server receives while `work` runs, and its answer.
 * Only one recording at a time per process (tests of a file run one after the other).
 */
export async function recordTraffic<T>(
  work: (log: Exchange[]) => Promise<T>,
  /** Called before the server handles each request: a test may tamper with the answer here. */
  onRequest?: (req: IncomingMessage, res: ServerResponse, entry: Exchange) => void,
): Promise<{ result: T; log: Exchange[] }> {
  const log: Exchange[] = [];
  // eslint-disable-next-line @typescript-eslint/unbound-method
  const original = Server.prototype.emit;
  Server.prototype.emit = function (this: Server, event: string | symbol, ...args: unknown[]) {
    if (event === "request") {
      const [req, res] = args as [IncomingMessage, ServerResponse];
      const entry = observe(req, res, log);
      onRequest?.(req, res, entry);
    }
    return original.apply(this, [event, ...args] as Parameters<typeof original>);
  } as typeof original;
  try {
    return { result: await work(log), log };
  } finally {
    Server.prototype.emit = original;
  }
}

function observe(req: IncomingMessage, res: ServerResponse, log: Exchange[]): Exchange {
  const target = req.headers["x-amz-target"];
  const entry: Exchange = {
    method: req.method ?? "",
    url: req.url ?? "",
    operation: typeof target === "string" ? target.split(".").pop() : undefined,
    headers: req.headers,
    bodyHead: "",
    status: undefined,
    answer: undefined,
    dropped: false,
  };
  log.push(entry);
  if (req.method === "POST") {
    const onData = (chunk: Buffer) => {
      entry.bodyHead += chunk.subarray(0, 4096 - entry.bodyHead.length).toString("latin1");
      if (entry.bodyHead.length >= 4096) req.off("data", onData);
    };
    req.on("data", onData);
  }
  // eslint-disable-next-line @typescript-eslint/unbound-method
  const end = res.end;
  res.end = function (this: ServerResponse, ...args: unknown[]) {
    entry.status = res.statusCode;
    const chunk = args[0];
    // writeHead's headers are not readable back: recognise a JSON error by its first byte.
    if (res.statusCode >= 400 && Buffer.isBuffer(chunk) && chunk[0] === 0x7b) {
      try {
        entry.answer = JSON.parse(chunk.toString("utf8")) as Record<string, unknown>;
      } catch {
        // not JSON after all
      }
    }
    return end.apply(this, args as Parameters<typeof end>);
  } as typeof end;
  res.on("close", () => {
    if (!res.writableFinished) entry.dropped = true;
  });
  return entry;
}

/** The members of an UploadLayerPart request read off the start of its body. */
export function partOf(e: Exchange): { uploadId: string; first: number; last: number } | undefined {
  if (e.operation !== "UploadLayerPart") return undefined;
  const first = /"partFirstByte":(\d+)/.exec(e.bodyHead)?.[1];
  const last = /"partLastByte":(\d+)/.exec(e.bodyHead)?.[1];
  const uploadId = /"uploadId":"([^"]+)"/.exec(e.bodyHead)?.[1];
  if (first === undefined || last === undefined || uploadId === undefined) return undefined;
  return { uploadId, first: Number(first), last: Number(last) };
}

/**
 * Reads an OCI layout the way a second tool would, trusting nothing: index.json names the root,
 * every blob reachable from it is read and hashed, and sizes are compared with the descriptors.
 * Returns the digests of every blob read.
 */
export async function verifyLayout(layout: string, rootDigest: string): Promise<Set<string>> {
  const index = JSON.parse(await readFile(join(layout, "index.json"), "utf8")) as {
    manifests: { digest: string; size: number }[];
  };
  expect(index.manifests.map((m) => m.digest)).toContain(rootDigest);
  const seen = new Set<string>();
  const blob = async (d: { digest: string; size: number }): Promise<Buffer> => {
    const bytes = await readFile(join(layout, "blobs", "sha256", d.digest.slice("sha256:".length)));
    expect(sha256(bytes), `blob ${d.digest}`).toBe(d.digest);
    expect(bytes.length, `size of ${d.digest}`).toBe(d.size);
    seen.add(d.digest);
    return bytes;
  };
  const walk = async (d: { digest: string; size: number }): Promise<void> => {
    const doc = JSON.parse((await blob(d)).toString("utf8")) as {
      manifests?: { digest: string; size: number }[];
      config?: { digest: string; size: number };
      layers?: { digest: string; size: number }[];
    };
    for (const child of doc.manifests ?? []) await walk(child);
    if (doc.config) await blob(doc.config);
    for (const layer of doc.layers ?? []) await blob(layer);
  };
  const root = index.manifests.find((m) => m.digest === rootDigest)!;
  await walk(root);
  return seen;
}

/** Names in a folder that a user would see (no dot files). */
export async function visible(folder: string): Promise<string[]> {
  if (!existsSync(folder)) return [];
  return (await readdir(folder)).filter((name) => !name.startsWith("."));
}

export interface CliChild {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  /** Resolves with the exit code (or the signal's name) once the process is gone. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
  /** Resolves once a stdout line matches. */
  waitFor: (pattern: RegExp, timeoutMs?: number) => Promise<string>;
}

/** Starts the built CLI; stdout and stderr are collected for the test to read. */
export function startCli(args: string[], env: Record<string, string>): CliChild {
  const child = spawn(process.execPath, [CLI_MAIN, ...args], {
    cwd: REPO_ROOT,
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  const watchers: { pattern: RegExp; resolve: (line: string) => void }[] = [];
  child.stdout.on("data", (chunk: Buffer) => {
    out += chunk.toString("utf8");
    for (const w of [...watchers]) {
      const line = out.split("\n").find((l) => w.pattern.test(l));
      if (line !== undefined) {
        watchers.splice(watchers.indexOf(w), 1);
        w.resolve(line);
      }
    }
  });
  child.stderr.on("data", (chunk: Buffer) => (err += chunk.toString("utf8")));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((resolve) =>
    child.on("close", (code, signal) => resolve({ code, signal, at: performance.now() })),
  );
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    exited,
    waitFor: (pattern, timeoutMs = 30_000) =>
      new Promise((resolve, reject) => {
        const line = out.split("\n").find((l) => pattern.test(l));
        if (line !== undefined) {
          resolve(line);
          return;
        }
        const timer = setTimeout(
          () =>
            reject(
              new Error(`no stdout line matched ${String(pattern)} in ${timeoutMs} ms:\n${out}\n${err}`),
            ),
          timeoutMs,
        );
        void exited.then(() => {
          clearTimeout(timer);
          reject(new Error(`the CLI exited before a line matched ${String(pattern)}:\n${out}\n${err}`));
        });
        watchers.push({
          pattern,
          resolve: (l) => {
            clearTimeout(timer);
            resolve(l);
          },
        });
      }),
  };
}
