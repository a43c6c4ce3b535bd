/**
 * Paging of list operations: items in a stable key order, and an opaque `nextToken` that names the
 * last key returned, the operation and the listing it belongs to. Keys rather than offsets, so that
 * items added or removed between calls neither repeat nor vanish from the pages after them.
 */
import { invalidParameter } from "./validate.js";

export const DEFAULT_MAX_RESULTS = 100;

interface TokenBody {
  op: string;
  scope: string;
  after: string;
}

export interface Page<T> {
  items: T[];
  nextToken: string | undefined;
}

/** `items` must be sorted by `key`, ascending and unique. */
export function paginate<T>(
  items: readonly T[],
  key: (item: T) => string,
  options: { op: string; scope: string; nextToken: string | undefined; maxResults: number | undefined },
): Page<T> {
  const limit = options.maxResults ?? DEFAULT_MAX_RESULTS;
  let start = 0;
  if (options.nextToken !== undefined) {
    const after = decodeToken(options.nextToken, options.op, options.scope);
    start = items.findIndex((item) => key(item) > after);
    if (start < 0) start = items.length;
  }
  const pageItems = items.slice(start, start + limit);
  const last = pageItems[pageItems.length - 1];
  const more = start + limit < items.length && last !== undefined;
  return {
    items: pageItems,
    nextToken: more ? encodeToken({ op: options.op, scope: options.scope, after: key(last) }) : undefined,
  };
}

function encodeToken(body: TokenBody): string {
  return Buffer.from(JSON.stringify(body)).toString("base64url");
}

function decodeToken(token: string, op: string, scope: string): string {
  let body: unknown;
  try {
    body = JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
  } catch {
    body = undefined;
  }
  const parsed = body as Partial<TokenBody> | undefined;
  if (
    typeof parsed !== "object" ||
    parsed === null ||
    parsed.op !== op ||
    parsed.scope !== scope ||
    typeof parsed.after !== "string"
  ) {
    throw invalidParameter(
      "Invalid parameter at 'nextToken' failed to satisfy constraint: 'Invalid NextToken'",
    );
  }
  return parsed.after;
}
