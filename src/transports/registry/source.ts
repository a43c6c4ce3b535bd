import { Readable } from "node:stream";
import { request } from "undici";
import { EcrxError, isEcrxError } from "../../errors.js";
import { sha256Digest } from "../../manifest/digest.js";
import { isManifestType, MANIFEST_TYPES } from "../../manifest/media-types.js";
import { MAX_MANIFEST_BYTES, parseManifest } from "../../manifest/parse.js";
import type { Descriptor, RawManifest } from "../../manifest/types.js";
import { fullJitterDelay } from "../aws/retry.js";
import { downloadAgent, downloadBlob, type DownloadOptions } from "../http/blob-download.js";
import type { ByteRange, ImageSource } from "../types.js";
import { header, MAX_REDIRECTS, resolveLocation, type RegistryClient } from "./client.js";

export interface RegistrySourceOptions {
  /** The root image: a digest wins over a tag; neither means `latest`. */
  tag?: string | undefined;
  digest?: string | undefined;
  /** Tuning of ranged downloads from redirect targets (see http/blob-download.ts). */
  download?: Pick<DownloadOptions, "rangeThreshold" | "rangeSize" | "parallel">;
  signal?: AbortSignal | undefined;
}

/** Attempts per blob request when the registry serves the bytes itself (resumed with Range). */
const BLOB_ATTEMPTS = 6;

/**
 * A repository of an OCI distribution registry as an image source.
 *
 * Manifests: `GET /v2/<name>/manifests/<ref>` accepting the four manifest types, so the registry
 * never converts; the bytes are kept verbatim and must hash to the digest asked for and to
 * `Docker-Content-Digest`. Blobs: `GET /v2/<name>/blobs/<digest>`; a redirect to another host (S3
 * behind ECR, a CDN) is fetched without our Authorization (S3 refuses two auth mechanisms) through
 * http/blob-download.ts, with ranged parallel GETs and resume; bytes the registry serves itself
 * resume with Range after a dropped connection. Digests of blobs are checked by the engine.
 */
export class RegistrySource implements ImageSource {
  readonly reference: string;

  constructor(
    private readonly client: RegistryClient,
    reference: string,
    private readonly options: RegistrySourceOptions = {},
  ) {
    this.reference = reference;
  }

  async manifest(digest?: string): Promise<RawManifest> {
    const ref = digest ?? this.options.digest ?? this.options.tag ?? "latest";
    const what = `manifest ${this.client.repository}${ref.includes(":") ? "@" : ":"}${ref} of ${this.client.registry}`;
    const res = await this.client.request({
      method: "GET",
      url: this.client.path(`manifests/${ref}`),
      headers: { accept: MANIFEST_TYPES.join(", ") },
      expect: [200],
      what: `GET ${what}`,
      followRedirects: true,
    });
    const length = Number(header(res.headers, "content-length"));
    if (length > MAX_MANIFEST_BYTES) {
      res.body.destroy();
      throw new EcrxError(
        "INVALID_INPUT",
        `${what} is ${length} bytes, over the ${MAX_MANIFEST_BYTES}-byte limit`,
      );
    }
    const bytes = await readCapped(res.body, MAX_MANIFEST_BYTES, what);
    const actual = sha256Digest(bytes);
    const claimed = header(res.headers, "docker-content-digest");
    if (claimed !== undefined && claimed.startsWith("sha256:") && claimed !== actual) {
      throw new EcrxError("INTEGRITY", `${what} hashes to ${actual}, the registry says ${claimed}`);
    }
    if (ref.startsWith("sha256:") && ref !== actual) {
      throw new EcrxError("INTEGRITY", `${what} hashes to ${actual}`);
    }
    const contentType = header(res.headers, "content-type")?.split(";")[0]?.trim();
    const parsed = parseManifest(bytes, {
      ...(contentType !== undefined && isManifestType(contentType) ? { mediaType: contentType } : {}),
      what,
    });
    return parsed.raw;
  }

  /** The repository's tags, following the `Link` header from page to page. */
  async tags(): Promise<string[]> {
    const tags: string[] = [];
    let url: string | URL = this.client.path("tags/list?n=1000");
    for (let page = 0; page < 10_000; page++) {
      const res = await this.client.request({
        method: "GET",
        url,
        expect: [200],
        what: `GET tags of ${this.client.repository} of ${this.client.registry}`,
      });
      const text = await readCapped(res.body, 64 * 1024 * 1024, `tags of ${this.client.repository}`);
      let doc: { tags?: unknown };
      try {
        doc = JSON.parse(text.toString("utf8")) as { tags?: unknown };
      } catch {
        throw new EcrxError(
          "NETWORK",
          `${this.client.registry} answered the tag list with something that is not JSON`,
        );
      }
      if (Array.isArray(doc.tags)) tags.push(...doc.tags.filter((t): t is string => typeof t === "string"));
      const next = /<([^>]+)>\s*;\s*rel="?next"?/.exec(header(res.headers, "link") ?? "")?.[1];
      if (next === undefined) return tags;
      url = resolveLocation(next, res.url);
    }
    throw new EcrxError(
      "NETWORK",
      `${this.client.registry} kept paging the tags of ${this.client.repository}`,
    );
  }

  async blob(d: Descriptor, range?: ByteRange): Promise<Readable> {
    const first = range?.start ?? 0;
    const last = range?.end ?? d.size - 1;
    const what = `blob ${d.digest} of ${this.client.repository}`;
    const opened = await this.open(d, first, last, what);
    if (opened.kind === "registry") {
      return Readable.from(resumed(opened.body, first, last, (at) => this.reopen(d, at, last, what)));
    }
    if (range === undefined) {
      // The first URL was fetched above, so that a missing blob fails here and not mid-stream;
      // a refused one (an expired presigned URL) is replaced by asking the registry again.
      return downloadBlob({
        size: d.size,
        url: async (fresh) => (fresh ? this.redirectTarget(d, what) : opened.location),
        ...this.options.download,
        ...(this.options.signal === undefined ? {} : { signal: this.options.signal }),
      });
    }
    return Readable.from(
      resumed(undefined, first, last, (at) => this.reopenElsewhere(opened.location, at, last, what)),
    );
  }

  /**
   * GET of the blob: the body when the registry serves it, or the URL it redirects to on another
   * host (not fetched here: downloadBlob makes its own requests).
   */
  private async open(
    d: Descriptor,
    first: number,
    last: number,
    what: string,
  ): Promise<{ kind: "registry"; body: Readable } | { kind: "elsewhere"; location: string }> {
    let url: URL | string = this.client.path(`blobs/${d.digest}`);
    for (let redirects = 0; ; redirects++) {
      const res = await this.client.request({
        method: "GET",
        url,
        headers: rangeHeader(first, last, d.size),
        expect: [200, 206, 301, 302, 303, 307, 308],
        what: `GET ${what}`,
      });
      if (res.status === 200 || res.status === 206) {
        checkRangeAnswer(res.status, header(res.headers, "content-range"), first, last, what);
        return {
          kind: "registry",
          body: res.status === 200 && first > 0 ? Readable.from(skipTo(res.body, first)) : res.body,
        };
      }
      await res.body.dump();
      const location = header(res.headers, "location");
      if (location === undefined)
        throw new EcrxError("NETWORK", `GET ${what}: HTTP ${res.status} without a Location`);
      if (redirects >= MAX_REDIRECTS) {
        throw new EcrxError("NETWORK", `GET ${what}: more than ${MAX_REDIRECTS} redirects (a redirect loop)`);
      }
      const target = resolveLocation(location, res.url);
      // Same registry: follow with our Authorization; another host: hand the URL over, bare.
      if (target.origin === res.url.origin) {
        url = target;
        continue;
      }
      this.client.checkScheme(target, `GET ${what}`);
      return { kind: "elsewhere", location: target.toString() };
    }
  }

  private async redirectTarget(d: Descriptor, what: string): Promise<string> {
    const opened = await this.open(d, 0, d.size - 1, what);
    if (opened.kind === "registry") {
      opened.body.destroy();
      throw new EcrxError("NETWORK", `GET ${what}: the registry stopped redirecting the download`);
    }
    return opened.location;
  }

  private async reopen(d: Descriptor, at: number, last: number, what: string): Promise<Readable> {
    const opened = await this.open(d, at, last, what);
    if (opened.kind === "registry") return opened.body;
    return this.reopenElsewhere(opened.location, at, last, what);
  }

  private async reopenElsewhere(location: string, at: number, last: number, what: string): Promise<Readable> {
    const res = await request(location, {
      method: "GET",
      headers: { range: `bytes=${at}-${last}` },
      dispatcher: downloadAgent(),
      ...(this.options.signal === undefined ? {} : { signal: this.options.signal }),
    });
    if (res.statusCode !== 200 && res.statusCode !== 206) {
      await res.body.dump();
      throw new EcrxError(
        res.statusCode === 404 ? "NOT_FOUND" : "NETWORK",
        `GET ${what} (redirected): HTTP ${res.statusCode}`,
      );
    }
    checkRangeAnswer(res.statusCode, header(res.headers, "content-range"), at, last, what);
    return res.statusCode === 200 && at > 0 ? Readable.from(skipTo(res.body, at)) : res.body;
  }

  async close(): Promise<void> {
    await this.client.close();
  }
}

function rangeHeader(first: number, last: number, size: number): Record<string, string> {
  return first === 0 && last === size - 1 ? {} : { range: `bytes=${first}-${last}` };
}

function checkRangeAnswer(
  status: number,
  contentRange: string | undefined,
  first: number,
  last: number,
  what: string,
): void {
  if (status !== 206) return;
  const match = /^bytes (\d+)-(\d+)\//.exec(contentRange ?? "");
  if (!match || Number(match[1]) !== first || Number(match[2]) > last) {
    throw new EcrxError(
      "INTEGRITY",
      `${what}: asked for bytes ${first}-${last}, got Content-Range "${contentRange ?? ""}"`,
    );
  }
}

/** A body that ignored Range, from byte `at` on. */
async function* skipTo(body: AsyncIterable<Buffer>, at: number): AsyncGenerator<Buffer> {
  let offset = 0;
  for await (const chunk of body) {
    const start = Math.max(at - offset, 0);
    offset += chunk.length;
    if (start < chunk.length) yield start === 0 ? chunk : chunk.subarray(start);
  }
}

/**
 * Bytes first..last: `initial` (when given), then after each dropped connection a new request
 * from the first missing byte. More bytes than asked is corruption; fewer, after the retries, a
 * network error.
 */
async function* resumed(
  initial: Readable | undefined,
  first: number,
  last: number,
  reopen: (at: number) => Promise<Readable>,
): AsyncGenerator<Buffer> {
  let position = first;
  let body = initial;
  for (let attempt = 1; ; attempt++) {
    let failure: unknown;
    try {
      body ??= await reopen(position);
      for await (const chunk of body) {
        const buffer = chunk as Buffer;
        position += buffer.length;
        if (position > last + 1) {
          throw new EcrxError("INTEGRITY", `the registry sent more bytes than the blob has (${last + 1})`);
        }
        yield buffer;
      }
      if (position === last + 1) return;
      failure = new EcrxError("NETWORK", `the download ended at byte ${position} of ${last + 1}`);
    } catch (err) {
      if (isEcrxError(err) && err.code !== "NETWORK") throw err;
      failure = err;
    } finally {
      body?.destroy();
    }
    body = undefined;
    if (attempt >= BLOB_ATTEMPTS) {
      throw isEcrxError(failure)
        ? failure
        : new EcrxError("NETWORK", `download failed: ${(failure as Error).message}`, { cause: failure });
    }
    await new Promise((resolve) =>
      setTimeout(resolve, fullJitterDelay(attempt - 1, 200, 10_000, Math.random)),
    );
  }
}

async function readCapped(body: AsyncIterable<Buffer>, limit: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of body) {
    total += chunk.length;
    if (total > limit) throw new EcrxError("INVALID_INPUT", `${what} is over the ${limit}-byte limit`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}
