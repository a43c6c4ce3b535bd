import { EcrxError, type ErrorCode } from "../../errors.js";

/** The error codes of the OCI distribution spec, and what they mean to a person running ecrx. */
const CODE_BY_REGISTRY_ERROR: Record<string, ErrorCode> = {
  UNAUTHORIZED: "AUTH",
  DENIED: "AUTH",
  NAME_UNKNOWN: "NOT_FOUND",
  MANIFEST_UNKNOWN: "NOT_FOUND",
  BLOB_UNKNOWN: "NOT_FOUND",
  MANIFEST_BLOB_UNKNOWN: "NOT_FOUND",
  DIGEST_INVALID: "INTEGRITY",
  SIZE_INVALID: "INTEGRITY",
  MANIFEST_INVALID: "UNSUPPORTED",
  MANIFEST_UNVERIFIED: "UNSUPPORTED",
  UNSUPPORTED: "UNSUPPORTED",
  NAME_INVALID: "USAGE",
  TAG_INVALID: "USAGE",
  TOOMANYREQUESTS: "NETWORK",
  // An upload session the registry lost or refused midway: sending the blob again is the cure,
  // which the engine does for NETWORK errors.
  BLOB_UPLOAD_UNKNOWN: "NETWORK",
  BLOB_UPLOAD_INVALID: "NETWORK",
  RANGE_INVALID: "NETWORK",
};

interface RegistryErrorDetail {
  code: string;
  message: string;
}

/** The first entry of an OCI error body (`{"errors":[{"code","message","detail"}]}`), if it is one. */
function parseErrorBody(text: string): RegistryErrorDetail | undefined {
  try {
    const doc = JSON.parse(text) as { errors?: unknown };
    if (!Array.isArray(doc.errors)) return undefined;
    const first = doc.errors[0] as { code?: unknown; message?: unknown } | undefined;
    if (typeof first?.code !== "string") return undefined;
    return { code: first.code, message: typeof first.message === "string" ? first.message : "" };
  } catch {
    return undefined;
  }
}

export interface ErrorContext {
  /** The action, e.g. "HEAD blob sha256:… in library/alpine". */
  what: string;
  /** The registry host, for hints. */
  host: string;
  status: number;
  /** The response body as text (possibly empty or not JSON). */
  body: string;
}

/** An EcrxError for a registry response that failed: one line, no secrets, a hint where useful. */
export function registryError(context: ErrorContext, redact: (text: string) => string): EcrxError {
  const detail = parseErrorBody(context.body);
  const code = detail
    ? (CODE_BY_REGISTRY_ERROR[detail.code] ?? codeOfStatus(context.status))
    : codeOfStatus(context.status);
  const said = detail
    ? `${detail.code}${detail.message ? `: ${oneLine(detail.message)}` : ""}`
    : context.body.trim() === ""
      ? ""
      : looksLikeText(context.body)
        ? oneLine(context.body.replace(/<[^>]+>/g, " ")).slice(0, 160)
        : "(an answer that is not a registry error)";
  const message = redact(`${context.what}: HTTP ${context.status}${said ? ` ${said}` : ""}`);
  return new EcrxError(code, message, hintFor(code, detail?.code, context.host));
}

function codeOfStatus(status: number): ErrorCode {
  if (status === 401 || status === 403) return "AUTH";
  if (status === 404) return "NOT_FOUND";
  if (status === 405) return "UNSUPPORTED";
  if (status === 429 || status >= 500) return "NETWORK";
  if (status >= 400) return "INVALID_INPUT";
  return "NETWORK";
}

function hintFor(code: ErrorCode, registryCode: string | undefined, host: string): { hint?: string } {
  if (code === "AUTH") {
    return {
      hint: `check the credentials for ${host} (--src-creds / --dest-creds, or docker login and ~/.docker/config.json) and that they may push or pull this repository`,
    };
  }
  if (registryCode === "TOOMANYREQUESTS") {
    return { hint: "the registry kept throttling after all retries; lower --concurrency and try again" };
  }
  if (registryCode === "NAME_UNKNOWN")
    return { hint: "check the repository name; some registries need it created first" };
  return {};
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, " ").trim();
}

function looksLikeText(text: string): boolean {
  // eslint-disable-next-line no-control-regex
  return !/[\u0000-\u0008\u000e-\u001f]/.test(text);
}
