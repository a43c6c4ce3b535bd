import { EcrxError, isEcrxError, type ErrorCode } from "../../errors.js";

/** What the CLI needs to say about a failed ECR (or ECR Public) call. */
interface SdkErrorShape {
  name?: string;
  message?: string;
  code?: string;
  $metadata?: { httpStatusCode?: number };
}

const CODE_BY_EXCEPTION: Record<string, ErrorCode> = {
  RepositoryNotFoundException: "NOT_FOUND",
  RegistryNotFoundException: "NOT_FOUND",
  ImageNotFoundException: "NOT_FOUND",
  LayersNotFoundException: "NOT_FOUND",
  LayerInaccessibleException: "NOT_FOUND",
  ReferencedImagesNotFoundException: "NOT_FOUND",
  UploadNotFoundException: "NOT_FOUND",
  ImageTagAlreadyExistsException: "CONFLICT",
  RepositoryAlreadyExistsException: "CONFLICT",
  RepositoryNotEmptyException: "CONFLICT",
  InvalidLayerException: "INTEGRITY",
  ImageDigestDoesNotMatchException: "INTEGRITY",
  UnrecognizedClientException: "AUTH",
  InvalidSignatureException: "AUTH",
  MissingAuthenticationTokenException: "AUTH",
  AccessDeniedException: "AUTH",
  ExpiredTokenException: "AUTH",
  CredentialsProviderError: "AUTH",
  UnsupportedCommandException: "UNSUPPORTED",
  ThrottlingException: "NETWORK",
  ServerException: "NETWORK",
  LimitExceededException: "NETWORK",
};

const HINTS: Record<string, string> = {
  RepositoryNotFoundException: "create it first, or pass --create-repo",
  CredentialsProviderError:
    "set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or --profile, or run `aws sso login`",
  UnrecognizedClientException: "check the access key id of your AWS credentials",
  InvalidSignatureException: "check the secret access key of your AWS credentials and the clock",
  MissingAuthenticationTokenException: "provide AWS credentials (environment, profile or SSO)",
  ExpiredTokenException: "refresh your AWS session credentials",
  ThrottlingException: "the registry kept throttling after all retries; lower --concurrency and try again",
};

const NETWORK_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "UND_ERR_SOCKET",
]);

/** Converts an SDK or socket error from an ECR call into an EcrxError; `what` names the action. */
export function ecrError(err: unknown, what: string): EcrxError {
  if (isEcrxError(err)) return err;
  const e = (err ?? {}) as SdkErrorShape;
  const name = e.name ?? "Error";
  const firstLine = (e.message ?? String(err)).split("\n")[0] ?? "";
  const exceptionCode = CODE_BY_EXCEPTION[name];
  if (exceptionCode) {
    const hint = HINTS[name];
    return new EcrxError(exceptionCode, `${what}: ${name}: ${firstLine}`, {
      awsName: name,
      cause: err,
      ...(hint === undefined ? {} : { hint }),
    });
  }
  if ((e.code !== undefined && NETWORK_CODES.has(e.code)) || (e.$metadata?.httpStatusCode ?? 0) >= 500) {
    return new EcrxError("NETWORK", `${what}: ${e.code ?? name}: ${firstLine}`, { cause: err });
  }
  if (e.$metadata?.httpStatusCode !== undefined) {
    return new EcrxError("INVALID_INPUT", `${what}: ${name}: ${firstLine}`, { awsName: name, cause: err });
  }
  return new EcrxError("INTERNAL", `${what}: ${firstLine}`, { cause: err });
}

/** The exception name of an SDK error, if it is one. */
export function exceptionName(err: unknown): string | undefined {
  return typeof err === "object" && err !== null && "name" in err && typeof err.name === "string"
    ? err.name
    : undefined;
}
