/**
 * HTTP to one repository of one registry, over undici: scheme resolution (TLS with verification;
 * plain http only on loopback or when the caller says `insecure`), authentication (auth.ts),
 * retries with full-jitter backoff that honour Retry-After, manual redirects that never carry our
 * Authorization to another host, and OCI error bodies turned into EcrxErrors (errors.ts).
 */
import { lookup as dnsLookup, type LookupAddress } from "node:dns";
import type { IncomingHttpHeaders } from "node:http";
import type { Readable } from "node:stream";
import { Agent, request, type Dispatcher } from "undici";
import { EcrxError, isEcrxError } from "../../errors.js";
import { fullJitterDelay } from "../aws/retry.js";
import { Authenticator, type CredentialSource } from "./auth.js";
import { registryError } from "./errors.js";

/** 127.0.0.0/8, ::1, localhost and *.localhost: the only hosts spoken to in plain http by default. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[(.*)\]$/, "$1").toLowerCase();
  if (h === "localhost" || h.endsWith(".localhost")) return true;
  if (h === "::1" || h === "0:0:0:0:0:0:0:1") return true;
  const v4 = h.replace(/^::ffff:/, "");
  const match = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(v4);
  return match !== null && match[1] === "127" && match.slice(2).every((p) => Number(p) <= 255);
}

/**
 * A redirect `Location` (or an upload's) against the URL it came with: absolute URLs as they are,
 * relative ones (`/v2/...`, `?x`, `uploads/id`) resolved as a browser would.
 */
export function resolveLocation(location: string, base: URL | string): URL {
  return new URL(location, base);
}

export type Method = "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE";

export interface RegistryRequest {
  method: Method;
  /** A path under the registry (`/v2/...`) or an absolute URL (an upload's Location). */
  url: string | URL;
  headers?: Record<string, string>;
  /** No body or a Buffer can be sent again (retry, fresh token); a stream is sent once. */
  body?: Buffer | Readable;
  /** Statuses that mean success; the others are errors. */
  expect: number[];
  /** Names the action in errors, e.g. "HEAD blob sha256:… in repo". */
  what: string;
  /** Follow 3xx (GET and HEAD only); targets on other hosts get no Authorization. */
  followRedirects?: boolean;
  /** One attempt: no retry on throttling, 5xx or socket errors (best-effort calls). */
  once?: boolean;
}

export interface RegistryResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Dispatcher.ResponseData["body"];
  /** Where the answer came from, after redirects. */
  url: URL;
}

export interface RegistryClientOptions {
  /** `host[:port]` of the registry API. */
  registry: string;
  repository: string;
  /** `pull` for a source, `pull,push` for a destination. */
  actions: "pull" | "pull,push";
  /** Scopes beyond this repository's, e.g. `repository:other:pull` to mount from it. */
  extraScopes?: string[];
  credentials: CredentialSource;
  /** Allow plain http and unverified TLS to any host. Default false. */
  insecure?: boolean;
  signal?: AbortSignal | undefined;
  /** Attempts per request (the first included) on throttling, 5xx and socket errors. Default 6. */
  attempts?: number;
  /** Backoff base for the full-jitter delay. Default 250 ms. */
  baseDelayMs?: number;
  /** Upper bound of one delay, Retry-After included. Default 20 s. */
  maxDelayMs?: number;
  /** Injected in tests. */
  now?: () => number;
  random?: () => number;
}

/** Redirects followed for one request before it is called a loop. */
export const MAX_REDIRECTS = 10;
const ERROR_BODY_LIMIT = 64 * 1024;
const REDIRECTS = new Set([301, 302, 303, 307, 308]);

export class RegistryClient {
  readonly registry: string;
  readonly repository: string;
  readonly auth: Authenticator;
  private readonly host: string;
  private readonly dispatcher: Agent;
  private readonly plainHttpAllowed: boolean;
  private origin: string | undefined;
  private pinged: Promise<void> | undefined;
  private readonly attempts: number;
  private readonly random: () => number;

  constructor(private readonly options: RegistryClientOptions) {
    this.registry = options.registry;
    this.repository = options.repository;
    this.host = new URL(`http://${options.registry}`).hostname;
    this.plainHttpAllowed = options.insecure === true || isLoopbackHost(this.host);
    this.attempts = options.attempts ?? 6;
    this.random = options.random ?? Math.random;
    this.dispatcher = new Agent({
      connections: 32,
      keepAliveTimeout: 30_000,
      headersTimeout: 60_000,
      bodyTimeout: 120_000,
      connect: { rejectUnauthorized: options.insecure !== true, lookup: loopbackLookup },
    });
    this.auth = new Authenticator({
      credentials: options.credentials,
      scopes: [`repository:${options.repository}:${options.actions}`, ...(options.extraScopes ?? [])],
      host: options.registry,
      fetchToken: (url, init) => this.fetchToken(url, init),
      ...(options.now === undefined ? {} : { now: options.now }),
    });
  }

  /** `/v2/<repository>/<rest>` */
  path(rest: string): string {
    return `/v2/${this.repository}/${rest}`;
  }

  /**
   * Finds the scheme and the authentication the registry wants (`GET /v2/`), once: https first;
   * where plain http is allowed, http when the TLS handshake fails for another reason than the
   * certificate (a plain http server answers a ClientHello with garbage).
   */
  ready(): Promise<void> {
    this.pinged ??= this.ping();
    return this.pinged;
  }

  private async ping(): Promise<void> {
    const schemes = this.plainHttpAllowed ? ["https", "http"] : ["https"];
    for (const scheme of schemes) {
      const origin = `${scheme}://${this.registry}`;
      try {
        const res = await this.send(
          {
            method: "GET",
            url: new URL("/v2/", origin),
            expect: [200, 401],
            what: `GET ${origin}/v2/`,
            followRedirects: true,
          },
          // Probing https where http may follow: one attempt, no backoff.
          { attempts: scheme === "https" && schemes.length > 1 ? 1 : this.attempts, authorize: false },
        );
        await res.body.dump();
        this.origin = origin;
        if (res.status === 401) this.auth.setChallenges(res.headers["www-authenticate"]);
        return;
      } catch (err) {
        const connectionLevel = isEcrxError(err) && err.cause !== undefined && !isCertificateError(err.cause);
        if (scheme === "https" && schemes.length > 1 && connectionLevel) {
          continue;
        }
        throw err;
      }
    }
  }

  /** Sends a request to the registry (after `ready`), with retries, redirects and authentication. */
  async request(req: RegistryRequest): Promise<RegistryResponse> {
    await this.ready();
    return this.send(req, { attempts: req.once ? 1 : this.attempts, authorize: true });
  }

  private async send(
    req: RegistryRequest,
    policy: { attempts: number; authorize: boolean },
  ): Promise<RegistryResponse> {
    const replayable = req.body === undefined || Buffer.isBuffer(req.body);
    let url = typeof req.url === "string" ? this.resolve(req.url) : req.url;
    const firstOrigin = url.origin;
    let redirects = 0;
    let attempt = 0;
    let refreshed = false;
    let bodyError: Error | undefined;
    if (req.body !== undefined && !Buffer.isBuffer(req.body)) {
      req.body.once("error", (err: Error) => (bodyError ??= err));
    }
    for (;;) {
      this.options.signal?.throwIfAborted();
      this.checkScheme(url, req.what);
      const headers: Record<string, string> = { ...req.headers };
      // Credentials given with the request (Basic to a token service) stay with its host.
      if (url.origin !== firstOrigin) delete headers.authorization;
      const sameOrigin = this.origin !== undefined && url.origin === this.origin;
      if (policy.authorize && sameOrigin) {
        const authorization = await this.auth.authorization();
        if (authorization !== undefined) headers.authorization = authorization;
      }
      let res: Dispatcher.ResponseData;
      try {
        res = await request(url, {
          method: req.method,
          headers,
          ...(req.body === undefined ? {} : { body: req.body }),
          dispatcher: this.dispatcher,
          ...(this.options.signal === undefined ? {} : { signal: this.options.signal }),
        });
      } catch (err) {
        // The body's own failure (a digest mismatch upstream, a source read error) is the story.
        if (bodyError !== undefined) throw bodyError;
        if (this.options.signal?.aborted) throw new EcrxError("INTERRUPTED", "interrupted", { cause: err });
        if (replayable && !isCertificateError(err) && ++attempt < policy.attempts) {
          await this.sleep(this.backoff(attempt, undefined));
          continue;
        }
        throw this.connectionError(req.what, url, err);
      }
      const status = res.statusCode;
      if (status === 401 && policy.authorize && sameOrigin) {
        this.auth.refused(res.headers["www-authenticate"]);
        if (!replayable) {
          // The body is spent: a token that lapsed during the upload is refreshed now, and the
          // engine sends the blob again (it retries NETWORK errors).
          await res.body.dump();
          throw new EcrxError("NETWORK", `${req.what}: the registry refused our token midway; sending again`);
        }
        if (!refreshed) {
          refreshed = true;
          await res.body.dump();
          continue;
        }
      }
      if (REDIRECTS.has(status) && req.followRedirects) {
        await res.body.dump();
        const location = header(res.headers, "location");
        if (location === undefined)
          throw new EcrxError("NETWORK", `${req.what}: HTTP ${status} without a Location`);
        if (++redirects > MAX_REDIRECTS) {
          throw new EcrxError(
            "NETWORK",
            `${req.what}: more than ${MAX_REDIRECTS} redirects (a redirect loop)`,
          );
        }
        url = resolveLocation(location, url);
        continue;
      }
      if ((status === 429 || status >= 500) && replayable && ++attempt < policy.attempts) {
        await res.body.dump();
        await this.sleep(this.backoff(attempt, header(res.headers, "retry-after")));
        continue;
      }
      if (req.expect.includes(status)) return { status, headers: res.headers, body: res.body, url };
      const text = await readText(res.body, ERROR_BODY_LIMIT);
      throw registryError(
        { what: req.what, host: this.registry, status, body: req.method === "HEAD" ? "" : text },
        (t) => this.redact(t),
      );
    }
  }

  private resolve(path: string): URL {
    if (this.origin === undefined) throw new EcrxError("INTERNAL", "registry request before ready()");
    return new URL(path, this.origin);
  }

  /** Throws unless `url` is https, or plain http to loopback (or anywhere when insecure). */
  checkScheme(url: URL, what: string): void {
    if (url.protocol === "https:") return;
    if (url.protocol === "http:" && (this.options.insecure === true || isLoopbackHost(url.hostname))) return;
    throw new EcrxError(
      "NETWORK",
      `${what}: refusing ${url.protocol}//${url.host} (plain http to a host that is not loopback)`,
      {
        hint: "registries are reached over TLS; pass insecure only for a registry you trust on your network",
      },
    );
  }

  private backoff(attempt: number, retryAfter: string | undefined): number {
    const max = this.options.maxDelayMs ?? 20_000;
    const jitter = fullJitterDelay(attempt - 1, this.options.baseDelayMs ?? 250, max, this.random);
    const asked = parseRetryAfter(retryAfter, this.options.now?.() ?? Date.now());
    return asked === undefined ? jitter : Math.max(jitter, Math.min(asked, max));
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const signal = this.options.signal;
      const timer = setTimeout(() => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      }, ms);
      const onAbort = () => {
        clearTimeout(timer);
        reject(new EcrxError("INTERRUPTED", "interrupted"));
      };
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  private connectionError(what: string, url: URL, err: unknown): EcrxError {
    if (isEcrxError(err)) return err;
    const e = err as NodeJS.ErrnoException;
    const code = e.code ?? e.name ?? "Error";
    if (isCertificateError(err)) {
      return new EcrxError("NETWORK", `${what}: TLS certificate of ${url.host} not trusted (${code})`, {
        cause: err,
        hint: "add its CA to NODE_EXTRA_CA_CERTS, or pass insecure for a registry you trust",
      });
    }
    return new EcrxError(
      "NETWORK",
      this.redact(`${what}: ${code}: ${e.message ?? String(err)}`).split("\n")[0]!,
      {
        cause: err,
      },
    );
  }

  /** Text with credentials, tokens and URL query strings (upload state, presigned URLs) removed. */
  redact(text: string): string {
    return this.auth.redact(text).replace(/(https?:\/\/[^\s?"']+)\?[^\s"']*/g, "$1?…");
  }

  private async fetchToken(
    url: URL,
    init: { method: "GET" | "POST"; headers: Record<string, string>; body?: string },
  ): Promise<{ status: number; body: string }> {
    const res = await this.send(
      {
        method: init.method,
        url,
        headers: init.headers,
        ...(init.body === undefined ? {} : { body: Buffer.from(init.body) }),
        expect: [200, 401, 403, 404, 400],
        what: `token request to ${url.host}`,
        followRedirects: true,
      },
      { attempts: this.attempts, authorize: false },
    );
    return { status: res.status, body: await readText(res.body, 1024 * 1024) };
  }

  async close(): Promise<void> {
    this.options.credentials.close?.();
    await this.dispatcher.close();
  }
}

export function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** Retry-After as milliseconds: delta-seconds or an HTTP date. */
export function parseRetryAfter(value: string | undefined, now: number): number | undefined {
  if (value === undefined) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const date = Date.parse(value);
  return Number.isFinite(date) ? Math.max(0, date - now) : undefined;
}

/** Up to `limit` characters of a body; the rest is discarded. */
async function readText(body: Readable, limit: number): Promise<string> {
  let text = "";
  try {
    for await (const chunk of body) {
      text += (chunk as Buffer).toString("utf8");
      if (text.length >= limit) break;
    }
  } catch {
    // A body that breaks off is reported by its status; what arrived is enough.
  }
  body.destroy();
  return text.slice(0, limit);
}

const CERTIFICATE_CODES = new Set([
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "ERR_TLS_CERT_ALTNAME_INVALID",
]);

function isCertificateError(err: unknown): boolean {
  const code = (err as { code?: unknown } | undefined)?.code;
  return typeof code === "string" && CERTIFICATE_CODES.has(code);
}

type LookupCallback = (
  err: NodeJS.ErrnoException | null,
  address: string | LookupAddress[],
  family?: number,
) => void;

/**
 * `*.localhost` names (the local ECR server's registry hosts) reach 127.0.0.1 without asking DNS,
 * which does not resolve them everywhere; the Host header keeps the name.
 */
function loopbackLookup(hostname: string, options: { all?: boolean }, callback: LookupCallback): void {
  if (hostname === "localhost" || hostname.endsWith(".localhost")) {
    if (options.all) callback(null, [{ address: "127.0.0.1", family: 4 }]);
    else callback(null, "127.0.0.1", 4);
    return;
  }
  dnsLookup(hostname, options as never, callback as never);
}
