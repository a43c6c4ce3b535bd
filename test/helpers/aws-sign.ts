/**
 * Raw SigV4-signed AWS JSON requests for tests that need to send what an SDK never would
 * (malformed JSON, wrong content types, tampered bodies) while staying correctly signed.
 */
import { Sha256 } from "@aws-crypto/sha256-js";
import { HttpRequest } from "@smithy/protocol-http";
import { SignatureV4 } from "@smithy/signature-v4";

export interface SignedJsonRequestOptions {
  /** `http://host:port` of the server. */
  endpoint: string;
  /** The full X-Amz-Target, or undefined to send none. */
  target: string | undefined;
  body: string | Buffer;
  accessKeyId?: string;
  secretAccessKey?: string;
  region?: string;
  service?: string;
  contentType?: string;
  signingDate?: Date;
  /** Sign X-Amz-Content-Sha256 as S3 clients do (default true; the ECR SDK clients do not). */
  signPayloadHash?: boolean;
  /** Extra headers, signed with the rest. */
  headers?: Record<string, string>;
}

export interface RawRequest {
  url: string;
  method: "POST";
  headers: Record<string, string>;
  body: Buffer;
}

/** Builds a signed `POST /` request; send it with fetch or undici.request. */
export async function signedJsonRequest(options: SignedJsonRequestOptions): Promise<RawRequest> {
  const url = new URL(options.endpoint);
  const body = Buffer.isBuffer(options.body) ? options.body : Buffer.from(options.body);
  const headers: Record<string, string> = {
    host: url.host,
    "content-type": options.contentType ?? "application/x-amz-json-1.1",
    "content-length": String(body.length),
    ...options.headers,
  };
  if (options.target !== undefined) headers["x-amz-target"] = options.target;
  const signer = new SignatureV4({
    credentials: {
      accessKeyId: options.accessKeyId ?? "test",
      secretAccessKey: options.secretAccessKey ?? "test",
    },
    region: options.region ?? "us-east-1",
    service: options.service ?? "ecr",
    sha256: Sha256,
    applyChecksum: options.signPayloadHash ?? true,
  });
  const signed = await signer.sign(
    new HttpRequest({
      method: "POST",
      protocol: url.protocol,
      hostname: url.hostname,
      port: Number(url.port),
      path: "/",
      headers,
      body,
    }),
    options.signingDate ? { signingDate: options.signingDate } : {},
  );
  return { url: `${url.origin}/`, method: "POST", headers: signed.headers, body };
}

export const ECR_TARGET_PREFIX = "AmazonEC2ContainerRegistry_V20150921.";
export const ECR_PUBLIC_TARGET_PREFIX = "SpencerFrontendService.";
