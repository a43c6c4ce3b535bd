/**
 * The emulator's HTTP front (`ecrx serve`): one node:http server on one port that speaks
 * - the ECR API: `POST /`, AWS JSON 1.1, `X-Amz-Target: AmazonEC2ContainerRegistry_V20150921.<Op>`,
 *   SigV4 for the service `ecr` in the configured region;
 * - the ECR Public API on the same port: `X-Amz-Target: SpencerFrontendService.<Op>`, SigV4 for
 *   `ecr-public` in us-east-1 (the only region of its API);
 * - the presigned layer download URLs (`GET`/`HEAD /blobs/sha256/<hex>?X-Amz-...`);
 * - the registry (OCI distribution v2) API under `/v2/` over the same store (registry-api.ts).
 * It is strict like AWS: framing, authentication, rates and errors answer as the real service does,
 * so that a client mistake that would fail against AWS fails here too. A refused request changes
 * nothing. With `network` it also behaves like a distant one (network.ts): round trips, a bandwidth
 * cap per connection, API latency.
 *
 * Image references. Clients name the local registry
 * `<account>.dkr.ecr.<region>.localhost:<port>` (`registryHost`), e.g.
 * `000000000000.dkr.ecr.us-east-1.localhost:5000/app:1.0`. The name has ECR's shape, so account
 * and region come from it as for `<account>.dkr.ecr.<region>.amazonaws.com`; the `.localhost` suffix
 * (reserved for loopback by RFC 6761, but not resolved by every resolver) tells the client to use
 * plain HTTP to 127.0.0.1:<port>, or the endpoint in AWS_ENDPOINT_URL_ECR when it is set, for the
 * ECR API. ECR Public repositories keep their `public.ecr.aws/<alias>/<repo>` names; the client
 * reaches this server for them through AWS_ENDPOINT_URL_ECR_PUBLIC.
 */
import { createHash, randomBytes, randomInt, randomUUID, type Hash } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { EcrxError } from "../errors.js";
import {
  ApiError,
  type OperationInput,
  type OperationTable,
  type RequestContext,
  type ServiceName,
} from "./api.js";
import {
  DEFAULT_DOWNLOAD_URL_TTL_SECONDS,
  DOWNLOAD_PATH_PREFIX,
  DownloadUrlSigner,
  MAX_DOWNLOAD_URL_TTL_SECONDS,
  sendS3Error,
  serveDownload,
} from "./download-urls.js";
import { createEcrOperations } from "./ecr-api.js";
import { createEcrPublicOperations } from "./ecr-public-api.js";
import { FaultInjector, parseFaultSpec, type FaultDecision } from "./faults.js";
import {
  isShaped,
  resolveNetwork,
  shapeConnections,
  shapesConnections,
  type NetworkShape,
  type ResolvedNetworkShape,
} from "./network.js";
import { createAuthorizationToken, AUTHORIZATION_TOKEN_LIFETIME_SECONDS } from "./auth-tokens.js";
import { RateLimiter, type RatesMode } from "./rates.js";
import { RegistryApi } from "./registry-api.js";
import { BufferPool } from "../transfer/buffer-pool.js";
import { sha256HexOffThread } from "../util/sha256.js";
import { verifySignature } from "./sigv4.js";
import { Store } from "./store.js";

export interface ServeOptions {
  /** Interface to listen on; default 127.0.0.1. */
  host?: string;
  /** Default 5000; 0 picks a free port. */
  port?: number;
  /** Where the data lives; a temporary folder, removed on close, when omitted. */
  dataDir?: string;
  /** Region of the ECR API; default us-east-1. ECR Public is always us-east-1. */
  region?: string;
  /** The account of the configured credentials (12 digits); default 000000000000. */
  accountId?: string;
  /** The only credentials accepted; default test / test. */
  accessKeyId?: string;
  secretAccessKey?: string;
  /** `aws` (default) applies ECR's default request rates; `off` disables them. */
  rates?: RatesMode;
  /** Fault spec (see faults.ts), e.g. "UploadLayerPart:lost=0.05,*:latency=20". */
  faults?: string;
  /** Seed of the fault draws; random when omitted (see RunningServer.faultSeed). */
  faultSeed?: number;
  /** Lifetime of download URLs; default 3,600 s, at most a week. */
  downloadUrlTtlSeconds?: number;
  /** The clock of signatures, URLs and timestamps; tests move it. Rates use real time. */
  now?: () => Date;
  /**
   * Cross-repository blob mount on the registry API (ECR's BLOB_MOUNTING account setting); default
   * false, as in AWS: `POST .../blobs/uploads/?mount=&from=` then starts a plain upload.
   */
  registryMount?: boolean;
  /**
   * A network between clients and the server (network.ts): `rttMs`, `connBandwidth` (bytes per
   * second per connection, each way) and `apiLatencyMs`; none by default. `networkProfile(name)`
   * gives a profile's shape, e.g. `serve({ network: networkProfile("cross-region") })`.
   */
  network?: NetworkShape;
}

export interface RunningServer {
  /** `http://127.0.0.1:PORT`: the endpoint of both APIs. */
  url: string;
  host: string;
  port: number;
  dataDir: string;
  region: string;
  accountId: string;
  /** Host name for image references: `<account>.dkr.ecr.<region>.localhost:<port>`. */
  registryHost: string;
  /** The registry alias of the ECR Public registry (`public.ecr.aws/<alias>/<repo>`). */
  publicRegistryAlias: string;
  /** The seed of the fault draws, to repeat a run. */
  faultSeed: number;
  /** The network the server emulates; undefined when there is none (loopback speed). */
  network?: ResolvedNetworkShape;
  /** AWS_ENDPOINT_URL_ECR, AWS_ENDPOINT_URL_ECR_PUBLIC, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION. */
  env: Record<string, string>;
  /**
   * A registry password as GetAuthorizationToken gives it (valid 12 hours from the server's clock),
   * for `Authorization: Basic base64("AWS:" + password)` or `--creds AWS:<password>`.
   */
  registryPassword(): string;
  close(): Promise<void>;
}

/** What the HTTP front serves, for callers that bring their own operations (tests). */
export interface FrontOptions extends Omit<ServeOptions, "dataDir"> {
  operations: Readonly<Record<ServiceName, OperationTable>>;
  /** The file of a stored blob, for download URLs; undefined when there is none. */
  blobPath(digest: string): string | undefined;
  publicRegistryAlias?: string;
  /** The store the registry v2 API serves; without one, `/v2/` answers 404. */
  store?: Store;
}

export type RunningFront = Omit<RunningServer, "dataDir" | "registryPassword">;

export const DEFAULT_PORT = 5000;
export const DEFAULT_REGION = "us-east-1";
export const DEFAULT_ACCOUNT_ID = "000000000000";
export const DEFAULT_PUBLIC_REGISTRY_ALIAS = "ecrx";
/** ECR Public's API lives in us-east-1 only (ecr-spec.md section 6). */
export const ECR_PUBLIC_REGION = "us-east-1";

/**
 * The largest legal request is UploadLayerPart with the model's 20,971,520-byte part: 27,962,028
 * base64 characters plus a little JSON (a 4 MiB PutImage manifest stays under 26 MB even with
 * every character escaped). Anything beyond this bound is refused unread.
 */
export const MAX_REQUEST_BODY_BYTES = 28 * 1024 * 1024;

/** Buffers this large come from (and go back to) the front's pool. */
const POOLED_BUFFER_MIN = 1024 * 1024;

const TARGET_PREFIXES: Readonly<Record<string, ServiceName>> = {
  AmazonEC2ContainerRegistry_V20150921: "ecr",
  SpencerFrontendService: "ecr-public",
};
const JSON_CONTENT_TYPE = "application/x-amz-json-1.1";
const DIGEST = /^sha256:[a-f0-9]{64}$/;

/** Timeouts that keep slow or stalled clients from holding the server. */
const HEADERS_TIMEOUT_MS = 20_000;
/** The whole request, body included: 28 MB at 250 KB/s. */
const REQUEST_TIMEOUT_MS = 120_000;
/** A connection with no traffic in either direction for this long is destroyed. */
const IDLE_SOCKET_TIMEOUT_MS = 60_000;
/** Longer than the SDKs' idle sockets live, so that a reused socket is rarely closed under them. */
const KEEP_ALIVE_TIMEOUT_MS = 30_000;
/** close() lets requests in flight finish for this long, then cuts them. */
const CLOSE_GRACE_MS = 2_000;

interface ResolvedOptions {
  host: string;
  port: number;
  region: string;
  accountId: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
  rates: RatesMode;
  faults: FaultInjector;
  faultSeed: number;
  downloadUrlTtlSeconds: number;
  now: () => Date;
  publicRegistryAlias: string;
  registryMount: boolean;
  network: ResolvedNetworkShape | undefined;
}

function usage(message: string, hint?: string): EcrxError {
  return new EcrxError("USAGE", message, hint === undefined ? {} : { hint });
}

function resolveOptions(
  options: Omit<ServeOptions, "dataDir"> & { publicRegistryAlias?: string },
): ResolvedOptions {
  const port = options.port ?? DEFAULT_PORT;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw usage(`invalid port ${String(port)}: expected 0..65535 (0 picks a free port)`);
  }
  const region = options.region ?? DEFAULT_REGION;
  if (!/^[a-z]{2}(-[a-z]+)+-\d+$/.test(region)) throw usage(`invalid region "${region}", e.g. us-east-1`);
  const accountId = options.accountId ?? DEFAULT_ACCOUNT_ID;
  if (!/^\d{12}$/.test(accountId)) throw usage(`invalid account id "${accountId}": expected 12 digits`);
  const accessKeyId = options.accessKeyId ?? "test";
  const secretAccessKey = options.secretAccessKey ?? "test";
  if (accessKeyId === "" || /[\s/]/.test(accessKeyId)) {
    throw usage("the access key id must be non-empty, without spaces or slashes");
  }
  if (secretAccessKey === "") throw usage("the secret access key must not be empty");
  const rates = options.rates ?? "aws";
  if (rates !== "aws" && rates !== "off")
    throw usage(`invalid rates "${String(rates)}": expected aws or off`);
  const faultSeed = options.faultSeed ?? randomInt(2 ** 31);
  if (!Number.isSafeInteger(faultSeed) || faultSeed < 0) {
    throw usage(`invalid fault seed ${String(faultSeed)}: expected a non-negative integer`);
  }
  const ttl = options.downloadUrlTtlSeconds ?? DEFAULT_DOWNLOAD_URL_TTL_SECONDS;
  if (!Number.isInteger(ttl) || ttl < 1 || ttl > MAX_DOWNLOAD_URL_TTL_SECONDS) {
    throw usage(
      `invalid download URL lifetime ${String(ttl)}: expected 1..${MAX_DOWNLOAD_URL_TTL_SECONDS} seconds`,
    );
  }
  const host = options.host ?? "127.0.0.1";
  if (host === "") throw usage("the host must not be empty");
  const network = options.network === undefined ? undefined : resolveNetwork(undefined, options.network);
  return {
    host,
    port,
    region,
    accountId,
    credentials: { accessKeyId, secretAccessKey },
    rates,
    faults: new FaultInjector(parseFaultSpec(options.faults ?? ""), faultSeed),
    faultSeed,
    downloadUrlTtlSeconds: ttl,
    now: options.now ?? (() => new Date()),
    publicRegistryAlias: options.publicRegistryAlias ?? DEFAULT_PUBLIC_REGISTRY_ALIAS,
    registryMount: options.registryMount ?? false,
    network: isShaped(network) ? network : undefined,
  };
}

/** The host clients should connect to when the server listens on `host`. */
function connectHost(host: string): string {
  if (host === "0.0.0.0") return "127.0.0.1";
  if (host === "::") return "[::1]";
  return host.includes(":") ? `[${host}]` : host;
}

class RequestTooLarge extends Error {}

/** Reads the body up to `limit` bytes, into `hash` too if given; one copy of the bytes is kept. */
function readBody(
  req: IncomingMessage,
  limit: number,
  allocate: (size: number) => Buffer,
  hash?: Hash,
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = req.headers["content-length"];
    // node's parser has already refused a malformed Content-Length; the check keeps allocUnsafe safe.
    const declaredLength = declared !== undefined && /^\d+$/.test(declared) ? Number(declared) : undefined;
    if (declaredLength !== undefined && declaredLength > limit) {
      reject(new RequestTooLarge());
      return;
    }
    // With a declared length the chunks are copied into place as they come, never concatenated.
    const preallocated = declaredLength === undefined ? undefined : allocate(declaredLength);
    const chunks: Buffer[] = [];
    let received = 0;
    const cleanup = (): void => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("close", onClose);
      req.off("error", onError);
    };
    const onData = (chunk: Buffer): void => {
      if (received + chunk.length > limit) {
        cleanup();
        req.pause();
        reject(new RequestTooLarge());
        return;
      }
      hash?.update(chunk);
      if (preallocated) chunk.copy(preallocated, received);
      else chunks.push(chunk);
      received += chunk.length;
    };
    const onEnd = (): void => {
      cleanup();
      resolve(preallocated ? preallocated.subarray(0, received) : Buffer.concat(chunks, received));
    };
    const onClose = (): void => {
      cleanup();
      reject(new Error("the client closed the connection before the body ended"));
    };
    const onError = (err: Error): void => {
      cleanup();
      reject(err);
    };
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("close", onClose);
    req.on("error", onError);
  });
}

function mediaType(contentType: string | undefined): string {
  return (contentType ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
}

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value.join(",") : value;
}

function sendJson(
  res: ServerResponse,
  status: number,
  requestId: string,
  payload: object,
  errorType?: string,
): void {
  if (res.headersSent || res.destroyed) return;
  const body = Buffer.from(JSON.stringify(payload));
  res.writeHead(status, {
    "Content-Type": JSON_CONTENT_TYPE,
    "Content-Length": body.length,
    "x-amzn-RequestId": requestId,
    ...(errorType === undefined ? {} : { "x-amzn-ErrorType": errorType }),
  });
  res.end(body);
}

function sendApiError(res: ServerResponse, requestId: string, err: ApiError): void {
  sendJson(res, err.status, requestId, { ...err.fields, __type: err.type, message: err.message }, err.type);
}

/** Draws a request's faults (see faults.ts); `download` and the API targets alike. */
type DecideFaults = Pick<FaultInjector, "decide">;

/**
 * The fault draws with the network's API latency added to every registry API request, so that
 * both delays are one sleep; download URLs are S3's and get none. (ECR and ECR Public API calls
 * take theirs as a floor on their processing time instead: see Front.handleApi.) Like the fault
 * latency, it is spent after the signature and rate checks: a refused call is answered without it.
 */
function withApiLatency(faults: FaultInjector, apiLatencyMs: number): DecideFaults {
  if (apiLatencyMs === 0) return faults;
  return {
    decide(target: string): FaultDecision {
      const fault = faults.decide(target);
      return target === "download" ? fault : { ...fault, latencyMs: fault.latencyMs + apiLatencyMs };
    },
  };
}

/** Destroys the connection without an answer (faults `reset` and `lost`). */
function dropConnection(req: IncomingMessage): void {
  req.socket.destroy();
}

class Front {
  private readonly limiter: RateLimiter;
  private readonly downloads: DownloadUrlSigner;
  /** Signs the registry API's blob redirects for the loopback name the request did not use. */
  private readonly aliasDownloads: DownloadUrlSigner | undefined;
  private readonly registry: RegistryApi | undefined;
  private readonly baseHostname: string;
  /**
   * Request bodies and decoded parts of a MiB or more, recycled: UploadLayerPart's 14 MB body and
   * 10 MiB part, allocated afresh for every part, made V8 collect every few parts, most of the
   * server's CPU per GiB beyond the hashing and decoding themselves.
   */
  private readonly buffers = new BufferPool(16);
  private readonly allocate = (size: number): Buffer =>
    size >= POOLED_BUFFER_MIN ? this.buffers.take(size) : Buffer.allocUnsafe(size);
  /** Fault draws of ECR API calls and download URLs. */
  private readonly faults: DecideFaults;
  /** Fault draws of registry API requests, with the network's API latency in them. */
  private readonly registryFaults: DecideFaults;

  constructor(
    private readonly options: ResolvedOptions,
    private readonly operations: Readonly<Record<ServiceName, OperationTable>>,
    private readonly blobPath: (digest: string) => string | undefined,
    baseUrl: string,
    store: Store | undefined,
  ) {
    this.limiter = new RateLimiter(options.rates);
    this.faults = options.faults;
    this.registryFaults = withApiLatency(options.faults, options.network?.apiLatencyMs ?? 0);
    // One secret for both signers: a URL verifies whichever loopback name it was signed for.
    const signing = {
      region: options.region,
      ttlSeconds: options.downloadUrlTtlSeconds,
      secretAccessKey: randomBytes(30).toString("base64"),
    };
    this.downloads = new DownloadUrlSigner({ baseUrl, ...signing });
    this.baseHostname = new URL(baseUrl).hostname;
    this.aliasDownloads = ["127.0.0.1", "[::1]"].includes(this.baseHostname)
      ? new DownloadUrlSigner({ baseUrl: `http://localhost:${new URL(baseUrl).port}`, ...signing })
      : undefined;
    this.registry =
      store === undefined
        ? undefined
        : new RegistryApi({
            store,
            accountId: options.accountId,
            region: options.region,
            mount: options.registryMount,
            limiter: this.limiter,
            faults: this.registryFaults,
            now: options.now,
            downloadUrl: (digest, requestHost, now) => this.registryDownloadUrl(digest, requestHost, now),
          });
  }

  /**
   * ECR redirects blob GETs to S3, another host, so clients drop the registry's Authorization
   * header on the way (Go's client keeps it for the same host, and S3, like our download URLs,
   * refuses a request with two auth mechanisms). A client that reached this server as 127.0.0.1 is
   * sent to `localhost`, and the other way round, for the same effect.
   */
  private registryDownloadUrl(digest: string, requestHost: string | undefined, now: Date): Promise<string> {
    let requested: string | undefined;
    try {
      requested = new URL(`http://${requestHost ?? ""}`).hostname;
    } catch {
      requested = undefined;
    }
    const signer =
      requested === this.baseHostname && this.aliasDownloads !== undefined
        ? this.aliasDownloads
        : this.downloads;
    return signer.sign(digest, now);
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const requestId = randomUUID();
    try {
      const path = (req.url ?? "/").split("?")[0] ?? "/";
      if (path === "/" && req.method === "POST") {
        await this.handleApi(req, res, requestId);
      } else if (path.startsWith(DOWNLOAD_PATH_PREFIX) && (req.method === "GET" || req.method === "HEAD")) {
        await this.handleDownload(req, res);
      } else if ((path === "/v2" || path.startsWith("/v2/")) && this.registry !== undefined) {
        await this.registry.handle(req, res);
      } else if (path === "/") {
        this.sendUnknownOperation(res, requestId);
      } else {
        sendJson(res, 404, requestId, { message: `no route for ${req.method ?? "?"} ${path}` });
      }
    } catch (err) {
      this.sendUnexpected(res, requestId, err, "request");
    }
  }

  /**
   * A request that is not AWS JSON at all (wrong Content-Type, or not a POST) never reaches an
   * operation: AWS's front end answers 404 with the bare body `<UnknownOperationException/>`, as
   * reported by SDK authors who sent Kinesis and SES requests as application/octet-stream.
   */
  private sendUnknownOperation(res: ServerResponse, requestId: string): void {
    if (res.headersSent || res.destroyed) return;
    const body = "<UnknownOperationException/>\n";
    res.writeHead(404, {
      "Content-Type": "application/xml",
      "Content-Length": Buffer.byteLength(body),
      "x-amzn-RequestId": requestId,
      "x-amzn-ErrorType": "UnknownOperationException",
    });
    res.end(body);
  }

  private sendUnexpected(res: ServerResponse, requestId: string, err: unknown, where: string): void {
    const detail = err instanceof Error ? (err.stack ?? err.message) : String(err);
    process.stderr.write(`ecrx serve: internal error in ${where} (request ${requestId}): ${detail}\n`);
    sendJson(
      res,
      500,
      requestId,
      { __type: "ServerException", message: "An internal error occurred." },
      "ServerException",
    );
  }

  private async handleApi(req: IncomingMessage, res: ServerResponse, requestId: string): Promise<void> {
    let body: Buffer | undefined;
    // The network's API latency is the service's time per call, from the whole request to the
    // answer: our own processing (a part's hashing and decoding, tens of ms here) is part of it,
    // not added to it, or the emulator would be slower than the profile says.
    let answerNotBefore = 0;
    // Through a shaped network the body comes slower than this thread hashes it: hashed as it
    // arrives, it is hashed for free. Unshaped (loopback), it comes as fast as the thread can copy
    // it, and hashing it afterwards on the thread pool, alongside the decoding, is faster: 1 GiB
    // pushes ~1.2x faster here, while on the in-region profile that order lost 3-4 points of the
    // wire's rate (bench/README.md).
    const arrivingHash = this.options.network === undefined ? undefined : createHash("sha256");
    try {
      body = await readBody(req, MAX_REQUEST_BODY_BYTES, this.allocate, arrivingHash);
      answerNotBefore = performance.now() + (this.options.network?.apiLatencyMs ?? 0);
    } catch (err) {
      if (err instanceof RequestTooLarge) {
        // The rest of the body is not read: close the connection once the answer is out.
        res.setHeader("Connection", "close");
        sendJson(
          res,
          413,
          requestId,
          {
            __type: "RequestEntityTooLargeException",
            message: `Request body is larger than ${MAX_REQUEST_BODY_BYTES} bytes`,
          },
          "RequestEntityTooLargeException",
        );
        res.once("finish", () => req.socket.destroy());
      }
      // Otherwise the client went away mid-body: there is nobody to answer.
      return;
    }

    if (mediaType(header(req, "content-type")) !== JSON_CONTENT_TYPE) {
      this.sendUnknownOperation(res, requestId);
      return;
    }
    const target = header(req, "x-amz-target");
    const dot = target?.indexOf(".") ?? -1;
    const prefix = target !== undefined && dot > 0 ? target.slice(0, dot) : "";
    const service = Object.hasOwn(TARGET_PREFIXES, prefix) ? TARGET_PREFIXES[prefix] : undefined;
    if (target === undefined || service === undefined) {
      sendApiError(
        res,
        requestId,
        new ApiError("UnknownOperationException", `Unknown operation ${target ?? "(no X-Amz-Target)"}`),
      );
      return;
    }
    const operationName = target.slice(dot + 1);
    const now = this.options.now();
    const region = service === "ecr" ? this.options.region : ECR_PUBLIC_REGION;

    // Unless hashed on arrival, the body's hash runs on the thread pool while this thread parses
    // the body (for a part, the base64 decoding of 14 MB): the two are about equally long. What the
    // parse found is only acted on once the signature holds, as AWS checks the signature first.
    const bodySha256 = arrivingHash ? Promise.resolve(arrivingHash.digest("hex")) : sha256HexOffThread(body);
    let parsed: { input: OperationInput } | { error: ApiError };
    try {
      parsed = { input: parseBody(body, this.allocate) };
    } catch (err) {
      parsed = { error: err as ApiError };
    }
    try {
      await verifySignature(
        {
          method: req.method ?? "POST",
          path: "/",
          query: (req.url ?? "").split("?")[1] ?? "",
          headers: req.headers,
          bodySha256: await bodySha256,
        },
        { credentials: this.options.credentials, region, service, now },
      );
    } catch (err) {
      this.release(parsed);
      if (err instanceof ApiError) sendApiError(res, requestId, err);
      else this.sendUnexpected(res, requestId, err, "signature check");
      return;
    } finally {
      // Hashed and parsed: the next request may have the buffer.
      this.buffers.give(body);
      body = undefined;
    }

    try {
      const table = this.operations[service];
      // hasOwn: a target like `...constructor` must not find Object.prototype's members.
      const handler = Object.hasOwn(table, operationName) ? table[operationName] : undefined;
      if (handler === undefined) {
        sendApiError(
          res,
          requestId,
          new ApiError("UnknownOperationException", `Unknown operation ${target}`),
        );
        return;
      }
      if (!this.limiter.allow(service, operationName)) {
        sendApiError(res, requestId, new ApiError("ThrottlingException", "Rate exceeded"));
        return;
      }
      const fault = await this.applyFaultsBefore(operationName);
      if (fault.refuse === "reset") {
        dropConnection(req);
        return;
      }
      if (fault.refuse === "throttle") {
        sendApiError(res, requestId, new ApiError("ThrottlingException", "Rate exceeded"));
        return;
      }
      if (fault.refuse === "error") {
        sendApiError(res, requestId, new ApiError("ServerException", "An internal error occurred.", 500));
        return;
      }

      if ("error" in parsed) {
        sendApiError(res, requestId, parsed.error);
        return;
      }
      const input = parsed.input;
      const context = await this.requestContext(service, region, now, input);
      let output: object | undefined;
      let failure: unknown;
      try {
        output = await handler(input, context);
      } catch (err) {
        failure = err;
      }
      if (fault.lost) {
        dropConnection(req);
        return;
      }
      const early = answerNotBefore - performance.now();
      if (early > 0) await sleep(early);
      if (failure === undefined) sendJson(res, 200, requestId, output ?? {});
      else if (failure instanceof ApiError) sendApiError(res, requestId, failure);
      else this.sendUnexpected(res, requestId, failure, operationName);
    } finally {
      // The operation is done with a decoded part (the store wrote it): the next request may have it.
      this.release(parsed);
    }
  }

  /** Gives a decoded part back to the pool. */
  private release(parsed: { input: OperationInput } | { error: ApiError }): void {
    if ("input" in parsed && Buffer.isBuffer(parsed.input.layerPartBlob)) {
      this.buffers.give(parsed.input.layerPartBlob);
    }
  }

  private async applyFaultsBefore(target: string): Promise<FaultDecision> {
    const fault = this.faults.decide(target);
    if (fault.latencyMs > 0) await sleep(fault.latencyMs);
    return fault;
  }

  /**
   * RequestContext.downloadUrl is synchronous while presigning is not, so the URL is signed before
   * the operation runs, for the layer digest the request names (GetDownloadUrlForLayer's input).
   */
  private async requestContext(
    service: ServiceName,
    region: string,
    now: Date,
    input: OperationInput,
  ): Promise<RequestContext> {
    const digest = input.layerDigest;
    const prepared =
      typeof digest === "string" && DIGEST.test(digest) ? await this.downloads.sign(digest, now) : undefined;
    return {
      service,
      region,
      accountId: this.options.accountId,
      now,
      downloadUrl(blobDigest: string): string {
        if (prepared === undefined || blobDigest !== digest) {
          throw new Error(
            `no download URL was prepared for ${blobDigest}: only for the request's layerDigest`,
          );
        }
        return prepared;
      },
    };
  }

  private async handleDownload(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const fault = await this.applyFaultsBefore("download");
    if (fault.refuse === "reset") {
      dropConnection(req);
      return;
    }
    if (fault.refuse === "throttle") {
      sendS3Error(req, res, { status: 503, code: "SlowDown", message: "Please reduce your request rate." });
      return;
    }
    if (fault.refuse === "error") {
      sendS3Error(req, res, {
        status: 500,
        code: "InternalError",
        message: "We encountered an internal error. Please try again.",
      });
      return;
    }
    await serveDownload(req, res, {
      signer: this.downloads,
      blobPath: this.blobPath,
      now: this.options.now(),
      truncate: fault.lost,
    });
  }
}

const BLOB_MEMBER = Buffer.from('"layerPartBlob":"');
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * The JSON input of a request body. UploadLayerPart bodies are almost all one base64 string: it is
 * decoded straight out of the bytes (no UTF-8 decoding, no JSON scan, no 28 MB string) and handed
 * to the operation as a Buffer; the rest is parsed as usual. Base64 holds neither quotes nor backslashes, so the first quote after the
 * member's start ends it; anything unusual (an escape, spacing, a second member of that name) takes
 * the plain path, which gives the same result more slowly.
 */
function parseBody(body: Buffer, allocate: (size: number) => Buffer): OperationInput {
  const start = body.indexOf(BLOB_MEMBER);
  if (start >= 0) {
    const valueStart = start + BLOB_MEMBER.length;
    const valueEnd = body.indexOf(QUOTE, valueStart);
    const escape = body.indexOf(BACKSLASH, valueStart);
    if (valueEnd >= 0 && (escape === -1 || escape > valueEnd)) {
      const rest = Buffer.concat([body.subarray(0, valueStart), body.subarray(valueEnd)]);
      const input = parseInput(rest.toString("utf8"));
      const blob =
        input.layerPartBlob === "" ? decodeBase64(body, valueStart, valueEnd, allocate) : undefined;
      if (blob !== undefined) {
        input.layerPartBlob = blob;
        return input;
      }
    }
  }
  return parseInput(body.toString("utf8"));
}

/** Base64 text is decoded in slices this long (a multiple of 4): small strings that die young. */
const BASE64_SLICE = 64 * 1024;

/**
 * Strict base64 in `text[start, end)` decoded into a new Buffer, or undefined when it is not strict
 * base64 (the caller then takes the plain path, whose validation names the error). Node's decoder
 * skips foreign characters and takes the URL-safe alphabet: a slice that decodes to fewer bytes
 * than its length promises, or holds `-` or `_`, is not strict.
 */
function decodeBase64(
  text: Buffer,
  start: number,
  end: number,
  allocate: (size: number) => Buffer,
): Buffer | undefined {
  const length = end - start;
  if (length % 4 !== 0) return undefined;
  const padding = length === 0 ? 0 : (text[end - 1] === 0x3d ? 1 : 0) + (text[end - 2] === 0x3d ? 1 : 0);
  const out = allocate((length / 4) * 3 - padding);
  let written = 0;
  for (let at = start; at < end; at += BASE64_SLICE) {
    const sliceEnd = Math.min(at + BASE64_SLICE, end);
    const slice = text.subarray(at, sliceEnd);
    if (slice.includes(0x2d) || slice.includes(0x5f)) return undefined;
    const expected = ((sliceEnd - at) / 4) * 3 - (sliceEnd === end ? padding : 0);
    if (out.write(slice.toString("latin1"), written, "base64") !== expected) return undefined;
    written += expected;
  }
  return out;
}

/** The JSON input of an operation; an empty body means `{}`. Throws SerializationException. */
function parseInput(text: string): OperationInput {
  if (text === "") return {};
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new ApiError("SerializationException", err instanceof Error ? err.message : "Malformed JSON");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    const found = Array.isArray(value) ? "list" : value === null ? "null" : typeof value;
    throw new ApiError("SerializationException", `Start of ${found} found where a structure was expected`);
  }
  return value as OperationInput;
}

function listen(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      if (err.code === "EADDRINUSE") {
        reject(
          usage(
            `port ${port} on ${host} is already in use`,
            "pick another with --port, or --port 0 for a free one",
          ),
        );
      } else if (err.code === "EADDRNOTAVAIL" || err.code === "ENOTFOUND") {
        reject(usage(`cannot listen on ${host}: ${err.message}`));
      } else {
        reject(err);
      }
    };
    server.once("error", onError);
    server.listen(port, host, () => {
      server.off("error", onError);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    const cut = setTimeout(() => server.closeAllConnections(), CLOSE_GRACE_MS);
    server.close(() => {
      clearTimeout(cut);
      resolve();
    });
    server.closeIdleConnections();
  });
}

/** Starts the HTTP front over the given operations (serve() brings the real ones). */
export async function startFront(options: FrontOptions): Promise<RunningFront> {
  const resolved = resolveOptions(options);
  const known = new Set([
    ...Object.keys(options.operations.ecr),
    ...Object.keys(options.operations["ecr-public"]),
  ]);
  const unknown = resolved.faults.namedOperations().filter((name) => !known.has(name));
  if (unknown.length > 0) {
    throw usage(`fault target ${unknown.join(", ")} is not an operation of ECR or ECR Public`);
  }

  const server = createServer({
    headersTimeout: HEADERS_TIMEOUT_MS,
    requestTimeout: REQUEST_TIMEOUT_MS,
    keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
    // How often the two timeouts above are enforced (node's default, 30 s, would let them slip).
    connectionsCheckingInterval: 2_000,
  });
  server.setTimeout(IDLE_SOCKET_TIMEOUT_MS);
  // Without a link to emulate, node's sockets go to the HTTP server as they are: no cost at all.
  const network = resolved.network;
  if (network !== undefined && shapesConnections(network)) shapeConnections(server, network);
  const port = await listen(server, resolved.port, resolved.host);
  const url = `http://${connectHost(resolved.host)}:${port}`;
  // The download URLs need the port, known only now; no request can arrive before this listener.
  const front = new Front(
    resolved,
    options.operations,
    (digest) => options.blobPath(digest),
    url,
    options.store,
  );
  server.on("request", (req: IncomingMessage, res: ServerResponse) => void front.handle(req, res));

  const registryHost = `${resolved.accountId}.dkr.ecr.${resolved.region}.localhost:${port}`;
  let closing: Promise<void> | undefined;
  return {
    url,
    host: resolved.host,
    port,
    region: resolved.region,
    accountId: resolved.accountId,
    registryHost,
    publicRegistryAlias: resolved.publicRegistryAlias,
    faultSeed: resolved.faultSeed,
    ...(resolved.network === undefined ? {} : { network: resolved.network }),
    env: {
      AWS_ENDPOINT_URL_ECR: url,
      AWS_ENDPOINT_URL_ECR_PUBLIC: url,
      AWS_ACCESS_KEY_ID: resolved.credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: resolved.credentials.secretAccessKey,
      AWS_REGION: resolved.region,
    },
    close: () => (closing ??= closeServer(server)),
  };
}

/** Starts the local ECR: the store in `dataDir`, the ECR and ECR Public operations, the HTTP front. */
export async function serve(options: ServeOptions = {}): Promise<RunningServer> {
  // Validate before creating anything on disk.
  const resolved = resolveOptions(options);
  const temporary = options.dataDir === undefined;
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), "ecrx-serve-")));
  const removeTemporary = async (): Promise<void> => {
    if (temporary) await rm(dataDir, { recursive: true, force: true });
  };
  let store: Store;
  try {
    store = await Store.open({ dir: dataDir });
  } catch (err) {
    await removeTemporary();
    throw err;
  }
  try {
    const front = await startFront({
      ...options,
      faultSeed: resolved.faultSeed,
      publicRegistryAlias: resolved.publicRegistryAlias,
      store,
      operations: {
        ecr: createEcrOperations(store, { accountId: resolved.accountId, region: resolved.region }),
        "ecr-public": createEcrPublicOperations(store, {
          accountId: resolved.accountId,
          registryAlias: resolved.publicRegistryAlias,
        }),
      },
      blobPath: (digest) => store.blobPath(digest),
    });
    let closing: Promise<void> | undefined;
    const close = async (): Promise<void> => {
      await front.close();
      await store.close();
      await removeTemporary();
    };
    const registryPassword = (): string => {
      const expiresAt = Math.floor(resolved.now().getTime() / 1000) + AUTHORIZATION_TOKEN_LIFETIME_SECONDS;
      const token = createAuthorizationToken(store, {
        service: "ecr",
        accountId: resolved.accountId,
        expiresAt,
      });
      return Buffer.from(token, "base64").toString("utf8").slice("AWS:".length);
    };
    return { ...front, dataDir, registryPassword, close: () => (closing ??= close()) };
  } catch (err) {
    await store.close();
    await removeTemporary();
    throw err;
  }
}
