/**
 * Redaction of secrets from anything shown to a person: error messages, hints, stacks, progress
 * and --json output (the CLI passes all of its output through `redact`, see cli/output.ts), and
 * the error texts that transports build from what a server answered.
 */

/**
 * Secrets that must never reach the terminal: the values of AWS_SECRET_ACCESS_KEY and
 * AWS_SESSION_TOKEN, the passwords of `--creds`-style flags (and their Basic encodings), and
 * whatever a caller adds. Patterns catch the rest: presigned URL signatures and credentials,
 * Authorization header values.
 */
const secrets = new Set<string>();

/**
 * Secrets shorter than this are not looked for: they would blank out ordinary words (the local
 * server's default secret key is `test`).
 */
const MIN_SECRET_LENGTH = 6;

export function addSecret(value: string | undefined): void {
  if (value !== undefined && value.length >= MIN_SECRET_LENGTH) secrets.add(value);
}

/** `user:password` of a --creds flag: the password, the pair and its base64 (a Basic header). */
export function addCredentialsSecret(pair: string): void {
  const colon = pair.indexOf(":");
  addSecret(colon >= 0 ? pair.slice(colon + 1) : pair);
  addSecret(pair);
  addSecret(Buffer.from(pair).toString("base64"));
}

const PATTERNS: [RegExp, string][] = [
  // Presigned URLs (S3, our download URLs) and SigV4 query auth: the signature, credential, token.
  [/(X-Amz-(?:Signature|Credential|Security-Token)=)[^&\s"'<>]+/gi, "$1***"],
  // Authorization header values, in any dump of headers or a signature error's echo.
  [
    /\b(Authorization["']?\s*[:=]\s*["']?(?:Basic|Bearer|AWS4-HMAC-SHA256)\s+)[^\s"',]+(?:[^\n"']*)/gi,
    "$1***",
  ],
  [/\b(Basic|Bearer)\s+[A-Za-z0-9+/=._~-]{8,}/g, "$1 ***"],
  [/(Signature=)[0-9a-f]{16,}/gi, "$1***"],
];

/** `text` with every known secret and every secret-looking value replaced by `***`. */
export function redact(text: string): string {
  let out = text;
  for (const secret of secrets) if (out.includes(secret)) out = out.split(secret).join("***");
  for (const [pattern, replacement] of PATTERNS) out = out.replace(pattern, replacement);
  return out;
}
