import { Readable } from "node:stream";
import { setTimeout as delay } from "node:timers/promises";
import { Agent, request, type Dispatcher } from "undici";
import { EcrxError } from "../../errors.js";
import { redact } from "../../util/redact.js";
import { fullJitterDelay } from "../aws/retry.js";
import type { PositionalSink } from "../types.js";

/**
 * Downloads of blobs from presigned URLs (ECR's GetDownloadUrlForLayer, a registry's 307 target).
 *
 * Small blobs come in one GET. Blobs of `rangeThreshold` bytes or more come as several Range
 * requests at once (`parallel` of `rangeSize` bytes each): as a stream (`downloadBlob`), emitted
 * in order as each range completes, so the hash downstream sees contiguous bytes, memory bounded
 * by parallel x rangeSize per blob; or into a destination that takes bytes by position
 * (`downloadBlobByPosition`), each range written as it arrives, nothing held. Each request
 * resumes from its first missing byte after a dropped connection; a 403 (an expired URL) asks for
 * a fresh URL; throttling and 5xx back off. Too few or too many bytes are corruption, never
 * accepted.
 */
export interface DownloadOptions {
  /** The blob's size (from its descriptor): ranges are cut from it and every byte is counted. */
  size: number;
  /** A URL for the blob; `fresh` asks for a new one after the old one was refused (expired). */
  url: (fresh: boolean) => Promise<string>;
  /** Headers for every request. Never an AWS Authorization header: presigned URLs refuse it. */
  headers?: Record<string, string>;
  /** Default 32 MiB. */
  rangeThreshold?: number;
  /** Default 16 MiB. */
  rangeSize?: number;
  /** Ranges in flight per blob. Default 8. */
  parallel?: number;
  /** Attempts per request (the first included). Default 6. */
  attempts?: number;
  signal?: AbortSignal | undefined;
  dispatcher?: Dispatcher;
}

/**
 * On loopback a pull is CPU-bound and ranges neither help nor hurt (bench/README.md: 410-460 MB/s
 * for a 1 GiB blob from one connection to 8 ranges of 4 to 32 MiB). Against S3, whose connections
 * are capped one by one, parallel ranges are what fills the pipe: on the local server's shaped
 * profiles (bench/README.md, "Real networks"), 8 ranges of 16 MiB pull 5.0x (cross-region) to
 * 5.4x (far) what one connection does, where 4 gave 3.3x. 16 MiB keeps a far link's 150 ms
 * round trip under 15% of each range (8 MiB ranges lost a fifth there). Streamed, 8 of them bound
 * a blob's memory to 128 MiB; written by position, to 8 batches of WRITE_BATCH.
 */
export const DOWNLOAD_DEFAULTS = {
  rangeThreshold: 32 * 1024 * 1024,
  rangeSize: 16 * 1024 * 1024,
  parallel: 8,
  attempts: 6,
};

let sharedAgent: Agent | undefined;
/** One keep-alive pool for all downloads of the process. */
export function downloadAgent(): Agent {
  sharedAgent ??= new Agent({
    connections: 64,
    keepAliveTimeout: 30_000,
    headersTimeout: 60_000,
    bodyTimeout: 120_000,
  });
  return sharedAgent;
}

export function downloadBlob(options: DownloadOptions): Readable {
  const fetcher = new RangeFetcher(options);
  const threshold = options.rangeThreshold ?? DOWNLOAD_DEFAULTS.rangeThreshold;
  const generator = options.size >= threshold ? fetcher.ranged() : fetcher.whole();
  return Readable.from(generator, { objectMode: false, highWaterMark: 1024 * 1024 });
}

/**
 * The whole blob written into `sink` by position, `parallel` ranges at once, each range's bytes
 * written as they arrive (in batches of WRITE_BATCH); a range that ends starts the next. Resolves
 * when every byte is written; on a failure, stops the other ranges and rejects once none of them
 * is writing any more.
 */
export function downloadBlobByPosition(options: DownloadOptions, sink: PositionalSink): Promise<void> {
  return new RangeFetcher(options).into(sink);
}

/**
 * Bytes of one range gathered before they are written: undici's chunks are 64 KiB at most, and
 * one writev of 1 MiB costs a sixteenth of the syscalls while holding little.
 */
const WRITE_BATCH = 1024 * 1024;

class RangeFetcher {
  private url: Promise<string> | undefined;
  private readonly attempts: number;
  private readonly dispatcher: Dispatcher;
  /** Ends the requests still in flight when the consumer stops early. */
  private readonly stopped = new AbortController();
  private readonly signal: AbortSignal;

  constructor(private readonly options: DownloadOptions) {
    this.attempts = options.attempts ?? DOWNLOAD_DEFAULTS.attempts;
    this.dispatcher = options.dispatcher ?? downloadAgent();
    this.signal = options.signal
      ? AbortSignal.any([options.signal, this.stopped.signal])
      : this.stopped.signal;
  }

  private currentUrl(fresh: boolean): Promise<string> {
    if (fresh || this.url === undefined) {
      this.url = this.options.url(fresh);
      this.url.catch(() => undefined);
    }
    return this.url;
  }

  /** The whole blob as one streamed GET, resumed with Range after a failure. */
  async *whole(): AsyncGenerator<Buffer> {
    try {
      yield* this.stream(0, this.options.size - 1);
    } finally {
      this.stopped.abort();
    }
  }

  /** Ranges fetched `parallel` at a time, emitted in order. */
  async *ranged(): AsyncGenerator<Buffer> {
    const size = this.options.size;
    const rangeSize = this.options.rangeSize ?? DOWNLOAD_DEFAULTS.rangeSize;
    const parallel = this.options.parallel ?? DOWNLOAD_DEFAULTS.parallel;
    const window: Promise<Buffer[]>[] = [];
    let next = 0;
    const start = () => {
      const first = next;
      const last = Math.min(first + rangeSize, size) - 1;
      next = last + 1;
      const range = this.collect(first, last);
      range.catch(() => undefined);
      window.push(range);
    };
    try {
      while (next < size && window.length < parallel) start();
      while (window.length > 0) {
        const chunks = await window.shift()!;
        if (next < size) start();
        yield* chunks;
      }
    } finally {
      // A consumer that stopped early (an error downstream) leaves nothing running.
      this.stopped.abort();
    }
  }

  async into(sink: PositionalSink): Promise<void> {
    const size = this.options.size;
    const rangeSize = this.options.rangeSize ?? DOWNLOAD_DEFAULTS.rangeSize;
    const parallel = this.options.parallel ?? DOWNLOAD_DEFAULTS.parallel;
    let next = 0;
    let failure: { error: unknown } | undefined;
    const worker = async () => {
      while (next < size && failure === undefined) {
        const first = next;
        const last = Math.min(first + rangeSize, size) - 1;
        next = last + 1;
        await this.writeRange(sink, first, last);
      }
    };
    const workers = Math.max(1, Math.min(parallel, Math.ceil(size / rangeSize)));
    await Promise.all(
      Array.from({ length: workers }, () =>
        worker().catch((error: unknown) => {
          failure ??= { error };
          // The other ranges stop at their next chunk, and are waited for.
          this.stopped.abort();
        }),
      ),
    );
    this.stopped.abort();
    if (failure !== undefined) throw failure.error;
  }

  /** Bytes first..last written into `sink` as they come. */
  private async writeRange(sink: PositionalSink, first: number, last: number): Promise<void> {
    let batch: Buffer[] = [];
    let batchStart = first;
    let batchBytes = 0;
    // A request that resumes after a failure goes on from the first byte not yet received, so the
    // batch stays contiguous across attempts.
    for await (const chunk of this.stream(first, last)) {
      batch.push(chunk);
      batchBytes += chunk.length;
      if (batchBytes >= WRITE_BATCH) {
        await sink.write(batchStart, batch);
        batchStart += batchBytes;
        batch = [];
        batchBytes = 0;
      }
    }
    if (batchBytes > 0) await sink.write(batchStart, batch);
  }

  private async collect(first: number, last: number): Promise<Buffer[]> {
    const chunks: Buffer[] = [];
    for await (const chunk of this.stream(first, last)) chunks.push(chunk);
    return chunks;
  }

  /** Bytes first..last (inclusive), resuming at the first missing byte after each failure. */
  private async *stream(first: number, last: number): AsyncGenerator<Buffer> {
    let position = first;
    let fresh = false;
    for (let attempt = 1; ; attempt++) {
      // Stopped (by the caller, or because another range failed): no retry.
      this.signal.throwIfAborted();
      let failure: unknown;
      try {
        for await (const chunk of this.get(position, last, fresh)) {
          position += chunk.length;
          if (position > last + 1) {
            throw new EcrxError("INTEGRITY", `the server sent more bytes than the blob has (${last + 1})`);
          }
          yield chunk;
        }
        if (position === last + 1) return;
        failure = new EcrxError("NETWORK", `the download ended at byte ${position} of ${last + 1}`);
      } catch (err) {
        if (err instanceof EcrxError && err.code !== "NETWORK") throw err;
        failure = err;
      }
      this.signal.throwIfAborted();
      fresh = (failure as { statusCode?: number }).statusCode === 403;
      if (attempt >= this.attempts) {
        throw failure instanceof EcrxError
          ? failure
          : new EcrxError("NETWORK", `download failed: ${describe(failure)}`, { cause: failure });
      }
      // An expired URL is refreshed at once; other failures back off.
      if (!fresh)
        await delay(fullJitterDelay(attempt - 1, 200, 10_000, Math.random), undefined, {
          signal: this.signal,
        });
    }
  }

  private async *get(first: number, last: number, fresh: boolean): AsyncGenerator<Buffer> {
    const url = await this.currentUrl(fresh);
    const whole = first === 0 && last === this.options.size - 1;
    const response = await request(url, {
      method: "GET",
      dispatcher: this.dispatcher,
      headers: { ...this.options.headers, ...(whole ? {} : { range: `bytes=${first}-${last}` }) },
      signal: this.signal,
    });
    const status = response.statusCode;
    if (status !== 200 && status !== 206) {
      const text = (await response.body.text().catch(() => "")).slice(0, 200);
      throw Object.assign(
        new EcrxError(
          status === 403 || status === 429 || status >= 500
            ? "NETWORK"
            : status === 404
              ? "NOT_FOUND"
              : "NETWORK",
          `download answered HTTP ${status}${text ? `: ${describeBody(text)}` : ""}`,
        ),
        { statusCode: status },
      );
    }
    if (!whole && status === 200) {
      // The server ignored Range: take the bytes we need out of the full body.
      yield* skip(response.body, first, last);
      return;
    }
    if (status === 206) checkContentRange(response.headers["content-range"], first, last);
    for await (const chunk of response.body) yield chunk as Buffer;
  }
}

async function* skip(body: AsyncIterable<Buffer>, first: number, last: number): AsyncGenerator<Buffer> {
  let offset = 0;
  for await (const chunk of body) {
    const start = Math.max(first - offset, 0);
    const end = Math.min(last + 1 - offset, chunk.length);
    if (end > start) yield chunk.subarray(start, end);
    offset += chunk.length;
    if (offset > last) return;
  }
}

function checkContentRange(header: string | string[] | undefined, first: number, last: number): void {
  const value = Array.isArray(header) ? header[0] : header;
  const match = /^bytes (\d+)-(\d+)\//.exec(value ?? "");
  if (!match || Number(match[1]) !== first || Number(match[2]) > last) {
    throw new EcrxError("INTEGRITY", `asked for bytes ${first}-${last}, got Content-Range "${value ?? ""}"`);
  }
}

/**
 * What an error body says, for a message. S3 answers XML whose `Code` and `Message` say it all, and
 * whose other elements of a refused URL (`SignatureProvided`, `StringToSign`, `CanonicalRequest`)
 * repeat the signature and credential of the URL: only Code and Message are kept. Other bodies
 * give their first line, redacted.
 */
function describeBody(text: string): string {
  const code = /<Code>([^<]*)<\/Code>/.exec(text)?.[1];
  const message = /<Message>([^<]*)<\/Message>/.exec(text)?.[1];
  if (code !== undefined) return redact(`${code}${message ? `: ${message}` : ""}`);
  return redact(firstLine(text));
}

function firstLine(text: string): string {
  return text
    .replace(/<[^>]+>/g, " ")
    .replace(/\s+/g, " ")
    .trim();
}

function describe(err: unknown): string {
  if (err instanceof Error) return `${(err as { code?: string }).code ?? err.name}: ${err.message}`;
  return String(err);
}
