/** Human units for the terminal. */
export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

/** Throughput in MB/s (decimal, as network tools and our benchmarks report it). */
export function formatRate(bytes: number, seconds: number): string {
  if (seconds <= 0) return "-";
  return `${(bytes / seconds / 1e6).toFixed(1)} MB/s`;
}

export function shortDigest(digest: string | undefined): string {
  if (digest === undefined) return "(new blob)";
  const colon = digest.indexOf(":");
  return digest.slice(colon + 1, colon + 13);
}
