/**
 * The Debian `docker-registry` (distribution 2.8) started for a test: loopback, a free port, its
 * own config and filesystem storage in a temporary folder; optionally htpasswd (bcrypt through
 * `htpasswd -Bbn` of apache2-utils) or token authentication (startTokenService, a JWT issuer
 * whose certificate `openssl` makes).
 *
 *   const registry = await startDockerRegistry({ users: { alice: "secret" } });
 *   registry.host  // "127.0.0.1:40123"
 *   await registry.stop();
 */
import { execFile, execFileSync, spawn, type ChildProcess } from "node:child_process";
import { createPrivateKey, randomUUID, sign, X509Certificate } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer as createHttpServer } from "node:http";
import type { AddressInfo } from "node:net";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { request } from "undici";

export const DOCKER_REGISTRY = "/usr/bin/docker-registry";
const run = promisify(execFile);

export interface TokenAuthConfig {
  /** The token service's URL, as the registry names it in its challenges. */
  realm: string;
  service: string;
  issuer: string;
  /** PEM certificates whose keys may sign tokens. */
  rootCertBundle: string;
}

export interface DockerRegistryOptions {
  /** htpasswd users (name -> password); none: no authentication. */
  users?: Record<string, string>;
  /** Token authentication instead of htpasswd. */
  token?: TokenAuthConfig;
}

export interface RunningDockerRegistry {
  /** `127.0.0.1:<port>` */
  host: string;
  port: number;
  url: string;
  /** The storage root, to look at what the registry holds. */
  storage: string;
  /** What the registry logged so far, for failure messages. */
  logs(): string;
  stop(): Promise<void>;
}

export function dockerRegistryInstalled(): boolean {
  return existsSync(DOCKER_REGISTRY);
}

/** Whether `htpasswd` (Debian apache2-utils) runs; it has no --version to ask. */
export function htpasswdInstalled(): boolean {
  try {
    execFileSync("htpasswd", ["-Bbn", "user", "password"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** A port nothing listens on right now. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (address === null || typeof address === "string") throw new Error("no port");
  return address.port;
}

/** One bcrypt htpasswd line, as `htpasswd -Bbn user password` writes it. */
export async function htpasswdLine(user: string, password: string): Promise<string> {
  const { stdout } = await run("htpasswd", ["-Bbn", user, password]);
  return stdout.trim();
}

export async function startDockerRegistry(
  options: DockerRegistryOptions = {},
  attempts = 3,
): Promise<RunningDockerRegistry> {
  // freePort's port may be taken again before the registry binds it (tests of other files start
  // servers at the same time): each registry answers with its own header, so that readiness is
  // not declared on another server's answer, and a lost port is retried with a new one.
  const identity = randomUUID();
  const dir = await mkdtemp(join(tmpdir(), "ecrx-docker-registry-"));
  const storage = join(dir, "data");
  const port = await freePort();
  let auth = "";
  if (options.users !== undefined) {
    const lines = await Promise.all(Object.entries(options.users).map(([u, p]) => htpasswdLine(u, p)));
    await writeFile(join(dir, "htpasswd"), `${lines.join("\n")}\n`);
    auth = `auth:\n  htpasswd:\n    realm: ecrx-test\n    path: ${join(dir, "htpasswd")}\n`;
  } else if (options.token !== undefined) {
    const t = options.token;
    auth =
      `auth:\n  token:\n    realm: ${t.realm}\n    service: ${t.service}\n    issuer: ${t.issuer}\n` +
      `    rootcertbundle: ${t.rootCertBundle}\n`;
  }
  const config = join(dir, "config.yml");
  await writeFile(
    config,
    `version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: ${storage}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:${port}
  secret: ecrx-test-secret
  headers:
    X-Ecrx-Test-Registry: [${identity}]
${auth}`,
  );
  let output = "";
  const child: ChildProcess = spawn(DOCKER_REGISTRY, ["serve", config], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout!.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (output += d.toString()));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode === null) {
      child.kill("SIGTERM");
      await exited;
    }
    await rm(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) {
      await stop();
      if (attempts > 1 && /address already in use/.test(output)) {
        return startDockerRegistry(options, attempts - 1);
      }
      throw new Error(`docker-registry exited: ${output}`);
    }
    try {
      const res = await request(`${url}/v2/`);
      await res.body.dump();
      if (res.headers["x-ecrx-test-registry"] !== identity) throw new Error("another server answered");
      break;
    } catch {
      if (Date.now() > deadline) {
        await stop();
        throw new Error(`docker-registry did not answer on ${url}: ${output}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  return { host: `127.0.0.1:${port}`, port, url, storage, logs: () => output, stop };
}

export interface TokenService {
  /** What startDockerRegistry needs to trust this service's tokens. */
  config: TokenAuthConfig;
  /** Token requests received: who asked (undefined: anonymous) and for which scopes. */
  requests: { user: string | undefined; scopes: string[] }[];
  stop(): Promise<void>;
}

export interface TokenServiceOptions {
  /** Users that may authenticate (name -> password); they get every action they ask for. */
  users: Record<string, string>;
  /** Lifetime of tokens in seconds. Default 300. */
  expiresIn?: number;
}

/**
 * A token service for docker-registry's token auth (distribution's JWT spec): ES256 tokens whose
 * `x5c` header carries a self-signed certificate (made with `openssl`) that the registry trusts.
 * Anonymous callers get pull only; known users get what they ask for; a wrong password is 401.
 */
export async function startTokenService(options: TokenServiceOptions): Promise<TokenService> {
  const dir = await mkdtemp(join(tmpdir(), "ecrx-token-service-"));
  const keyPath = join(dir, "key.pem");
  const certPath = join(dir, "cert.pem");
  await run("openssl", [
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-keyout",
    keyPath,
    "-out",
    certPath,
    "-days",
    "2",
    "-subj",
    "/CN=ecrx-test-token-issuer",
  ]);
  const key = createPrivateKey(await readFile(keyPath));
  const certificate = new X509Certificate(await readFile(certPath));
  const x5c = certificate.raw.toString("base64");
  const service = "ecrx-test-registry";
  const issuer = "ecrx-test-issuer";
  const requests: TokenService["requests"] = [];
  const b64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");

  const server = createHttpServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    const scopes = url.searchParams.getAll("scope");
    let user: string | undefined;
    const header = req.headers.authorization;
    if (header?.startsWith("Basic ")) {
      const decoded = Buffer.from(header.slice(6), "base64").toString();
      const name = decoded.slice(0, decoded.indexOf(":"));
      if (options.users[name] !== decoded.slice(decoded.indexOf(":") + 1)) {
        res.writeHead(401, { "content-type": "application/json" }).end('{"details":"wrong password"}');
        return;
      }
      user = name;
    }
    requests.push({ user, scopes });
    const access = scopes.map((scope) => {
      const [type, name, actions] = scope.split(":") as [string, string, string];
      const asked = actions.split(",");
      return { type, name, actions: user === undefined ? asked.filter((a) => a === "pull") : asked };
    });
    const now = Math.floor(Date.now() / 1000);
    const expiresIn = options.expiresIn ?? 300;
    const claims = {
      iss: issuer,
      sub: user ?? "",
      aud: service,
      exp: now + expiresIn,
      nbf: now - 10,
      iat: now,
      jti: randomUUID(),
      access,
    };
    const signingInput = `${b64url({ alg: "ES256", typ: "JWT", x5c: [x5c] })}.${b64url(claims)}`;
    const signature = sign("sha256", Buffer.from(signingInput), { key, dsaEncoding: "ieee-p1363" });
    const token = `${signingInput}.${signature.toString("base64url")}`;
    res
      .writeHead(200, { "content-type": "application/json" })
      .end(JSON.stringify({ token, expires_in: expiresIn, issued_at: new Date(now * 1000).toISOString() }));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    config: { realm: `http://127.0.0.1:${port}/token`, service, issuer, rootCertBundle: certPath },
    requests,
    stop: async () => {
      await new Promise((resolve) => server.close(resolve));
      await rm(dir, { recursive: true, force: true });
    },
  };
}
