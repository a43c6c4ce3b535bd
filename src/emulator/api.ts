/**
 * The contract between the emulator's HTTP front (server.ts: framing, SigV4, rates, faults) and its
 * operations (ecr-api.ts, ecr-public-api.ts: validation and behaviour over the store).
 */

/** An AWS-style error: serialized as `{"__type": type, "message": message, ...fields}`. */
export class ApiError extends Error {
  override readonly name = "ApiError";
  constructor(
    readonly type: string,
    message: string,
    readonly status: number = 400,
    readonly fields: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

export type ServiceName = "ecr" | "ecr-public";

export interface RequestContext {
  service: ServiceName;
  region: string;
  /** The account of the configured credentials: the default registryId. */
  accountId: string;
  /** Request time; injected so tests can move the clock. */
  now: Date;
  /** A presigned, expiring URL on this server that serves the blob (GetDownloadUrlForLayer). */
  downloadUrl(blobDigest: string): string;
}

/** Decoded JSON input of one operation (`{}` when the body is empty). */
export type OperationInput = Record<string, unknown>;
export type OperationHandler = (input: OperationInput, ctx: RequestContext) => Promise<object>;
export type OperationTable = Readonly<Record<string, OperationHandler>>;
