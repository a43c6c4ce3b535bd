/** Plain-text layouts of listings for the terminal. */

/**
 * Columns padded to their widest cell, separated by two spaces; the last column is not padded, so
 * lines carry no trailing blanks. `header` is the first row.
 */
export function formatTable(header: string[], rows: string[][]): string {
  const all = [header, ...rows];
  const widths = header.map((_, col) => Math.max(...all.map((row) => visibleLength(row[col] ?? ""))));
  return all
    .map((row) =>
      row
        .map((cell, col) =>
          col === row.length - 1 ? cell : cell + " ".repeat(widths[col]! - visibleLength(cell)),
        )
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

/** `key  value` lines with keys padded alike; a value of several lines is indented under the first. */
export function formatFields(fields: [string, string | string[]][]): string {
  const width = Math.max(...fields.map(([key]) => key.length));
  const lines: string[] = [];
  for (const [key, value] of fields) {
    const values = Array.isArray(value) ? value : [value];
    values.forEach((v, i) =>
      lines.push(`${i === 0 ? key.padEnd(width) : " ".repeat(width)}  ${v}`.trimEnd()),
    );
  }
  return lines.join("\n");
}

// Cells may hold color codes, which take no room on the screen.
const SGR = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, "g");

function visibleLength(text: string): number {
  return text.replace(SGR, "").length;
}

const SHORT_MEDIA_TYPES: Record<string, string> = {
  "application/vnd.oci.image.manifest.v1+json": "oci image",
  "application/vnd.oci.image.index.v1+json": "oci index",
  "application/vnd.docker.distribution.manifest.v2+json": "docker image",
  "application/vnd.docker.distribution.manifest.list.v2+json": "docker list",
};

/** `oci image`, `docker list`, ...: manifest media types short enough for a column. */
export function shortMediaType(mediaType: string | undefined): string {
  if (mediaType === undefined) return "-";
  return SHORT_MEDIA_TYPES[mediaType] ?? mediaType;
}

/** `2025-03-01 14:02:11Z` from an ISO 8601 time: seconds are what ECR records. */
export function formatTime(iso: string | undefined): string {
  if (iso === undefined) return "-";
  return iso.replace("T", " ").replace(/\.\d+Z$/, "Z");
}

/** `sha256:` and the first 12 hex digits, as docker shows image ids. */
export function abbreviateDigest(digest: string | undefined): string {
  if (digest === undefined) return "-";
  const colon = digest.indexOf(":");
  return `${digest.slice(0, colon + 1)}${digest.slice(colon + 1, colon + 13)}`;
}
