/**
 * Blobs written by position: the file that takes ranges in any order and verifies them in order
 * (PositionalBlobFile), the staging that publishes it only when verified (BlobStaging), and the
 * ranged download that writes each range as it arrives (downloadBlobByPosition), against a real
 * HTTP server on loopback.
 */
import { createHash, randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { mkdtemp, open, readFile, readdir, rm } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { downloadBlobByPosition } from "../../src/transports/http/blob-download.js";
import type { PositionalSink } from "../../src/transports/types.js";
import { BlobStaging } from "../../src/util/blob-staging.js";
import { PositionalBlobFile } from "../../src/util/positional-blob-file.js";
import { expectEcrxError } from "../helpers/expect-error.js";

const KiB = 1024;
const MiB = 1024 * KiB;

let work: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "ecrx-positional-"));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

function sha256(bytes: Uint8Array): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

/** `bytes` cut into pieces of `size`, as [position, bytes]. */
function pieces(bytes: Buffer, size: number): [number, Buffer][] {
  const out: [number, Buffer][] = [];
  for (let at = 0; at < bytes.length; at += size) out.push([at, bytes.subarray(at, at + size)]);
  return out;
}

/** A PositionalBlobFile on a fresh file; `close` stops it and closes the file. */
async function blobFile(expected: { digest: string; size: number }) {
  const path = join(work, `file-${randomBytes(4).toString("hex")}`);
  const file = await open(path, "w+");
  let progress = 0;
  const writer = new PositionalBlobFile(file, expected, "test blob", (n) => (progress += n));
  return {
    path,
    writer,
    progress: () => progress,
    close: async () => {
      await writer.stop();
      await file.close();
    },
  };
}

describe("PositionalBlobFile", () => {
  it("takes pieces in any order, and verifies the whole blob in order", async () => {
    const bytes = randomBytes(5 * MiB + 123);
    const f = await blobFile({ digest: sha256(bytes), size: bytes.length });
    const shuffled = pieces(bytes, 700 * KiB).reverse();
    // Two at once, the last pieces first: the hash can only start once piece 0 is in.
    for (let i = 0; i < shuffled.length; i += 2) {
      await Promise.all(shuffled.slice(i, i + 2).map(([at, piece]) => f.writer.write(at, [piece])));
    }
    await f.writer.finish();
    await f.close();
    expect(f.progress()).toBe(bytes.length);
    expect(sha256(await readFile(f.path))).toBe(sha256(bytes));
  });

  it("writes a batch of several chunks at its position", async () => {
    const bytes = randomBytes(3 * MiB);
    const f = await blobFile({ digest: sha256(bytes), size: bytes.length });
    // Second half first, each as a batch of 64 KiB chunks (what a range delivers).
    for (const [at, half] of pieces(bytes, 1.5 * MiB).reverse()) {
      await f.writer.write(
        at,
        pieces(half, 64 * KiB).map(([, chunk]) => chunk),
      );
    }
    await f.writer.finish();
    await f.close();
    expect(sha256(await readFile(f.path))).toBe(sha256(bytes));
  });

  it("fails with INTEGRITY when a range was never written", async () => {
    const bytes = randomBytes(3 * MiB);
    const f = await blobFile({ digest: sha256(bytes), size: bytes.length });
    const [first, , third] = pieces(bytes, MiB);
    await f.writer.write(first![0], [first![1]]);
    await f.writer.write(third![0], [third![1]]);
    await expectEcrxError(f.writer.finish(), "INTEGRITY", /only bytes 0-1048575 of 3145728 were written/);
    await f.close();
  });

  it("fails with INTEGRITY when the bytes do not hash to the digest", async () => {
    const bytes = randomBytes(2 * MiB);
    const f = await blobFile({ digest: sha256(bytes), size: bytes.length });
    const wrong = Buffer.from(bytes);
    wrong[MiB + 7] = wrong[MiB + 7]! ^ 0xff;
    for (const [at, piece] of pieces(wrong, 512 * KiB).reverse()) await f.writer.write(at, [piece]);
    await expectEcrxError(f.writer.finish(), "INTEGRITY", /test blob: digest mismatch/);
    await f.close();
  });

  it("refuses bytes beyond the blob's size", async () => {
    const bytes = randomBytes(100 * KiB);
    const f = await blobFile({ digest: sha256(bytes), size: bytes.length });
    await expectEcrxError(
      f.writer.write(99 * KiB, [randomBytes(2 * KiB)]),
      "INTEGRITY",
      /bytes 101376-103423 are outside the blob's 102400/,
    );
    await f.close();
  });

  it("verifies sha512 digests too", async () => {
    const bytes = randomBytes(MiB);
    const digest = `sha512:${createHash("sha512").update(bytes).digest("hex")}`;
    const f = await blobFile({ digest, size: bytes.length });
    for (const [at, piece] of pieces(bytes, 300 * KiB).reverse()) await f.writer.write(at, [piece]);
    await f.writer.finish();
    await f.close();
  });
});

describe("BlobStaging.putByPosition", () => {
  it("publishes the blob under its digest once verified", async () => {
    const staging = new BlobStaging(join(work, "staging-ok"));
    const bytes = randomBytes(2 * MiB + 5);
    const digest = sha256(bytes);
    let progress = 0;
    const put = await staging.putByPosition(
      { mediaType: "application/octet-stream", digest, size: bytes.length, sizeIsExact: true },
      async (sink) => {
        for (const [at, piece] of pieces(bytes, 256 * KiB).reverse()) await sink.write(at, [piece]);
      },
      (n) => (progress += n),
      "test",
    );
    expect(put).toEqual({ mediaType: "application/octet-stream", digest, size: bytes.length });
    expect(staging.has(digest)).toBe(true);
    expect(progress).toBe(bytes.length);
    expect(sha256(await readFile(staging.path(digest)))).toBe(digest);
  });

  it("leaves no file behind when the fill fails or the bytes are wrong", async () => {
    const dir = join(work, "staging-fail");
    const staging = new BlobStaging(dir);
    const bytes = randomBytes(MiB);
    const blob = {
      mediaType: "application/octet-stream",
      digest: sha256(bytes),
      size: bytes.length,
      sizeIsExact: true,
    };
    await expect(
      staging.putByPosition(
        blob,
        async (sink) => {
          await sink.write(0, [bytes.subarray(0, 1000)]);
          throw new Error("connection reset");
        },
        () => undefined,
        "test",
      ),
    ).rejects.toThrow(/connection reset/);
    const wrong = Buffer.from(bytes);
    wrong[0] = wrong[0]! ^ 1;
    await expectEcrxError(
      staging.putByPosition(
        blob,
        (sink) => sink.write(0, [wrong]),
        () => undefined,
        "test",
      ),
      "INTEGRITY",
      /digest mismatch/,
    );
    expect(staging.has(blob.digest)).toBe(false);
    expect(await readdir(dir)).toEqual([]);
  });
});

/** A blob server that answers Range requests after `delay(start)` ms, with `fail(start)` if it says so. */
async function rangeServer(
  bytes: Buffer,
  behaviour: { delay?: (start: number) => number; fail?: (start: number) => number | undefined } = {},
): Promise<{ url: string; server: Server; ranges: string[] }> {
  const ranges: string[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const match = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? "");
    const start = match ? Number(match[1]) : 0;
    const end = match ? Number(match[2]) : bytes.length - 1;
    ranges.push(`${start}-${end}`);
    setTimeout(
      () => {
        const status = behaviour.fail?.(start);
        if (status !== undefined) {
          res.writeHead(status).end("no");
          return;
        }
        res.writeHead(match ? 206 : 200, {
          "content-length": end - start + 1,
          ...(match ? { "content-range": `bytes ${start}-${end}/${bytes.length}` } : {}),
        });
        res.end(bytes.subarray(start, end + 1));
      },
      behaviour.delay?.(start) ?? 0,
    );
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/blob`, server, ranges };
}

/** A sink that keeps what it is given in memory, in the order writes complete. */
class RecordingSink implements PositionalSink {
  readonly bytes: Buffer;
  readonly order: number[] = [];
  pending = 0;
  constructor(
    size: number,
    private readonly writeMs = 1,
  ) {
    this.bytes = Buffer.alloc(size);
  }
  async write(position: number, chunks: Buffer[]): Promise<void> {
    this.pending++;
    await new Promise((resolve) => setTimeout(resolve, this.writeMs));
    let at = position;
    for (const chunk of chunks) {
      chunk.copy(this.bytes, at);
      at += chunk.length;
    }
    this.order.push(position);
    this.pending--;
  }
}

describe("downloadBlobByPosition", () => {
  it("writes each range as it arrives, not after the ranges before it", async () => {
    const bytes = randomBytes(4 * MiB);
    // The first range is slow: the others come and are written while it is still on its way.
    const { url, server } = await rangeServer(bytes, { delay: (start) => (start === 0 ? 300 : 0) });
    try {
      const sink = new RecordingSink(bytes.length);
      await downloadBlobByPosition(
        { size: bytes.length, url: async () => url, rangeSize: MiB, parallel: 4 },
        sink,
      );
      expect(sha256(sink.bytes)).toBe(sha256(bytes));
      expect(sink.order.at(-1)).toBe(0);
      expect(sink.order.filter((p) => p >= MiB).length).toBe(3);
    } finally {
      server.close();
    }
  });

  it("stops the other ranges at the first failure, and rejects only once no write is pending", async () => {
    const bytes = randomBytes(8 * MiB);
    // The second range fails while the first is being written (slowly).
    const { url, server, ranges } = await rangeServer(bytes, {
      delay: (start) => (start === MiB ? 30 : 0),
      fail: (start) => (start === MiB ? 404 : undefined),
    });
    try {
      const sink = new RecordingSink(bytes.length, 50);
      await expectEcrxError(
        downloadBlobByPosition(
          { size: bytes.length, url: async () => url, rangeSize: MiB, parallel: 2 },
          sink,
        ),
        "NOT_FOUND",
        /HTTP 404/,
      );
      expect(sink.pending).toBe(0);
      // Two at a time, and nothing started after the failure.
      expect(ranges).toEqual([`0-${MiB - 1}`, `${MiB}-${2 * MiB - 1}`]);
    } finally {
      server.close();
    }
  });
});
