/**
 * Input validation against the AWS API models: a member of the wrong type, a missing required
 * member, or a value outside its length, range, pattern or enum fails the whole call with
 * InvalidParameterException, worded like AWS's own validation messages. Unknown members are ignored.
 */
import { ApiError } from "./api.js";

export type Members = Record<string, unknown>;

export function invalidParameter(message: string): ApiError {
  return new ApiError("InvalidParameterException", message);
}

function constraint(path: string, value: unknown, rule: string): ApiError {
  const shown = typeof value === "string" ? value : JSON.stringify(value);
  return invalidParameter(
    `1 validation error detected: Value '${shown}' at '${path}' failed to satisfy constraint: ${rule}`,
  );
}

function notNull(path: string): ApiError {
  return invalidParameter(
    `1 validation error detected: Value null at '${path}' failed to satisfy constraint: Member must not be null`,
  );
}

function wrongType(path: string, expected: string): ApiError {
  return invalidParameter(`Invalid parameter at '${path}': expected ${expected}`);
}

export interface StringRule {
  min?: number;
  max?: number;
  /** Matched against the whole value. */
  pattern?: RegExp;
  /** The pattern as the AWS model spells it, for the message. */
  patternText?: string;
  values?: readonly string[];
}

export function checkString(path: string, value: unknown, rule: StringRule = {}): string {
  if (typeof value !== "string") throw wrongType(path, "a string");
  if (rule.min !== undefined && value.length < rule.min) {
    throw constraint(path, value, `Member must have length greater than or equal to ${rule.min}`);
  }
  if (rule.max !== undefined && value.length > rule.max) {
    // A 4 MiB manifest does not belong in an error message.
    const shown = value.length > 300 ? `${value.slice(0, 300)}...` : value;
    throw constraint(path, shown, `Member must have length less than or equal to ${rule.max}`);
  }
  if (rule.pattern !== undefined && !rule.pattern.test(value)) {
    const text = rule.patternText ?? rule.pattern.source;
    throw constraint(path, value, `Member must satisfy regular expression pattern: ${text}`);
  }
  if (rule.values !== undefined && !rule.values.includes(value)) {
    throw constraint(path, value, `Member must satisfy enum value set: [${rule.values.join(", ")}]`);
  }
  return value;
}

export function optionalString(
  input: Members,
  name: string,
  rule: StringRule = {},
  path = name,
): string | undefined {
  const value = input[name];
  return value === undefined || value === null ? undefined : checkString(path, value, rule);
}

export function requiredString(input: Members, name: string, rule: StringRule = {}, path = name): string {
  const value = input[name];
  if (value === undefined || value === null) throw notNull(path);
  return checkString(path, value, rule);
}

export interface IntegerRule {
  min?: number;
  max?: number;
}

function checkInteger(path: string, value: unknown, rule: IntegerRule): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value)) throw wrongType(path, "an integer");
  if (rule.min !== undefined && value < rule.min) {
    throw constraint(path, value, `Member must have value greater than or equal to ${rule.min}`);
  }
  if (rule.max !== undefined && value > rule.max) {
    throw constraint(path, value, `Member must have value less than or equal to ${rule.max}`);
  }
  return value;
}

export function optionalInteger(input: Members, name: string, rule: IntegerRule = {}): number | undefined {
  const value = input[name];
  return value === undefined || value === null ? undefined : checkInteger(name, value, rule);
}

export function requiredInteger(input: Members, name: string, rule: IntegerRule = {}): number {
  const value = input[name];
  if (value === undefined || value === null) throw notNull(name);
  return checkInteger(name, value, rule);
}

export function optionalBoolean(input: Members, name: string, path = name): boolean | undefined {
  const value = input[name];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "boolean") throw wrongType(path, "a boolean");
  return value;
}

export interface ListRule {
  min?: number;
  max?: number;
}

function checkList(path: string, value: unknown, rule: ListRule): unknown[] {
  if (!Array.isArray(value)) throw wrongType(path, "a list");
  if (rule.min !== undefined && value.length < rule.min) {
    throw constraint(path, value.length, `Member must have length greater than or equal to ${rule.min}`);
  }
  if (rule.max !== undefined && value.length > rule.max) {
    throw constraint(path, value.length, `Member must have length less than or equal to ${rule.max}`);
  }
  return value;
}

export function optionalList(input: Members, name: string, rule: ListRule = {}): unknown[] | undefined {
  const value = input[name];
  return value === undefined || value === null ? undefined : checkList(name, value, rule);
}

export function requiredList(input: Members, name: string, rule: ListRule = {}): unknown[] {
  const value = input[name];
  if (value === undefined || value === null) throw notNull(name);
  return checkList(name, value, rule);
}

export function checkStructure(path: string, value: unknown): Members {
  if (typeof value !== "object" || value === null || Array.isArray(value))
    throw wrongType(path, "a structure");
  return value as Members;
}

export function optionalStructure(input: Members, name: string, path = name): Members | undefined {
  const value = input[name];
  return value === undefined || value === null ? undefined : checkStructure(path, value);
}

/** Strict base64 (the JSON encoding of blob members); returns the decoded bytes. */
export function requiredBlob(input: Members, name: string, maxBytes: number): Buffer {
  const value = input[name];
  if (value === undefined || value === null) throw notNull(name);
  // The HTTP front decodes UploadLayerPart's blob itself, strictly (server.ts, decodeBase64).
  if (Buffer.isBuffer(value)) return checkBlobSize(name, value, maxBytes);
  if (typeof value !== "string") throw wrongType(name, "a base64 string");
  // Buffer.from skips characters outside the alphabet silently, and takes the URL-safe alphabet
  // too; AWS refuses both. A skipped character makes the decoded length fall short of what the
  // length of the text promises, so comparing lengths (and looking for - and _) is exact, and
  // runs in native code: a regular expression over a 28 MB string took most of a part's time.
  const bytes = Buffer.from(value, "base64");
  const padding = value.endsWith("==") ? 2 : value.endsWith("=") ? 1 : 0;
  if (
    value.length % 4 !== 0 ||
    bytes.length !== (value.length / 4) * 3 - padding ||
    value.includes("-") ||
    value.includes("_")
  ) {
    throw invalidParameter(`Invalid parameter at '${name}': not valid base64`);
  }
  return checkBlobSize(name, bytes, maxBytes);
}

function checkBlobSize(name: string, bytes: Buffer, maxBytes: number): Buffer {
  if (bytes.length > maxBytes) {
    throw constraint(
      name,
      `<${bytes.length} bytes>`,
      `Member must have length less than or equal to ${maxBytes}`,
    );
  }
  return bytes;
}
