import { chmod, mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { GetAuthorizationTokenCommand } from "@aws-sdk/client-ecr";
import { GetAuthorizationTokenCommand as GetPublicAuthorizationTokenCommand } from "@aws-sdk/client-ecr-public";
import { EcrxError } from "./errors.js";
import { parseEcrRegistry, type EcrRegistry } from "./reference/reference.js";
import type { AwsOptions } from "./transports/aws/client-config.js";
import { createEcrPublicClient } from "./transports/ecr-public/ecr-public-api.js";
import { createEcrClient } from "./transports/ecr/ecr-api.js";
import { ecrError } from "./transports/ecr/errors.js";
import { dockerConfigPath } from "./transports/registry/credentials.js";
import { isLoopbackHost } from "./transports/registry/client.js";
import { privateEcrClient } from "./transports/remote.js";
import { temporarySibling } from "./util/fs.js";

export interface LoginOptions {
  /** Region, endpoint, profile and credentials. Default: the SDK's chains. */
  aws?: AwsOptions;
  signal?: AbortSignal;
}

/** A registry password as `docker login --username AWS --password-stdin <registry>` takes it. */
export interface RegistryLogin {
  /** The registry host (`host[:port]`) the password is for. */
  registry: string;
  /**
   * Every host name docker and skopeo may use for it: the registry, and for a local server
   * (`ecrx serve`) also `127.0.0.1:<port>`, the address they reach it at.
   */
  hosts: string[];
  username: "AWS";
  password: string;
  expiresAt: Date | undefined;
}

const PUBLIC_HOST = "public.ecr.aws";

/**
 * The registry password of GetAuthorizationToken, like `aws ecr get-login-password`. `registry`
 * is an ECR registry host (its account and region are used), `public.ecr.aws` (ECR Public's
 * token, from us-east-1), or undefined: the caller's default registry in the configured region.
 */
export async function loginPassword(
  registry: string | undefined,
  options: LoginOptions = {},
): Promise<RegistryLogin> {
  const aws = options.aws ?? {};
  if (registry !== undefined && registry.replace(/^https?:\/\//, "").replace(/\/+$/, "") === PUBLIC_HOST) {
    return publicLogin(aws, options.signal);
  }
  const target = registry === undefined ? undefined : parseRegistryArgument(registry);
  const client = target ? privateEcrClient(target, aws) : createEcrClient(aws, aws.region);
  try {
    let out;
    try {
      out = await client.send(
        new GetAuthorizationTokenCommand(target ? { registryIds: [target.registryId] } : {}),
        { abortSignal: options.signal },
      );
    } catch (err) {
      throw ecrError(err, "GetAuthorizationToken");
    }
    const data = out.authorizationData?.[0];
    if (!data?.authorizationToken) {
      throw new EcrxError("AUTH", "GetAuthorizationToken returned no token");
    }
    const password = decodePassword(data.authorizationToken);
    const host = target?.registry ?? defaultRegistryHost(data.proxyEndpoint, aws);
    return { registry: host, hosts: hostsOf(host), username: "AWS", password, expiresAt: data.expiresAt };
  } finally {
    client.destroy();
  }
}

async function publicLogin(aws: AwsOptions, signal: AbortSignal | undefined): Promise<RegistryLogin> {
  const client = createEcrPublicClient(aws);
  try {
    let out;
    try {
      out = await client.send(new GetPublicAuthorizationTokenCommand({}), { abortSignal: signal });
    } catch (err) {
      throw ecrError(err, "ECR Public GetAuthorizationToken");
    }
    const data = out.authorizationData;
    if (!data?.authorizationToken) throw new EcrxError("AUTH", "GetAuthorizationToken returned no token");
    return {
      registry: PUBLIC_HOST,
      hosts: [PUBLIC_HOST],
      username: "AWS",
      password: decodePassword(data.authorizationToken),
      expiresAt: data.expiresAt,
    };
  } finally {
    client.destroy();
  }
}

function parseRegistryArgument(text: string): EcrRegistry {
  const target = parseEcrRegistry(text);
  if (target === undefined) {
    throw new EcrxError("USAGE", `${text} is not an ECR registry host`, {
      hint: "write <account>.dkr.ecr.<region>.amazonaws.com, or public.ecr.aws",
    });
  }
  return target;
}

/** The token is base64 of `AWS:<password>`; only the password goes to docker's --password-stdin. */
function decodePassword(token: string): string {
  const decoded = Buffer.from(token, "base64").toString("utf8");
  if (!decoded.startsWith("AWS:")) {
    // Never put the token itself in the message.
    throw new EcrxError("AUTH", "GetAuthorizationToken returned a token that is not AWS:<password>");
  }
  return decoded.slice("AWS:".length);
}

/**
 * The registry of a token asked without a registry: ECR's proxyEndpoint. When the API is a local
 * server on loopback (`ecrx serve`), its registry lives on the same port, under the `.localhost`
 * host name ecrx references use.
 */
function defaultRegistryHost(proxyEndpoint: string | undefined, aws: AwsOptions): string {
  if (!proxyEndpoint) throw new EcrxError("AUTH", "GetAuthorizationToken returned no proxyEndpoint");
  const host = new URL(proxyEndpoint).host;
  const endpointUrl = aws.endpointUrl ?? process.env.AWS_ENDPOINT_URL_ECR ?? process.env.AWS_ENDPOINT_URL;
  const endpoint = endpointUrl === undefined || !URL.canParse(endpointUrl) ? undefined : new URL(endpointUrl);
  const parsed = parseEcrRegistry(host);
  if (endpoint && isLoopbackHost(endpoint.hostname) && parsed !== undefined) {
    const port = endpoint.port || (endpoint.protocol === "https:" ? "443" : "80");
    return `${parsed.registryId}.dkr.ecr.${parsed.region}.localhost:${port}`;
  }
  return host;
}

function hostsOf(registry: string): string[] {
  const parsed = parseEcrRegistry(registry);
  if (parsed?.host.endsWith(".localhost")) return [registry, `127.0.0.1:${parsed.port ?? 80}`];
  return [registry];
}

export interface DockerConfigWriteOptions {
  /** The config file; default `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`. */
  path?: string;
  env?: NodeJS.ProcessEnv;
}

/**
 * Writes `auths` entries for every host of the login into docker's config.json, as `docker login`
 * would, keeping everything else in the file. The file is replaced atomically (a reader sees the
 * old or the new file, never half of one) and is readable by its owner only (0600), since it holds
 * a password. Returns the file written.
 */
export async function writeDockerLogin(
  login: RegistryLogin,
  options: DockerConfigWriteOptions = {},
): Promise<string> {
  const path = dockerConfigPath({
    ...(options.path === undefined ? {} : { path: options.path }),
    ...(options.env === undefined ? {} : { env: options.env }),
  });
  let config: Record<string, unknown> = {};
  try {
    const parsed: unknown = JSON.parse(await readFile(path, "utf8"));
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
      throw new Error("not a JSON object");
    }
    config = parsed as Record<string, unknown>;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") {
      throw new EcrxError("INVALID_INPUT", `cannot update docker config ${path}: ${(err as Error).message}`, {
        hint: "fix or move the file; ecrx does not overwrite a file it cannot read",
      });
    }
  }
  const auths =
    typeof config.auths === "object" && config.auths !== null && !Array.isArray(config.auths)
      ? { ...(config.auths as Record<string, unknown>) }
      : {};
  const auth = Buffer.from(`${login.username}:${login.password}`, "utf8").toString("base64");
  for (const host of login.hosts) auths[host] = { auth };
  config.auths = auths;

  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const temporary = temporarySibling(path);
  try {
    await writeFile(temporary, `${JSON.stringify(config, null, "\t")}\n`, { mode: 0o600 });
    // The mode of writeFile passes through the umask; make sure no one else can read the password.
    await chmod(temporary, 0o600);
    await rename(temporary, path);
  } catch (err) {
    await rm(temporary, { force: true });
    throw new EcrxError("INVALID_INPUT", `cannot write docker config ${path}: ${(err as Error).message}`);
  }
  return path;
}
