/**
 * Where registry credentials come from: the caller's options, docker's config file (`auths`,
 * `credHelpers`, `credsStore`, as `docker login` writes them), or, for ECR's own registry
 * endpoint, GetAuthorizationToken (a 12-hour Basic password, refreshed before it lapses).
 */
import { spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { GetAuthorizationTokenCommand, type ECRClient } from "@aws-sdk/client-ecr";
import { EcrxError } from "../../errors.js";
import { ecrError } from "../ecr/errors.js";
import type { CredentialSource, Credentials } from "./auth.js";

/** Credentials as a caller gives them: a user and password, or a bearer token sent as it is. */
export type RegistryCredentials = { username: string; password: string } | { token: string };

export function fromOptions(credentials: RegistryCredentials): CredentialSource {
  const creds: Credentials =
    "token" in credentials
      ? { kind: "bearer", token: credentials.token }
      : { kind: "basic", username: credentials.username, password: credentials.password };
  return { get: async () => creds };
}

export interface DockerConfigOptions {
  /** The config file; default `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`. */
  path?: string | undefined;
  /** Default process.env (DOCKER_CONFIG, PATH for helpers). */
  env?: NodeJS.ProcessEnv;
}

export function dockerConfigPath(options: DockerConfigOptions = {}): string {
  if (options.path !== undefined) return options.path;
  const env = options.env ?? process.env;
  const dir = env.DOCKER_CONFIG ? env.DOCKER_CONFIG : join(env.HOME ?? homedir(), ".docker");
  return join(dir, "config.json");
}

interface DockerConfig {
  auths?: Record<
    string,
    { auth?: string; username?: string; password?: string; identitytoken?: string; registrytoken?: string }
  >;
  credHelpers?: Record<string, string>;
  credsStore?: string;
}

const DOCKER_HUB_KEYS = new Set(["docker.io", "index.docker.io", "registry-1.docker.io"]);
/** The name docker files Docker Hub's credentials under. */
const DOCKER_HUB_SERVER = "https://index.docker.io/v1/";

/** `https://host:port/v1/` -> `host:port`, for matching config keys against a registry. */
function normaliseKey(key: string): string {
  const host = key
    .replace(/^[a-z]+:\/\//i, "")
    .split("/")[0]!
    .toLowerCase();
  return DOCKER_HUB_KEYS.has(host) ? "docker.io" : host;
}

/**
 * The credentials docker would use for `registry` (`host[:port]`): its credential helper
 * (`credHelpers`), else an `auths` entry, else the default store (`credsStore`); undefined when
 * none has any (anonymous access). A config that is missing is no error; one that is unreadable is.
 */
export async function dockerCredentials(
  registry: string,
  options: DockerConfigOptions = {},
): Promise<Credentials | undefined> {
  const path = dockerConfigPath(options);
  let config: DockerConfig;
  try {
    config = JSON.parse(await readFile(path, "utf8")) as DockerConfig;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new EcrxError(
      "AUTH",
      `cannot read docker config ${path}: ${(err as Error).message.split("\n")[0]}`,
      {
        hint: "fix or remove the file, or pass credentials explicitly",
      },
    );
  }
  const wanted = normaliseKey(registry);
  const serverUrl = wanted === "docker.io" ? DOCKER_HUB_SERVER : registry;
  const env = options.env ?? process.env;
  const helper = Object.entries(config.credHelpers ?? {}).find(([key]) => normaliseKey(key) === wanted)?.[1];
  if (helper) return runCredentialHelper(helper, serverUrl, { env, source: `credHelpers of ${path}` });
  const entry = Object.entries(config.auths ?? {}).find(([key]) => normaliseKey(key) === wanted)?.[1];
  const fromEntry = entry && credentialsOfEntry(entry, path);
  if (fromEntry) return fromEntry;
  if (config.credsStore)
    return runCredentialHelper(config.credsStore, serverUrl, { env, source: `credsStore of ${path}` });
  return undefined;
}

function credentialsOfEntry(
  entry: NonNullable<DockerConfig["auths"]>[string],
  path: string,
): Credentials | undefined {
  if (entry.identitytoken) return { kind: "identity", token: entry.identitytoken };
  if (entry.registrytoken) return { kind: "bearer", token: entry.registrytoken };
  if (entry.auth) {
    const decoded = Buffer.from(entry.auth, "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    if (colon < 0) throw new EcrxError("AUTH", `an "auth" entry of ${path} is not base64 of user:password`);
    return { kind: "basic", username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
  }
  if (entry.username !== undefined && entry.password !== undefined) {
    return { kind: "basic", username: entry.username, password: entry.password };
  }
  return undefined;
}

const HELPER_TIMEOUT_MS = 30_000;

/**
 * Runs `docker-credential-<helper> get` with the server on stdin and reads `{Username, Secret}`
 * from stdout (`<token>` as the user means Secret is an identity token). "credentials not found"
 * means anonymous; a helper that is missing or fails is an AUTH error. The helper's output is
 * never quoted when it parses, as it holds the secret.
 */
export async function runCredentialHelper(
  helper: string,
  serverUrl: string,
  options: { env?: NodeJS.ProcessEnv; source?: string } = {},
): Promise<Credentials | undefined> {
  const program = `docker-credential-${helper}`;
  const from = options.source === undefined ? "" : ` (named in ${options.source})`;
  const { code, stdout, stderr, error } = await new Promise<{
    code: number | null;
    stdout: string;
    stderr: string;
    error?: NodeJS.ErrnoException;
  }>((resolve) => {
    const child = spawn(program, ["get"], {
      env: options.env ?? process.env,
      stdio: ["pipe", "pipe", "pipe"],
      timeout: HELPER_TIMEOUT_MS,
    });
    let out = "";
    let err = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (err += d));
    child.on("error", (e: NodeJS.ErrnoException) =>
      resolve({ code: null, stdout: out, stderr: err, error: e }),
    );
    child.on("close", (c) => resolve({ code: c, stdout: out, stderr: err }));
    child.stdin.on("error", () => undefined);
    child.stdin.end(serverUrl);
  });
  if (error?.code === "ENOENT") {
    throw new EcrxError("AUTH", `credential helper ${program}${from} is not installed`, {
      hint: `install ${program} on the PATH, or remove it from the docker config`,
    });
  }
  if (error !== undefined || code !== 0) {
    const said = `${stdout}\n${stderr}`.trim();
    if (/credentials not found/i.test(said)) return undefined;
    const why = error?.message ?? firstLine(said) ?? `exit code ${code}`;
    throw new EcrxError("AUTH", `credential helper ${program}${from} failed: ${why.slice(0, 200)}`);
  }
  let answer: { Username?: unknown; Secret?: unknown };
  try {
    answer = JSON.parse(stdout) as typeof answer;
  } catch {
    throw new EcrxError("AUTH", `credential helper ${program}${from} answered something that is not JSON`);
  }
  if (typeof answer.Secret !== "string" || answer.Secret === "") return undefined;
  const username = typeof answer.Username === "string" ? answer.Username : "";
  return username === "<token>"
    ? { kind: "identity", token: answer.Secret }
    : { kind: "basic", username, password: answer.Secret };
}

function firstLine(text: string): string | undefined {
  const line = text.split("\n").find((l) => l.trim() !== "");
  return line?.trim();
}

/** Docker config credentials for one registry, looked up once and again after a refusal. */
export function fromDockerConfig(registry: string, options: DockerConfigOptions = {}): CredentialSource {
  let cached: Promise<Credentials | undefined> | undefined;
  return {
    get: (fresh) => {
      if (fresh || cached === undefined) cached = dockerCredentials(registry, options);
      return cached;
    },
  };
}

export interface EcrAuthorization {
  /** base64 of `AWS:<password>`, as GetAuthorizationToken returns it. */
  token: string;
  expiresAt: Date;
}

/** Fetch a new ECR password this long before the old one expires (ECR's last 12 hours). */
const ECR_REFRESH_MARGIN_MS = 15 * 60_000;

/**
 * ECR's registry password (Basic `AWS:<password>`) from GetAuthorizationToken, fetched again before
 * it expires, so that a copy longer than 12 hours keeps working (ecr-spec.md section 8: tools that
 * fetched it once failed there).
 */
export class EcrTokenSource implements CredentialSource {
  private current: { creds: Credentials; refreshAt: number } | undefined;
  private pending: Promise<Credentials> | undefined;

  constructor(
    private readonly fetch: () => Promise<EcrAuthorization>,
    private readonly now: () => number = Date.now,
    private readonly onClose: () => void = () => undefined,
  ) {}

  async get(fresh: boolean): Promise<Credentials> {
    if (!fresh && this.current !== undefined && this.now() < this.current.refreshAt)
      return this.current.creds;
    this.pending ??= this.refresh().finally(() => {
      this.pending = undefined;
    });
    return this.pending;
  }

  private async refresh(): Promise<Credentials> {
    const { token, expiresAt } = await this.fetch();
    const decoded = Buffer.from(token, "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    if (colon < 0)
      throw new EcrxError(
        "AUTH",
        "GetAuthorizationToken returned a token that is not base64 of user:password",
      );
    const creds: Credentials = {
      kind: "basic",
      username: decoded.slice(0, colon),
      password: decoded.slice(colon + 1),
    };
    const lifetime = expiresAt.getTime() - this.now();
    this.current = {
      creds,
      refreshAt: this.now() + lifetime - Math.min(ECR_REFRESH_MARGIN_MS, lifetime / 4),
    };
    return creds;
  }

  close(): void {
    this.onClose();
  }
}

/** An EcrTokenSource over an ECR API client (closed with the source). */
export function ecrTokenSource(client: ECRClient): EcrTokenSource {
  return new EcrTokenSource(
    async () => {
      try {
        const out = await client.send(new GetAuthorizationTokenCommand({}));
        const data = out.authorizationData?.[0];
        if (!data?.authorizationToken) throw new EcrxError("AUTH", "GetAuthorizationToken returned no token");
        return {
          token: data.authorizationToken,
          expiresAt: data.expiresAt ?? new Date(Date.now() + 12 * 3600_000),
        };
      } catch (err) {
        throw ecrError(err, "GetAuthorizationToken");
      }
    },
    Date.now,
    () => client.destroy(),
  );
}
