/**
 * SigV4 verification of ECR and ECR Public API requests, answering like AWS's JSON-protocol front
 * ends: every refusal is HTTP 400 with the exception name and message AWS uses (these services
 * answer 400, not 403, for authentication failures: seen in SDK bug reports of
 * InvalidSignatureException "status code: 400").
 *
 * The signature is not recomputed by hand: the request is re-signed with `@smithy/signature-v4`
 * from the headers the client says it signed, the same X-Amz-Date, and the hash of the body that
 * was actually received, then the two signatures are compared in constant time.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import type { IncomingHttpHeaders } from "node:http";
import { Sha256 } from "@aws-crypto/sha256-js";
import { HttpRequest } from "@smithy/protocol-http";
import { SignatureV4 } from "@smithy/signature-v4";
import { ApiError } from "./api.js";

export interface Credentials {
  accessKeyId: string;
  secretAccessKey: string;
}

export interface SignedRequest {
  method: string;
  /** The path without the query. */
  path: string;
  /** The raw query string, without `?` ("" when none). */
  query: string;
  headers: IncomingHttpHeaders;
  /** Lower-case hex SHA-256 of the body as received. */
  bodySha256: string;
}

export interface VerifyExpectations {
  credentials: Credentials;
  region: string;
  /** The SigV4 service name: `ecr` or `ecr-public`. */
  service: string;
  now: Date;
}

/** AWS tolerates this much clock difference between the signer and the service. */
export const MAX_CLOCK_SKEW_MS = 5 * 60 * 1000;

const ALGORITHM = "AWS4-HMAC-SHA256";
const SIGNATURE_MISMATCH =
  "The request signature we calculated does not match the signature you provided. " +
  "Check your AWS Secret Access Key and signing method. Consult the service documentation for details.";

/** SHA-256 of a buffer as lower-case hex. */
export function sha256Hex(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value.join(",") : value;
}

interface ParsedAuthorization {
  accessKeyId: string;
  date: string;
  region: string;
  service: string;
  terminator: string;
  signedHeaders: string[];
  signature: string;
}

function parseAuthorization(value: string, hasDate: boolean): ParsedAuthorization {
  const space = value.indexOf(" ");
  const algorithm = space < 0 ? value : value.slice(0, space);
  if (algorithm !== ALGORITHM) {
    throw new ApiError("IncompleteSignatureException", `Unsupported AWS 'algorithm': '${algorithm}'`);
  }
  const params = new Map<string, string>();
  for (const part of value.slice(space + 1).split(",")) {
    const eq = part.indexOf("=");
    if (eq > 0) params.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  const credential = params.get("Credential");
  const signedHeaders = params.get("SignedHeaders");
  const signature = params.get("Signature");
  const missing: string[] = [];
  if (!credential) missing.push("Authorization header requires 'Credential' parameter.");
  if (!signature) missing.push("Authorization header requires 'Signature' parameter.");
  if (!signedHeaders) missing.push("Authorization header requires 'SignedHeaders' parameter.");
  if (!hasDate) {
    missing.push("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.");
  }
  if (missing.length > 0 || !credential || !signedHeaders || !signature) {
    throw new ApiError("IncompleteSignatureException", `${missing.join(" ")} Authorization=${value}`);
  }
  const scope = credential.split("/");
  if (scope.length !== 5 || scope.some((s) => s === "")) {
    throw new ApiError(
      "IncompleteSignatureException",
      `Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '${credential}'`,
    );
  }
  const [accessKeyId = "", date = "", region = "", service = "", terminator = ""] = scope;
  return {
    accessKeyId,
    date,
    region,
    service,
    terminator,
    signedHeaders: signedHeaders.split(";").map((h) => h.trim().toLowerCase()),
    signature,
  };
}

/** `20240101T000000Z` -> Date, or undefined when not in that form. */
export function parseAmzDate(value: string): Date | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(value);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s] = m.map(Number) as [number, number, number, number, number, number, number];
  const date = new Date(Date.UTC(y, mo - 1, d, h, mi, s));
  // Date.UTC rolls 20240230 over into March: refuse instead.
  return date.getUTCDate() === d && date.getUTCMonth() === mo - 1 ? date : undefined;
}

export function formatAmzDate(date: Date): string {
  return date
    .toISOString()
    .replace(/\.\d{3}Z$/, "Z")
    .replace(/[-:]/g, "");
}

function parseQuery(query: string): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [key, value] of new URLSearchParams(query)) {
    const prev = out[key];
    if (prev === undefined) out[key] = value;
    else out[key] = Array.isArray(prev) ? [...prev, value] : [prev, value];
  }
  return out;
}

/** Throws the ApiError AWS would answer when `request` is not correctly signed for `expect`. */
export async function verifySignature(request: SignedRequest, expect: VerifyExpectations): Promise<void> {
  const authorization = header(request.headers, "authorization");
  if (!authorization) {
    throw new ApiError("MissingAuthenticationTokenException", "Missing Authentication Token");
  }
  const amzDate = header(request.headers, "x-amz-date");
  const auth = parseAuthorization(authorization, amzDate !== undefined);
  // The SDKs and the CLI always send X-Amz-Date; a Date-only signature is not worth supporting.
  const signedAt = amzDate === undefined ? undefined : parseAmzDate(amzDate);
  if (amzDate === undefined || signedAt === undefined) {
    throw new ApiError(
      "IncompleteSignatureException",
      `Date must be in ISO-8601 'basic format'. Got '${amzDate ?? ""}'. See http://en.wikipedia.org/wiki/ISO_8601`,
    );
  }

  if (header(request.headers, "x-amz-security-token") !== undefined) {
    // The emulator issues no session credentials, so any session token is one it does not know.
    throw new ApiError(
      "UnrecognizedClientException",
      "The security token included in the request is invalid.",
    );
  }
  if (auth.accessKeyId !== expect.credentials.accessKeyId) {
    throw new ApiError(
      "UnrecognizedClientException",
      "The security token included in the request is invalid.",
    );
  }
  if (auth.terminator !== "aws4_request") {
    throw new ApiError(
      "InvalidSignatureException",
      `Credential should be scoped with a valid terminator: 'aws4_request', not '${auth.terminator}'.`,
    );
  }
  if (auth.service !== expect.service) {
    throw new ApiError(
      "InvalidSignatureException",
      `Credential should be scoped to correct service: '${expect.service}'. `,
    );
  }
  if (auth.region !== expect.region) {
    throw new ApiError(
      "InvalidSignatureException",
      `Credential should be scoped to a valid region, not '${auth.region}'. `,
    );
  }
  if (auth.date !== amzDate.slice(0, 8)) {
    throw new ApiError(
      "InvalidSignatureException",
      `Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '${auth.date}' != '${amzDate.slice(0, 8)}', from '${amzDate}'.`,
    );
  }

  const now = expect.now.getTime();
  if (signedAt.getTime() < now - MAX_CLOCK_SKEW_MS) {
    throw new ApiError(
      "InvalidSignatureException",
      `Signature expired: ${amzDate} is now earlier than ${formatAmzDate(new Date(now - MAX_CLOCK_SKEW_MS))} (${formatAmzDate(expect.now)} - 5 min.)`,
    );
  }
  if (signedAt.getTime() > now + MAX_CLOCK_SKEW_MS) {
    throw new ApiError(
      "InvalidSignatureException",
      `Signature not yet current: ${amzDate} is still later than ${formatAmzDate(new Date(now + MAX_CLOCK_SKEW_MS))} (${formatAmzDate(expect.now)} + 5 min.)`,
    );
  }

  const signed = new Set(auth.signedHeaders);
  if (!signed.has("host")) {
    throw new ApiError(
      "InvalidSignatureException",
      "'Host' must be a 'SignedHeader' in the AWS Authorization.",
    );
  }
  const headers: Record<string, string> = {};
  for (const name of signed) {
    const value = header(request.headers, name);
    if (value === undefined) throw new ApiError("InvalidSignatureException", SIGNATURE_MISMATCH);
    headers[name] = value;
  }
  // A signed payload hash must be the hash of the body received; an unsigned one is not trusted.
  const claimedHash = headers["x-amz-content-sha256"];
  if (claimedHash !== undefined && claimedHash !== request.bodySha256) {
    throw new ApiError("InvalidSignatureException", SIGNATURE_MISMATCH);
  }
  // The hash goes in as a header so that the signer does not hash the (up to 28 MB) body again;
  // marked unsignable unless the client signed it, so that it stays out of the canonical request.
  headers["x-amz-content-sha256"] = request.bodySha256;

  const signer = new SignatureV4({
    credentials: expect.credentials,
    region: expect.region,
    service: expect.service,
    sha256: Sha256,
    applyChecksum: false,
  });
  const resigned = await signer.sign(
    new HttpRequest({
      method: request.method,
      protocol: "http:",
      hostname: headers.host ?? "",
      path: request.path,
      query: parseQuery(request.query),
      headers,
    }),
    {
      signingDate: signedAt,
      signableHeaders: signed,
      unsignableHeaders: signed.has("x-amz-content-sha256") ? undefined : new Set(["x-amz-content-sha256"]),
    },
  );
  const expected = /Signature=([0-9a-f]+)/.exec(String(resigned.headers.authorization))?.[1] ?? "";
  if (!constantTimeEqual(expected, auth.signature)) {
    throw new ApiError("InvalidSignatureException", SIGNATURE_MISMATCH);
  }
}

/** Compares two strings without leaking where they differ. */
export function constantTimeEqual(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  // timingSafeEqual needs equal lengths; compare against itself to keep the time flat.
  return left.length === right.length ? timingSafeEqual(left, right) : !timingSafeEqual(left, left);
}
