/**
 * The one error type of ecrx. `code` is stable and maps to an exit code; `awsName` keeps the ECR
 * exception name when there is one; the message is one line a person can act on, and `hint` says
 * what to do next.
 */
export type ErrorCode =
  | "USAGE" // bad arguments or reference syntax
  | "INVALID_INPUT" // a source image that is malformed, truncated or unsafe
  | "AUTH" // missing or refused credentials
  | "NOT_FOUND" // repository, image, tag or blob that does not exist
  | "CONFLICT" // immutable tag, image still referenced, repository exists
  | "UNSUPPORTED" // a media type, platform or operation we cannot handle
  | "INTEGRITY" // digest or size mismatch
  | "NETWORK" // connection, throttling or server errors that outlived the retries
  | "INTERRUPTED" // SIGINT/SIGTERM
  | "INTERNAL";

/** Exit codes, documented in the README. */
export const EXIT_CODES: Record<ErrorCode, number> = {
  USAGE: 2,
  INVALID_INPUT: 3,
  AUTH: 4,
  NOT_FOUND: 5,
  CONFLICT: 6,
  UNSUPPORTED: 7,
  INTEGRITY: 8,
  NETWORK: 9,
  INTERRUPTED: 130,
  INTERNAL: 1,
};

export interface EcrxErrorOptions {
  hint?: string;
  awsName?: string;
  cause?: unknown;
}

export class EcrxError extends Error {
  override readonly name = "EcrxError";
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  readonly awsName: string | undefined;

  constructor(code: ErrorCode, message: string, options: EcrxErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.hint = options.hint;
    this.awsName = options.awsName;
  }
}

export function isEcrxError(err: unknown): err is EcrxError {
  return err instanceof EcrxError;
}
