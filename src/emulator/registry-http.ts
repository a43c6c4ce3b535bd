/**
 * The HTTP vocabulary of the registry (OCI distribution v2) API: its error JSON and codes, the
 * mapping from the ECR API's exceptions (the shared operations in registry-core.ts throw those) to
 * it, answers as values, request paths, and bounded request bodies.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { ApiError } from "./api.js";

/** The error codes of the distribution spec (and distribution's PAGINATION_NUMBER_INVALID). */
export type RegistryErrorCode =
  | "BLOB_UNKNOWN"
  | "BLOB_UPLOAD_INVALID"
  | "BLOB_UPLOAD_UNKNOWN"
  | "DIGEST_INVALID"
  | "MANIFEST_BLOB_UNKNOWN"
  | "MANIFEST_INVALID"
  | "MANIFEST_UNKNOWN"
  | "NAME_INVALID"
  | "NAME_UNKNOWN"
  | "SIZE_INVALID"
  | "TAG_INVALID"
  | "UNAUTHORIZED"
  | "DENIED"
  | "UNSUPPORTED"
  | "TOOMANYREQUESTS"
  | "PAGINATION_NUMBER_INVALID"
  | "UNKNOWN";

export class RegistryError extends Error {
  override readonly name = "RegistryError";
  constructor(
    readonly status: number,
    readonly code: RegistryErrorCode,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** An answer, built whole before anything is sent, so that the fault `lost` can withhold it. */
export interface Reply {
  status: number;
  headers: Record<string, string | number>;
  body?: Buffer;
}

export function emptyReply(status: number, headers: Record<string, string | number> = {}): Reply {
  return { status, headers: { ...headers, "Content-Length": 0 } };
}

export function jsonReply(
  status: number,
  payload: object,
  headers: Record<string, string | number> = {},
  contentType = "application/json; charset=utf-8",
): Reply {
  const body = Buffer.from(JSON.stringify(payload));
  return {
    status,
    headers: { ...headers, "Content-Type": contentType, "Content-Length": body.length },
    body,
  };
}

export function errorReply(err: RegistryError): Reply {
  return jsonReply(
    err.status,
    { errors: [{ code: err.code, message: err.message, detail: {} }] },
    err.headers,
  );
}

/** A reply to HEAD keeps the headers (Content-Length included) and drops the body. */
export function sendReply(req: IncomingMessage, res: ServerResponse, reply: Reply): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(reply.status, reply.headers);
  res.end(req.method === "HEAD" ? undefined : reply.body);
}

/**
 * The registry API's face of the ECR API's exceptions. ECR documents none of these pairs; they
 * follow the distribution spec's meaning of each code, except TAG_INVALID for an immutable tag,
 * which is what docker and kaniko users report from ECR.
 */
const API_ERRORS: Readonly<Record<string, [number, RegistryErrorCode]>> = {
  RepositoryNotFoundException: [404, "NAME_UNKNOWN"],
  LayersNotFoundException: [400, "MANIFEST_BLOB_UNKNOWN"],
  ReferencedImagesNotFoundException: [400, "MANIFEST_BLOB_UNKNOWN"],
  ImageTagAlreadyExistsException: [400, "TAG_INVALID"],
  ImageDigestDoesNotMatchException: [400, "DIGEST_INVALID"],
  InvalidParameterException: [400, "MANIFEST_INVALID"],
  UploadNotFoundException: [404, "BLOB_UPLOAD_UNKNOWN"],
  InvalidLayerException: [400, "DIGEST_INVALID"],
  LayerPartTooSmallException: [400, "BLOB_UPLOAD_INVALID"],
  EmptyUploadException: [400, "BLOB_UPLOAD_INVALID"],
  LimitExceededException: [400, "BLOB_UPLOAD_INVALID"],
  ThrottlingException: [429, "TOOMANYREQUESTS"],
};

/** The registry error for an ECR exception; undefined for one without a counterpart (a bug). */
export function fromApiError(err: ApiError): RegistryError | undefined {
  const mapped = Object.hasOwn(API_ERRORS, err.type) ? API_ERRORS[err.type] : undefined;
  return mapped === undefined ? undefined : new RegistryError(mapped[0], mapped[1], err.message);
}

export type Route =
  | { kind: "base" }
  | { kind: "catalog" }
  | { kind: "manifest"; name: string; reference: string }
  | { kind: "blob"; name: string; digest: string }
  | { kind: "uploads"; name: string }
  | { kind: "upload"; name: string; uploadId: string }
  | { kind: "tags"; name: string }
  | { kind: "referrers"; name: string; digest: string };

/**
 * Matches a path under /v2/. Names may hold slashes, so each pattern anchors on its end: the name
 * is everything before the last `/manifests/<reference>`, `/blobs/...`, `/tags/list` or
 * `/referrers/<digest>`. Segments are percent-decoded after the match (a digest's `:` may come as
 * `%3A`); undefined for a path of no route or a malformed escape.
 */
export function parseRoute(path: string): Route | undefined {
  if (path === "/v2" || path === "/v2/") return { kind: "base" };
  if (path === "/v2/_catalog") return { kind: "catalog" };
  const patterns: [RegExp, (m: string[]) => Route][] = [
    [/^\/v2\/(.+)\/manifests\/([^/]+)$/, (m) => ({ kind: "manifest", name: m[0]!, reference: m[1]! })],
    [/^\/v2\/(.+)\/blobs\/uploads\/?$/, (m) => ({ kind: "uploads", name: m[0]! })],
    [/^\/v2\/(.+)\/blobs\/uploads\/([^/]+)$/, (m) => ({ kind: "upload", name: m[0]!, uploadId: m[1]! })],
    [/^\/v2\/(.+)\/blobs\/([^/]+)$/, (m) => ({ kind: "blob", name: m[0]!, digest: m[1]! })],
    [/^\/v2\/(.+)\/tags\/list$/, (m) => ({ kind: "tags", name: m[0]! })],
    [/^\/v2\/(.+)\/referrers\/([^/]+)$/, (m) => ({ kind: "referrers", name: m[0]!, digest: m[1]! })],
  ];
  for (const [pattern, build] of patterns) {
    const match = pattern.exec(path);
    if (match === null) continue;
    try {
      return build(match.slice(1).map((segment) => decodeURIComponent(segment)));
    } catch {
      return undefined;
    }
  }
  return undefined;
}

/** The request body, at most `limit` bytes; throws `tooLarge()` beyond (the rest unread). */
export async function readBoundedBody(
  req: IncomingMessage,
  limit: number,
  tooLarge: () => Error,
): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let received = 0;
  for await (const chunk of boundedBody(req, limit, tooLarge)) {
    chunks.push(chunk);
    received += chunk.length;
  }
  return Buffer.concat(chunks, received);
}

/** Yields the request body, throwing `tooLarge()` once more than `limit` bytes have come. */
export async function* boundedBody(
  req: IncomingMessage,
  limit: number,
  tooLarge: () => Error,
): AsyncGenerator<Buffer> {
  const declared = Number(req.headers["content-length"] ?? 0);
  if (declared > limit) throw tooLarge();
  let received = 0;
  // Stopping early must not destroy the request (and its socket): the refusal still has to go out.
  for await (const chunk of req.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
    received += chunk.length;
    if (received > limit) throw tooLarge();
    yield chunk;
  }
}
