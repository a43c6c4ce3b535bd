/**
 * The layer download URLs that GetDownloadUrlForLayer hands out: presigned like S3 GET URLs
 * (X-Amz-Algorithm/Credential/Date/Expires/SignedHeaders/Signature, signed with an internal secret
 * for the service `s3`), expiring, and served with S3's answers: Range support, 403 XML errors, and
 * refusal of a second auth mechanism (an Authorization header), which is the mistake of clients
 * that forward registry credentials to the download URL.
 *
 * Path: `/blobs/sha256/<hex>`. HEAD is accepted on a URL signed for GET (S3 would ask for a URL
 * signed for HEAD); clients use HEAD only to learn the size.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import { pipeline } from "node:stream/promises";
import { Sha256 } from "@aws-crypto/sha256-js";
import { HttpRequest } from "@smithy/protocol-http";
import { SignatureV4 } from "@smithy/signature-v4";
import { constantTimeEqual, parseAmzDate } from "./sigv4.js";

/** Blob files are served in 1 MiB reads: the default 64 KiB makes the server the bottleneck of a pull. */
const READ_CHUNK = 1024 * 1024;

export const DOWNLOAD_PATH_PREFIX = "/blobs/";
export const DEFAULT_DOWNLOAD_URL_TTL_SECONDS = 3600;
/** SigV4 presigned URLs cannot live longer than a week. */
export const MAX_DOWNLOAD_URL_TTL_SECONDS = 7 * 24 * 3600;

const DIGEST = /^sha256:[a-f0-9]{64}$/;
const QUERY = {
  algorithm: "X-Amz-Algorithm",
  credential: "X-Amz-Credential",
  date: "X-Amz-Date",
  expires: "X-Amz-Expires",
  signedHeaders: "X-Amz-SignedHeaders",
  signature: "X-Amz-Signature",
} as const;

/** An S3-style refusal: status, code, message and extra XML elements. */
export interface S3Error {
  status: number;
  code: string;
  message: string;
  extra?: Record<string, string>;
}

export type VerifyResult = { ok: true; digest: string } | { ok: false; error: S3Error };

export interface DownloadUrlOptions {
  /** `http://host:port` of the server, as clients reach it. */
  baseUrl: string;
  region: string;
  ttlSeconds?: number;
  /** The signing secret; random per signer when omitted (URLs die with the server). */
  secretAccessKey?: string;
}

export class DownloadUrlSigner {
  readonly ttlSeconds: number;
  private readonly base: URL;
  private readonly accessKeyId = "ECRXLOCALDOWNLOADS";
  private readonly signer: SignatureV4;

  constructor(options: DownloadUrlOptions) {
    this.ttlSeconds = options.ttlSeconds ?? DEFAULT_DOWNLOAD_URL_TTL_SECONDS;
    if (
      !Number.isInteger(this.ttlSeconds) ||
      this.ttlSeconds < 1 ||
      this.ttlSeconds > MAX_DOWNLOAD_URL_TTL_SECONDS
    ) {
      throw new RangeError(`download URL lifetime must be 1..${MAX_DOWNLOAD_URL_TTL_SECONDS} seconds`);
    }
    this.base = new URL(options.baseUrl);
    this.signer = new SignatureV4({
      credentials: {
        accessKeyId: this.accessKeyId,
        secretAccessKey: options.secretAccessKey ?? randomBytes(30).toString("base64"),
      },
      region: options.region,
      service: "s3",
      sha256: Sha256,
      // S3 does not double-encode the path.
      uriEscapePath: false,
    });
  }

  /** A presigned GET URL for the blob `digest`, valid for ttlSeconds from `now`. */
  async sign(digest: string, now: Date): Promise<string> {
    if (!DIGEST.test(digest)) throw new RangeError(`not a sha256 digest: ${digest}`);
    const path = blobPath(digest);
    const signed = await this.presign(path, this.base.host, {}, now, this.ttlSeconds);
    const url = new URL(path, this.base);
    for (const [key, value] of Object.entries(signed)) url.searchParams.set(key, value);
    return url.toString();
  }

  /** Checks a received URL the way S3 checks a presigned one. */
  async verify(
    input: { host: string; path: string; query: URLSearchParams },
    now: Date,
  ): Promise<VerifyResult> {
    const q = input.query;
    const single = (name: string): string | undefined => {
      const values = q.getAll(name);
      return values.length === 1 ? values[0] : undefined;
    };
    if (!q.has(QUERY.algorithm) && !q.has(QUERY.signature)) {
      return denied({ status: 403, code: "AccessDenied", message: "Access Denied" });
    }
    const algorithm = single(QUERY.algorithm);
    const credential = single(QUERY.credential);
    const date = single(QUERY.date);
    const expires = single(QUERY.expires);
    const signedHeaders = single(QUERY.signedHeaders);
    const signature = single(QUERY.signature);
    if (!algorithm || !credential || !date || !expires || !signedHeaders || !signature) {
      return denied({
        status: 400,
        code: "AuthorizationQueryParametersError",
        message:
          "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.",
      });
    }
    if (algorithm !== "AWS4-HMAC-SHA256") {
      return denied({
        status: 400,
        code: "AuthorizationQueryParametersError",
        message: 'X-Amz-Algorithm only supports "AWS4-HMAC-SHA256"',
      });
    }
    const signedAt = parseAmzDate(date);
    if (!signedAt) {
      return denied({
        status: 400,
        code: "AuthorizationQueryParametersError",
        message: "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"",
      });
    }
    if (!/^\d{1,7}$/.test(expires)) {
      return denied({
        status: 400,
        code: "AuthorizationQueryParametersError",
        message: "X-Amz-Expires should be a number",
      });
    }
    const expiresIn = Number(expires);
    if (expiresIn > MAX_DOWNLOAD_URL_TTL_SECONDS) {
      return denied({
        status: 400,
        code: "AuthorizationQueryParametersError",
        message: `X-Amz-Expires must be less than a week (in seconds) that is; ${MAX_DOWNLOAD_URL_TTL_SECONDS}`,
      });
    }
    if (credential.split("/")[0] !== this.accessKeyId) {
      return denied({
        status: 403,
        code: "InvalidAccessKeyId",
        message: "The AWS Access Key Id you provided does not exist in our records.",
      });
    }
    const expiresAt = new Date(signedAt.getTime() + expiresIn * 1000);
    const serverTime = isoSeconds(now);
    if (now.getTime() > expiresAt.getTime()) {
      return denied({
        status: 403,
        code: "AccessDenied",
        message: "Request has expired",
        extra: { "X-Amz-Expires": expires, Expires: isoSeconds(expiresAt), ServerTime: serverTime },
      });
    }
    if (signedAt.getTime() > now.getTime()) {
      return denied({
        status: 403,
        code: "AccessDenied",
        message: "Request is not yet valid",
        extra: { "X-Amz-Date": date, Expires: isoSeconds(expiresAt), ServerTime: serverTime },
      });
    }

    // Re-sign what was received (every query parameter but the signature, the Host header) with
    // the same date and lifetime; a change to any of them changes the signature.
    const others: Record<string, string | string[]> = {};
    for (const key of new Set(q.keys())) {
      if (key === QUERY.signature) continue;
      const values = q.getAll(key);
      others[key] = values.length === 1 ? (values[0] ?? "") : values;
    }
    const expected = await this.presign(input.path, input.host, others, signedAt, expiresIn);
    const mismatch =
      expected[QUERY.signedHeaders] !== signedHeaders ||
      expected[QUERY.credential] !== credential ||
      !constantTimeEqual(expected[QUERY.signature] ?? "", signature);
    if (mismatch) {
      return denied({
        status: 403,
        code: "SignatureDoesNotMatch",
        message:
          "The request signature we calculated does not match the signature you provided. Check your key and signing method.",
      });
    }
    const digest = digestFromPath(input.path);
    if (!digest)
      return denied({ status: 404, code: "NoSuchKey", message: "The specified key does not exist." });
    return { ok: true, digest };
  }

  private async presign(
    path: string,
    host: string,
    query: Record<string, string | string[]>,
    signingDate: Date,
    expiresIn: number,
  ): Promise<Record<string, string>> {
    const signed = await this.signer.presign(
      new HttpRequest({
        method: "GET",
        protocol: this.base.protocol,
        hostname: host,
        path,
        query: { ...query },
        // Hoisted into the query as X-Amz-Content-Sha256, like the S3 presigner does.
        headers: { host, "X-Amz-Content-Sha256": "UNSIGNED-PAYLOAD" },
      }),
      { signingDate, expiresIn },
    );
    const out: Record<string, string> = {};
    for (const [key, value] of Object.entries(signed.query ?? {})) {
      if (typeof value === "string") out[key] = value;
    }
    return out;
  }
}

function denied(error: S3Error): VerifyResult {
  return { ok: false, error };
}

function isoSeconds(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, "Z");
}

function blobPath(digest: string): string {
  return `${DOWNLOAD_PATH_PREFIX}${digest.replace(":", "/")}`;
}

function digestFromPath(path: string): string | undefined {
  const m = /^\/blobs\/sha256\/([a-f0-9]{64})$/.exec(path);
  return m ? `sha256:${m[1]}` : undefined;
}

/** A single byte range resolved against a size; `unsatisfiable` answers 416; undefined: whole body. */
export type ResolvedRange = { start: number; end: number } | "unsatisfiable" | undefined;

/**
 * Resolves a Range header like S3: one range `bytes=a-b`, `bytes=a-` or `bytes=-n`; a header it
 * cannot parse, or several ranges, is ignored (the whole object is sent).
 */
export function resolveRange(header: string | undefined, size: number): ResolvedRange {
  if (header === undefined) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m) return undefined;
  const [, first = "", last = ""] = m;
  if (first === "" && last === "") return undefined;
  if (first === "") {
    const suffix = Number(last);
    if (suffix === 0 || size === 0) return "unsatisfiable";
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(first);
  if (last !== "" && Number(last) < start) return undefined;
  if (start >= size) return "unsatisfiable";
  return { start, end: last === "" ? size - 1 : Math.min(Number(last), size - 1) };
}

export function s3ErrorXml(error: S3Error, requestId: string): string {
  const extra = Object.entries(error.extra ?? {})
    .map(([k, v]) => `<${k}>${escapeXml(v)}</${k}>`)
    .join("");
  return (
    '<?xml version="1.0" encoding="UTF-8"?>\n' +
    `<Error><Code>${error.code}</Code><Message>${escapeXml(error.message)}</Message>${extra}` +
    `<RequestId>${requestId}</RequestId><HostId>${requestId}</HostId></Error>`
  );
}

function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export function sendS3Error(req: IncomingMessage, res: ServerResponse, error: S3Error): void {
  const requestId = randomUUID().replace(/-/g, "").slice(0, 16).toUpperCase();
  const body = req.method === "HEAD" ? "" : s3ErrorXml(error, requestId);
  res.writeHead(error.status, {
    "Content-Type": "application/xml",
    "Content-Length": Buffer.byteLength(body),
    "x-amz-request-id": requestId,
  });
  res.end(body);
}

export interface DownloadContext {
  signer: DownloadUrlSigner;
  /** The file holding the blob `digest`; undefined when there is no such blob. */
  blobPath(digest: string): string | undefined;
  now: Date;
  /** Cut the response after the headers and part of the body (fault `download:lost`). */
  truncate: boolean;
}

/** Serves a GET or HEAD of a download URL. Never throws; errors go to the client. */
export async function serveDownload(
  req: IncomingMessage,
  res: ServerResponse,
  ctx: DownloadContext,
): Promise<void> {
  if (req.headers.authorization !== undefined) {
    sendS3Error(req, res, {
      status: 400,
      code: "InvalidArgument",
      message:
        "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified",
      extra: { ArgumentName: "Authorization", ArgumentValue: req.headers.authorization },
    });
    return;
  }
  const url = new URL(req.url ?? "/", "http://placeholder");
  const verdict = await ctx.signer.verify(
    { host: req.headers.host ?? "", path: url.pathname, query: url.searchParams },
    ctx.now,
  );
  if (!verdict.ok) {
    sendS3Error(req, res, verdict.error);
    return;
  }
  const file = ctx.blobPath(verdict.digest);
  let size: number;
  try {
    if (file === undefined) throw new Error("no such blob");
    size = (await stat(file)).size;
  } catch {
    sendS3Error(req, res, {
      status: 404,
      code: "NoSuchKey",
      message: "The specified key does not exist.",
      extra: { Key: verdict.digest },
    });
    return;
  }
  const range = resolveRange(req.headers.range, size);
  if (range === "unsatisfiable") {
    res.setHeader("Content-Range", `bytes */${size}`);
    sendS3Error(req, res, {
      status: 416,
      code: "InvalidRange",
      message: "The requested range is not satisfiable",
      extra: { RangeRequested: req.headers.range ?? "", ActualObjectSize: String(size) },
    });
    return;
  }
  const start = range?.start ?? 0;
  const end = range?.end ?? size - 1;
  const length = end - start + 1;
  res.writeHead(range ? 206 : 200, {
    "Content-Type": "application/octet-stream",
    "Content-Length": length,
    "Accept-Ranges": "bytes",
    ETag: `"${verdict.digest.slice("sha256:".length, "sha256:".length + 32)}"`,
    ...(range ? { "Content-Range": `bytes ${start}-${end}/${size}` } : {}),
  });
  if (req.method === "HEAD" || length === 0) {
    res.end();
    return;
  }
  if (ctx.truncate) {
    // Half the bytes, then the connection dies: the client sees a short body.
    const sent = Math.floor(length / 2);
    if (sent > 0) {
      await pipeline(
        createReadStream(file, { start, end: start + sent - 1, highWaterMark: READ_CHUNK }),
        res,
        { end: false },
      ).catch(() => {});
    }
    res.socket?.destroy();
    return;
  }
  await pipeline(createReadStream(file, { start, end, highWaterMark: READ_CHUNK }), res).catch(() => {
    // The client went away or the file vanished mid-stream: nothing left to tell anyone.
    res.destroy();
  });
}
